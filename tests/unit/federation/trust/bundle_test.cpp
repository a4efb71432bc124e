#include "federation/trust/bundle.h"
#include "federation/trust/errors.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace verbund::federation {
namespace {

using namespace std::chrono_literals;
using testing::kFastKdf;
using testing::makeCa;
using testing::testNow;

constexpr std::string_view kPass = "correct horse battery";

std::vector<Member> sampleMembers() {
  return {{"a1b2", "Zentrale München", {"10.1.0.5:3090", "[fd00::5]:3090"}},
          {"c3d4", "Filiale Hamburg", {"10.2.0.5:3090"}},
          {"e5f6", "Lager", {"pbx.lager.example:3090"}}};
}

std::string bundle(const FederationCa& ca, const std::vector<Member>& members = sampleMembers()) {
  auto b = makeBundle(ca, members, kPass, testNow(), kFastKdf);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? *b : std::string();
}

// Cuts the text of one PEM block (BEGIN line to END line, inclusive) out of a bundle.
std::string block(const std::string& text, std::string_view name) {
  std::string begin = "-----BEGIN " + std::string(name) + "-----";
  std::string end = "-----END " + std::string(name) + "-----\n";
  size_t b = text.find(begin);
  size_t e = text.find(end, b);
  if (b == std::string::npos || e == std::string::npos) return {};
  return text.substr(b, e + end.size() - b);
}

TEST(Bundle, RoundTrip) {
  FederationCa ca = makeCa("Nord");
  std::string bytes = bundle(ca);
  EXPECT_LE(bytes.size(), kMaxBundleBytes);
  auto opened = openBundle(bytes, kPass, testNow());
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->ca.name(), "Nord");
  EXPECT_EQ(opened->ca.federationId(), ca.federationId());
  EXPECT_EQ(X509_cmp(opened->ca.cert(), ca.cert()), 0);
  EXPECT_TRUE(detail::sameKey(opened->ca.key(), ca.key()));
  EXPECT_EQ(opened->members, sampleMembers());
  EXPECT_EQ(opened->createdAt, testNow());
  // The opened CA can mint certificates that the original CA's store accepts.
  EXPECT_TRUE(mintNodeCertificate(opened->ca, "n9", "new", {"10.9.0.1"}, testNow()).ok());
}

TEST(Bundle, DefaultKdfRoundTrip) {
  FederationCa ca = makeCa();
  auto b = makeBundle(ca, sampleMembers(), kPass, testNow());
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(openBundle(*b, kPass, testNow()).ok());
}

TEST(Bundle, EmptyAndLargeMemberLists) {
  FederationCa ca = makeCa();
  auto opened = openBundle(bundle(ca, {}), kPass, testNow());
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->members.empty());

  std::vector<Member> many;
  for (int i = 0; i < 300; ++i)
    many.push_back({"n" + std::to_string(i),
                    "Node " + std::to_string(i),
                    {"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":3090"}});
  opened = openBundle(bundle(ca, many), kPass, testNow());
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(opened->members, many);

  many.resize(1001, many.front());
  auto r = makeBundle(ca, many, kPass, testNow(), kFastKdf);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kTooLarge));
}

TEST(Bundle, PassphraseRules) {
  FederationCa ca = makeCa();
  auto r = makeBundle(ca, {}, "short", testNow(), kFastKdf);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kWeakPassphrase));
  EXPECT_FALSE(makeBundle(ca, {}, "ninechars", testNow(), kFastKdf).ok());
  EXPECT_TRUE(makeBundle(ca, {}, "tenchars!!", testNow(), kFastKdf).ok());
  EXPECT_FALSE(makeBundle(ca, {}, std::string(1025, 'x'), testNow(), kFastKdf).ok());
  EXPECT_FALSE(makeBundle(ca, {}, std::string("0123456789\0x", 12), testNow(), kFastKdf).ok());
}

TEST(Bundle, ValidatesMembers) {
  FederationCa ca = makeCa();
  auto bad = [&](Member m) {
    auto r = makeBundle(ca, {m}, kPass, testNow(), kFastKdf);
    return !r.ok() && isTrustError(r.error(), TrustErrc::kInvalidArgument);
  };
  EXPECT_TRUE(bad({"", "n", {"10.0.0.1:3090"}}));
  EXPECT_TRUE(bad({"id", "", {"10.0.0.1:3090"}}));
  EXPECT_TRUE(bad({"id", "n", {}}));
  EXPECT_TRUE(bad({"id", "n", {"10.0.0.1"}}));
  EXPECT_TRUE(bad({"id", "n", {"10.0.0.1:0"}}));
  EXPECT_TRUE(bad({"id", "n", {"10.0.0.1:65536"}}));
  EXPECT_TRUE(bad({"id", "n", {"fd00::1:3090"}}));
  EXPECT_TRUE(bad({"id", "n", {"bad_host:3090"}}));
  EXPECT_TRUE(bad({"id", "n\x01", {"10.0.0.1:3090"}}));
  auto dup = makeBundle(ca, {{"id", "a", {"10.0.0.1:1"}}, {"id", "b", {"10.0.0.2:1"}}}, kPass,
                        testNow(), kFastKdf);
  EXPECT_FALSE(dup.ok());
}

TEST(Bundle, WrongPassphrase) {
  FederationCa ca = makeCa();
  std::string bytes = bundle(ca);
  for (std::string_view pass : {"correct horse battery!", "", "x", "Correct horse battery"}) {
    auto r = openBundle(bytes, pass, testNow());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kWrongPassphrase)) << r.error().message;
    EXPECT_EQ(r.error().message.find(pass.empty() ? "\x01" : std::string(pass)), std::string::npos);
  }
}

TEST(Bundle, NotABundle) {
  for (std::string_view junk : {"", "hello", "-----BEGIN CERTIFICATE-----\n",
                                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) {
    auto r = openBundle(junk, kPass, testNow());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt)) << junk << ": " << r.error().message;
  }
  auto r = openBundle(std::string(kMaxBundleBytes + 1, 'A'), kPass, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kTooLarge));
}

TEST(Bundle, TruncationsAreCorrupt) {
  FederationCa ca = makeCa();
  std::string bytes = bundle(ca);
  // Every cut that loses part of a block; cuts inside the preamble or the final newline only
  // leave the content intact.
  size_t firstBlock = bytes.find("-----BEGIN");
  for (size_t len = 0; len + 1 < bytes.size(); len += (len < firstBlock ? 17 : 1)) {
    auto r = openBundle(std::string_view(bytes).substr(0, len), kPass, testNow());
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt) ||
                isTrustError(r.error(), TrustErrc::kWrongPassphrase))
        << len << ": " << r.error().message;
  }
}

TEST(Bundle, BitFlipsNeverCrashAndAreRefused) {
  FederationCa ca = makeCa();
  std::string bytes = bundle(ca);
  size_t firstBlock = bytes.find("-----BEGIN");
  size_t corrupt = 0, other = 0;
  for (size_t pos = firstBlock; pos < bytes.size(); pos += 7) {
    for (int bit : {0, 3, 6}) {
      std::string copy = bytes;
      copy[pos] = static_cast<char>(copy[pos] ^ (1 << bit));
      auto r = openBundle(copy, kPass, testNow());
      if (r.ok()) {
        // Only harmless flips may pass (e.g. base64 line ending changes); the content must be
        // what was written.
        EXPECT_EQ(r->ca.federationId(), ca.federationId());
        EXPECT_EQ(r->members, sampleMembers());
        continue;
      }
      if (isTrustError(r.error(), TrustErrc::kCorrupt))
        ++corrupt;
      else
        ++other;
      EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt) ||
                  isTrustError(r.error(), TrustErrc::kWrongPassphrase) ||
                  isTrustError(r.error(), TrustErrc::kKeyMismatch))
          << pos << ": " << r.error().message;
    }
  }
  EXPECT_GT(corrupt, other);
}

TEST(Bundle, TamperedMemberListIsCorrupt) {
  FederationCa ca = makeCa();
  std::string bytes = bundle(ca);
  FederationCa other = makeCa();
  std::string forged = bundle(other, {{"evil", "Evil", {"203.0.113.1:3090"}}});
  // Our certificate and key with somebody else's member list.
  std::string mixed = block(bytes, "CERTIFICATE") + block(bytes, "ENCRYPTED PRIVATE KEY") +
                      block(forged, "VERBUND MEMBERS");
  auto r = openBundle(mixed, kPass, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt)) << r.error().message;
}

TEST(Bundle, KeyNotMatchingCertificate) {
  FederationCa a = makeCa();
  FederationCa b = makeCa();
  std::string ba = bundle(a), bb = bundle(b);
  std::string mixed =
      block(ba, "CERTIFICATE") + block(bb, "ENCRYPTED PRIVATE KEY") + block(ba, "VERBUND MEMBERS");
  auto r = openBundle(mixed, kPass, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kKeyMismatch)) << r.error().message;
}

TEST(Bundle, MissingOrDuplicateBlocks) {
  FederationCa ca = makeCa();
  std::string bytes = bundle(ca);
  std::string cert = block(bytes, "CERTIFICATE"), key = block(bytes, "ENCRYPTED PRIVATE KEY"),
              members = block(bytes, "VERBUND MEMBERS");
  for (const std::string& text : {cert + key, key + members, cert + members,
                                  cert + cert + key + members, cert + key + members + members}) {
    auto r = openBundle(text, kPass, testNow());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt)) << r.error().message;
  }
  // Order does not matter, the preamble is optional.
  EXPECT_TRUE(openBundle(members + key + cert, kPass, testNow()).ok());
}

TEST(Bundle, ExpiredCa) {
  FederationCa ca = FederationCa::create("Alt", testNow() - 24h * 100, 24h * 50).value();
  auto b = makeBundle(ca, {}, kPass, testNow(), kFastKdf);
  ASSERT_TRUE(b.ok());
  auto r = openBundle(*b, kPass, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kExpired)) << r.error().message;
  // Wrong passphrase is reported before expiry.
  r = openBundle(*b, "not the passphrase", testNow());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kWrongPassphrase));
}

TEST(Bundle, RefusesExcessiveKdfIterations) {
  FederationCa ca = makeCa();
  // Craft a key block with too many rounds (not via makeBundle, which refuses it).
  auto key = detail::encryptKeyPem(ca.key(), kPass, kMaxBundleKdfIterations + 1);
  ASSERT_TRUE(key.ok());
  std::string bytes = bundle(ca);
  std::string text = block(bytes, "CERTIFICATE") + *key + block(bytes, "VERBUND MEMBERS");
  auto start = std::chrono::steady_clock::now();
  auto r = openBundle(text, kPass, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kCorrupt)) << r.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// The bundle is inspectable with the stock openssl CLI (documented in the module README).
TEST(Bundle, InspectableWithOpensslCli) {
  // scripts/deps.sh installs the openssl CLI; its absence is a failure, not a skip.
  ASSERT_EQ(std::system("openssl version > /dev/null 2>&1"), 0) << "no openssl CLI";
  testing::TempDir dir;
  FederationCa ca = makeCa("Nord");
  auto path = dir.path() / "federation.pem";
  {
    std::ofstream out(path);
    out << bundle(ca);
  }
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return std::string("popen failed");
    char buf[512];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    int rc = pclose(p);
    return rc == 0 ? out : "exit " + std::to_string(rc) + ": " + out;
  };
  std::string f = path.string();
  std::string subject = run("openssl x509 -in '" + f + "' -noout -subject 2>&1");
  EXPECT_NE(subject.find("Verbund federation Nord"), std::string::npos) << subject;
  EXPECT_NE(subject.find(ca.federationId()), std::string::npos) << subject;
  ::setenv("VERBUND_TEST_PASS", std::string(kPass).c_str(), 1);
  std::string key =
      run("openssl pkey -in '" + f + "' -passin env:VERBUND_TEST_PASS -noout -text 2>&1");
  EXPECT_NE(key.find("prime256v1"), std::string::npos) << key;
  std::string wrong = run("openssl pkey -in '" + f + "' -passin pass:wrongwrongwrong -noout 2>&1");
  EXPECT_EQ(wrong.rfind("exit ", 0), 0u) << wrong;
  std::string members = run("sed -n '/BEGIN VERBUND MEMBERS/,/END VERBUND MEMBERS/p' '" + f +
                            "' | grep -v -- ----- | openssl base64 -d 2>&1");
  EXPECT_NE(members.find("\"Filiale Hamburg\""), std::string::npos) << members;
  std::string kdf =
      run("sed -n '/BEGIN ENCRYPTED/,/END ENCRYPTED/p' '" + f + "' | openssl asn1parse 2>&1");
  EXPECT_NE(kdf.find("PBES2"), std::string::npos) << kdf;
  EXPECT_NE(kdf.find("hmacWithSHA256"), std::string::npos) << kdf;
  EXPECT_NE(kdf.find("aes-256-cbc"), std::string::npos) << kdf;
}

// Bundles made before the default rose to 600,000 rounds (200,000) still open.
TEST(Bundle, OpensBundlesOfTheEarlierIterationCount) {
  static_assert(kBundleKdfIterations >= 600'000);
  FederationCa ca = makeCa();
  auto b = makeBundle(ca, sampleMembers(), kPass, testNow(), 200'000);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(openBundle(*b, kPass, testNow()).ok());
}

} // namespace
} // namespace verbund::federation

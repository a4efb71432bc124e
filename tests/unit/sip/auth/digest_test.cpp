// Digest authentication: RFC test vectors, server/client round trips in simulated time.
#include "sip/auth/digest.h"

#include "base/manual_timers.h"
#include "base/metrics.h"

#include <cctype>
#include <deque>
#include <gtest/gtest.h>
#include <map>
#include <string>

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;

constexpr DigestAlgorithm kAllAlgorithms[] = {
    DigestAlgorithm::Md5,        DigestAlgorithm::Md5Sess,    DigestAlgorithm::Sha256,
    DigestAlgorithm::Sha256Sess, DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha512_256Sess,
};

// AuthParams are views: keep every parsed text alive for the whole test binary.
AuthParams parse(std::string text) {
  static std::deque<std::string> keep;
  const std::string& s = keep.emplace_back(std::move(text));
  auto r = parseAuthParams(s);
  EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : AuthParams{};
}

uint64_t counterValue(std::string_view name) {
  for (const Counter* c : allCounters())
    if (name == c->name()) return c->value();
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

// Replaces the value of a quoted parameter in a header value.
std::string replaceQuoted(std::string header, const std::string& name, const std::string& value) {
  size_t p = header.find(name + "=\"");
  EXPECT_NE(p, std::string::npos);
  size_t b = p + name.size() + 2;
  size_t e = header.find('"', b);
  return header.replace(b, e - b, value);
}

// ---- RFC vectors ------------------------------------------------------------------------------

TEST(DigestVectors, Rfc7616Md5AndSha256) {
  // RFC 7616 §3.9.1
  for (auto [alg, expected] :
       {std::pair{DigestAlgorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"},
        std::pair{DigestAlgorithm::Sha256,
                  "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"}}) {
    auto ha1 = digestHa1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
    ASSERT_TRUE(ha1);
    DigestInputs in;
    in.algorithm = alg;
    in.ha1 = *ha1;
    in.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    in.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    in.nc = "00000001";
    in.qop = "auth";
    in.method = "GET";
    in.uri = "/dir/index.html";
    EXPECT_EQ(digestResponse(in), expected) << digestAlgorithmName(alg);
  }
}

TEST(DigestVectors, Rfc2617) {
  // RFC 2617 §3.5
  auto ha1 = digestHa1(DigestAlgorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  ASSERT_TRUE(ha1);
  DigestInputs in;
  in.ha1 = *ha1;
  in.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
  in.cnonce = "0a4f113b";
  in.nc = "00000001";
  in.qop = "auth";
  in.method = "GET";
  in.uri = "/dir/index.html";
  EXPECT_EQ(digestResponse(in), "6629fae49393a05397450978507c4ef1");
}

TEST(DigestVectors, HashKnownAnswers) {
  EXPECT_EQ(digestHex(DigestAlgorithm::Md5, {"a", "bc"}), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(digestHex(DigestAlgorithm::Sha256Sess, {"abc"}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // FIPS 180-4 SHA-512/256 of "abc"
  EXPECT_EQ(digestHex(DigestAlgorithm::Sha512_256, {"abc"}),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23");
}

TEST(DigestAlgorithms, Names) {
  for (auto a : kAllAlgorithms) EXPECT_EQ(digestAlgorithmFromName(digestAlgorithmName(a)), a);
  EXPECT_EQ(digestAlgorithmFromName("sha-256"), DigestAlgorithm::Sha256);
  EXPECT_EQ(digestAlgorithmFromName("md5-SESS"), DigestAlgorithm::Md5Sess);
  EXPECT_FALSE(digestAlgorithmFromName("SHA-1"));
  EXPECT_FALSE(digestAlgorithmFromName(""));
  EXPECT_EQ(baseAlgorithm(DigestAlgorithm::Sha512_256Sess), DigestAlgorithm::Sha512_256);
}

// ---- server/client ----------------------------------------------------------------------------

class DigestTest : public ::testing::Test {
protected:
  ManualTimers timers;
  std::map<std::string, std::string> passwords{{"alice", "wonderland"}, {"bob", "s3cr\"t\\"}};
  DigestLookup lookup = [this](std::string_view user, std::string_view realm,
                               DigestAlgorithm) -> std::optional<DigestSecret> {
    if (realm != "verbund.test") return std::nullopt;
    auto it = passwords.find(std::string(user));
    if (it == passwords.end()) return std::nullopt;
    return DigestSecret{DigestSecret::Kind::Password, it->second};
  };

  static DigestServerConfig config(std::vector<DigestAlgorithm> algs = {DigestAlgorithm::Sha256,
                                                                        DigestAlgorithm::Md5}) {
    DigestServerConfig c;
    c.realm = "verbund.test";
    c.algorithms = std::move(algs);
    c.nonceLifetime = 300s;
    return c;
  }

  // Challenge from `server` (first one), answered by `client`.
  std::string answer(DigestServer& server, DigestClient& client, const std::string& user,
                     const std::string& password, const std::string& method = "REGISTER",
                     const std::string& body = "", size_t which = 0) {
    std::string ch = server.challenges(false).at(which);
    auto r = client.authorize(parse(ch), user, password, method, "sip:verbund.test", body);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : std::string{};
  }

  DigestVerdict check(DigestServer& server, const std::string& authorization,
                      const std::string& method = "REGISTER", const std::string& body = "") {
    auto p = parseAuthParams(authorization);
    EXPECT_TRUE(p.ok()) << authorization;
    if (!p.ok()) return {};
    return server.verify(*p, method, body, lookup);
  }
};

TEST_F(DigestTest, ChallengesOnePerAlgorithmStrongestFirst) {
  DigestServer server(
      config({DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256, DigestAlgorithm::Md5}), timers);
  auto before = counterValue("verbund_sip_auth_challenges_total");
  auto chs = server.challenges(false);
  EXPECT_EQ(counterValue("verbund_sip_auth_challenges_total"), before + 1);
  ASSERT_EQ(chs.size(), 3u);
  const char* names[] = {"SHA-512-256", "SHA-256", "MD5"};
  for (size_t i = 0; i < 3; ++i) {
    auto p = parse(chs[i]);
    EXPECT_EQ(p.scheme, "Digest");
    EXPECT_EQ(p.get("realm"), "verbund.test");
    EXPECT_EQ(p.get("algorithm"), names[i]);
    EXPECT_EQ(p.get("qop"), "auth,auth-int");
    EXPECT_FALSE(p.get("stale"));
    EXPECT_EQ(p.get("nonce")->size(), 75u);
  }
  auto stale = parse(server.challenges(true)[0]);
  EXPECT_EQ(stale.get("stale"), "true");
  // Nonces differ between challenge sets.
  EXPECT_NE(parse(chs[0]).get("nonce"), stale.get("nonce"));
}

TEST_F(DigestTest, RoundTripEveryAlgorithmAndQop) {
  for (DigestAlgorithm alg : kAllAlgorithms) {
    for (std::string qop : {"auth", "auth-int", "auth-int,auth", ""}) {
      if (qop.empty() && isSessAlgorithm(alg)) continue;
      SCOPED_TRACE(std::string(digestAlgorithmName(alg)) + " qop=" + qop);
      DigestServer server(config({alg}), timers);
      DigestClient client;
      std::string challenge = "Digest realm=\"verbund.test\", nonce=\"" + server.makeNonce() +
                              "\", algorithm=" + std::string(digestAlgorithmName(alg)) +
                              ", opaque=\"op aque\"";
      if (!qop.empty()) challenge += ", qop=\"" + qop + "\"";
      std::string body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
      auto auth = client.authorize(parse(challenge), "alice", "wonderland", "INVITE",
                                   "sip:bob@verbund.test", body);
      ASSERT_TRUE(auth.ok()) << auth.error().message;
      auto p = parse(*auth);
      EXPECT_EQ(p.get("opaque"), "op aque");
      EXPECT_EQ(p.get("algorithm"), digestAlgorithmName(alg));
      std::string_view expectQop = qop.empty() ? "" : (qop == "auth-int" ? "auth-int" : "auth");
      EXPECT_EQ(p.get("qop").value_or(""), expectQop);
      auto v = check(server, *auth, "INVITE", body);
      EXPECT_EQ(v.status, DigestStatus::Ok) << digestStatusName(v.status);
      EXPECT_EQ(v.username, "alice");
      EXPECT_EQ(v.uri, "sip:bob@verbund.test");
      EXPECT_EQ(v.qop, expectQop);
      EXPECT_EQ(v.algorithm, alg);
      if (expectQop == "auth-int") {
        auto again = client.authorize(parse(challenge), "alice", "wonderland", "INVITE",
                                      "sip:bob@verbund.test", body);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(check(server, *again, "INVITE", body + "x").status, DigestStatus::WrongResponse);
      }
    }
  }
}

TEST_F(DigestTest, EscapedPasswordAndUsernameRoundTrip) {
  passwords["we\"ird\\user"] = "pw";
  DigestServer server(config(), timers);
  DigestClient client;
  EXPECT_TRUE(check(server, answer(server, client, "bob", "s3cr\"t\\")).ok());
  auto v = check(server, answer(server, client, "we\"ird\\user", "pw"));
  EXPECT_TRUE(v.ok()) << digestStatusName(v.status);
  EXPECT_EQ(v.username, "we\"ird\\user");
}

TEST_F(DigestTest, StoredHa1) {
  DigestServer server(config(), timers);
  DigestClient client;
  std::string ha1 = *digestHa1(DigestAlgorithm::Sha256, "carol", "verbund.test", "pw");
  for (char& c : ha1) c = char(std::toupper(static_cast<unsigned char>(c))); // any case
  DigestLookup byHa1 = [&](std::string_view user, std::string_view,
                           DigestAlgorithm base) -> std::optional<DigestSecret> {
    if (user != "carol" || base != DigestAlgorithm::Sha256) return std::nullopt;
    return DigestSecret{DigestSecret::Kind::Ha1, ha1};
  };
  auto ch = parse(server.challenges(false)[0]);
  auto auth = client.authorizeHa1(ch, "carol", ha1, "REGISTER", "sip:verbund.test");
  ASSERT_TRUE(auth.ok());
  auto p = parse(*auth);
  EXPECT_EQ(server.verify(p, "REGISTER", "", byHa1).status, DigestStatus::Ok);
  // The MD5 challenge: the lookup has no MD5 HA1 for carol.
  auto md5 = client.authorize(parse(server.challenges(false)[1]), "carol", "pw", "REGISTER",
                              "sip:verbund.test");
  ASSERT_TRUE(md5.ok());
  EXPECT_EQ(server.verify(parse(*md5), "REGISTER", "", byHa1).status, DigestStatus::WrongResponse);
}

TEST_F(DigestTest, ClientCountsNoncePerNonce) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto ch = parse(server.challenges(false)[0]);
  for (const char* nc : {"00000001", "00000002", "00000003"}) {
    auto a = client.authorize(ch, "alice", "wonderland", "REGISTER", "sip:verbund.test");
    ASSERT_TRUE(a.ok());
    auto p = parse(*a);
    EXPECT_EQ(p.get("nc"), nc);
    EXPECT_EQ(p.get("cnonce")->size(), 32u);
    EXPECT_TRUE(check(server, *a).ok());
  }
  auto other = parse(server.challenges(false)[0]);
  auto a = client.authorize(other, "alice", "wonderland", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(parse(*a).get("nc"), "00000001");
}

TEST_F(DigestTest, StaleAfterExpiry) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto ch = parse(server.challenges(false)[0]);
  timers.advance(300s); // still valid at exactly the lifetime
  auto a1 = client.authorize(ch, "alice", "wonderland", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *a1).status, DigestStatus::Ok);
  timers.advance(1ms);
  auto a2 = client.authorize(ch, "alice", "wonderland", "REGISTER", "sip:verbund.test");
  auto v = check(server, *a2);
  EXPECT_EQ(v.status, DigestStatus::StaleNonce);
  EXPECT_TRUE(v.wantsStaleChallenge());
  // stale=true only for a correct response (RFC 7616 §3.3).
  auto wrong = client.authorize(ch, "alice", "guess", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *wrong).status, DigestStatus::WrongResponse);
  EXPECT_EQ(server.trackedNonces(), 0u); // the expired entry is gone
}

TEST_F(DigestTest, TamperedNonce) {
  DigestServer server(config(), timers);
  DigestClient client;
  std::string ch = server.challenges(false)[0];
  std::string nonce(*parse(ch).get("nonce"));
  for (size_t pos : {size_t(0), size_t(5), size_t(20), nonce.size() - 1}) {
    std::string t = nonce;
    t[pos] = t[pos] == 'A' ? 'B' : 'A';
    auto a = client.authorize(parse(replaceQuoted(ch, "nonce", t)), "alice", "wonderland",
                              "REGISTER", "sip:verbund.test");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(check(server, *a).status, DigestStatus::BadNonce) << pos;
  }
  for (std::string t : {std::string(), nonce + "A", nonce.substr(1), std::string(75, '!')}) {
    auto a = client.authorize(parse(replaceQuoted(ch, "nonce", t)), "alice", "wonderland",
                              "REGISTER", "sip:verbund.test");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(check(server, *a).status, DigestStatus::BadNonce) << t;
  }
  // A nonce of another server (another secret) or another realm is not ours either.
  DigestServer other(config(), timers);
  auto a = answer(other, client, "alice", "wonderland");
  EXPECT_EQ(check(server, a).status, DigestStatus::BadNonce);
  auto cfg = config();
  cfg.realm = "other.test";
  DigestServer otherRealm(cfg, timers);
  std::string foreign = otherRealm.makeNonce();
  auto b = client.authorize(parse(replaceQuoted(ch, "nonce", foreign)), "alice", "wonderland",
                            "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *b).status, DigestStatus::BadNonce);
}

TEST_F(DigestTest, ReplayedNonceCount) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto a = answer(server, client, "alice", "wonderland");
  EXPECT_EQ(check(server, a).status, DigestStatus::Ok);
  auto v = check(server, a);
  EXPECT_EQ(v.status, DigestStatus::ReplayedNonceCount);
  EXPECT_TRUE(v.wantsStaleChallenge());
}

TEST_F(DigestTest, OutOfOrderNonceCountsWithinWindowAcceptedOnce) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto ch = parse(server.challenges(false)[0]);
  std::vector<std::string> auths;
  for (int i = 0; i < 70; ++i)
    auths.push_back(*client.authorize(ch, "alice", "wonderland", "REGISTER", "sip:verbund.test"));
  // nc 3 first, then 1 and 2 arrive late.
  EXPECT_EQ(check(server, auths[2]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[0]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[1]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[1]).status, DigestStatus::ReplayedNonceCount);
  EXPECT_EQ(check(server, auths[2]).status, DigestStatus::ReplayedNonceCount);
  // Jump to nc 70: nc 4..6 are more than 64 behind and refused, 7..69 still fine.
  EXPECT_EQ(check(server, auths[69]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[3]).status, DigestStatus::ReplayedNonceCount);
  EXPECT_EQ(check(server, auths[5]).status, DigestStatus::ReplayedNonceCount);
  EXPECT_EQ(check(server, auths[6]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[68]).status, DigestStatus::Ok);
  EXPECT_EQ(check(server, auths[68]).status, DigestStatus::ReplayedNonceCount);
}

TEST_F(DigestTest, WrongResponseDoesNotConsumeNonceCount) {
  DigestServer server(config(), timers);
  DigestClient client;
  std::string ch = server.challenges(false)[0];
  DigestClient attacker;
  auto forged = attacker.authorize(parse(ch), "alice", "guess", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *forged).status, DigestStatus::WrongResponse);
  auto real = client.authorize(parse(ch), "alice", "wonderland", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *real).status, DigestStatus::Ok); // same nc=1, still accepted
}

TEST_F(DigestTest, WrongPasswordAndUnknownUserLookAlike) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto wrong = check(server, answer(server, client, "alice", "nope"));
  auto unknown = check(server, answer(server, client, "mallory", "wonderland"));
  EXPECT_EQ(wrong.status, DigestStatus::WrongResponse);
  EXPECT_EQ(unknown.status, DigestStatus::WrongResponse);
  EXPECT_FALSE(wrong.wantsStaleChallenge());
  // Junk response of the wrong length: same answer.
  auto a = answer(server, client, "alice", "wonderland");
  EXPECT_EQ(check(server, replaceQuoted(a, "response", "00")).status, DigestStatus::WrongResponse);
  // Upper-case hex from a sloppy client is fine.
  auto up = answer(server, client, "alice", "wonderland");
  auto resp = std::string(*parse(up).get("response"));
  for (char& c : resp) c = char(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(check(server, replaceQuoted(up, "response", resp)).status, DigestStatus::Ok);
}

TEST_F(DigestTest, FailureKinds) {
  DigestServer server(config({DigestAlgorithm::Sha256}), timers);
  DigestClient client;
  std::string good = answer(server, client, "alice", "wonderland");
  auto status = [&](const std::string& s) { return check(server, s).status; };

  EXPECT_EQ(server.verify(AuthParams{}, "REGISTER", "", lookup).status, DigestStatus::Missing);
  EXPECT_EQ(status("Basic realm=\"verbund.test\""), DigestStatus::NotDigest);
  EXPECT_EQ(status(replaceQuoted(good, "realm", "elsewhere")), DigestStatus::WrongRealm);
  std::string md5 = good;
  md5.replace(md5.find("algorithm=SHA-256"), 17, "algorithm=MD5");
  EXPECT_EQ(status(md5), DigestStatus::UnknownAlgorithm); // not offered: no downgrade
  std::string noAlg = good;
  noAlg.erase(noAlg.find(", algorithm=SHA-256"), 19); // absent means MD5
  EXPECT_EQ(status(noAlg), DigestStatus::UnknownAlgorithm);
  std::string sha1 = good;
  sha1.replace(sha1.find("algorithm=SHA-256"), 17, "algorithm=SHA-1");
  EXPECT_EQ(status(sha1), DigestStatus::UnknownAlgorithm);

  auto without = [&](const std::string& name) {
    auto p = parse(good);
    size_t k = 0;
    for (size_t i = 0; i < p.count; ++i)
      if (p.items[i].name != name) p.items[k++] = p.items[i];
    p.count = k;
    return server.verify(p, "REGISTER", "", lookup).status;
  };
  for (const char* n : {"username", "nonce", "uri", "response", "cnonce", "nc", "realm"})
    EXPECT_EQ(without(n), DigestStatus::Malformed) << n;

  std::string badNc = good;
  size_t ncPos = badNc.find("nc=");
  EXPECT_EQ(status(badNc.replace(ncPos, 11, "nc=0000001g")), DigestStatus::Malformed);
  badNc = good;
  EXPECT_EQ(status(badNc.replace(ncPos, 11, "nc=00000000")), DigestStatus::Malformed);
  badNc = good;
  EXPECT_EQ(status(badNc.replace(ncPos, 11, "nc=1")), DigestStatus::Malformed);
  std::string badQop = good;
  badQop.replace(badQop.find("qop=auth"), 8, "qop=foo");
  EXPECT_EQ(status(badQop), DigestStatus::Malformed);
  EXPECT_EQ(status(replaceQuoted(good, "uri", "")), DigestStatus::Malformed);
}

TEST_F(DigestTest, LegacyNoQop) {
  DigestServer server(config({DigestAlgorithm::Md5}), timers);
  DigestClient client;
  std::string ch = "Digest realm=\"verbund.test\", nonce=\"" + server.makeNonce() + "\"";
  auto a = client.authorize(parse(ch), "alice", "wonderland", "REGISTER", "sip:verbund.test");
  ASSERT_TRUE(a.ok());
  auto p = parse(*a);
  EXPECT_FALSE(p.get("qop"));
  EXPECT_FALSE(p.get("nc"));
  EXPECT_FALSE(p.get("cnonce"));
  EXPECT_EQ(check(server, *a).status, DigestStatus::Ok);
  // Without nc the nonce is single-use.
  EXPECT_EQ(check(server, *a).status, DigestStatus::ReplayedNonceCount);

  auto cfg = config({DigestAlgorithm::Md5});
  cfg.allowNoQop = false;
  DigestServer strict(cfg, timers);
  std::string ch2 = "Digest realm=\"verbund.test\", nonce=\"" + strict.makeNonce() + "\"";
  auto b = client.authorize(parse(ch2), "alice", "wonderland", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(strict, *b).status, DigestStatus::Malformed);
}

TEST_F(DigestTest, AuthIntNotOffered) {
  auto cfg = config();
  cfg.offerAuthInt = false;
  DigestServer server(cfg, timers);
  EXPECT_EQ(parse(server.challenges(false)[0]).get("qop"), "auth");
  DigestClient client;
  std::string ch = "Digest realm=\"verbund.test\", nonce=\"" + server.makeNonce() +
                   "\", algorithm=SHA-256, qop=\"auth-int\"";
  auto a = client.authorize(parse(ch), "alice", "wonderland", "REGISTER", "sip:verbund.test");
  EXPECT_EQ(check(server, *a).status, DigestStatus::Malformed);
}

TEST_F(DigestTest, EvictionBound) {
  auto cfg = config();
  cfg.maxTrackedNonces = 10;
  DigestServer server(cfg, timers);
  DigestClient client;
  std::vector<std::string> first;
  for (int i = 0; i < 25; ++i) {
    auto a = answer(server, client, "alice", "wonderland");
    first.push_back(a);
    EXPECT_TRUE(check(server, a).ok());
    EXPECT_LE(server.trackedNonces(), 10u);
    timers.advance(1ms);
  }
  EXPECT_EQ(server.trackedNonces(), 10u);
  // The evicted nonces lost their history: a replay must not look fresh.
  EXPECT_EQ(check(server, first[0]).status, DigestStatus::ReplayedNonceCount);
  EXPECT_EQ(check(server, first[14]).status, DigestStatus::ReplayedNonceCount);
  EXPECT_EQ(check(server, first[24]).status, DigestStatus::ReplayedNonceCount);
  // A nonce issued after the evictions is tracked normally.
  auto fresh = answer(server, client, "alice", "wonderland");
  EXPECT_TRUE(check(server, fresh).ok());
  // Everything goes once the lifetime has passed.
  timers.advance(301s);
  EXPECT_TRUE(check(server, answer(server, client, "alice", "wonderland")).ok());
  EXPECT_EQ(server.trackedNonces(), 1u);
}

TEST_F(DigestTest, CountersCountOutcomes) {
  DigestServer server(config(), timers);
  DigestClient client;
  auto ok0 = counterValue("verbund_sip_auth_ok_total");
  auto wrong0 = counterValue("verbund_sip_auth_fail_wrong_response_total");
  EXPECT_TRUE(check(server, answer(server, client, "alice", "wonderland")).ok());
  check(server, answer(server, client, "alice", "bad"));
  EXPECT_EQ(counterValue("verbund_sip_auth_ok_total"), ok0 + 1);
  EXPECT_EQ(counterValue("verbund_sip_auth_fail_wrong_response_total"), wrong0 + 1);
}

TEST(DigestClientTest, PickChallenge) {
  auto md5 = parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\"");
  auto noalg = parse("Digest realm=\"r\", nonce=\"n\"");
  auto sha = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"");
  auto sha512 = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=\"auth\"");
  auto unknown = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA3-999, qop=\"auth\"");
  auto badQop = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=\"x\"");
  auto sessNoQop = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256-sess");
  auto basic = parse("Basic realm=\"r\"");
  EXPECT_EQ(DigestClient::pickChallenge(std::vector{md5, sha, sha512}), 2u);
  EXPECT_EQ(DigestClient::pickChallenge(std::vector{sha512, sha, md5}), 0u);
  EXPECT_EQ(DigestClient::pickChallenge(std::vector{basic, noalg, md5}), 1u);
  EXPECT_EQ(DigestClient::pickChallenge(std::vector{unknown, badQop, sessNoQop, sha}), 3u);
  EXPECT_FALSE(DigestClient::pickChallenge(std::vector{unknown, basic}));
  EXPECT_FALSE(DigestClient::pickChallenge(std::vector<AuthParams>{}));
}

TEST(DigestClientTest, RejectsUnusableChallenges) {
  DigestClient c;
  auto call = [&](const std::string& ch) {
    return c.authorize(parse(ch), "u", "p", "REGISTER", "sip:x").ok();
  };
  EXPECT_FALSE(call("Basic realm=\"r\""));
  EXPECT_FALSE(call("Digest nonce=\"n\""));
  EXPECT_FALSE(call("Digest realm=\"r\""));
  EXPECT_FALSE(call("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1"));
  EXPECT_FALSE(call("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\""));
  EXPECT_FALSE(call("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess"));
  EXPECT_TRUE(call("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf, auth\""));
  // No header injection through our own inputs.
  EXPECT_FALSE(
      c.authorize(parse("Digest realm=\"r\", nonce=\"n\""), "u\r\nX: y", "p", "REGISTER", "sip:x")
          .ok());
}

} // namespace
} // namespace verbund::sip

// Writes the fuzz target's fixed federation (fixed_ca.inc) and its seed corpus: real bundles,
// damaged bundles, revocation lists signed by the fixed CA, a node certificate.
// Usage: make_federation_bundle_seeds <fuzz/federation_bundle directory>
#include "common.h"
#include "federation/trust/bundle.h"
#include "federation/trust/revocation.h"

#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace verbund::federation;
using namespace std::chrono_literals;

namespace {

template <typename T> T must(verbund::Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", what, r.error().message.c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void write(const std::filesystem::path& p, std::string_view data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  std::printf("wrote %s (%zu bytes)\n", p.c_str(), data.size());
}

std::string block(const std::string& text, const std::string& name) {
  std::string begin = "-----BEGIN " + name + "-----";
  std::string end = "-----END " + name + "-----\n";
  size_t b = text.find(begin);
  size_t e = text.find(end, b);
  return text.substr(b, e + end.size() - b);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/federation_bundle dir>\n", argv[0]);
    return 2;
  }
  std::filesystem::path dir = argv[1];
  std::filesystem::path corpus = dir / "corpus";
  std::filesystem::create_directories(corpus);
  const SysTime now = fuzz::fixedNow();
  const auto pass = fuzz::kPassphrase;
  const int kdf = fuzz::kKdfIterations;

  FederationCa ca = must(FederationCa::create("Fuzz", now - 24h), "ca");
  std::vector<Member> members = {
      {"a1b2c3", "Zentrale München", {"10.1.0.5:3090", "[fd00::5]:3090"}},
      {"d4e5f6", "Filiale", {"pbx.filiale.example:3090"}}};
  std::string basic = must(makeBundle(ca, members, pass, now, kdf), "bundle");
  write(dir / "fixed_ca.inc", "R\"VERBUNDPEM(" + basic + ")VERBUNDPEM\"\n");
  write(corpus / "bundle_basic.pem", basic);
  write(corpus / "bundle_empty.pem", must(makeBundle(ca, {}, pass, now, kdf), "empty"));

  FederationCa other = must(FederationCa::create("Andere", now - 24h), "other");
  std::string otherBundle = must(makeBundle(other, members, pass, now, kdf), "other bundle");
  write(corpus / "bundle_other_federation.pem", otherBundle);
  write(corpus / "bundle_key_mismatch.pem", block(basic, "CERTIFICATE") +
                                                block(otherBundle, "ENCRYPTED PRIVATE KEY") +
                                                block(basic, "VERBUND MEMBERS"));
  write(corpus / "bundle_truncated.pem", basic.substr(0, basic.size() / 2));
  FederationCa old = must(FederationCa::create("Alt", now - 24h * 100, 24h * 50), "old");
  write(corpus / "bundle_expired.pem", must(makeBundle(old, {}, pass, now, kdf), "expired"));

  RevocationList list(ca.federationId());
  NodeCredentials node =
      must(mintNodeCertificate(ca, "a1b2c3", "Zentrale", {"10.1.0.5"}, now), "node");
  std::string fp = *fingerprintOf(node.cert.get());
  for (auto e : {signRevocation(ca, "d4e5f6", "", "left the federation", "a1b2c3", now),
                 signRevocation(ca, "a1b2c3", fp, "key lost", "d4e5f6", now + 1s)}) {
    (void)list.add(must(std::move(e), "revocation"), ca.cert());
  }
  write(corpus / "revocations.json", list.toJson());
  write(corpus / "revocations_empty.json", RevocationList(ca.federationId()).toJson());

  unsigned char* der = nullptr;
  int n = i2d_X509(node.cert.get(), &der);
  write(corpus / "node_cert.der",
        std::string(reinterpret_cast<char*>(der), static_cast<size_t>(n)));
  OPENSSL_free(der);
  return 0;
}

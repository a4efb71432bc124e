#pragma once
// Helpers for the trust tests: a fixed "now", temp directories, odd certificates.
#include "federation/trust/cert_builder.h"
#include "federation/trust/certificates.h"

#include <gtest/gtest.h>
#include <openssl/objects.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>

namespace verbund::federation::testing {

// 2025-06-01 00:00:00 UTC.
inline SysTime testNow() {
  return detail::fromUnixSeconds(1748736000);
}
inline constexpr int kFastKdf = 1000; // PBKDF2 rounds for bundles made in tests

inline FederationCa makeCa(std::string_view name = "Nord", SysTime now = testNow()) {
  auto ca = FederationCa::create(name, now);
  EXPECT_TRUE(ca.ok()) << (ca.ok() ? "" : ca.error().message);
  return std::move(ca).value();
}

inline NodeCredentials mint(const FederationCa& ca, std::string_view nodeId,
                            SysTime now = testNow(),
                            std::chrono::seconds validity = kNodeValidity) {
  auto c = mintNodeCertificate(ca, nodeId, "Node " + std::string(nodeId), {"10.0.0.1", "fd00::1"},
                               now, validity);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return std::move(c).value();
}

// A certificate with a node URI that signs itself.
inline X509Ptr selfSignedNodeCert(std::string_view nodeId) {
  auto key = detail::generateP256Key();
  detail::CertSpec spec;
  spec.subject = {{NID_commonName, std::string(nodeId)}};
  spec.subjectKey = key->get();
  spec.issuerKey = key->get();
  spec.notBefore = testNow() - std::chrono::hours(1);
  spec.notAfter = testNow() + std::chrono::hours(24 * 365);
  spec.basicConstraints = "critical,CA:FALSE";
  spec.extendedKeyUsage = "serverAuth,clientAuth";
  spec.subjectAltName = "URI:urn:verbund:node:" + std::string(nodeId);
  return std::move(detail::buildCertificate(spec)).value();
}

// A certificate issued by the CA but without the node URI.
inline X509Ptr nodeCertWithoutUri(const FederationCa& ca, std::string_view nodeId) {
  auto key = detail::generateP256Key();
  detail::CertSpec spec;
  spec.subject = {{NID_commonName, std::string(nodeId)}};
  spec.subjectKey = key->get();
  spec.issuerCert = ca.cert();
  spec.issuerKey = ca.key();
  spec.notBefore = testNow() - std::chrono::hours(1);
  spec.notAfter = testNow() + std::chrono::hours(24 * 365);
  spec.basicConstraints = "critical,CA:FALSE";
  spec.extendedKeyUsage = "serverAuth,clientAuth";
  spec.subjectAltName = "IP:10.0.0.9";
  return std::move(detail::buildCertificate(spec)).value();
}

class TempDir {
public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("verbund-trust-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

} // namespace verbund::federation::testing

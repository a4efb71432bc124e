#pragma once
// The federation CA and the node certificates it issues (design §4 "Trust").
//
// CA:   self-signed, EC P-256 / ECDSA-SHA256, 20 years, basicConstraints critical CA:TRUE
//       pathlen:0, keyUsage critical keyCertSign+cRLSign; subject
//       CN="Verbund federation <name>", O="Verbund", serialNumber=<federation id> where the
//       federation id is 128 random bits as 32 lowercase hex digits.
// Node: EC P-256, 2 years, random 127-bit serial, subject CN=<node id>, name=<node name>;
//       subjectAltName IP:<each address> + URI:urn:verbund:node:<node id>;
//       extendedKeyUsage serverAuth+clientAuth; keyUsage digitalSignature.
// A node's identity is the SHA-256 fingerprint of its SubjectPublicKeyInfo (what peers pin).
#include "base/result.h"
#include "federation/trust/ossl.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::federation {

inline constexpr std::string_view kNodeUriPrefix = "urn:verbund:node:";
inline constexpr std::string_view kCaCommonNamePrefix = "Verbund federation ";
inline constexpr std::chrono::hours kCaValidity{24 * 365 * 20 + 24 * 5}; // 20 years
inline constexpr std::chrono::hours kNodeValidity{24 * (365 * 2 + 1)};   // 2 years
inline constexpr std::chrono::hours kRenewBefore{24 * 30};               // renew < 30 days left
inline constexpr size_t kMaxFederationNameChars = 40; // CN is at most 64 characters
inline constexpr size_t kMaxNodeNameChars = 64;
inline constexpr size_t kMaxNodeIdChars = 64;
inline constexpr size_t kMaxCertAddresses = 16;

// Field rules; errors are kInvalidArgument and start with the field name.
Result<void> validateFederationName(std::string_view name);
Result<void> validateNodeId(std::string_view field, std::string_view id);
Result<void> validateNodeName(std::string_view name);
Result<void> validateFederationId(std::string_view id);
// An IPv4 or IPv6 literal (no brackets, no port).
Result<void> validateIpAddress(std::string_view field, std::string_view ip);

class FederationCa {
public:
  // Creates a new federation: fresh key, fresh random federation id, self-signed certificate
  // valid from `now` (minus a minute for clock skew) for `validity`.
  static Result<FederationCa> create(std::string_view name,
                                     SysTime now = std::chrono::system_clock::now(),
                                     std::chrono::seconds validity = kCaValidity);
  // The next CA of the same federation (same name and federation id, fresh key): what a member
  // makes when another member is removed, so that nothing the removed node holds admits anyone.
  static Result<FederationCa> successor(const FederationCa& previous,
                                        SysTime now = std::chrono::system_clock::now(),
                                        std::chrono::seconds validity = kCaValidity);
  // Adopts an existing CA certificate and key (from a bundle or the database) after checking
  // that the certificate is a Verbund federation CA (self-signed, CA:TRUE, P-256, names) and the
  // key belongs to it. Validity dates are not checked here.
  static Result<FederationCa> fromParts(X509Ptr cert, PKeyPtr key);
  // Checks that cert looks like a Verbund federation CA; returns its (name, federation id).
  static Result<std::pair<std::string, std::string>> inspectCaCertificate(X509* cert);

  const std::string& name() const { return name_; }
  const std::string& federationId() const { return federationId_; }
  X509* cert() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  // SHA-256 of the CA's SubjectPublicKeyInfo (64 hex): tells two CAs of one federation apart.
  std::string fingerprint() const;

private:
  FederationCa() = default;
  static Result<FederationCa> build(std::string name, std::string federationId, SysTime now,
                                    std::chrono::seconds validity);
  std::string name_;
  std::string federationId_;
  X509Ptr cert_;
  PKeyPtr key_;
};

// A node's own certificate and private key.
struct NodeCredentials {
  X509Ptr cert;
  PKeyPtr key;
};

// Issues a node certificate (fresh key) signed by the CA. addresses: the node's IP literals.
Result<NodeCredentials> mintNodeCertificate(const FederationCa& ca, std::string_view nodeId,
                                            std::string_view nodeName,
                                            const std::vector<std::string>& addresses,
                                            SysTime now = std::chrono::system_clock::now(),
                                            std::chrono::seconds validity = kNodeValidity);

// Re-issues a certificate for an existing node key (renewal, a new CA after a removal): the node
// keeps the key its peers pinned.
Result<NodeCredentials> reissueNodeCertificate(const FederationCa& ca, EVP_PKEY* nodeKey,
                                               std::string_view nodeId, std::string_view nodeName,
                                               const std::vector<std::string>& addresses,
                                               SysTime now = std::chrono::system_clock::now(),
                                               std::chrono::seconds validity = kNodeValidity);

// True when fewer than kRenewBefore remain (or the certificate is expired or unreadable).
bool renewalDue(X509* cert, SysTime now = std::chrono::system_clock::now());

// Facts read from a (peer) certificate. None of these verify anything; see verifyPeer().
std::optional<std::string> nodeIdOf(X509* cert);       // from the urn:verbund:node: URI
std::optional<std::string> federationIdOf(X509* cert); // the issuer's serialNumber
std::optional<std::string> fingerprintOf(X509* cert);  // SHA-256 of SPKI, 64 lowercase hex
std::optional<std::string> fingerprintOfKey(EVP_PKEY* key);
std::optional<SysTime> notAfterOf(X509* cert);

} // namespace verbund::federation

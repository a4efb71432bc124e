#pragma once
// What a node trusts: its federation's CA (certificate and key), its own node certificate and
// the revocation list; peer verification against them; and their persistence.
//
// Persistence (store module "federation_trust"): one row with the federation name/id, the CA
// certificate, the node certificate and both private keys; one row per revocation entry. The
// private keys are stored as PKCS#8 EncryptedPrivateKeyInfo (PBES2, AES-256-CBC) whose
// passphrase is a 256-bit node-local secret kept in <dataDir>/federation-trust.secret (mode
// 0600, created on first save). A copy of the database alone does not reveal the keys; a
// backup needs both files.
#include "base/result.h"
#include "federation/trust/certificates.h"
#include "federation/trust/revocation.h"
#include "store/database.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace verbund::federation {

inline constexpr std::string_view kSecretFileName = "federation-trust.secret";

struct PeerIdentity {
  std::string nodeId;      // from urn:verbund:node:<id>, equal to the subject CN
  std::string fingerprint; // SHA-256 of the SPKI, 64 hex: what to pin
  std::string federationId;
};

class TrustStore {
public:
  explicit TrustStore(FederationCa ca);

  static std::vector<store::Migration> migrations(); // module "federation_trust"

  const FederationCa& ca() const { return ca_; }
  const RevocationList& revocations() const { return revocations_; }

  // This node's certificate; checked to be issued by the CA and to match the key.
  Result<void> setNodeCredentials(NodeCredentials creds);
  const std::optional<NodeCredentials>& nodeCredentials() const { return node_; }

  // Revokes a node (fingerprint empty) or one of its keys; signs with the CA key.
  Result<RevocationEntry> revoke(std::string_view nodeId, std::string_view fingerprint,
                                 std::string_view reason, std::string_view byNode,
                                 SysTime now = std::chrono::system_clock::now());
  // Merges a list received from a peer (already parsed and verified against this CA).
  Result<size_t> mergeRevocations(const RevocationList& other);
  Result<size_t> mergeRevocations(std::string_view json); // parse + verify + merge

  // Persists everything (replacing the stored state; revocations are only ever added).
  // `now` stamps the stored row.
  Result<void> save(store::Database& db, const std::filesystem::path& dataDir,
                    SysTime now = std::chrono::system_clock::now()) const;
  // Loads and re-validates everything; nullopt when this node is not in a federation.
  static Result<std::optional<TrustStore>> load(store::Database& db,
                                                const std::filesystem::path& dataDir);
  // Forgets the federation (leaving it). The secret file stays.
  static Result<void> erase(store::Database& db);

private:
  FederationCa ca_;
  std::optional<NodeCredentials> node_;
  RevocationList revocations_;
};

// Verifies a peer's certificate (as presented in mutual TLS) against the federation CA and the
// revocation list. chain: further certificates the peer sent (untrusted; may be nullptr).
// Errors: kOtherFederation, kSelfSigned, kExpired, kNotYetValid, kRevoked, kMissingNodeUri,
// kInvalidCertificate.
Result<PeerIdentity> verifyPeer(X509* peerCert, STACK_OF(X509) * chain, const TrustStore& trust,
                                SysTime now = std::chrono::system_clock::now());

namespace detail {
// Reads <dataDir>/federation-trust.secret, creating it (0600) when create is set and it is
// missing. Refuses a file readable by group or others.
Result<std::string> loadLocalSecret(const std::filesystem::path& dataDir, bool create);
} // namespace detail

} // namespace verbund::federation

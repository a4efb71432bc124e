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
#include <functional>
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
  // How many times the federation's CA was replaced (0 for the CA made by create). A CA with a
  // higher generation replaces a lower one; equal generations (two removals at once on two
  // members) are ordered by the CA key's fingerprint, the larger wins, the same on every node.
  int64_t generation() const { return generation_; }
  // True when (ca, generation) should replace this store's CA.
  bool supersededBy(const FederationCa& ca, int64_t generation) const;
  const RevocationList& revocations() const { return revocations_; }

  // This node's certificate; checked to be issued by the CA and to match the key.
  Result<void> setNodeCredentials(NodeCredentials creds);
  const std::optional<NodeCredentials>& nodeCredentials() const { return node_; }

  // Revokes a node (fingerprint empty) or one of its keys; signs with the CA key.
  Result<RevocationEntry> revoke(std::string_view nodeId, std::string_view fingerprint,
                                 std::string_view reason, std::string_view byNode,
                                 SysTime now = std::chrono::system_clock::now());
  // Replaces the CA (rotate: a fresh successor, generation + 1; adoptCa: one received from a
  // member, generation as it said) and re-issues this node's certificate for the same key (the
  // pin peers hold does not change) and re-signs every revocation entry with the new CA key.
  // The node certificate's name and addresses are taken from the current one. Requires node
  // credentials.
  Result<void> rotate(SysTime now = std::chrono::system_clock::now());
  Result<void> adoptCa(FederationCa ca, int64_t generation,
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
  Result<void> replaceCa(FederationCa ca, int64_t generation, SysTime now);
  FederationCa ca_;
  int64_t generation_ = 0;
  std::optional<NodeCredentials> node_;
  RevocationList revocations_;
};

// Verifies a peer's certificate (as presented in mutual TLS) against the federation CA and the
// revocation list. chain: further certificates the peer sent (untrusted; may be nullptr).
// Errors: kOtherFederation, kSelfSigned, kExpired, kNotYetValid, kRevoked, kMissingNodeUri,
// kInvalidCertificate.
Result<PeerIdentity> verifyPeer(X509* peerCert, STACK_OF(X509) * chain, const TrustStore& trust,
                                SysTime now = std::chrono::system_clock::now());

// Who a peer is to this node (docs/federation-protocol.md "Trust model"): the pin for a node id.
//   nullopt  the node id is not a member;
//   ""       a member whose key is not known yet (listed by an old bundle): the current CA must
//            have signed its certificate, the caller then pins the key;
//   "<hex>"  the member's pinned key (SPKI SHA-256): only that key is that member.
using PinLookup = std::function<std::optional<std::string>(const std::string& nodeId)>;

// Verifies a peer under the membership rules: a pinned member is admitted by its key alone (its
// certificate may come from an earlier CA: a member that was offline while the CA changed); a
// member without a pin and, when allowJoin, a node that is not a member yet (joining with a
// bundle) need a certificate of the current CA. Revoked ids and keys are refused first.
// Errors: those of verifyPeer, kNotMember, kPinMismatch, kStaleCa.
Result<PeerIdentity> verifyMember(X509* peerCert, STACK_OF(X509) * chain, const TrustStore& trust,
                                  const PinLookup& pinOf, bool allowJoin,
                                  SysTime now = std::chrono::system_clock::now());

namespace detail {
// Reads <dataDir>/federation-trust.secret, creating it (0600) when create is set and it is
// missing. Refuses a file readable by group or others.
Result<std::string> loadLocalSecret(const std::filesystem::path& dataDir, bool create);
} // namespace detail

} // namespace verbund::federation

#pragma once
// The federation's revocation list. Each entry is signed on its own with the federation CA key
// (ECDSA-SHA256 over a canonical JSON rendering of the entry and the federation id), so any
// member can check a list received from any other member, and merging two lists is a plain
// union that needs no re-signing. Entries never disappear. When two members revoke the same
// (node id, fingerprint) independently, the entry with the earliest (revokedAt, byNode,
// signature) wins on every node, so all lists converge.
//
// JSON form: {"format":"verbund-revocations","version":1,"federationId":"<32 hex>",
//             "entries":[{"nodeId","fingerprint","revokedAt","reason","byNode","signature"}]}
#include "base/result.h"
#include "federation/trust/certificates.h"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxRevocations = 10'000;
inline constexpr size_t kMaxRevocationListBytes = 4 * 1024 * 1024;
inline constexpr size_t kMaxRevocationReasonChars = 200;

struct RevocationEntry {
  std::string nodeId;
  std::string fingerprint; // SPKI SHA-256 (64 hex); empty: every certificate of nodeId
  int64_t revokedAt = 0;   // Unix seconds
  std::string reason;
  std::string byNode;    // node that revoked
  std::string signature; // base64 DER ECDSA signature by the federation CA
  friend bool operator==(const RevocationEntry&, const RevocationEntry&) = default;
};

// Creates and signs an entry. fingerprint may be empty (revoke the node, whatever its key).
Result<RevocationEntry> signRevocation(const FederationCa& ca, std::string_view nodeId,
                                       std::string_view fingerprint, std::string_view reason,
                                       std::string_view byNode,
                                       SysTime now = std::chrono::system_clock::now());

// Checks an entry's fields and its signature against the CA certificate of the federation.
Result<void> verifyRevocation(const RevocationEntry& e, X509* caCert,
                              std::string_view federationId);

class RevocationList {
public:
  RevocationList() = default;
  explicit RevocationList(std::string federationId) : federationId_(std::move(federationId)) {}

  const std::string& federationId() const { return federationId_; }
  // Sorted by (nodeId, fingerprint); each key at most once.
  const std::vector<RevocationEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  // True if the node is revoked as a whole, or this key is revoked (under any node id).
  bool isRevoked(std::string_view nodeId, std::string_view fingerprint) const;
  // The entry that revokes (nodeId, fingerprint), or nullptr.
  const RevocationEntry* find(std::string_view nodeId, std::string_view fingerprint) const;

  // Adds a verified entry (checked against caCert). Returns true if the list changed.
  Result<bool> add(const RevocationEntry& e, X509* caCert);
  // Union with another list of the same federation (its entries were verified when it was
  // built). Returns the number of entries that changed this list.
  Result<size_t> merge(const RevocationList& other);

  std::string toJson() const;
  // Parses and verifies every entry; any bad entry rejects the whole list (kCorrupt,
  // kBadSignature, kTooLarge).
  static Result<RevocationList> parse(std::string_view text, X509* caCert,
                                      std::string_view federationId);

private:
  bool insert(const RevocationEntry& e); // entry already verified
  std::string federationId_;
  std::vector<RevocationEntry> entries_;
};

} // namespace verbund::federation

#pragma once
// The federation's member list as this node knows it, persisted, and the audit log of joins,
// leaves and removals. Membership spreads by gossip: every node sends its list to each peer
// when a link comes up and whenever the list changes; the receiver merges (merge()). A member
// that is revoked in the trust store is never (re-)added. Lives on the node's loop.
//
// Store module "federation_members": tables federation_members, federation_audit.
//
// Gossip JSON ({"t":"members", "members":[...]}) member form:
//   {"nodeId","name","controlAddresses":["host:port"],"sipAddress":"host:port",
//    "productVersion","protocolVersion","updatedMs","fingerprint"}
#include "base/clock.h"
#include "base/result.h"
#include "federation/trust/bundle.h"
#include "federation/trust/revocation.h"
#include "store/database.h"

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxVersionChars = 32;
inline constexpr int64_t kMaxAuditEntries = 10'000; // older rows are deleted
inline constexpr size_t kMaxAuditDetailBytes = 1000;

struct MemberRecord {
  std::string nodeId;
  std::string name;
  std::vector<std::string> controlAddresses; // "host:port", 1 to kMaxMemberAddresses
  std::string sipAddress;                    // "host:port" (SIP over TLS); "" while unknown
  // "0.1.0", "1.0": printable, at most kMaxVersionChars; "" while unknown (a member known only
  // from a federation bundle).
  std::string productVersion, protocolVersion;
  int64_t updatedMs = 0; // when the member itself last announced these facts (newest wins)
  // The member's key (SPKI SHA-256, 64 lowercase hex) as pinned on this node; "" while unknown
  // (a member listed by an old bundle: pinned when it first links). Once set it never changes:
  // records that say otherwise keep the pinned key (docs/federation-protocol.md "Trust model").
  std::string fingerprint;
  friend bool operator==(const MemberRecord&, const MemberRecord&) = default;
};

struct AuditEntry {
  int64_t id = 0;
  int64_t atMs = 0;
  std::string event;  // "created", "joined", "member-joined", "left", "member-left", "removed",
                      // "member-removed", "refused", "certificate-created"
  std::string nodeId; // the member concerned
  std::string detail; // human text (never secrets)
};

// Field rules of a member record; errors have code 400 and start with the field name.
Result<void> validateMemberRecord(const MemberRecord& m);

nlohmann::json toJson(const MemberRecord& m);
// Validates (node id, name, addresses, versions). Errors have code 400 and name the field.
Result<MemberRecord> memberFromJson(const nlohmann::json& j);
nlohmann::json membersMessage(const std::vector<MemberRecord>& members); // {"t":"members",...}
// At most kMaxMembers; a node listed twice or any invalid member rejects the whole message.
Result<std::vector<MemberRecord>> membersFromMessage(const nlohmann::json& j);

class MemberStore {
public:
  static std::vector<store::Migration> migrations();
  // `timers` gives the wall clock of audit entries and must outlive the store.
  static Result<std::unique_ptr<MemberStore>> open(store::Database& db, const Timers& timers);

  // All members including this node's own record, ordered by name then node id.
  const std::vector<MemberRecord>& all() const { return members_; }
  std::optional<MemberRecord> get(const std::string& nodeId) const;
  // The pin lookup of verifyMember (trust_store.h): nullopt for a non-member, else its pin.
  std::optional<std::string> pinOf(const std::string& nodeId) const;

  // Inserts or replaces (when updatedMs is not older; a pinned fingerprint is kept). Returns true
  // when something changed.
  // Validates the record (400); at most kMaxMembers members.
  Result<bool> upsert(const MemberRecord& m);
  Result<bool> remove(const std::string& nodeId);
  // Merges a peer's list: unknown members are added unless revoked; known ones take the newer
  // record (keeping a pinned fingerprint); `self` is never overwritten from outside. Returns the
  // node ids added or changed; `added` (optional) receives just the added ones (for the audit log,
  // which the caller writes). Equal updatedMs with different facts: the record with the larger JSON
  // text wins (the same on every node, so gossip converges). Any invalid record: 400, nothing
  // changes. Known members that are revoked meanwhile are not removed here (remove() does that).
  Result<std::vector<std::string>> merge(const std::vector<MemberRecord>& members,
                                         const RevocationList& revocations, const std::string& self,
                                         std::vector<std::string>* added = nullptr);
  // Leaving the federation: forgets every member (the audit log stays).
  Result<void> clear();

  // Appends to the audit log (control characters and invalid UTF-8 are replaced, detail cut at
  // kMaxAuditDetailBytes); only the newest kMaxAuditEntries rows are kept.
  Result<void> audit(std::string_view event, std::string_view nodeId, std::string_view detail);
  Result<std::vector<AuditEntry>> auditLog(int limit = 200) const; // newest first

private:
  MemberStore(store::Database& db, const Timers& timers) : db_(db), timers_(timers) {}
  Result<void> load();
  Result<void> write(const MemberRecord& m); // row + members_
  store::Database& db_;
  const Timers& timers_; // wall clock of audit entries
  std::vector<MemberRecord> members_;
};

} // namespace verbund::federation

#pragma once
// Presence and call outcomes between nodes (docs/federation-protocol.md): the owner of a user
// sends that user's current dialogs to every peer node, once per change, and the full line state
// of all its users when a link comes up. Pure conversions (no I/O) so the fuzz target and the
// tests can drive them.
//
//   {"t":"presence","owner":id,"extension":"201","dialogs":[dialog...]}
//   {"t":"presence-sync","owner":id,"users":[{"extension":"201","dialogs":[dialog...]}]}
//   dialog: {"id","callId","localTag","remoteTag","direction":"initiator"|"recipient"|"",
//            "state":"trying"|"proceeding"|"early"|"confirmed"|"terminated",
//            "stateEvent","stateCode",
//            "local":{"identity","display","target"},"remote":{"identity","display","target"}}
//   {"t":"call-outcome","correlationId","relatedCorrelationId","caller","callerName",
//    "callerOwner","callee","calleeName","calleeOwner","answeredBy","answeredByName",
//    "answeredByOwner","disposition":"answered"|"missed"|...,"answerMs",
//    "fallbackNumber","fallbackCaller","fallbackMs"}   (the last three: answered over the
//    external line; optional)
//
// Everything a phone needs for BLF pickup travels (dialog identifiers for Replaces, RFC 3891;
// the remote party for the display). Received strings are untrusted: sizes are limited and
// control characters or invalid UTF-8 reject the message (error code 400, the message names the
// field). Missing optional members take their defaults; unknown members are ignored.
#include "base/result.h"
#include "pbx/calllog/call_log.h"
#include "pbx/presence/dialog_info.h"
#include "pbx/presence/presence_hub.h"

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxPresenceDialogs = 16;       // per user
inline constexpr size_t kMaxPresenceSyncUsers = 20'000; // = kMaxReplicaUsers
inline constexpr size_t kMaxDialogIdBytes = 256;        // id, callId, tags
inline constexpr size_t kMaxPresenceUriBytes = 512;     // identity, target
inline constexpr size_t kMaxPresenceDisplayBytes = 256;
inline constexpr size_t kMaxStateEventBytes = 32;
inline constexpr size_t kMaxOutcomeFieldBytes = 256;

struct PresenceUpdate {
  std::string owner; // node id of the user
  std::string extension;
  std::vector<pbx::DialogInfo> dialogs; // the user's complete current dialogs
};

struct PresenceSync {
  std::string owner;
  std::vector<pbx::UserDialogs> users; // users not listed are idle
};

nlohmann::json toJson(const pbx::DialogInfo& d);
Result<pbx::DialogInfo> dialogFromJson(const nlohmann::json& j);

nlohmann::json presenceMessage(const std::string& owner, const std::string& extension,
                               const std::vector<pbx::DialogInfo>& dialogs);
// At most kMaxPresenceDialogs dialogs with distinct ids.
Result<PresenceUpdate> presenceFromJson(const nlohmann::json& j);

// From the hub's snapshot(owner): each entry's key.extension with its dialogs (key.owner is not
// looked at; the message carries `owner`).
nlohmann::json presenceSyncMessage(const std::string& owner,
                                   const std::vector<pbx::UserPresence>& users);
nlohmann::json presenceSyncMessage(const std::string& owner,
                                   const std::vector<pbx::UserDialogs>& users);
// At most kMaxPresenceSyncUsers users with distinct extensions.
Result<PresenceSync> presenceSyncFromJson(const nlohmann::json& j);

// "call-outcome" (pbx::CallLog::applyOutcome on the receiving node).
nlohmann::json toJson(const pbx::CallOutcome& o);
// correlationId required (printable ASCII); other parties' fields may be empty; owners are node
// ids or empty; disposition by pbx::dispositionFromName.
Result<pbx::CallOutcome> callOutcomeFromJson(const nlohmann::json& j);

} // namespace verbund::federation

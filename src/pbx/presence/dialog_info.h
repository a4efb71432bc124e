#pragma once
// The presence model behind BLF: per user a line state and the user's INVITE dialogs, with what a
// phone needs to show who is calling and to pick the call up by INVITE with Replaces (RFC 4235
// §4.1, RFC 3891). Plain values; no I/O.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx {

// A user, federation-wide: the node that owns the record and the extension on that node.
struct UserKey {
  std::string owner; // node id
  std::string extension;
  friend bool operator==(const UserKey&, const UserKey&) = default;
  friend auto operator<=>(const UserKey&, const UserKey&) = default;
};

struct UserKeyHash {
  size_t operator()(const UserKey& k) const noexcept {
    size_t h = std::hash<std::string>{}(k.owner);
    return h ^
           (std::hash<std::string>{}(k.extension) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

// What a BLF key shows. Unknown: the owning node is unreachable, so nothing is claimed (never a
// stale Busy).
enum class LineState : uint8_t { Idle, Ringing, Busy, Unknown };
std::string_view lineStateName(LineState s); // "idle", "ringing", "busy", "unknown"
bool parseLineState(std::string_view name, LineState& out);

// RFC 4235 §3.7.1 dialog states.
enum class DialogState : uint8_t { Trying, Proceeding, Early, Confirmed, Terminated };
std::string_view dialogStateName(DialogState s);
bool parseDialogState(std::string_view name, DialogState& out);

// RFC 4235 §4.1.1: the observed user's role in the dialog. None: not known (attribute omitted).
enum class DialogDirection : uint8_t { None, Initiator, Recipient };
std::string_view dialogDirectionName(DialogDirection d); // "" for None

// RFC 4235 §4.1.6: a participant: <identity display="...">uri</identity> and <target uri=.../>.
struct Participant {
  std::string identity; // URI
  std::string display;  // display name, may be empty
  std::string target;   // contact URI, may be empty
  friend bool operator==(const Participant&, const Participant&) = default;
};

// One dialog of a user (RFC 4235 §4.1: <dialog>). Strings are untrusted (they come from SIP
// messages or peers) and are escaped when written.
struct DialogInfo {
  std::string id; // unique among the user's dialogs, stable for the dialog's life
  // RFC 4235 §4.1: the dialog identifiers, as seen from the observed user's side; with them a
  // phone builds Replaces (RFC 3891) for pickup.
  std::string callId, localTag, remoteTag;
  DialogDirection direction = DialogDirection::None;
  DialogState state = DialogState::Early;
  // RFC 4235 §4.1.2: why a dialog was terminated ("cancelled", "rejected", "replaced",
  // "local-bye", "remote-bye", "error", "timeout") and the response code, if any.
  std::string stateEvent;
  int stateCode = 0;
  Participant local;  // the observed user
  Participant remote; // the other party: who calls / who is called
  friend bool operator==(const DialogInfo&, const DialogInfo&) = default;
};

// The line state of a set of dialogs: Busy when any dialog is confirmed or the user is placing a
// call (initiator, not yet answered); else Ringing when a call is offered to the user; else Idle.
// Terminated dialogs count for nothing. Busy wins over Ringing.
LineState deriveLineState(const std::vector<DialogInfo>& dialogs);

} // namespace verbund::pbx

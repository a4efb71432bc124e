#pragma once
// The call engine's objects (private to src/pbx/calls): a Call with its forks. Each carries one
// state enum (call_state.h); the CallManager changes them only through its transition functions.
#include "base/metrics.h"
#include "pbx/calls/call_manager.h"
#include "pbx/calls/call_state.h"
#include "pbx/calls/diversion.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace verbund::pbx {

struct CallManager::Fork {
  ForkState state = ForkState::Calling;
  uint32_t branch = 0;   // per call, from 1: the relay's branch and tag ("b<N>", "fork<N>")
  bool anchored = false; // its offer went through the relay
  // While Anchoring: the INVITE to send once the relay's offer is there.
  std::shared_ptr<sip::DialogManager::InviteParams> pending;
  ForkKind kind = ForkKind::Device;
  sip::UsageId invite = 0;
  Party party; // the user rung (for Trunk: extension = the dialled number)
  int status = 0;
  std::string callId;
  bool mayFallBack = false; // a fork to another node that may go over the external line
  TimerId fallbackTimer = 0;
  // Fallback forks: the caller number the INVITE carried and when it went out (call outcome).
  std::string sentCaller;
  int64_t sentMs = 0;
  std::optional<sip::Peer> target; // where its INVITE went, when the engine chose it

  bool live() const { return isLive(state); }
  bool external() const { return kind == ForkKind::Trunk || kind == ForkKind::Fallback; }
  // Heard anything from the next hop (also 100 Trying).
  bool heard() const { return state != ForkState::Calling && state != ForkState::Anchoring; }
};

// A transfer the node carries out (transfer.cpp): owned by the call it creates between the
// transferee and the target. The transferor's leg and its implicit subscription (RFC 3515 §2.4.4)
// are used while that phone is still there; it may hang up at any moment.
struct CallManager::Transfer {
  TransferKind kind = TransferKind::Blind;
  TransferState state = TransferState::Trying;
  CallId from = 0;                  // the transferred call (ends when the legs are joined)
  sip::UsageId transferor = 0;      // the leg the REFER came on; 0 once it is gone
  uint32_t referCSeq = 0;           // the NOTIFYs' Event id (RFC 3515 §2.4.6)
  int notified = 0;                 // the last status sent in a NOTIFY (>= 200: subscription over)
  Party by;                         // the transferring user (recall rings them)
  std::string target;               // the dialled target (blind) or the consulted party (attended)
  std::string fromCorrelationId;    // the transferred call's id (records)
  std::string consultCorrelationId; // attended: the consultation call's id
};

// How a call was answered (decides records and who reports the outcome to other nodes).
enum class AnswerKind : uint8_t {
  None,
  Fork,     // a local device, or another node's user at their external number (fallback)
  Remote,   // a fork to another node: that node knows who answered and tells
  External, // a dialled external number
  PickedUp, // a picker's call took it over
  Feature,  // a feature code confirmed by answering
};

// Why a call ended, where it matters to records.
enum class EndCause : uint8_t { None, Failed, CompletedElsewhere, Hangup };

struct CallManager::Call {
  CallId id = 0;
  CallState state = CallState::Routing;
  std::string correlationId;
  sip::UsageId inbound = 0;
  Caller caller;
  // Routing input, taken from the INVITE once (stages do not need the message).
  std::string dialled;      // what routing works on now (a forwarding target once forwarded)
  std::string dialledFirst; // what the caller dialled, kept once the call is forwarded
  std::string replaces;     // RFC 3891 Replaces header of the INVITE, if any
  int forwards = 0;         // forwarding hops taken, also on other nodes before (bounded)
  int forwardsHere = 0;     // of those, taken on this node: the call may go on to other nodes
  // Forwarding hops, most recent first (RFC 5806 order): received from the node or carrier that
  // sent the call, plus this node's. `external` is the forwarding user's external number.
  struct Hop {
    Diversion diversion;
    std::string owner, externalNumber;
  };
  std::vector<Hop> hops;
  // Users (extensions) the call was forwarded away from: a target among them is a loop.
  std::vector<std::string> visited;
  // Set by forwardTo until the stages add the target party: who forwarded, and why.
  std::optional<Hop> pendingForward;
  std::optional<Party> callee;
  std::optional<GroupTarget> group;
  std::vector<Fork> forks;
  sip::UsageId other = 0; // the answered leg: a UAC fork session, or a picker's UAS session
  Party answeredBy;
  AnswerKind answer = AnswerKind::None;
  EndCause endCause = EndCause::None;
  Alerting alerting = Alerting::None;
  TimerId noAnswer = 0;
  std::string offerType, offer; // the caller's SDP as received (empty: delayed offer)
  // Media (media_anchor.h): decided once per call; the relay session's key (empty: none was
  // asked for) and the relay tag of the other leg (the answering fork's, "picker", "target").
  MediaState media = MediaState::Pending;
  std::string relayKey, otherTag;
  uint32_t branches = 0; // forks numbered so far
  int64_t startMs = 0, answerMs = 0;
  // The in-dialog offer being relayed from leg `offerFrom` (request `offerTx`) to the other.
  OfferState offerState = OfferState::Idle;
  sip::ServerTxId offerTx = 0;
  sip::UsageId offerFrom = 0;
  // Music on hold: whether the offer being relayed holds the other party
  // (sdp::holdsOtherParty), and the leg that hears music now (0: none).
  bool offerHolds = false;
  sip::UsageId heldLeg = 0;
  // Re-anchoring (OfferState::Reanchor*): the inbound leg's fresh offer (raw, as received),
  // kept for the direct fallback while the exchange runs.
  std::string reanchorType, reanchorOffer;
  std::vector<CallParty> parties; // for the call list
  // Federation: the other nodes involved (outcomes go to them).
  std::vector<std::string> nodes;
  std::string relatedCorrelationId; // pickup by a caller of another node: the picker's call
  std::string journalKey;           // set while the call is in the journal (journal.h)
  // Transfers (transfer.cpp): the call this call's transfer is creating (while it runs), and
  // for a call made by a transfer, the transfer itself. The record of a transferred call names
  // the transferring user, the target and the other call's correlation id.
  CallId transferTo = 0;
  std::unique_ptr<Transfer> transfer;
  std::string transferredBy, transferTarget, transferCorrelationId;

  bool connected() const { return state == CallState::Connected; }
  bool ended() const { return state == CallState::Ended; }
  // Still waiting for an answer (routing or ringing).
  bool unanswered() const { return state == CallState::Routing || state == CallState::Ringing; }
  // The dialled string came from another node (its caller's INVITE): such calls do not go on to
  // other nodes or the external line. A transfer's target was dialled by the local transferor.
  bool fromOtherNode() const { return caller.kind == Caller::Kind::Federation && !transfer; }
  // For the call lists: what the caller dialled, also after forwarding.
  const std::string& dialledByCaller() const {
    return dialledFirst.empty() ? dialled : dialledFirst;
  }
  bool dialledHere() const { return caller.kind == Caller::Kind::LocalUser || transfer; }
};

// verbund_calls_answered_total (answers by forks and by pickup).
extern Counter g_callsAnswered;

inline bool isFederation(const Caller& c) {
  return c.kind == Caller::Kind::Federation;
}
// The caller as shown to others: extension of a user (local or of another node) or number.
inline const std::string& callerIdOf(const Caller& c) {
  return c.kind == Caller::Kind::Trunk ? c.number : c.party.extension;
}
inline const std::string& callerNameOf(const Caller& c) {
  if (c.kind == Caller::Kind::Trunk) return c.name;
  return c.party.displayName.empty() && c.kind == Caller::Kind::Federation ? c.name
                                                                           : c.party.displayName;
}

} // namespace verbund::pbx

#pragma once
// The states of the call engine's objects and their allowed transitions (docs/architecture.md
// "Call engine states" draws them). Pure: no I/O, no clock; tested on its own.
#include <cstdint>
#include <optional>
#include <string_view>

namespace verbund::pbx {

// A call: the caller's INVITE (the inbound leg) and everything it led to.
enum class CallState : uint8_t {
  Routing,   // the routing stages run (or one of them is pending)
  Ringing,   // forks are out, nobody answered yet
  Connected, // a fork or a picker answered: two legs up
  Ended,     // both legs are ending or gone; the record is written
};

// One outbound INVITE of a call (a device, another node, the external line).
enum class ForkState : uint8_t {
  Anchoring,  // the media relay prepares this fork's offer; its INVITE is not sent yet
  Calling,    // INVITE sent, nothing heard
  Proceeding, // 100 Trying: the next hop is there (federation fallback is off)
  Ringing,    // 180/183
  Answered,   // 2xx: this fork is the call's other leg
  Cancelled,  // we gave up on it (another fork answered, the caller left, no answer)
  Failed,     // non-2xx final answer, timeout or transport error
  FellBack,   // another node that did not answer in time: replaced by an external-line fork
};

enum class ForkKind : uint8_t {
  Device,   // a registered device of a local user
  Remote,   // another node of the federation
  Trunk,    // a dialled external number
  Fallback, // the external number of another node's user (federation fallback)
};

// An offer relayed from one leg to the other inside the dialog (RFC 3261 §14, RFC 3311,
// RFC 3264): one at a time per call.
// With anchored media (media_anchor.h) every SDP waits at the relay before it goes on: the
// Anchoring states are those waits (late replies look the call up again by id).
enum class OfferState : uint8_t {
  Idle,
  Anchoring,       // the offer is at the relay; it goes to the other leg with the relay's SDP
  AwaitingAnswer,  // the offer went to the other leg; its final answer is relayed back
  AnchoringAnswer, // that answer (or the call's first answer, or a pickup's) is at the relay
  AwaitingAck,     // offerless re-INVITE: the other leg's offer went back in our 2xx; the
                   // answer arrives in the ACK and goes to the other leg's held ACK
  AnchoringAck,    // the answer of such an ACK (or of the first ACK) is at the relay
  // Re-anchoring a connected call after its relay was lost (reanchor.cpp): the node is the
  // offerer on both legs (RFC 3725 flow I): an offerless re-INVITE asks the inbound leg for a
  // fresh offer, which goes through the new relay to the other leg; that leg's answer comes back
  // through the relay in the inbound leg's held ACK.
  ReanchorAsking, // offerless re-INVITE to the inbound leg; its 2xx brings the offer
  ReanchorOffer,  // that offer is at the (new) relay
  ReanchorOther,  // re-INVITE with the relay's offer (or the raw one: direct) to the other leg
  ReanchorAnswer, // the other leg's answer is at the relay; then the held ACK carries it
};
inline bool isReanchoring(OfferState s) {
  return s == OfferState::ReanchorAsking || s == OfferState::ReanchorOffer ||
         s == OfferState::ReanchorOther || s == OfferState::ReanchorAnswer;
}

// Whether a call's media go through the relay. Decided once per call, by the first reply of the
// relay (or at once when no relay is available, anchoring is off, or the mode lets the two
// phones talk directly), so no call is half-anchored.
enum class MediaState : uint8_t {
  Pending,  // nothing decided yet (no offer has crossed, or the first is at the relay)
  Anchored, // the relay holds a session for the call; every SDP goes through it
  Direct,   // SDP passes through untouched (phone to phone)
  Lost,     // the relay that held the call is gone (died, or failed over): SDP passes through
            // until the call is re-anchored on a relay (-> Anchored) or falls back (-> Direct)
};

// A transfer (RFC 3515 REFER, acted on by the node): the call it creates between the transferee
// (the transferring phone's peer) and the target, seen from the transferor's subscription.
enum class TransferKind : uint8_t {
  Blind,    // Refer-To names a target: the node calls it with the transferee's identity
  Attended, // Refer-To carries Replaces naming the transferor's other call (RFC 3891)
};
enum class TransferState : uint8_t {
  Trying,      // REFER accepted (202, NOTIFY 100): the target call routes
  Ringing,     // the target rings (NOTIFY 180)
  Recalling,   // blind: the target was busy or did not answer after the transferor hung up:
               // the transferring user is rung again (recall)
  AskingOffer, // attended: an offerless re-INVITE asks the target's phone for a new offer
  Joining,     // the transferee is re-INVITEd with the target's offer; its answer goes back
               // in the target's ACK (RFC 3725 flow I)
  Done,        // transferee and target talk (NOTIFY 200, subscription terminated)
  Failed,      // the target failed (NOTIFY with its status) or the join did not complete
};

// What the caller's phone has been told while the call rings.
enum class Alerting : uint8_t { None, EarlyMedia, Ringing };

// What the Request-URI asks for on a call from another node (X-Verbund-Call "mode",
// docs/federation-protocol.md).
enum class CallMode : uint8_t {
  Route, // route the Request-URI's user like a local caller's dialled string
  User,  // ring exactly the local user of the Request-URI (a fork of a call routed elsewhere)
};

std::string_view stateName(CallState s);
std::string_view stateName(ForkState s);
std::string_view stateName(OfferState s);
std::string_view stateName(MediaState s);
std::string_view stateName(TransferState s);
std::string_view callModeName(CallMode m);
std::optional<CallMode> parseCallMode(std::string_view text);

// The transition tables. Anything not listed is a bug, logged and counted by the engine.
bool allowed(CallState from, CallState to);
bool allowed(ForkState from, ForkState to);
bool allowed(OfferState from, OfferState to);
bool allowed(TransferState from, TransferState to);
bool allowed(MediaState from, MediaState to);

// Forks that may still answer.
inline bool isLive(ForkState s) {
  return s == ForkState::Anchoring || s == ForkState::Calling || s == ForkState::Proceeding ||
         s == ForkState::Ringing;
}

} // namespace verbund::pbx

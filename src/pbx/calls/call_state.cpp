#include "pbx/calls/call_state.h"

namespace verbund::pbx {

std::string_view stateName(CallState s) {
  switch (s) {
  case CallState::Routing:
    return "routing";
  case CallState::Ringing:
    return "ringing";
  case CallState::Connected:
    return "connected";
  case CallState::Ended:
    return "ended";
  }
  return "?";
}

std::string_view stateName(ForkState s) {
  switch (s) {
  case ForkState::Anchoring:
    return "anchoring";
  case ForkState::Calling:
    return "calling";
  case ForkState::Proceeding:
    return "proceeding";
  case ForkState::Ringing:
    return "ringing";
  case ForkState::Answered:
    return "answered";
  case ForkState::Cancelled:
    return "cancelled";
  case ForkState::Failed:
    return "failed";
  case ForkState::FellBack:
    return "fell-back";
  }
  return "?";
}

std::string_view stateName(OfferState s) {
  switch (s) {
  case OfferState::Idle:
    return "idle";
  case OfferState::AwaitingAnswer:
    return "awaiting-answer";
  case OfferState::AwaitingAck:
    return "awaiting-ack";
  case OfferState::Anchoring:
    return "anchoring";
  case OfferState::AnchoringAnswer:
    return "anchoring-answer";
  case OfferState::AnchoringAck:
    return "anchoring-ack";
  case OfferState::ReanchorAsking:
    return "reanchor-asking";
  case OfferState::ReanchorOffer:
    return "reanchor-offer";
  case OfferState::ReanchorOther:
    return "reanchor-other";
  case OfferState::ReanchorAnswer:
    return "reanchor-answer";
  }
  return "?";
}

std::string_view stateName(MediaState s) {
  switch (s) {
  case MediaState::Pending:
    return "pending";
  case MediaState::Anchored:
    return "anchored";
  case MediaState::Direct:
    return "direct";
  case MediaState::Lost:
    return "lost";
  }
  return "?";
}

std::string_view stateName(TransferState s) {
  switch (s) {
  case TransferState::Trying:
    return "trying";
  case TransferState::Ringing:
    return "ringing";
  case TransferState::Recalling:
    return "recalling";
  case TransferState::AskingOffer:
    return "asking-offer";
  case TransferState::Joining:
    return "joining";
  case TransferState::Done:
    return "done";
  case TransferState::Failed:
    return "failed";
  }
  return "?";
}

std::string_view callModeName(CallMode m) {
  return m == CallMode::User ? "user" : "route";
}

std::optional<CallMode> parseCallMode(std::string_view text) {
  if (text == "user") return CallMode::User;
  if (text == "route") return CallMode::Route;
  return std::nullopt;
}

bool allowed(CallState from, CallState to) {
  switch (from) {
  case CallState::Routing:
    // Forks out; answered at once (feature-code confirmation, pickup); refused.
    return to == CallState::Ringing || to == CallState::Connected || to == CallState::Ended;
  case CallState::Ringing:
    // Routing again: forwarding on busy / no answer sends the call to a new target.
    return to == CallState::Routing || to == CallState::Connected || to == CallState::Ended;
  case CallState::Connected:
    return to == CallState::Ended;
  case CallState::Ended:
    return false;
  }
  return false;
}

bool allowed(ForkState from, ForkState to) {
  if (to == ForkState::Anchoring) return false;
  switch (from) {
  case ForkState::Anchoring:
    // Sent once the relay answered; given up before (cancelled, or the relay failed).
    return to == ForkState::Calling || to == ForkState::Cancelled || to == ForkState::Failed ||
           to == ForkState::FellBack;
  case ForkState::Calling:
    return to != ForkState::Calling;
  case ForkState::Proceeding:
    return to != ForkState::Calling && to != ForkState::Proceeding;
  case ForkState::Ringing:
    // A ringing node that died is not "there": it may still fall back (federation).
    return to == ForkState::Answered || to == ForkState::Cancelled || to == ForkState::Failed ||
           to == ForkState::FellBack;
  case ForkState::Cancelled:
  case ForkState::FellBack:
    // The INVITE's final answer (487, or a 2xx that crossed the CANCEL) still arrives; the fork
    // stays as it is.
    return false;
  case ForkState::Answered:
  case ForkState::Failed:
    return false;
  }
  return false;
}

bool allowed(OfferState from, OfferState to) {
  switch (from) {
  case OfferState::Idle:
    // A relayed offer (anchored or not); the call's first answer or a first ACK at the relay.
    // Or the re-anchoring of a call whose relay was lost starts.
    return to == OfferState::AwaitingAnswer || to == OfferState::Anchoring ||
           to == OfferState::AnchoringAnswer || to == OfferState::AnchoringAck ||
           to == OfferState::ReanchorAsking;
  case OfferState::Anchoring:
    return to == OfferState::AwaitingAnswer || to == OfferState::Idle;
  case OfferState::AwaitingAnswer:
    return to == OfferState::Idle || to == OfferState::AwaitingAck ||
           to == OfferState::AnchoringAnswer;
  case OfferState::AnchoringAnswer:
    return to == OfferState::Idle || to == OfferState::AwaitingAck;
  case OfferState::AwaitingAck:
    return to == OfferState::Idle || to == OfferState::AnchoringAck;
  case OfferState::AnchoringAck:
    return to == OfferState::Idle;
  // Re-anchoring: every step may end (Idle: done, failed, or a leg gone).
  case OfferState::ReanchorAsking:
    return to == OfferState::ReanchorOffer || to == OfferState::ReanchorOther ||
           to == OfferState::Idle;
  case OfferState::ReanchorOffer:
    return to == OfferState::ReanchorOther || to == OfferState::Idle;
  case OfferState::ReanchorOther:
    return to == OfferState::ReanchorAnswer || to == OfferState::Idle;
  case OfferState::ReanchorAnswer:
    // Idle, or the relay failed on the answer: the other leg is asked again with the raw offer.
    return to == OfferState::ReanchorOther || to == OfferState::Idle;
  }
  return false;
}

bool allowed(MediaState from, MediaState to) {
  switch (from) {
  case MediaState::Pending:
    return to == MediaState::Anchored || to == MediaState::Direct;
  case MediaState::Anchored:
    // Lost: its relay died or failed over. Direct: a transfer joined without the relay.
    return to == MediaState::Lost || to == MediaState::Direct;
  case MediaState::Lost:
    return to == MediaState::Anchored || to == MediaState::Direct;
  case MediaState::Direct:
    return false;
  }
  return false;
}

bool allowed(TransferState from, TransferState to) {
  switch (from) {
  case TransferState::Trying:
    return to == TransferState::Ringing || to == TransferState::Recalling ||
           to == TransferState::AskingOffer || to == TransferState::Joining ||
           to == TransferState::Failed;
  case TransferState::Ringing:
    return to == TransferState::Recalling || to == TransferState::Joining ||
           to == TransferState::Failed;
  case TransferState::Recalling:
    // The recalled user rings (no NOTIFY any more: the transferor has gone) and answers or not.
    return to == TransferState::Joining || to == TransferState::Failed;
  case TransferState::AskingOffer:
    return to == TransferState::Joining || to == TransferState::Failed;
  case TransferState::Joining:
    return to == TransferState::Done || to == TransferState::Failed;
  case TransferState::Done:
  case TransferState::Failed:
    return false;
  }
  return false;
}

} // namespace verbund::pbx

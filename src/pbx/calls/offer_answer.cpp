// Offers inside a call relayed between its legs (RFC 3261 §14, RFC 3311, RFC 3264): a re-INVITE
// or UPDATE from one phone goes to the other leg, and that leg's final answer — 2xx with the
// answer, or any failure (488, 491, 500, ...) — goes back with its status. One offer at a time per
// call (OfferState); a second one meanwhile gets 491 (RFC 3261 §14.2). Relayed re-INVITEs are not
// retried after 491 by the node: the phone that made the offer gets the 491 and retries itself.
//
// Offerless requests (delayed offer): the INVITE or re-INVITE carried no SDP, the other leg's 2xx
// carries its offer, which goes back in our 2xx; the answer arrives in the ACK and goes into the
// other leg's held ACK (InviteSession::ack).
#include "base/log.h"
#include "pbx/calls/call.h"
#include "pbx/calls/sdp.h"

namespace verbund::pbx {

using sip::InviteSession;
using sip::Message;
using sip::Method;

namespace {
std::string_view contentTypeOf(const Message& m) {
  auto ct = m.header(sip::HeaderId::ContentType);
  return ct ? *ct : std::string_view{};
}
} // namespace

void CallManager::onOffer(InviteSession& s, sip::ServerTxId tx, const Message& request) {
  Call* call = callOf(s.appData);
  if (!call || call->ended()) {
    ++stats_.offersRefused;
    (void)s.respond(tx, 488); // RFC 3261 §14.2: no other leg to ask
    return;
  }
  relayOffer(*call, s, tx, request);
}

sip::InviteSession* CallManager::peerLeg(Call& call, InviteSession& s) {
  if (call.connected()) return session(s.id() == call.inbound ? call.other : call.inbound);
  if (!call.unanswered()) return nullptr;
  // RFC 3311: an UPDATE before the answer. From a ringing fork's early dialog it goes to the
  // caller; from the caller to the one early dialog there is (none or several: no peer).
  if (s.id() != call.inbound) return session(call.inbound);
  InviteSession* only = nullptr;
  for (const auto& f : call.forks) {
    if (!f.live()) continue;
    sip::ClientInvite* ci = dm_.clientInvite(f.invite);
    if (!ci) continue;
    for (const auto& [tag, sid] : ci->sessions()) {
      InviteSession* early = session(sid);
      if (!early || early->state() != InviteSession::State::Early) continue;
      if (only) return nullptr;
      only = early;
    }
  }
  return only;
}

void CallManager::relayOffer(Call& call, InviteSession& from, sip::ServerTxId tx,
                             const Message& request) {
  InviteSession* to = peerLeg(call, from);
  if (!to) {
    ++stats_.offersRefused;
    (void)from.respond(tx, 488);
    return;
  }
  if (call.offerState != OfferState::Idle) {
    // RFC 3261 §14.2: another offer of this call is still being relayed (or at the relay).
    ++stats_.offersRefused;
    (void)from.respond(tx, 491);
    return;
  }
  Method method = request.method();
  std::string type(contentTypeOf(request));
  call.offerTx = tx;
  call.offerFrom = from.id();
  call.offerHolds = sdp::holdsOtherParty(request.body());
  if (call.media != MediaState::Anchored || request.body().empty())
    return sendOffer(call, to->id(), method, type, std::string(request.body()));
  // Anchored: the offer goes through the relay first. This is where a hold (sendonly, inactive)
  // from `from` passes: the relay's SDP keeps the direction.
  enterOffer(call, OfferState::Anchoring);
  sip::UsageId toId = to->id();
  viaRelay(call, true, relayRef(call, from.id(), toId), std::string(request.body()),
           [this, toId, method, type](Call& c, Result<std::string> sdp) {
             if (c.offerState != OfferState::Anchoring) return;
             if (!sdp) {
               if (InviteSession* f = session(c.offerFrom)) (void)f->respond(c.offerTx, 500);
               ++stats_.offersRefused;
               enterOffer(c, OfferState::Idle);
               return;
             }
             sendOffer(c, toId, method, type, std::move(*sdp));
           });
}

void CallManager::sendOffer(Call& call, sip::UsageId toId, Method method, const std::string& type,
                            const std::string& body) {
  InviteSession* to = session(toId);
  InviteSession* from = session(call.offerFrom);
  sip::OfferOptions relay;
  relay.retryGlare = false; // the phone that offered retries after our 491 (RFC 3261 §14.1)
  Result<void> sent = Error{500, "leg gone"};
  if (to)
    sent = method == Method::Update ? to->update(type, body, {}, relay)
                                    : to->reinvite(type, body, {}, relay);
  if (!sent) {
    // The other leg has its own offer in progress (glare inside the node): 491 lets the phone
    // retry; anything else is a failure of ours.
    ++stats_.offersRefused;
    if (from) (void)from->respond(call.offerTx, sent.error().code == 491 ? 491 : 500);
    if (call.offerState != OfferState::Idle) enterOffer(call, OfferState::Idle);
    call.offerTx = 0;
    call.offerFrom = 0;
    return;
  }
  ++stats_.offersRelayed;
  sip::ServerTxId tx = call.offerTx;
  sip::UsageId offerFrom = call.offerFrom;
  enterOffer(call, OfferState::AwaitingAnswer);
  call.offerTx = tx;
  call.offerFrom = offerFrom;
}

void CallManager::onOfferAnswered(InviteSession& s, Method method, const Message& response) {
  Call* call = callOf(s.appData);
  if (!call) return;
  if (isReanchoring(call->offerState)) return reanchorAnswered(*call, s, method, response);
  if (call->transfer && transferOfferAnswered(*call, s, method, response)) return;
  if (method == Method::Ack)
    relayAck(*call, s, response);
  else
    relayAnswer(*call, s, method, response);
}

void CallManager::relayAnswer(Call& call, InviteSession& s, Method method,
                              const Message& response) {
  if (call.offerState != OfferState::AwaitingAnswer || s.id() == call.offerFrom) return;
  InviteSession* from = session(call.offerFrom);
  int status = response.statusCode();
  // Our relayed INVITE had no SDP and the 2xx brings the other side's offer: its answer comes in
  // the ACK of the phone that asked.
  bool offerInAnswer = method == Method::Invite && status < 300 && s.ackPending();
  if (!from || call.ended()) {
    enterOffer(call, OfferState::Idle);
    if (offerInAnswer) (void)s.ack({}, {});
    return;
  }
  std::string type(contentTypeOf(response));
  if (call.media != MediaState::Anchored || status >= 300 || response.body().empty())
    return answerOffer(call, s.id(), status, type, std::string(response.body()), offerInAnswer);
  enterOffer(call, OfferState::AnchoringAnswer);
  sip::UsageId answerer = s.id();
  // An answer goes back from the answerer to the offerer; an offer in a 2xx starts anew.
  AnchorRef ref = offerInAnswer ? relayRef(call, answerer, call.offerFrom)
                                : relayRef(call, call.offerFrom, answerer);
  viaRelay(call, offerInAnswer, ref, std::string(response.body()),
           [this, answerer, status, type, offerInAnswer](Call& c, Result<std::string> sdp) {
             if (c.offerState != OfferState::AnchoringAnswer) return;
             if (!sdp) {
               // The relay failed: the offerer gets 500 (its media stay as they were).
               if (InviteSession* a = session(answerer); a && offerInAnswer) (void)a->ack({}, {});
               if (InviteSession* f = session(c.offerFrom)) (void)f->respond(c.offerTx, 500);
               enterOffer(c, OfferState::Idle);
               return;
             }
             answerOffer(c, answerer, status, type, std::move(*sdp), offerInAnswer);
           });
}

void CallManager::answerOffer(Call& call, sip::UsageId answerer, int status,
                              const std::string& type, const std::string& body,
                              bool offerInAnswer) {
  InviteSession* from = session(call.offerFrom);
  InviteSession* s = session(answerer);
  auto r = from ? from->respond(call.offerTx, status, type, body)
                : Result<void>(Error{481, "offering leg gone"});
  if (!r) {
    logger("calls")->info("call {}: answer to a relayed offer not delivered: {}",
                          call.correlationId, r.error().message);
    enterOffer(call, OfferState::Idle);
    if (offerInAnswer && s) (void)s->ack({}, {});
    return;
  }
  sip::UsageId offerFrom = call.offerFrom;
  enterOffer(call, offerInAnswer ? OfferState::AwaitingAck : OfferState::Idle);
  if (offerInAnswer) call.offerFrom = offerFrom;
  if (!offerInAnswer && status < 300) holdChanged(call, answerer);
}

// RFC 3264 §8.4: an accepted offer that holds the other party (sendonly, inactive, 0.0.0.0)
// starts the music for the answering leg; one that does not (sendrecv, recvonly) stops it.
// Only an anchored call has a relay that can play.
void CallManager::holdChanged(Call& call, sip::UsageId answerer) {
  if (!anchor_ || call.media != MediaState::Anchored) return;
  if (call.offerHolds && call.heldLeg != answerer) {
    if (call.heldLeg) anchor_->stopHold(AnchorRef{call.relayKey, relayTag(call, call.heldLeg)});
    call.heldLeg = answerer;
    logger("calls")->info("call {}: on hold, music for leg {}", call.correlationId,
                          relayTag(call, answerer));
    anchor_->playHold(AnchorRef{call.relayKey, relayTag(call, answerer)});
  } else if (!call.offerHolds && call.heldLeg == answerer) {
    call.heldLeg = 0;
    logger("calls")->info("call {}: resumed", call.correlationId);
    anchor_->stopHold(AnchorRef{call.relayKey, relayTag(call, answerer)});
  }
}

void CallManager::relayAck(Call& call, InviteSession& s, const Message& ack) {
  InviteSession* to = peerLeg(call, s);
  if (call.offerState == OfferState::AwaitingAck) {
    if (s.id() != call.offerFrom) return;
    enterOffer(call, OfferState::Idle);
  } else if (call.offerState != OfferState::Idle) {
    return;
  }
  // The initial INVITE without SDP (delayed offer), or the offerless re-INVITE relayed above:
  // the answer in this ACK completes the other leg's held ACK.
  if (!to || !to->ackPending()) return;
  if (call.media != MediaState::Anchored || ack.body().empty()) {
    (void)to->ack(contentTypeOf(ack), ack.body());
    return;
  }
  // The offer came from `to` (in its 2xx): the answer goes from `s` to it through the relay.
  enterOffer(call, OfferState::AnchoringAck);
  sip::UsageId toId = to->id();
  std::string type(contentTypeOf(ack));
  viaRelay(call, false, relayRef(call, toId, s.id()), std::string(ack.body()),
           [this, toId, type](Call& c, Result<std::string> sdp) {
             if (c.offerState != OfferState::AnchoringAck) return;
             enterOffer(c, OfferState::Idle);
             InviteSession* t = session(toId);
             if (!t || !t->ackPending()) return;
             if (sdp)
               (void)t->ack(type, *sdp);
             else
               (void)t->ack({}, {}); // the relay failed: the leg keeps its previous media
           });
}

} // namespace verbund::pbx

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
    // RFC 3261 §14.2: another offer of this call is still being relayed.
    ++stats_.offersRefused;
    (void)from.respond(tx, 491);
    return;
  }
  sip::OfferOptions relay;
  relay.retryGlare = false; // the phone that offered retries after our 491 (RFC 3261 §14.1)
  Result<void> sent = request.method() == Method::Update
                          ? to->update(contentTypeOf(request), request.body(), {}, relay)
                          : to->reinvite(contentTypeOf(request), request.body(), {}, relay);
  if (!sent) {
    // The other leg has its own offer in progress (glare inside the node): 491 lets the phone
    // retry; anything else is a failure of ours.
    ++stats_.offersRefused;
    (void)from.respond(tx, sent.error().code == 491 ? 491 : 500);
    return;
  }
  ++stats_.offersRelayed;
  enterOffer(call, OfferState::AwaitingAnswer);
  call.offerTx = tx;
  call.offerFrom = from.id();
}

void CallManager::onOfferAnswered(InviteSession& s, Method method, const Message& response) {
  Call* call = callOf(s.appData);
  if (!call) return;
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
  sip::ServerTxId tx = call.offerTx;
  int status = response.statusCode();
  // Our relayed INVITE had no SDP and the 2xx brings the other side's offer: its answer comes in
  // the ACK of the phone that asked.
  bool offerInAnswer = method == Method::Invite && status < 300 && s.ackPending();
  if (!from || call.ended()) {
    enterOffer(call, OfferState::Idle);
    if (offerInAnswer) (void)s.ack({}, {});
    return;
  }
  auto r = from->respond(tx, status, contentTypeOf(response), response.body());
  if (!r) {
    logger("calls")->info("call {}: answer to a relayed offer not delivered: {}",
                          call.correlationId, r.error().message);
    enterOffer(call, OfferState::Idle);
    if (offerInAnswer) (void)s.ack({}, {});
    return;
  }
  enterOffer(call, offerInAnswer ? OfferState::AwaitingAck : OfferState::Idle);
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
  if (to && to->ackPending()) (void)to->ack(contentTypeOf(ack), ack.body());
}

} // namespace verbund::pbx

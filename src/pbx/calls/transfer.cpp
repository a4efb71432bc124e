// Call transfer carried out by the node (RFC 3515 REFER, RFC 3891 Replaces, RFC 5589 flows). The
// node never passes a REFER on: it is the B2BUA between every pair of phones, so it acts on the
// REFER it receives on one leg of a call (the transferor's) and keeps the other leg (the
// transferee's) for a new call:
//
// Blind: a new call ("the transfer's call") is routed through the ordinary stages to the Refer-To
// target, with the transferee as its caller (From/P-Asserted-Identity) and its leg as the
// inbound leg. Its INVITE carries no offer; when the target answers, the transferred call ends
// (NOTIFY 200, BYE to the transferor) and the transferee is re-INVITEd with the target's offer;
// its answer goes back in the target's ACK (RFC 3725 flow I). A failure goes to the transferor in
// a NOTIFY while its phone is still there (the transferee stays with it); after it hung up, the
// call comes back to the transferring user (recall) or ends.
//
// Attended: Replaces names the transferor's other call with this node (its consultation call;
// the Replaces is never rewritten and sent on, so a target on another site does not need to
// know the dialog). The node joins the transferee with the other party of that call: an
// offerless re-INVITE asks the target's leg for an offer, which goes to the transferee's leg as
// a re-INVITE; both transferor legs get BYE.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"
#include "pbx/calls/refer.h"

namespace verbund::pbx {

using sip::InviteSession;
using sip::Message;

namespace {
Counter g_transfers("verbund_call_transfers_total", "Transfers (REFER) accepted");
Counter g_transfersDone("verbund_call_transfers_done_total",
                        "Transfers completed: transferee and target talk");
Counter g_transfersFailed("verbund_call_transfers_failed_total", "Transfers that failed");
Counter g_recalls("verbund_call_transfer_recalls_total",
                  "Blind transfers that came back to the transferring user");

std::string_view contentTypeOf(const Message& m) {
  auto ct = m.header(sip::HeaderId::ContentType);
  return ct ? *ct : std::string_view{};
}
} // namespace

void CallManager::enter(Call& call, Transfer& t, TransferState to) {
  if (t.state == to) return;
  if (!allowed(t.state, to)) {
    ++stats_.badTransitions;
    logger("calls")->error("bug: call {}: transfer {} -> {} is not a transition (refused)",
                           call.correlationId, stateName(t.state), stateName(to));
    return;
  }
  t.state = to;
  if (to == TransferState::Done) {
    ++stats_.transfersDone;
    g_transfersDone.inc();
  } else if (to == TransferState::Failed) {
    ++stats_.transfersFailed;
    g_transfersFailed.inc();
  } else if (to == TransferState::Recalling) {
    ++stats_.recalls;
    g_recalls.inc();
  }
}

std::optional<Party> CallManager::transferorOf(const Call& call, sip::UsageId leg) const {
  if (leg == call.inbound)
    return call.caller.kind == Caller::Kind::LocalUser && !isRemote(call.caller.party)
               ? std::optional<Party>(call.caller.party)
               : std::nullopt;
  if (leg != call.other || call.answeredBy.extension.empty() || isRemote(call.answeredBy))
    return std::nullopt;
  if (call.answer == AnswerKind::Fork || call.answer == AnswerKind::PickedUp)
    return call.answeredBy;
  return std::nullopt;
}

Caller CallManager::callerOfLeg(const Call& call, sip::UsageId leg) const {
  Caller c;
  if (leg == call.inbound) {
    c = call.caller;
  } else if (call.answer == AnswerKind::External) {
    c.kind = Caller::Kind::Trunk;
    c.number = call.answeredBy.extension;
  } else {
    c.party = call.answeredBy;
    c.kind = isRemote(c.party) ? Caller::Kind::Federation : Caller::Kind::LocalUser;
    // The other node knows this leg by the transferred call's id (calls-held).
    if (c.kind == Caller::Kind::Federation) c.correlationId = call.correlationId;
  }
  c.mode = CallMode::Route;
  return c;
}

void CallManager::addCallerParty(Call& call) {
  if (call.caller.kind != Caller::Kind::Trunk)
    call.parties.push_back(
        {PartyRole::Caller, call.caller.party.extension, call.caller.party.displayName,
         isRemote(call.caller.party) ? call.caller.party.owner : "", Disposition::Missed});
  else
    call.parties.push_back(
        {PartyRole::Caller, call.caller.number, call.caller.name, "", Disposition::Missed});
}

// ---- The REFER ----

bool CallManager::onRequest(InviteSession& s, sip::ServerTxId tx, const Message& request) {
  if (request.method() != sip::Method::Refer) return false;
  Call* x = callOf(s.appData);
  if (!x || !x->connected() || (s.id() != x->inbound && s.id() != x->other)) {
    (void)s.respond(tx, 403);
    return true;
  }
  // RFC 3515 §2.4.2: one transfer of a call at a time (491 as for a pending request).
  if (x->transferTo || (x->transfer && x->transfer->state != TransferState::Done)) {
    (void)s.respond(tx, 491);
    return true;
  }
  // Only a local user's phone transfers (not the carrier, not another node).
  auto by = transferorOf(*x, s.id());
  if (!by) {
    (void)s.respond(tx, 403);
    return true;
  }
  auto referTo = request.header(sip::HeaderId::ReferTo);
  if (!referTo) {
    (void)s.respond(tx, 400); // RFC 3515 §2.4.1: exactly one Refer-To
    return true;
  }
  auto target = parseReferTo(*referTo);
  if (!target) {
    logger("calls")->info("call {}: REFER refused: {}", x->correlationId, target.error().message);
    (void)s.respond(tx, target.error().code);
    return true;
  }
  uint32_t cseq = request.cseq().seq;
  if (target->replaces) {
    const ReplacesValue& r = *target->replaces;
    startAttendedTransfer(*x, s, tx, cseq, *by, r.callId, r.toTag, r.fromTag);
    return true;
  }
  (void)s.respond(tx, 202); // RFC 3515 §2.4.2
  startBlindTransfer(*x, s.id(), cseq, *by, target->user);
  return true;
}

void CallManager::notifyTransferor(Transfer& t, int status, std::string_view reason) {
  if (!t.transferor || t.notified >= 200) return;
  InviteSession* s = session(t.transferor);
  if (!s) return;
  bool final = status >= 200;
  t.notified = status;
  // RFC 3515 §2.4.4-§2.4.6: the implicit subscription's NOTIFYs in the REFER's dialog.
  sip::ExtraHeaders h{
      {"Event", "refer;id=" + std::to_string(t.referCSeq)},
      {"Subscription-State", final ? "terminated;reason=noresource" : "active;expires=60"}};
  auto r = s->request("NOTIFY", "message/sipfrag;version=2.0", sipfrag(status, reason), h);
  if (r)
    logger("calls")->info("transfer by {} to {}: NOTIFY {}", t.by.extension, t.target, status);
  else
    logger("calls")->debug("transfer: NOTIFY {} not sent: {}", status, r.error().message);
}

// ---- Blind ----

void CallManager::startBlindTransfer(Call& x, sip::UsageId transferor, uint32_t cseq,
                                     const Party& by, const std::string& target) {
  sip::UsageId transferee = transferor == x.inbound ? x.other : x.inbound;
  auto owned = std::make_unique<Call>();
  Call& y = *owned;
  y.id = ++nextCall_;
  y.inbound = transferee;
  y.caller = callerOfLeg(x, transferee);
  y.correlationId = sip::newCallId(config_.nodeId);
  y.startMs = nowMs();
  y.dialled = target;
  y.transferredBy = by.extension;
  y.transferTarget = target;
  y.transferCorrelationId = x.correlationId;
  auto t = std::make_unique<Transfer>();
  t->kind = TransferKind::Blind;
  t->from = x.id;
  t->transferor = transferor;
  t->referCSeq = cseq;
  t->by = by;
  t->target = target;
  t->fromCorrelationId = x.correlationId;
  y.transfer = std::move(t);
  addCallerParty(y);
  x.transferTo = y.id;
  x.transferredBy = by.extension;
  x.transferTarget = target;
  x.transferCorrelationId = y.correlationId;
  calls_.emplace(y.id, std::move(owned));
  ++stats_.started;
  ++stats_.active;
  ++stats_.transfers;
  g_transfers.inc();
  logger("calls")->info("call {}: {} transfers {} to {} (call {})", x.correlationId, by.extension,
                        callerIdOf(y.caller), target, y.correlationId);
  notifyTransferor(*y.transfer, 100);
  route(y);
}

void CallManager::transferRinging(Call& y) {
  Transfer& t = *y.transfer;
  if (t.state != TransferState::Trying) return;
  enter(y, t, TransferState::Ringing);
  notifyTransferor(t, 180);
}

void CallManager::transferFailed(Call& y, int status, std::string_view reason) {
  Transfer& t = *y.transfer;
  timers_.cancel(y.noAnswer);
  y.noAnswer = 0;
  Call* x = callOf(t.from);
  bool transferorStays = x && !x->ended() && x->transferTo == y.id;
  if (t.state != TransferState::Recalling) notifyTransferor(t, status, reason);
  Disposition d = status == 486 || status == 600 ? Disposition::Busy
                  : status == 404                ? Disposition::Failed
                                                 : Disposition::Missed;
  for (auto& p : y.parties) p.disposition = d;
  y.endCause = EndCause::Failed;
  if (transferorStays) {
    // RFC 5589 §6.1: the transfer failed and the transferor is still talking to the
    // transferee: the call goes on as it was; only the transfer's own call ends.
    logger("calls")->info("call {}: transfer to {} failed ({}); the call stays with {}",
                          x->correlationId, t.target, status, t.by.extension);
    x->transferTo = 0;
    x->transferredBy.clear();
    x->transferTarget.clear();
    x->transferCorrelationId.clear();
    enter(y, t, TransferState::Failed);
    endCall(y);
    return;
  }
  if (t.kind == TransferKind::Blind && t.state != TransferState::Recalling &&
      config_.transferRecall.count() > 0 && !t.by.extension.empty() &&
      session(y.inbound) != nullptr) {
    // Recall: the transferring user's phones ring with the transferee as the caller.
    logger("calls")->info("call {}: transfer to {} failed ({}): recall to {}", y.correlationId,
                          t.target, status, t.by.extension);
    enter(y, t, TransferState::Recalling);
    for (auto& f : y.forks)
      if (!f.external()) line(y, f.party, LineEvent::State::Terminated, false);
    for (auto& p : y.parties)
      if (p.role != PartyRole::Caller) p.disposition = d;
    y.endCause = EndCause::None;
    enter(y, CallState::Routing);
    y.dialled = t.by.extension;
    y.callee.reset();
    y.group.reset();
    route(y);
    return;
  }
  logger("calls")->info("call {}: transfer to {} failed ({}): the transferee is hung up",
                        y.correlationId, t.target, status);
  enter(y, t, TransferState::Failed);
  hangUp(y, 0);
}

bool CallManager::joinTransferee(Call& y, InviteSession& target, const Message& answer) {
  Transfer& t = *y.transfer;
  InviteSession* transferee = session(y.inbound);
  if (!transferee) return false;
  transferee->appData = y.id;
  detachTransferred(y);
  // Our INVITE had no offer: the target's 2xx carries its offer and the ACK waits for the answer.
  if (!target.ackPending() || answer.body().empty()) {
    logger("calls")->info("call {}: the target answered the transfer without an offer",
                          y.correlationId);
    enter(y, t, TransferState::Failed);
    return false;
  }
  enter(y, t, TransferState::Joining);
  std::string_view ct = contentTypeOf(answer);
  Fork* fork = nullptr;
  for (auto& f : y.forks)
    if (f.state == ForkState::Answered) fork = &f;
  bool anchored = fork && anchorsFork(y, fork->kind);
  if (anchored) {
    relayJoin(y, target.id(), std::string(ct.empty() ? "application/sdp" : ct),
              std::string(answer.body()));
    return true;
  }
  enterMedia(y, MediaState::Direct);
  if (auto r = transferee->reinvite(ct.empty() ? "application/sdp" : ct, answer.body()); !r) {
    logger("calls")->info("call {}: re-INVITE of the transferee failed: {}", y.correlationId,
                          r.error().message);
    (void)target.ack({}, {});
    enter(y, t, TransferState::Failed);
    return false;
  }
  return true;
}

void CallManager::relayJoin(Call& y, sip::UsageId offerer, std::string type, std::string offer) {
  // The target's offer (in its 2xx) goes through the transfer call's own relay session to the
  // transferee; its answer comes back through it in transferOfferAnswered.
  enterOffer(y, OfferState::Anchoring);
  viaRelay(y, true, relayRef(y, offerer, y.inbound), std::move(offer),
           [this, offerer, type](Call& c, Result<std::string> sdp) {
             if (c.offerState != OfferState::Anchoring || !c.transfer) return;
             enterOffer(c, OfferState::Idle);
             InviteSession* transferee = session(c.inbound);
             InviteSession* target = session(offerer);
             if (sdp && transferee && transferee->reinvite(type, *sdp)) return;
             logger("calls")->info("call {}: transfer join failed: {}", c.correlationId,
                                   sdp ? "re-INVITE of the transferee not sent"
                                       : "media relay failed");
             if (target && target->ackPending()) (void)target->ack({}, {});
             enter(c, *c.transfer, TransferState::Failed);
             hangUp(c, 0);
           });
}

void CallManager::detachTransferred(Call& y) {
  Transfer& t = *y.transfer;
  notifyTransferor(t, 200);
  Call* x = callOf(t.from);
  if (x && !x->ended()) {
    x->transferTo = 0;
    x->endCause = EndCause::Hangup;
    endCall(*x); // its record; neither leg is touched here
  }
  if (t.transferor)
    if (InviteSession* leg = session(t.transferor)) (void)leg->end();
  t.transferor = 0;
}

bool CallManager::transferOfferAnswered(Call& y, InviteSession& s, sip::Method method,
                                        const Message& response) {
  Transfer& t = *y.transfer;
  if (method != sip::Method::Invite) return false;
  int status = response.statusCode();
  InviteSession* transferee = session(y.inbound);
  InviteSession* target = session(y.other);
  auto fail = [&](std::string_view why) {
    logger("calls")->info("call {}: transfer join failed: {}", y.correlationId, why);
    if (target && target->ackPending()) (void)target->ack({}, {});
    enter(y, t, TransferState::Failed);
    hangUp(y, 0);
    return true;
  };
  if (t.state == TransferState::AskingOffer && s.id() == y.other) {
    if (status >= 300 || !s.ackPending() || response.body().empty())
      return fail("the target gave no offer");
    enter(y, t, TransferState::Joining);
    std::string_view ct = contentTypeOf(response);
    if (anchor_ && anchorMode_ != AnchorMode::Off && y.media != MediaState::Direct &&
        (anchorMode_ == AnchorMode::Always || y.answer != AnswerKind::Fork ||
         y.caller.kind != Caller::Kind::LocalUser)) {
      relayJoin(y, s.id(), std::string(ct), std::string(response.body()));
      return true;
    }
    enterMedia(y, MediaState::Direct);
    if (!transferee || !transferee->reinvite(ct, response.body()))
      return fail("re-INVITE of the transferee not sent");
    return true;
  }
  if (t.state == TransferState::Joining && s.id() == y.inbound) {
    if (y.offerState != OfferState::Idle) return true; // the relay still has the offer
    if (status >= 300 || !target || !target->ackPending())
      return fail("the transferee refused the target's offer");
    if (y.media == MediaState::Anchored && !response.body().empty()) {
      // The transferee's answer goes to the target through the relay.
      enterOffer(y, OfferState::AnchoringAck);
      sip::UsageId targetLeg = target->id();
      std::string type(contentTypeOf(response));
      viaRelay(y, false, relayRef(y, targetLeg, y.inbound), std::string(response.body()),
               [this, targetLeg, type](Call& c, Result<std::string> sdp) {
                 if (c.offerState != OfferState::AnchoringAck || !c.transfer) return;
                 enterOffer(c, OfferState::Idle);
                 InviteSession* tg = session(targetLeg);
                 if (!sdp || !tg || !tg->ackPending()) {
                   if (tg && tg->ackPending()) (void)tg->ack({}, {});
                   enter(c, *c.transfer, TransferState::Failed);
                   return hangUp(c, 0);
                 }
                 (void)tg->ack(type, *sdp);
                 enter(c, *c.transfer, TransferState::Done);
                 logger("calls")->info("call {}: transfer done: {} talks to {}", c.correlationId,
                                       callerIdOf(c.caller), c.answeredBy.extension);
               });
      return true;
    }
    (void)target->ack(contentTypeOf(response), response.body());
    enter(y, t, TransferState::Done);
    logger("calls")->info("call {}: transfer done: {} talks to {}", y.correlationId,
                          callerIdOf(y.caller), y.answeredBy.extension);
    return true;
  }
  return false;
}

void CallManager::transferredLegEnded(Call& x, sip::UsageId gone) {
  Call* y = callOf(x.transferTo);
  if (!y || y->ended() || !y->transfer) {
    x.transferTo = 0;
    hangUp(x, gone);
    return;
  }
  Transfer& t = *y->transfer;
  if (gone == t.transferor) {
    // RFC 5589 §6: the transferring phone may hang up at once; the transferee waits for the
    // target, and its leg belongs to the transfer's call from now on.
    logger("calls")->info("call {}: {} hung up; the transfer to {} goes on", x.correlationId,
                          t.by.extension, t.target);
    t.transferor = 0;
    if (InviteSession* r = session(y->inbound)) r->appData = y->id;
    x.transferTo = 0;
    x.endCause = EndCause::Hangup;
    endCall(x);
    return;
  }
  // The transferee hung up: the transfer is over.
  notifyTransferor(t, 487, "Request Terminated");
  cancelForks(*y, nullptr, false);
  enter(*y, t, TransferState::Failed);
  y->endCause = EndCause::Hangup;
  endCall(*y);
  x.transferTo = 0;
  hangUp(x, gone);
}

// ---- Attended ----

void CallManager::startAttendedTransfer(Call& x1, InviteSession& t1, sip::ServerTxId tx,
                                        uint32_t cseq, const Party& by, const std::string& callId,
                                        const std::string& toTag, const std::string& fromTag) {
  // RFC 3891 §3: the tags as the transferor's phone sees its dialog; this node's tag is the
  // to-tag. Phones differ, so both orders are looked up.
  InviteSession* t2 = nullptr;
  for (const sip::DialogId& id :
       {sip::DialogId{callId, toTag, fromTag}, sip::DialogId{callId, fromTag, toTag}})
    if (sip::DialogUsage* d = dm_.findDialog(id))
      if ((t2 = dm_.inviteSession(d->id()))) break;
  Call* x2 = t2 ? callOf(t2->appData) : nullptr;
  bool usable = x2 && x2 != &x1 && x2->connected() && !x2->transferTo &&
                (!x2->transfer || x2->transfer->state == TransferState::Done) &&
                (t2->id() == x2->inbound || t2->id() == x2->other);
  // The Replaces must name a call of the same user (no joining other people's calls).
  auto by2 = usable ? transferorOf(*x2, t2->id()) : std::nullopt;
  if (!by2 || by2->extension != by.extension || by2->owner != by.owner) {
    logger("calls")->info("call {}: REFER with Replaces refused: no call of {} with that dialog",
                          x1.correlationId, by.extension);
    (void)t1.respond(tx, 403);
    return;
  }
  (void)t1.respond(tx, 202);
  sip::UsageId transferee = t1.id() == x1.inbound ? x1.other : x1.inbound;
  sip::UsageId targetLeg = t2->id() == x2->inbound ? x2->other : x2->inbound;
  Caller targetParty = callerOfLeg(*x2, targetLeg);

  auto owned = std::make_unique<Call>();
  Call& y = *owned;
  y.id = ++nextCall_;
  y.inbound = transferee;
  y.other = targetLeg;
  y.otherTag = "target";
  y.caller = callerOfLeg(x1, transferee);
  y.correlationId = sip::newCallId(config_.nodeId);
  y.startMs = nowMs();
  y.answerMs = y.startMs;
  y.answeredBy = targetParty.kind == Caller::Kind::Trunk ? Party{} : targetParty.party;
  if (targetParty.kind == Caller::Kind::Trunk) y.answeredBy.extension = targetParty.number;
  y.answer = targetParty.kind == Caller::Kind::Trunk        ? AnswerKind::External
             : targetParty.kind == Caller::Kind::Federation ? AnswerKind::Remote
                                                            : AnswerKind::Fork;
  y.callee = y.answeredBy;
  y.dialled = y.answeredBy.extension;
  y.transferredBy = by.extension;
  y.transferTarget = y.answeredBy.extension;
  y.transferCorrelationId = x1.correlationId;
  addCallerParty(y);
  y.parties.push_back({PartyRole::Callee, y.answeredBy.extension, y.answeredBy.displayName,
                       isRemote(y.answeredBy) ? y.answeredBy.owner : "", Disposition::Answered});
  auto t = std::make_unique<Transfer>();
  t->kind = TransferKind::Attended;
  t->from = x1.id;
  t->transferor = t1.id();
  t->referCSeq = cseq;
  t->by = by;
  t->target = y.answeredBy.extension;
  t->fromCorrelationId = x1.correlationId;
  t->consultCorrelationId = x2->correlationId;
  y.transfer = std::move(t);
  for (Call* x : {&x1, x2}) {
    x->transferredBy = by.extension;
    x->transferTarget = x == &x1 ? y.answeredBy.extension : callerIdOf(y.caller);
    x->transferCorrelationId = y.correlationId;
  }
  if (isRemote(y.answeredBy)) addNode(y, y.answeredBy.owner);
  enter(y, CallState::Connected);
  Call* yp = &y;
  calls_.emplace(y.id, std::move(owned));
  ++stats_.started;
  ++stats_.active;
  ++stats_.answered;
  ++stats_.transfers;
  g_transfers.inc();
  logger("calls")->info("call {}: {} joins {} with {} (consultation call {}) as call {}",
                        x1.correlationId, by.extension, callerIdOf(yp->caller),
                        yp->answeredBy.extension, x2->correlationId, yp->correlationId);
  // The two remaining legs belong to the new call; the transferor's two calls end and both of
  // its legs get BYE (after the NOTIFY 200 on the REFER's dialog).
  if (InviteSession* r = session(transferee)) r->appData = yp->id;
  if (InviteSession* c = session(targetLeg)) c->appData = yp->id;
  notifyTransferor(*yp->transfer, 100);
  sip::UsageId t2leg = t2->id();
  detachTransferred(*yp); // x1 and the REFER's leg
  x2->endCause = EndCause::Hangup;
  endCall(*x2);
  if (InviteSession* leg = session(t2leg)) (void)leg->end();
  // RFC 3725 flow I: an offerless re-INVITE asks the target for an offer.
  enter(*yp, *yp->transfer, TransferState::AskingOffer);
  InviteSession* target = session(targetLeg);
  if (!target || !session(transferee) || !target->reinvite()) {
    logger("calls")->info("call {}: attended transfer: a leg is gone", yp->correlationId);
    enter(*yp, *yp->transfer, TransferState::Failed);
    hangUp(*yp, 0);
    return;
  }
  line(*yp, yp->answeredBy, LineEvent::State::Confirmed, false);
  if (yp->caller.kind == Caller::Kind::LocalUser)
    line(*yp, yp->caller.party, LineEvent::State::Confirmed, true);
  saveRecord(*yp);
}

} // namespace verbund::pbx

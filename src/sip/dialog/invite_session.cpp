#include "sip/dialog/invite_session.h"

#include "base/log.h"
#include "sip/dialog/session_timer.h"

#include <algorithm>
#include <memory>

namespace verbund::sip {

std::string_view inviteEndName(InviteEnd e) {
  switch (e) {
  case InviteEnd::LocalBye:
    return "local BYE";
  case InviteEnd::RemoteBye:
    return "remote BYE";
  case InviteEnd::Cancelled:
    return "cancelled";
  case InviteEnd::Rejected:
    return "rejected";
  case InviteEnd::NoAck:
    return "no ACK";
  case InviteEnd::ForkLost:
    return "fork lost";
  case InviteEnd::DialogError:
    return "dialog error";
  case InviteEnd::SessionExpired:
    return "session expired";
  }
  return "?";
}

void InviteHandler::onOffer(InviteSession& session, ServerTxId tx, const Message&) {
  (void)session.respond(tx, 488);
}

namespace {
void addHeaders(MessageBuilder& b, const ExtraHeaders& headers) {
  for (const auto& [name, value] : headers) b.header(name, value);
}

// RFC 3261 §20.5: the methods of an INVITE dialog, sent with session timers (UPDATE refreshes).
constexpr std::string_view kAllow = "INVITE, ACK, CANCEL, BYE, UPDATE";

bool hasHeader(const ExtraHeaders& headers, HeaderId id) {
  return std::any_of(headers.begin(), headers.end(),
                     [id](const auto& h) { return headerIdFromName(h.first) == id; });
}
} // namespace

// ---- ClientInvite ----

ClientInvite::ClientInvite(DialogManager& m, UsageId id, DialogManager::InviteParams params)
    : Usage(m, id), params_(std::move(params)) {
  callId_ = params_.callId.empty() ? newCallId({}) : params_.callId;
  fromTag_ = newTag();
  contact_ = params_.contact.empty() ? m.config().contact : params_.contact;
  timerConfig_ = params_.sessionTimer.value_or(m.config().sessionTimer);
  const SessionTimerConfig& st = timerConfig_;
  if (st.sessionExpires && !hasHeader(params_.headers, HeaderId::SessionExpires)) {
    sessionExpires_ = std::max(st.sessionExpires, st.minSE);
    minSE_ = st.minSE;
  }
}

Result<void> ClientInvite::start() {
  auto hop = manager_.firstHop(params_.requestUri, params_.routes, params_.target);
  if (!hop) return hop.error();
  target_ = *hop;
  return sendInvite();
}

Result<void> ClientInvite::sendInvite() {
  ExtraHeaders headers = params_.headers;
  if (auth_) headers.push_back(*auth_);
  if (sessionExpires_) {
    // RFC 4028 §7.1: we support and ask for a session timer, and leave the choice of the
    // refresher to the UAS. (Never "100rel": we do not implement PRACK, RFC 3262.)
    headers.emplace_back("Supported", "timer");
    headers.emplace_back("Session-Expires", std::to_string(sessionExpires_));
    headers.emplace_back("Min-SE", std::to_string(minSE_));
    // RFC 3311 §5.1: the peer refreshes by UPDATE (no offer for its application) only when we
    // say we allow it; otherwise each refresh is a re-INVITE that reaches the other leg.
    if (!hasHeader(params_.headers, HeaderId::Allow)) headers.emplace_back("Allow", kAllow);
  }
  std::string via = manager_.txl().makeVia(target_);
  OutOfDialogRequest r;
  r.method = "INVITE";
  r.requestUri = params_.requestUri;
  r.via = via;
  r.from = params_.from;
  r.fromTag = fromTag_;
  r.to = params_.to;
  r.callId = callId_;
  r.cseq = cseq_;
  r.contact = contact_;
  r.routes = &params_.routes;
  r.headers = &headers;
  r.contentType = params_.contentType;
  r.body = params_.body;
  std::string bytes = buildOutOfDialogRequest(r);
  auto copy = parseMessage(bytes);
  if (!copy.ok()) return makeError(400, "bad INVITE: " + copy.error.reason);
  auto tx = manager_.send(std::move(bytes), target_,
                          manager_.guard(
                              id(), [this](const Message& resp) { onResponse(resp); },
                              [this](ClientTxFailure why) { onFailure(why); }));
  if (!tx) return tx.error();
  request_ = std::move(copy.message);
  tx_ = *tx;
  return {};
}

Result<void> ClientInvite::cancel(std::span<const HeaderField> extraHeaders) {
  if (final_) return makeError(481, "INVITE already answered");
  if (cancelled_) return {};
  cancelled_ = true;
  auto c = manager_.txl().cancel(tx_, {}, extraHeaders);
  if (!c) return c.error();
  return {};
}

InviteSession& ClientInvite::sessionFor(const Message& response) {
  std::string tag(response.toTag());
  auto it = sessions_.find(tag);
  if (it != sessions_.end())
    if (auto* s = manager_.inviteSession(it->second)) return *s;
  // RFC 3261 §12.1.2 / §13.2.2.4: every To tag is a dialog of its own.
  auto d = Dialog::fromUac(*request_, response);
  auto& s = manager_.create<InviteSession>(std::move(*d), id(), ServerTxId(0));
  s.timerConfig_ = timerConfig_;
  s.remotePeer_ = response.source();
  manager_.bindDialog(s);
  sessions_[tag] = s.id();
  return s;
}

void ClientInvite::onResponse(const Message& response) {
  int status = response.statusCode();
  InviteHandler* h = manager_.inviteHandler();
  if (status < 200) {
    if (final_) return;
    if (status == 100) {
      // No dialog, but the next hop is there (the call engine's federation fallback waits for
      // exactly this).
      if (h) h->onProvisional(*this, nullptr, response);
      return;
    }
    InviteSession* s = nullptr;
    if (!response.toTag().empty()) {
      s = &sessionFor(response);
      s->uacProvisional(response);
    }
    if (h) h->onProvisional(*this, s, response);
    return;
  }
  if (status < 300) {
    if (response.toTag().empty()) return; // not a usable 2xx; nothing to ACK towards
    final_ = true;
    std::string tag(response.toTag());
    if (auto lost = lostAcks_.find(tag); lost != lostAcks_.end()) {
      // A retransmission of a fork's 2xx that we ended: ACK it again.
      (void)manager_.txl().sendStateless(lost->second.second, lost->second.first);
      return;
    }
    InviteSession& s = sessionFor(response);
    if (answered_ == 0 && !cancelled_) {
      answered_ = s.id();
      s.uac2xx(response, true);
      // RFC 3261 §13.2.2.4: early dialogs that are not confirmed within 64*T1 end.
      if (!earlyExpiry_) {
        earlyExpiry_ = manager_.timers().after(64 * manager_.txl().config().t1, [this] {
          earlyExpiry_ = 0;
          endEarlySessions(InviteEnd::ForkLost, nullptr);
          manager_.retire(*this);
        });
      }
      return;
    }
    if (s.id() == answered_ || s.state() != InviteSession::State::Early) {
      s.uac2xx(response, true); // retransmission: the same ACK again
      return;
    }
    // RFC 3261 §13.2.2.4: every 2xx is ACKed; a dialog we do not want (another fork answered
    // first, or we cancelled) is ended with BYE.
    s.uac2xx(response, false);
    lostAcks_[tag] = {s.ack_, s.ackPeer_};
    s.sendBye();
    s.terminate(cancelled_ && answered_ == 0 ? InviteEnd::Cancelled : InviteEnd::ForkLost,
                &response);
    if (cancelled_ && answered_ == 0 && !earlyExpiry_) {
      earlyExpiry_ = manager_.timers().after(64 * manager_.txl().config().t1, [this] {
        earlyExpiry_ = 0;
        manager_.retire(*this);
      });
      if (h) h->onFailure(*this, 487, nullptr);
    }
    return;
  }
  if (final_) return;
  final_ = true;
  if (!cancelled_ && retry(response)) return;
  endEarlySessions(status == 487 && cancelled_ ? InviteEnd::Cancelled : InviteEnd::Rejected,
                   &response);
  if (h) h->onFailure(*this, status, &response);
  manager_.retire(*this);
}

bool ClientInvite::retry(const Message& response) {
  int status = response.statusCode();
  if ((status == 401 || status == 407) && params_.auth && authAttempts_ < 2) {
    auto value = params_.auth(response);
    if (!value) return false;
    ++authAttempts_;
    auth_ = std::make_pair(std::string(authHeaderFor(status)), std::move(*value));
  } else if (status == 422 && sessionExpires_ && !intervalRetried_) {
    // RFC 4028 §7.4: once more with Session-Expires raised to the 422's Min-SE, which also
    // becomes our Min-SE.
    auto min = minSEOf(response);
    if (!min || *min <= sessionExpires_) return false;
    intervalRetried_ = true;
    sessionExpires_ = *min;
    minSE_ = std::max(minSE_, *min);
  } else {
    return false;
  }
  // RFC 3261 §22.2 (and RFC 4028 §7.4): the same request again with a higher CSeq.
  ++cseq_;
  final_ = false;
  endEarlySessions(InviteEnd::Rejected, &response);
  sessions_.clear();
  if (sendInvite()) return true;
  final_ = true;
  return false;
}

void ClientInvite::onFailure(ClientTxFailure why) {
  final_ = true;
  endEarlySessions(InviteEnd::Rejected, nullptr);
  // RFC 3261 §8.1.3.1: a timeout is a 408, a transport error a 503.
  if (auto* h = manager_.inviteHandler())
    h->onFailure(*this, why == ClientTxFailure::Timeout ? 408 : 503, nullptr);
  manager_.retire(*this);
}

void ClientInvite::endEarlySessions(InviteEnd why, const Message* response) {
  for (const auto& [tag, sid] : sessions_)
    if (auto* s = manager_.inviteSession(sid); s && s->state() == InviteSession::State::Early)
      s->terminate(why, response);
}

ClientInvite::~ClientInvite() {
  if (earlyExpiry_) manager_.timers().cancel(earlyExpiry_);
}

// ---- InviteSession ----

InviteSession::InviteSession(DialogManager& m, UsageId id, Dialog dialog, UsageId clientInvite,
                             ServerTxId inviteTx)
    : DialogUsage(m, id), clientInvite_(clientInvite), inviteTx_(inviteTx) {
  // Both sides start early: the UAC's session is confirmed by uac2xx(), the UAS's by accept().
  dialog_ = std::move(dialog);
}

InviteSession::~InviteSession() {
  Timers& t = manager_.timers();
  for (TimerId id : {retransmitTimer_, noAckTimer_, glareTimer_, heldAckTimer_, sessionTimer_})
    if (id) t.cancel(id);
}

std::string InviteSession::buildResponse(ServerTxId tx, int status, std::string_view reason,
                                         std::string_view contentType, std::string_view body,
                                         const ExtraHeaders& headers, bool contact) {
  const Message* req = manager_.txl().request(tx);
  if (!req) return {};
  MessageBuilder b = responseTo(*req, status, reason, dialog().id().localTag);
  // RFC 3261 §12.1.1: dialog-creating responses echo the request's Record-Route, in order, so
  // that the caller learns the same route set as we did.
  if (status > 100 && status < 300 && req->method() == Method::Invite)
    b.copyHeaders(*req, HeaderId::RecordRoute);
  if (contact && status > 100 && status < 300 && !dialog().localContact().empty())
    b.header(HeaderId::Contact, "<" + dialog().localContact() + ">");
  addHeaders(b, headers);
  // RFC 4028 §9: every 2xx to a session refresh request (INVITE, UPDATE) states the interval.
  if (status >= 200 && status < 300 &&
      (req->method() == Method::Invite || req->method() == Method::Update))
    addTimerHeaders(b, true, headers);
  if (!body.empty()) b.body(contentType, body);
  return b.finish();
}

Result<void> InviteSession::provisional(int status, std::string_view contentType,
                                        std::string_view body, const ExtraHeaders& headers) {
  if (!inviteTx_) return makeError(500, "no INVITE to answer");
  if (status <= 100 || status >= 200) return makeError(500, "not a provisional status");
  std::string bytes = buildResponse(inviteTx_, status, {}, contentType, body, headers, true);
  if (bytes.empty()) return makeError(481, "INVITE transaction gone");
  return manager_.txl().respond(inviteTx_, std::move(bytes));
}

Result<void> InviteSession::accept(std::string_view contentType, std::string_view body,
                                   const ExtraHeaders& headers) {
  if (!inviteTx_) return makeError(500, "no INVITE to answer");
  const Message* req = manager_.txl().request(inviteTx_);
  if (!req) return makeError(481, "INVITE transaction gone");
  Peer dest = responseDestination(*req);
  uint32_t cseq = req->cseq().seq;
  timerFromRequest(*req, true);
  std::string bytes = buildResponse(inviteTx_, 200, {}, contentType, body, headers, true);
  if (auto r = manager_.txl().respond(inviteTx_, bytes); !r) return r;
  inviteTx_ = 0;
  dialog_->confirm();
  state_ = State::WaitingAck;
  if (!body.empty()) rememberSent(contentType, body);
  start2xxRetransmission(std::move(bytes), dest, cseq);
  restartSessionTimer(); // RFC 4028 §10: the session timer starts with the 2xx
  return {};
}

Result<void> InviteSession::reject(int status, std::string_view reason,
                                   const ExtraHeaders& headers) {
  if (!inviteTx_) return makeError(500, "no INVITE to answer");
  if (status < 300 || status > 699) return makeError(500, "not a failure status");
  std::string bytes = buildResponse(inviteTx_, status, reason, {}, {}, headers, false);
  ServerTxId tx = inviteTx_;
  inviteTx_ = 0;
  auto r = manager_.txl().respond(tx, std::move(bytes));
  terminate(InviteEnd::Rejected, nullptr);
  return r;
}

void InviteSession::start2xxRetransmission(std::string bytes, const Peer& to, uint32_t cseq) {
  stop2xxRetransmission();
  pending2xx_ = std::move(bytes);
  pending2xxPeer_ = to;
  pending2xxCSeq_ = cseq;
  const TransactionConfig& c = manager_.txl().config();
  Timers& t = manager_.timers();
  // RFC 3261 §13.3.1.4: retransmit at T1, doubling up to T2, until the ACK arrives (unless the
  // transaction layer is configured to do it, RFC 6026 Accepted state).
  if (!c.retransmitInvite2xx && !isReliable(to.transport)) {
    retransmitInterval_ = c.t1;
    retransmitTimer_ = t.after(retransmitInterval_, [this] { retransmitTick(); });
  }
  // ... and give up after 64*T1: the session is ended with BYE.
  noAckTimer_ = t.after(64 * c.t1, [this] {
    noAckTimer_ = 0;
    stop2xxRetransmission();
    logger("sip")->info("dialog {}: no ACK for 2xx, sending BYE", dialog().id().callId);
    sendBye();
    terminate(InviteEnd::NoAck, nullptr);
  });
}

void InviteSession::retransmitTick() {
  retransmitTimer_ = 0;
  if (pending2xx_.empty()) return;
  (void)manager_.txl().sendStateless(pending2xxPeer_, pending2xx_);
  retransmitInterval_ = std::min(retransmitInterval_ * 2, manager_.txl().config().t2);
  retransmitTimer_ = manager_.timers().after(retransmitInterval_, [this] { retransmitTick(); });
}

void InviteSession::stop2xxRetransmission() {
  Timers& t = manager_.timers();
  if (retransmitTimer_) t.cancel(retransmitTimer_);
  if (noAckTimer_) t.cancel(noAckTimer_);
  retransmitTimer_ = noAckTimer_ = 0;
  pending2xx_.clear();
}

void InviteSession::onAck(const Message& ack) {
  if (pending2xx_.empty() || ack.cseq().seq != pending2xxCSeq_) return; // late or stray ACK
  stop2xxRetransmission();
  remotePeer_ = ack.source();
  InviteHandler* h = manager_.inviteHandler();
  if (state_ == State::WaitingAck) {
    state_ = State::Confirmed;
    if (byeAfterAck_) {
      sendBye();
      terminate(InviteEnd::LocalBye, nullptr);
      return;
    }
    if (h) h->onConnected(*this, ack);
  } else if (h && !ack.body().empty()) {
    // The answer to an offerless re-INVITE arrives in the ACK (RFC 3261 §14.2).
    h->onOfferAnswered(*this, Method::Ack, ack);
  }
}

void InviteSession::onCancel(ServerTxId tx, const Message& cancel) {
  // RFC 3261 §9.2: the CANCELled INVITE is answered 487.
  std::string bytes = buildResponse(tx, 487, {}, {}, {}, {}, false);
  if (!bytes.empty()) (void)manager_.txl().respond(tx, std::move(bytes));
  if (tx == inviteTx_) {
    inviteTx_ = 0;
    terminate(InviteEnd::Cancelled, &cancel);
  } else if (tx == incomingInvite_) {
    incomingInvite_ = 0; // a cancelled re-INVITE leaves the dialog as it was
  }
}

void InviteSession::onServerTxEnd(ServerTxId tx, ServerTxEnd how) {
  if (tx == incomingInvite_) incomingInvite_ = 0;
  if (tx == incomingUpdate_) incomingUpdate_ = 0;
  if (tx == inviteTx_) {
    // The INVITE transaction ended unanswered (transport error): nothing more can be sent on it.
    inviteTx_ = 0;
    terminate(InviteEnd::DialogError, nullptr);
  }
}

void InviteSession::onStray2xx(const Message& response) {
  // None while the ACK is held: ack_ is empty then.
  if (!ack_.empty() && response.cseq().seq == ackCSeq_)
    (void)manager_.txl().sendStateless(ackPeer_, ack_);
}

void InviteSession::uacProvisional(const Message& response) {
  remotePeer_ = response.source();
  if (!response.contacts().empty()) dialog_->refreshTarget(response);
}

void InviteSession::uac2xx(const Message& response, bool keep) {
  uint32_t cseq = response.cseq().seq;
  if (ackHeld_ && cseq == ackCSeq_) return; // retransmission; the answer is still to come
  if (!ack_.empty() && cseq == ackCSeq_) {
    // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again.
    (void)manager_.txl().sendStateless(ackPeer_, ack_);
    return;
  }
  remotePeer_ = response.source();
  dialog_->confirmFromResponse(response);
  ClientInvite* ci = manager_.clientInvite(clientInvite_);
  bool offerless = ci && ci->params_.body.empty();
  if (keep && offerless && !response.body().empty())
    holdAck(cseq);
  else
    sendAck(cseq);
  if (state_ == State::Early) state_ = State::Confirmed;
  if (!keep) return;
  if (ci && !offerless) rememberSent(ci->params_.contentType, ci->params_.body);
  timerFromResponse(response, ci ? ci->sessionExpires_ : 0);
  if (auto* h = manager_.inviteHandler()) h->onConnected(*this, response);
}

void InviteSession::sendAck(uint32_t cseq, std::string_view contentType, std::string_view body) {
  // RFC 3261 §13.2.2.4: the ACK is built like any in-dialog request, with the INVITE's CSeq
  // number, and sent directly to the transport (not in a transaction).
  auto peer = nextHopPeer();
  if (!peer) return;
  std::string via = manager_.txl().makeVia(*peer);
  ackCSeq_ = cseq;
  MessageBuilder b = dialog_->request("ACK", via, ackCSeq_, false);
  if (!body.empty()) b.body(contentType, body);
  ack_ = b.finish();
  ackPeer_ = *peer;
  (void)manager_.txl().sendStateless(ackPeer_, ack_);
}

void InviteSession::holdAck(uint32_t cseq) {
  // RFC 3261 §13.2.2.4 / RFC 3264 §5: our INVITE had no offer, so the 2xx carries the peer's
  // and the ACK must carry our answer, which the application gives through ack(). The peer
  // retransmits its 2xx for up to 64*T1 (§13.3.1.4): then the session is given up.
  ackHeld_ = true;
  ackCSeq_ = cseq;
  ack_.clear();
  if (heldAckTimer_) manager_.timers().cancel(heldAckTimer_);
  heldAckTimer_ = manager_.timers().after(64 * manager_.txl().config().t1, [this] {
    heldAckTimer_ = 0;
    logger("sip")->info("dialog {}: no answer for the held ACK, sending BYE", dialog().id().callId);
    sendBye(); // sends the ACK without body first
    terminate(InviteEnd::DialogError, nullptr);
  });
}

void InviteSession::releaseAck(std::string_view contentType, std::string_view body) {
  ackHeld_ = false;
  if (heldAckTimer_) manager_.timers().cancel(heldAckTimer_);
  heldAckTimer_ = 0;
  sendAck(ackCSeq_, contentType, body);
}

Result<void> InviteSession::ack(std::string_view contentType, std::string_view body) {
  if (!ackHeld_) return makeError(500, "no ACK pending");
  releaseAck(contentType, body);
  if (!body.empty()) rememberSent(contentType, body);
  return {};
}

void InviteSession::onRequest(ServerTxId tx, const Message& request) {
  switch (request.method()) {
  case Method::Invite:
  case Method::Update:
    onOfferRequest(tx, request);
    return;
  case Method::Bye: {
    // RFC 3261 §15.1.2: 200 to the BYE, 487 to requests still pending.
    (void)manager_.txl().respond(tx, 200);
    if (inviteTx_) {
      std::string bytes = buildResponse(inviteTx_, 487, {}, {}, {}, {}, false);
      if (!bytes.empty()) (void)manager_.txl().respond(inviteTx_, std::move(bytes));
      inviteTx_ = 0;
    }
    stop2xxRetransmission();
    terminate(InviteEnd::RemoteBye, &request);
    return;
  }
  default:
    break;
  }
  InviteHandler* h = manager_.inviteHandler();
  if (!h || !h->onRequest(*this, tx, request)) (void)manager_.txl().respond(tx, 501);
}

void InviteSession::onOfferRequest(ServerTxId tx, const Message& request) {
  bool invite = request.method() == Method::Invite;
  ServerTxId& incoming = invite ? incomingInvite_ : incomingUpdate_;
  ClientTxId outgoing = invite ? outgoingInvite_ : outgoingUpdate_;
  // RFC 3311 §5.2: an UPDATE without body carries no offer (a session or target refresh).
  bool offer = invite || !request.body().empty();
  if (incoming || (invite && (inviteTx_ || !pending2xx_.empty()))) {
    // RFC 3261 §14.2 (RFC 3311 §5.2 for UPDATE): a second request before the first one is
    // answered gets 500 with a random Retry-After of up to 10 seconds.
    std::string ra = std::to_string(manager_.random(0, 10));
    std::string bytes = buildResponse(tx, 500, {}, {}, {}, {{"Retry-After", ra}}, false);
    if (!bytes.empty()) (void)manager_.txl().respond(tx, std::move(bytes));
    return;
  }
  if ((outgoing && offer) || (invite && ackHeld_)) {
    // RFC 3261 §14.2: glare, our own request of that kind is in progress (or our INVITE still
    // waits for its ACK) -> 491.
    (void)manager_.txl().respond(tx, 491);
    return;
  }
  if (invite && state_ != State::Confirmed) {
    (void)manager_.txl().respond(tx, 500, "Dialog Not Confirmed");
    return;
  }
  if (state_ != State::Early && manager_.sessionIntervalTooSmall(tx, request, timerConfig_)) return;
  incoming = tx;
  if (!offer) {
    // RFC 4028 §9: nothing for the application to decide; answered here (with Session-Expires).
    (void)respond(tx, 200);
    return;
  }
  if (auto* h = manager_.inviteHandler())
    h->onOffer(*this, tx, request);
  else
    (void)respond(tx, 488);
}

Result<void> InviteSession::respond(ServerTxId tx, int status, std::string_view contentType,
                                    std::string_view body, const ExtraHeaders& headers) {
  if (tx == inviteTx_ && tx) {
    if (status < 200) return provisional(status, contentType, body, headers);
    if (status < 300) return accept(contentType, body, headers);
    return reject(status, {}, headers);
  }
  const Message* req = manager_.txl().request(tx);
  if (!req) return makeError(481, "no such transaction");
  Method m = req->method();
  bool refresh = m == Method::Invite || m == Method::Update;
  bool ok2xx = status >= 200 && status < 300;
  if (refresh && ok2xx) {
    // RFC 3261 §12.2.2: a target refresh request's Contact becomes the remote target; applied
    // once the request is accepted, as RFC 6141 recommends.
    dialog_->refreshTarget(*req);
    timerFromRequest(*req, false);
  }
  Peer dest = responseDestination(*req);
  uint32_t cseq = req->cseq().seq;
  std::string bytes = buildResponse(tx, status, {}, contentType, body, headers, refresh);
  if (bytes.empty()) return makeError(481, "no such transaction");
  std::string copy = (m == Method::Invite && ok2xx) ? bytes : std::string();
  if (auto r = manager_.txl().respond(tx, std::move(bytes)); !r) return r;
  if (status >= 200) {
    if (tx == incomingInvite_) incomingInvite_ = 0;
    if (tx == incomingUpdate_) incomingUpdate_ = 0;
  }
  if (m == Method::Invite && ok2xx) start2xxRetransmission(std::move(copy), dest, cseq);
  if (refresh && ok2xx) {
    if (!body.empty()) rememberSent(contentType, body);
    restartSessionTimer(); // RFC 4028 §10: a 2xx to a refresh from the peer
  }
  return {};
}

Result<void> InviteSession::reinvite(std::string_view contentType, std::string_view body,
                                     const ExtraHeaders& headers, OfferOptions options) {
  if (state_ != State::Confirmed) return makeError(500, "dialog not confirmed");
  // RFC 3261 §14.1: no new INVITE while another one is in progress in either direction.
  if (outgoingInvite_ || incomingInvite_ || glareTimer_ || !pending2xx_.empty() || ackHeld_)
    return makeError(491, "INVITE in progress");
  return sendOffer(PendingOffer{Method::Invite, std::string(contentType), std::string(body),
                                headers, options, false});
}

Result<void> InviteSession::update(std::string_view contentType, std::string_view body,
                                   const ExtraHeaders& headers, OfferOptions options) {
  if (state_ != State::Confirmed && state_ != State::Early && state_ != State::WaitingAck)
    return makeError(500, "session ended");
  if (outgoingUpdate_ || incomingUpdate_) return makeError(491, "UPDATE in progress");
  return sendOffer(PendingOffer{Method::Update, std::string(contentType), std::string(body),
                                headers, options, false});
}

Result<void> InviteSession::sendOffer(PendingOffer offer) {
  // The callbacks keep their own copy: a 491 retry needs it, and INVITE and UPDATE may be in
  // progress at the same time.
  auto o = std::make_shared<const PendingOffer>(std::move(offer));
  auto tx = sendInDialog(
      methodName(o->method), true,
      [this, &o](MessageBuilder& b) {
        addHeaders(b, o->headers);
        addTimerHeaders(b, false, o->headers);
        if (!o->body.empty()) b.body(o->contentType, o->body);
      },
      [this, o](const Message& r) { onOfferResponse(*o, r); },
      [this, o](ClientTxFailure) { onOfferFailure(*o); });
  if (!tx) return tx.error();
  (o->method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = *tx;
  return {};
}

void InviteSession::onOfferResponse(const PendingOffer& offer, const Message& response) {
  int status = response.statusCode();
  if (status < 200) return;
  Method method = offer.method;
  uint32_t cseq = response.cseq().seq;
  if (method == Method::Invite && status < 300 && cseq == ackCSeq_ && (ackHeld_ || !ack_.empty())) {
    // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again (none while it is held).
    if (!ackHeld_) (void)manager_.txl().sendStateless(ackPeer_, ack_);
    return;
  }
  (method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = 0;
  InviteHandler* h = manager_.inviteHandler();
  if (status < 300) {
    remotePeer_ = response.source();
    dialog_->refreshTarget(response); // RFC 3261 §12.2.1.2: target refresh by the 2xx
    if (method == Method::Invite) {
      // A refresh without a description to repeat has nothing to answer with: plain ACK.
      if (offer.body.empty() && !response.body().empty() && !offer.refresh)
        holdAck(cseq);
      else
        sendAck(cseq);
    }
    if (!offer.body.empty()) rememberSent(offer.contentType, offer.body);
    if (state_ != State::Early) timerFromResponse(response, sessionInterval_);
    if (!offer.refresh && h) h->onOfferAnswered(*this, method, response);
    return;
  }
  if (status == 491 && (offer.refresh || offer.options.retryGlare)) {
    retryAfterGlare(offer, response);
    return;
  }
  if (status == 481 || status == 408) {
    // RFC 3261 §12.2.1.2: the dialog is gone (481) or unreachable (408). RFC 4028 §10: the same
    // for a session refresh.
    if (status == 408) sendBye();
    terminate(InviteEnd::DialogError, &response);
    return;
  }
  if (offer.refresh) {
    auto min = minSEOf(response);
    if (status == 422 && min && *min > sessionInterval_) {
      // RFC 4028 §7.4: the peer wants a longer interval; refresh again with its Min-SE.
      sessionInterval_ = *min;
      sendRefresh();
      return;
    }
    // RFC 4028 §10: only 408, 481 and timeouts end the session. The peer answered, so it is
    // there: the next refresh comes at the next half interval.
    logger("sip")->info("dialog {}: session refresh answered {}", dialog().id().callId, status);
    restartSessionTimer();
    return;
  }
  if (h) h->onOfferAnswered(*this, method, response);
}

void InviteSession::retryAfterGlare(const PendingOffer& offer, const Message& response) {
  if (retryOffer_) {
    // One §14.1 retry at a time (an INVITE and an UPDATE both met glare): this one gives up.
    if (offer.refresh)
      restartSessionTimer();
    else if (auto* h = manager_.inviteHandler())
      h->onOfferAnswered(*this, offer.method, response);
    return;
  }
  // RFC 3261 §14.1: retry after a random time: 2.1-4 s in 10 ms steps when we own the Call-ID
  // (we sent the dialog's first INVITE), 0-2 s otherwise.
  uint32_t ms = isUac() ? 10 * manager_.random(210, 400) : 10 * manager_.random(0, 200);
  retryOffer_ = offer;
  glareTimer_ = manager_.timers().after(Duration(ms), [this] {
    glareTimer_ = 0;
    if (!retryOffer_ || state_ == State::Terminated || state_ == State::Terminating) return;
    PendingOffer o = std::move(*retryOffer_);
    retryOffer_.reset();
    if (auto r = sendOffer(std::move(o)); !r) {
      // No response to report this with: the dialog is unusable (see InviteHandler).
      logger("sip")->info("dialog {}: 491 retry failed: {}", dialog().id().callId,
                          r.error().message);
      sendBye();
      terminate(InviteEnd::DialogError, nullptr);
    }
  });
}

void InviteSession::onOfferFailure(const PendingOffer& offer) {
  (offer.method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = 0;
  // RFC 3261 §12.2.1.2: a timeout inside a dialog counts as 408: end the dialog (RFC 4028 §10
  // for a session refresh).
  sendBye();
  terminate(InviteEnd::DialogError, nullptr);
}

// ---- RFC 4028 session timer ----

void InviteSession::rememberAllow(const Message& m) {
  if (auto a = allowsMethod(m, "UPDATE")) peerAllowsUpdate_ = *a;
}

void InviteSession::rememberSent(std::string_view contentType, std::string_view body) {
  sentContentType_ = contentType;
  sentBody_ = body;
}

void InviteSession::timerFromRequest(const Message& request, bool initial) {
  rememberAllow(request);
  const SessionTimerConfig& st = timerConfig_;
  if (st.sessionExpires == 0 || (!initial && state_ == State::Early)) return;
  bool supports = hasOptionTag(request, HeaderId::Supported, "timer") ||
                  hasOptionTag(request, HeaderId::Require, "timer");
  if (initial || supports) peerTimer_ = supports;
  auto se = sessionExpiresOf(request);
  if (se && se->seconds == 0) se.reset();
  if (!se && !initial && sessionInterval_) return; // keep the interval and the roles
  // RFC 4028 §9: the UAS may lower the interval, but not below the request's Min-SE (nor ours);
  // one below our Min-SE from a UAC without timer support is raised (it would not understand a
  // 422).
  uint32_t interval = std::min(se ? se->seconds : st.sessionExpires, st.sessionExpires);
  sessionInterval_ = std::max({interval, st.minSE, minSEOf(request).value_or(0)});
  // The UAC refreshes when it supports the extension, unless it asked us to (refresher=uas);
  // otherwise we do. A refresh request without refresher keeps the roles.
  if (se && se->refresher == RefresherParam::Uac && supports)
    refresher_ = Refresher::Remote;
  else if ((se && se->refresher == RefresherParam::Uas) || !supports)
    refresher_ = Refresher::Local;
  else if (initial || refresher_ == Refresher::None)
    refresher_ = Refresher::Remote;
}

void InviteSession::timerFromResponse(const Message& response, uint32_t asked) {
  rememberAllow(response);
  const SessionTimerConfig& st = timerConfig_;
  if (st.sessionExpires == 0) return;
  if (hasOptionTag(response, HeaderId::Require, "timer")) peerTimer_ = true;
  auto se = sessionExpiresOf(response);
  if (se && se->seconds) {
    // RFC 4028 §7.2: the 2xx says who refreshes; refresher=uac (or none) is us.
    sessionInterval_ = se->seconds;
    refresher_ = se->refresher == RefresherParam::Uas ? Refresher::Remote : Refresher::Local;
  } else {
    // RFC 4028 §7.4: no Session-Expires in the 2xx means the peer does not take part. By local
    // policy we keep refreshing at our own interval anyway, alone: a refresh that fails with
    // 408/481 or times out then finds a dead session.
    if (!sessionInterval_) sessionInterval_ = asked;
    refresher_ = Refresher::Local;
  }
  restartSessionTimer();
}

void InviteSession::addTimerHeaders(MessageBuilder& b, bool response,
                                    const ExtraHeaders& app) const {
  const SessionTimerConfig& st = timerConfig_;
  if (st.sessionExpires == 0) return;
  if (!response) b.header(HeaderId::Supported, "timer"); // RFC 4028 §7.1 (and never 100rel)
  // RFC 3311 §5.1: refreshes by UPDATE are answered here without the application (see above).
  if (!hasHeader(app, HeaderId::Allow)) b.header(HeaderId::Allow, kAllow);
  if (sessionInterval_ == 0 || hasHeader(app, HeaderId::SessionExpires)) return;
  // RFC 4028 §4: refresher names the UAC or the UAS of this transaction.
  bool local = refresher_ == Refresher::Local;
  RefresherParam r = local != response ? RefresherParam::Uac : RefresherParam::Uas;
  b.header(HeaderId::SessionExpires, formatSessionExpires(sessionInterval_, r));
  if (response && peerTimer_) b.header(HeaderId::Require, "timer"); // RFC 4028 §9
  if (!response) b.header("Min-SE", std::to_string(st.minSE));
}

void InviteSession::restartSessionTimer() {
  Timers& t = manager_.timers();
  if (sessionTimer_) t.cancel(sessionTimer_);
  sessionTimer_ = 0;
  if (sessionInterval_ == 0 || state_ == State::Terminating || state_ == State::Terminated) return;
  if (refresher_ == Refresher::Local) {
    sessionTimer_ = t.after(sessionRefreshDelay(sessionInterval_), [this] {
      sessionTimer_ = 0;
      sendRefresh();
    });
  } else {
    sessionTimer_ = t.after(sessionExpiryDelay(sessionInterval_), [this] {
      sessionTimer_ = 0;
      sessionExpired();
    });
  }
}

void InviteSession::sendRefresh() {
  // RFC 4028 §7.4 / RFC 3311 §5.1: UPDATE without body when the peer allows UPDATE, else a
  // re-INVITE with the description we sent last, unchanged.
  bool byUpdate = peerAllowsUpdate_ && !outgoingUpdate_ && !incomingUpdate_;
  bool byInvite = !byUpdate && state_ == State::Confirmed && !outgoingInvite_ && !incomingInvite_ &&
                  !glareTimer_ && pending2xx_.empty() && !ackHeld_;
  if (!byUpdate && !byInvite) {
    // Another exchange is in progress (its 2xx refreshes the session too): look again soon.
    sessionTimer_ = manager_.timers().after(Duration(1000), [this] {
      sessionTimer_ = 0;
      sendRefresh();
    });
    return;
  }
  PendingOffer o{byUpdate ? Method::Update : Method::Invite, {}, {}, {}, {}, true};
  if (byInvite) {
    o.contentType = sentContentType_;
    o.body = sentBody_;
  }
  if (auto r = sendOffer(std::move(o)); !r) {
    logger("sip")->info("dialog {}: session refresh not sent: {}", dialog().id().callId,
                        r.error().message);
    sendBye();
    terminate(InviteEnd::DialogError, nullptr);
  }
}

void InviteSession::sessionExpired() {
  // RFC 4028 §10: no refresh within SE - min(32, SE/3) seconds: the session is over.
  logger("sip")->info("dialog {}: session expired, sending BYE", dialog().id().callId);
  sendBye();
  terminate(InviteEnd::SessionExpired, nullptr);
}

Result<ClientTxId> InviteSession::request(std::string_view method, std::string_view contentType,
                                          std::string_view body, const ExtraHeaders& headers,
                                          std::function<void(const Message&)> onFinal) {
  if (state_ == State::Terminated || state_ == State::Terminating)
    return makeError(481, "session ended");
  Method m = methodFromName(method);
  if (m == Method::Invite || m == Method::Ack || m == Method::Cancel || m == Method::Bye ||
      m == Method::Update)
    return makeError(500, "use the dedicated call");
  bool refresh = m == Method::Refer; // RFC 3515 §2.4.1 REFER carries Contact
  return sendInDialog(
      method, refresh,
      [&](MessageBuilder& b) {
        addHeaders(b, headers);
        if (!body.empty()) b.body(contentType, body);
      },
      [this, m, onFinal = std::move(onFinal)](const Message& r) {
        if (r.statusCode() < 200) return;
        // RFC 5057 §5.1: a 481 or 408 to a NOTIFY ends only the subscription usage (a REFER's
        // implicit subscription in this dialog), not the INVITE usage.
        if ((r.statusCode() == 481 || r.statusCode() == 408) && m != Method::Notify) {
          terminate(InviteEnd::DialogError, &r); // RFC 3261 §12.2.1.2
          return;
        }
        if (onFinal) onFinal(r);
      },
      {});
}

Result<void> InviteSession::end() {
  switch (state_) {
  case State::Terminated:
  case State::Terminating:
    return {};
  case State::WaitingAck:
    // RFC 3261 §15: the callee must not send BYE before the ACK (or the 64*T1 timeout).
    byeAfterAck_ = true;
    return {};
  case State::Confirmed:
    sendBye();
    terminate(InviteEnd::LocalBye, nullptr);
    return {};
  case State::Early:
    break;
  }
  if (!isUac()) return reject(480);
  // RFC 3261 §15: the caller ends an early dialog by CANCELling the INVITE.
  if (auto* ci = manager_.clientInvite(clientInvite_); ci && !ci->finalReceived())
    return ci->cancel();
  sendBye();
  terminate(InviteEnd::LocalBye, nullptr);
  return {};
}

void InviteSession::sendBye() {
  if (state_ == State::Terminated || state_ == State::Terminating) return;
  if (ackHeld_) releaseAck({}, {}); // RFC 3261 §13.2.2.4: every 2xx is ACKed, even before BYE
  state_ = State::Terminating;
  auto r = sendInDialog("BYE", false, {}, {}, {});
  if (!r)
    logger("sip")->info("dialog {}: BYE not sent: {}", dialog().id().callId, r.error().message);
}

void InviteSession::terminate(InviteEnd why, const Message* message) {
  if (state_ == State::Terminated) return;
  state_ = State::Terminated;
  Timers& t = manager_.timers();
  ackHeld_ = false;
  for (TimerId* id :
       {&retransmitTimer_, &noAckTimer_, &glareTimer_, &heldAckTimer_, &sessionTimer_})
    if (*id) {
      t.cancel(*id);
      *id = 0;
    }
  // Requests of the peer still waiting for an answer get 487 (RFC 3261 §15.1.2).
  for (ServerTxId* tx : {&inviteTx_, &incomingInvite_, &incomingUpdate_})
    if (*tx) {
      std::string bytes = buildResponse(*tx, 487, {}, {}, {}, {}, false);
      if (!bytes.empty()) (void)manager_.txl().respond(*tx, std::move(bytes));
      *tx = 0;
    }
  if (auto* h = manager_.inviteHandler()) h->onTerminated(*this, why, message);
  manager_.retire(*this);
}

} // namespace verbund::sip

#include "sip/dialog/invite_session.h"

#include "base/log.h"

#include <algorithm>

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
} // namespace

// ---- ClientInvite ----

ClientInvite::ClientInvite(DialogManager& m, UsageId id, DialogManager::InviteParams params)
    : Usage(m, id), params_(std::move(params)) {
  callId_ = params_.callId.empty() ? newCallId({}) : params_.callId;
  fromTag_ = newTag();
  contact_ = params_.contact.empty() ? m.config().contact : params_.contact;
}

Result<void> ClientInvite::start() {
  auto hop = manager_.firstHop(params_.requestUri, params_.routes, params_.target);
  if (!hop) return hop.error();
  target_ = *hop;
  return sendInvite(std::nullopt);
}

Result<void> ClientInvite::sendInvite(std::optional<std::pair<std::string, std::string>> auth) {
  ExtraHeaders headers = params_.headers;
  if (auth) headers.push_back(std::move(*auth));
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
  if ((status == 401 || status == 407) && params_.auth && authAttempts_ < 2 && !cancelled_) {
    if (auto value = params_.auth(response)) {
      // RFC 3261 §22.2: the same request again with credentials and a higher CSeq.
      ++authAttempts_;
      ++cseq_;
      final_ = false;
      endEarlySessions(InviteEnd::Rejected, &response);
      sessions_.clear();
      if (sendInvite(std::make_pair(std::string(authHeaderFor(status)), std::move(*value)))) return;
      final_ = true;
    }
  }
  endEarlySessions(status == 487 && cancelled_ ? InviteEnd::Cancelled : InviteEnd::Rejected,
                   &response);
  if (h) h->onFailure(*this, status, &response);
  manager_.retire(*this);
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
  for (TimerId id : {retransmitTimer_, noAckTimer_, glareTimer_})
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
  std::string bytes = buildResponse(inviteTx_, 200, {}, contentType, body, headers, true);
  if (auto r = manager_.txl().respond(inviteTx_, bytes); !r) return r;
  inviteTx_ = 0;
  dialog_->confirm();
  state_ = State::WaitingAck;
  start2xxRetransmission(std::move(bytes), dest, cseq);
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
  if (!ack_.empty() && response.cseq().seq == ackCSeq_)
    (void)manager_.txl().sendStateless(ackPeer_, ack_);
}

void InviteSession::uacProvisional(const Message& response) {
  remotePeer_ = response.source();
  if (!response.contacts().empty()) dialog_->refreshTarget(response);
}

void InviteSession::uac2xx(const Message& response, bool keep) {
  if (!ack_.empty() && response.cseq().seq == ackCSeq_) {
    // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again.
    (void)manager_.txl().sendStateless(ackPeer_, ack_);
    return;
  }
  remotePeer_ = response.source();
  dialog_->confirmFromResponse(response);
  sendAck(response);
  if (state_ == State::Early) state_ = State::Confirmed;
  if (keep)
    if (auto* h = manager_.inviteHandler()) h->onConnected(*this, response);
}

void InviteSession::sendAck(const Message& response) {
  // RFC 3261 §13.2.2.4: the ACK is built like any in-dialog request, with the INVITE's CSeq
  // number, and sent directly to the transport (not in a transaction).
  auto peer = nextHopPeer();
  if (!peer) return;
  std::string via = manager_.txl().makeVia(*peer);
  ackCSeq_ = response.cseq().seq;
  ack_ = dialog_->request("ACK", via, ackCSeq_, false).finish();
  ackPeer_ = *peer;
  (void)manager_.txl().sendStateless(ackPeer_, ack_);
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
  if (incoming || (invite && (inviteTx_ || !pending2xx_.empty()))) {
    // RFC 3261 §14.2 (RFC 3311 §5.2 for UPDATE): a second request before the first one is
    // answered gets 500 with a random Retry-After of up to 10 seconds.
    std::string ra = std::to_string(manager_.random(0, 10));
    std::string bytes = buildResponse(tx, 500, {}, {}, {}, {{"Retry-After", ra}}, false);
    if (!bytes.empty()) (void)manager_.txl().respond(tx, std::move(bytes));
    return;
  }
  if (outgoing) {
    // RFC 3261 §14.2: glare, our own request of that kind is in progress -> 491.
    (void)manager_.txl().respond(tx, 491);
    return;
  }
  if (invite && state_ != State::Confirmed) {
    (void)manager_.txl().respond(tx, 500, "Dialog Not Confirmed");
    return;
  }
  incoming = tx;
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
  return {};
}

Result<void> InviteSession::reinvite(std::string_view contentType, std::string_view body,
                                     const ExtraHeaders& headers) {
  if (state_ != State::Confirmed) return makeError(500, "dialog not confirmed");
  // RFC 3261 §14.1: no new INVITE while another one is in progress in either direction.
  if (outgoingInvite_ || incomingInvite_ || glareTimer_ || !pending2xx_.empty())
    return makeError(491, "INVITE in progress");
  return sendOffer(Method::Invite, std::string(contentType), std::string(body), headers);
}

Result<void> InviteSession::update(std::string_view contentType, std::string_view body,
                                   const ExtraHeaders& headers) {
  if (state_ != State::Confirmed && state_ != State::Early && state_ != State::WaitingAck)
    return makeError(500, "session ended");
  if (outgoingUpdate_ || incomingUpdate_) return makeError(491, "UPDATE in progress");
  return sendOffer(Method::Update, std::string(contentType), std::string(body), headers);
}

Result<void> InviteSession::sendOffer(Method method, std::string contentType, std::string body,
                                      ExtraHeaders headers) {
  lastOffer_ = PendingOffer{method, std::move(contentType), std::move(body), std::move(headers)};
  const PendingOffer& o = *lastOffer_;
  auto tx = sendInDialog(
      methodName(method), true,
      [&o](MessageBuilder& b) {
        addHeaders(b, o.headers);
        if (!o.body.empty()) b.body(o.contentType, o.body);
      },
      [this, method](const Message& r) { onOfferResponse(method, r); },
      [this, method](ClientTxFailure) { onOfferFailure(method); });
  if (!tx) return tx.error();
  (method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = *tx;
  return {};
}

void InviteSession::onOfferResponse(Method method, const Message& response) {
  int status = response.statusCode();
  if (status < 200) return;
  InviteHandler* h = manager_.inviteHandler();
  if (method == Method::Invite && status < 300 && !ack_.empty() &&
      response.cseq().seq == ackCSeq_) {
    (void)manager_.txl().sendStateless(ackPeer_, ack_); // retransmitted 2xx
    return;
  }
  (method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = 0;
  if (status < 300) {
    remotePeer_ = response.source();
    dialog_->refreshTarget(response); // RFC 3261 §12.2.1.2: target refresh by the 2xx
    if (method == Method::Invite) sendAck(response);
    if (h) h->onOfferAnswered(*this, method, response);
    return;
  }
  if (status == 491 && lastOffer_) {
    // RFC 3261 §14.1: retry after a random time: 2.1-4 s in 10 ms steps when we own the Call-ID
    // (we sent the dialog's first INVITE), 0-2 s otherwise.
    uint32_t ms = isUac() ? 10 * manager_.random(210, 400) : 10 * manager_.random(0, 200);
    retryOffer_ = std::move(lastOffer_);
    lastOffer_.reset();
    glareTimer_ = manager_.timers().after(Duration(ms), [this] {
      glareTimer_ = 0;
      if (!retryOffer_ || state_ == State::Terminated || state_ == State::Terminating) return;
      PendingOffer o = std::move(*retryOffer_);
      retryOffer_.reset();
      auto r =
          sendOffer(o.method, std::move(o.contentType), std::move(o.body), std::move(o.headers));
      if (!r)
        logger("sip")->info("dialog {}: 491 retry failed: {}", dialog().id().callId,
                            r.error().message);
    });
    return;
  }
  if (status == 481 || status == 408) {
    // RFC 3261 §12.2.1.2: the dialog is gone (481) or unreachable (408).
    if (status == 408) sendBye();
    terminate(InviteEnd::DialogError, &response);
    return;
  }
  if (h) h->onOfferAnswered(*this, method, response);
}

void InviteSession::onOfferFailure(Method method) {
  (method == Method::Invite ? outgoingInvite_ : outgoingUpdate_) = 0;
  // RFC 3261 §12.2.1.2: a timeout inside a dialog counts as 408: end the dialog.
  sendBye();
  terminate(InviteEnd::DialogError, nullptr);
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
      [this, onFinal = std::move(onFinal)](const Message& r) {
        if (r.statusCode() < 200) return;
        if (r.statusCode() == 481 || r.statusCode() == 408) {
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
  state_ = State::Terminating;
  auto r = sendInDialog("BYE", false, {}, {}, {});
  if (!r)
    logger("sip")->info("dialog {}: BYE not sent: {}", dialog().id().callId, r.error().message);
}

void InviteSession::terminate(InviteEnd why, const Message* message) {
  if (state_ == State::Terminated) return;
  state_ = State::Terminated;
  Timers& t = manager_.timers();
  for (TimerId* id : {&retransmitTimer_, &noAckTimer_, &glareTimer_})
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

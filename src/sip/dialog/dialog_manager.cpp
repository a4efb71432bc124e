#include "sip/dialog/dialog_manager.h"

#include "base/log.h"
#include "base/metrics.h"
#include "sip/dialog/invite_session.h"
#include "sip/dialog/session_timer.h"
#include "sip/dialog/subscription.h"

namespace verbund::sip {

namespace {
Counter unknownDialog("sip_dialog_481_total", "In-dialog requests for unknown dialogs (481)");
Counter outOfOrder("sip_dialog_cseq_500_total", "In-dialog requests out of CSeq order (500)");
} // namespace

// ---- DialogUsage ----

std::optional<Peer> DialogUsage::nextHopPeer() const {
  if (!dialog_) return remotePeer_;
  DialogTarget t = dialog_->target();
  auto p = manager_.resolve(t.nextHop);
  if (!p) return remotePeer_;
  if (remotePeer_ && behindNat(t, *p, *remotePeer_)) return remotePeer_;
  return p;
}

// A phone behind NAT writes its private address into Contact; its messages come from the NAT's
// public address, and only that address (the binding the NAT keeps for the phone's flow) reaches
// it. So with no route set (nothing in between) and a remote target that is a private address
// other than the one the remote side sends from, requests follow the flow (the same test as
// "Contact is RFC 1918 and differs from the source" of common SIP proxies' NAT handling).
bool DialogUsage::behindNat(const DialogTarget& t, const Peer& resolved, const Peer& source) {
  return t.routes.empty() && resolved.remote.ip.isPrivate() &&
         !(resolved.remote.ip == source.remote.ip);
}

Result<ClientTxId> DialogUsage::sendInDialog(std::string_view method, bool withContact,
                                             const std::function<void(MessageBuilder&)>& extra,
                                             std::function<void(const Message&)> onResponse,
                                             std::function<void(ClientTxFailure)> onFailure) {
  if (!dialog_) return makeError(500, "no dialog");
  auto peer = nextHopPeer();
  if (!peer) return makeError(503, "cannot resolve the next hop");
  std::string via = manager_.txl().makeVia(*peer);
  uint32_t cseq = dialog_->nextLocalCSeq();
  MessageBuilder b = dialog_->request(method, via, cseq, withContact);
  if (extra) extra(b);
  return manager_.send(b.finish(), *peer,
                       manager_.guard(id(), std::move(onResponse), std::move(onFailure)));
}

// ---- DialogManager ----

DialogManager::DialogManager(Timers& timers, DialogConfig config)
    : timers_(timers), config_(std::move(config)) {}

DialogManager::~DialogManager() {
  if (reapTimer_) timers_.cancel(reapTimer_);
}

uint32_t DialogManager::random(uint32_t lo, uint32_t hi) {
  if (config_.random) return config_.random(lo, hi);
  return std::uniform_int_distribution<uint32_t>(lo, hi)(rng_);
}

std::optional<Peer> DialogManager::resolve(std::string_view uriText) {
  auto u = parseUri(uriText);
  if (!u) return std::nullopt;
  return config_.resolve ? config_.resolve(*u) : resolveNumeric(*u);
}

Usage* DialogManager::usage(UsageId id) {
  auto it = usages_.find(id);
  if (it == usages_.end() || it->second->retired_) return nullptr;
  return it->second.get();
}

InviteSession* DialogManager::inviteSession(UsageId id) {
  return dynamic_cast<InviteSession*>(usage(id));
}
ClientInvite* DialogManager::clientInvite(UsageId id) {
  return dynamic_cast<ClientInvite*>(usage(id));
}
ClientSubscription* DialogManager::clientSubscription(UsageId id) {
  return dynamic_cast<ClientSubscription*>(usage(id));
}
ServerSubscription* DialogManager::serverSubscription(UsageId id) {
  return dynamic_cast<ServerSubscription*>(usage(id));
}

DialogUsage* DialogManager::findDialog(const DialogId& id) {
  auto it = dialogs_.find(id);
  if (it == dialogs_.end()) return nullptr;
  return dynamic_cast<DialogUsage*>(usage(it->second));
}

void DialogManager::bindDialog(DialogUsage& u) {
  if (u.dialog_) dialogs_[u.dialog_->id()] = u.id();
}

void DialogManager::unbindDialog(const DialogId& id, UsageId owner) {
  auto it = dialogs_.find(id);
  if (it != dialogs_.end() && it->second == owner) dialogs_.erase(it);
}

void DialogManager::bindPendingSubscription(const std::string& callId, const std::string& localTag,
                                            UsageId owner) {
  pendingSubs_[callId + '\n' + localTag] = owner;
}

void DialogManager::unbindPendingSubscription(const std::string& callId,
                                              const std::string& localTag) {
  pendingSubs_.erase(callId + '\n' + localTag);
}

void DialogManager::retire(Usage& u) {
  if (u.retired_) return;
  u.retired_ = true;
  if (auto* du = dynamic_cast<DialogUsage*>(&u); du && du->dialog_)
    unbindDialog(du->dialog_->id(), u.id());
  retiring_.push_back(u.id());
  if (!reapTimer_) reapTimer_ = timers_.after(Duration(0), [this] { reap(); });
}

void DialogManager::reap() {
  reapTimer_ = 0;
  auto ids = std::move(retiring_);
  retiring_.clear();
  for (UsageId id : ids) usages_.erase(id);
}

ClientTxCallbacks DialogManager::guard(UsageId id, std::function<void(const Message&)> onResponse,
                                       std::function<void(ClientTxFailure)> onFailure) {
  ClientTxCallbacks cb;
  cb.onResponse = [this, id, f = std::move(onResponse)](const Message& r) {
    if (usage(id) && f) f(r);
  };
  cb.onFailure = [this, id, f = std::move(onFailure)](ClientTxFailure why) {
    if (usage(id) && f) f(why);
  };
  return cb;
}

Result<ClientTxId> DialogManager::send(std::string bytes, const Peer& target,
                                       ClientTxCallbacks cb) {
  if (!txl_) return makeError(500, "no transaction layer");
  auto parsed = parseMessage(std::move(bytes));
  if (!parsed.ok()) return makeError(500, "built an unparsable request: " + parsed.error.reason);
  return txl_->sendRequest(std::move(parsed.message), target, std::move(cb));
}

Result<UsageId> DialogManager::invite(InviteParams params) {
  if (!txl_) return makeError(500, "no transaction layer");
  if (!inviteHandler_) return makeError(500, "no INVITE handler");
  auto& ci = create<ClientInvite>(std::move(params));
  if (auto r = ci.start(); !r) {
    retire(ci);
    return r.error();
  }
  return ci.id();
}

Result<UsageId> DialogManager::subscribe(SubscribeParams params,
                                         ClientSubscriptionHandler& handler) {
  if (!txl_) return makeError(500, "no transaction layer");
  auto& s = create<ClientSubscription>(std::move(params), handler);
  if (auto r = s.start(); !r) {
    s.state_ = ClientSubscription::State::Terminated;
    retire(s);
    return r.error();
  }
  return s.id();
}

void DialogManager::respond(ServerTxId tx, int status, std::string_view reason) {
  (void)txl_->respond(tx, status, reason);
}

void DialogManager::onRequest(ServerTxId tx, const Message& request) {
  if (!request.toTag().empty()) {
    DialogId id = dialogIdOfRequest(request);
    DialogUsage* u = findDialog(id);
    if (!u && request.method() == Method::Notify) {
      // RFC 6665 §4.1.2.4: a NOTIFY may arrive before the 2xx to SUBSCRIBE and create the dialog.
      auto it = pendingSubs_.find(id.callId + '\n' + id.localTag);
      if (it != pendingSubs_.end())
        if (auto* s = dynamic_cast<ClientSubscription*>(usage(it->second))) {
          s->onDialogCreatingNotify(tx, request);
          return;
        }
    }
    if (!u) {
      // RFC 3261 §12.2.2: a request for a dialog we do not know.
      unknownDialog.inc();
      respond(tx, 481);
      return;
    }
    if (auto ok = u->dialog().acceptRemoteCSeq(request); !ok) {
      outOfOrder.inc();
      respond(tx, 500, "CSeq Out Of Order");
      return;
    }
    u->remotePeer_ = request.source();
    bindServerTx(tx, u->id());
    u->onRequest(tx, request);
    return;
  }
  if (gate_ && request.method() != Method::Bye && request.method() != Method::Notify &&
      request.method() != Method::Update && request.method() != Method::Prack &&
      !gate_(tx, request))
    return;
  switch (request.method()) {
  case Method::Invite:
    newInvite(tx, request);
    return;
  case Method::Subscribe:
    newSubscribe(tx, request);
    return;
  case Method::Bye:
  case Method::Notify:
  case Method::Update:
  case Method::Prack:
    // Only meaningful inside a dialog (RFC 3261 §12.2.2, RFC 6665 §4.1.2.4).
    respond(tx, 481);
    return;
  default:
    break;
  }
  if (outOfDialog_) {
    outOfDialog_(tx, request);
    return;
  }
  respond(tx, 501);
}

void DialogManager::newInvite(ServerTxId tx, const Message& request) {
  if (!inviteHandler_) {
    respond(tx, 480);
    return;
  }
  SessionTimerConfig st = sessionTimerFor(request);
  if (sessionIntervalTooSmall(tx, request, st)) return;
  std::string tag(txl_->localTag(tx));
  std::string contact = config_.contactFor ? config_.contactFor(request) : std::string();
  auto d = Dialog::fromUas(request, tag, contact.empty() ? config_.contact : contact);
  if (!d) {
    respond(tx, d.error().code >= 400 ? d.error().code : 400, d.error().message);
    return;
  }
  auto& s = create<InviteSession>(std::move(*d), UsageId(0), tx);
  s.timerConfig_ = st;
  s.remotePeer_ = request.source();
  bindDialog(s);
  bindServerTx(tx, s.id());
  inviteHandler_->onNewSession(s, request);
}

SessionTimerConfig DialogManager::sessionTimerFor(const Message& request) const {
  if (config_.sessionTimerFor)
    if (auto st = config_.sessionTimerFor(request)) return *st;
  return config_.sessionTimer;
}

bool DialogManager::sessionIntervalTooSmall(ServerTxId tx, const Message& request,
                                            const SessionTimerConfig& st) {
  // RFC 4028 §9: a Session-Expires below our Min-SE is refused with 422 and our Min-SE, but only
  // when the UAC understands the answer (Supported: timer); otherwise the UAS raises the interval.
  if (st.sessionExpires == 0) return false;
  auto se = sessionExpiresOf(request);
  if (!se || se->seconds >= st.minSE) return false;
  if (!hasOptionTag(request, HeaderId::Supported, "timer") &&
      !hasOptionTag(request, HeaderId::Require, "timer"))
    return false;
  MessageBuilder b = responseTo(request, 422, "Session Interval Too Small", txl_->localTag(tx));
  b.header("Min-SE", std::to_string(st.minSE));
  (void)txl_->respond(tx, b.finish());
  return true;
}

void DialogManager::newSubscribe(ServerTxId tx, const Message& request) {
  if (!subscriptionHandler_) {
    respond(tx, 489);
    return;
  }
  ServerSubscription::start(*this, *subscriptionHandler_, tx, request);
}

void DialogManager::onAck(const Message& ack) {
  if (DialogUsage* u = findDialog(dialogIdOfRequest(ack))) u->onAck(ack);
}

void DialogManager::onCancel(ServerTxId inviteTx, const Message& cancel) {
  auto it = serverTxOwner_.find(inviteTx);
  if (it == serverTxOwner_.end()) {
    (void)txl_->respond(inviteTx, 487);
    return;
  }
  if (auto* u = dynamic_cast<DialogUsage*>(usage(it->second)))
    u->onCancel(inviteTx, cancel);
  else
    (void)txl_->respond(inviteTx, 487);
}

void DialogManager::onServerTxTerminated(ServerTxId tx, ServerTxEnd how) {
  auto it = serverTxOwner_.find(tx);
  if (it == serverTxOwner_.end()) return;
  UsageId owner = it->second;
  serverTxOwner_.erase(it);
  if (auto* u = dynamic_cast<DialogUsage*>(usage(owner))) u->onServerTxEnd(tx, how);
}

void DialogManager::onStrayResponse(const Message& response) {
  // RFC 6026 §8.4 / RFC 3261 §13.2.2.4: a retransmitted 2xx after the transaction is gone is
  // ACKed again by the dialog.
  if (response.cseq().method != Method::Invite || response.statusCode() / 100 != 2) return;
  if (DialogUsage* u = findDialog(dialogIdOfResponse(response))) u->onStray2xx(response);
}

Result<Peer> DialogManager::firstHop(const std::string& requestUri,
                                     const std::vector<std::string>& routes,
                                     const std::optional<Peer>& target) {
  if (target) return *target;
  std::string hop = requestUri;
  if (!routes.empty()) {
    auto r = parseNameAddr(routes.front());
    if (!r) return makeError(400, "bad route");
    hop = std::string(r->uri.text);
  }
  auto p = resolve(hop);
  if (!p) return makeError(503, "cannot resolve " + hop);
  return *p;
}

} // namespace verbund::sip

#include "sip/dialog/subscription.h"

#include "base/log.h"
#include "sip/message/text.h"

#include <algorithm>

namespace verbund::sip {

std::string_view subStateName(SubState s) {
  switch (s) {
  case SubState::Pending:
    return "pending";
  case SubState::Active:
    return "active";
  case SubState::Terminated:
    return "terminated";
  }
  return "?";
}

Result<SubscriptionStateValue> parseSubscriptionState(std::string_view value) {
  value = text::trim(value);
  auto semi = value.find(';');
  std::string_view state = text::trim(value.substr(0, semi));
  std::string_view params =
      semi == std::string_view::npos ? std::string_view{} : value.substr(semi);
  SubscriptionStateValue v;
  if (text::iequals(state, "active"))
    v.state = SubState::Active;
  else if (text::iequals(state, "pending"))
    v.state = SubState::Pending;
  else if (text::iequals(state, "terminated"))
    v.state = SubState::Terminated;
  else
    return makeError(400, "Bad Subscription-State");
  auto num = [&](std::string_view name) -> std::optional<uint32_t> {
    auto p = findParam(params, name);
    if (!p) return std::nullopt;
    auto n = parseUint(text::trim(*p));
    if (!n) return std::nullopt;
    return *n;
  };
  v.expires = num("expires");
  v.retryAfter = num("retry-after");
  if (auto r = findParam(params, "reason")) v.reason = std::string(text::trim(*r));
  return v;
}

Result<EventValue> parseEvent(std::string_view value) {
  value = text::trim(value);
  auto semi = value.find(';');
  std::string_view type = text::trim(value.substr(0, semi));
  if (type.empty()) return makeError(400, "Bad Event");
  for (char c : type)
    if (!text::is(c, text::kToken)) return makeError(400, "Bad Event");
  EventValue e;
  e.type = std::string(type);
  if (semi != std::string_view::npos)
    if (auto id = findParam(value.substr(semi), "id")) e.id = std::string(text::trim(*id));
  return e;
}

bool sameEvent(const EventValue& a, const EventValue& b) {
  return text::iequals(a.type, b.type) && a.id == b.id;
}

namespace {
using AuthHeader = std::optional<std::pair<std::string, std::string>>;

// Refresh a little before expiry: `margin` early, or at half time for short subscriptions.
Duration refreshDelay(uint32_t seconds, Duration margin) {
  Duration full(int64_t(seconds) * 1000);
  return full > 2 * margin ? full - margin : full / 2;
}
} // namespace

// ---- ClientSubscription ----

ClientSubscription::ClientSubscription(DialogManager& m, UsageId id,
                                       DialogManager::SubscribeParams params,
                                       ClientSubscriptionHandler& handler)
    : DialogUsage(m, id), params_(std::move(params)), handler_(handler) {
  callId_ = newCallId({});
  fromTag_ = newTag();
  if (params_.contact.empty()) params_.contact = m.config().contact;
}

ClientSubscription::~ClientSubscription() {
  for (TimerId t : {refreshTimer_, expiryTimer_})
    if (t) manager_.timers().cancel(t);
  manager_.unbindPendingSubscription(callId_, fromTag_);
}

Result<void> ClientSubscription::start() {
  auto ev = parseEvent(params_.event);
  if (!ev) return ev.error();
  event_ = std::move(*ev);
  auto hop = manager_.firstHop(params_.requestUri, params_.routes, params_.target);
  if (!hop) return hop.error();
  target_ = *hop;
  manager_.bindPendingSubscription(callId_, fromTag_, id());
  return sendInitial(std::nullopt);
}

Result<void> ClientSubscription::sendInitial(AuthHeader auth) {
  ExtraHeaders headers = params_.headers;
  headers.emplace_back("Event", params_.event);
  headers.emplace_back("Expires", std::to_string(params_.expires));
  if (!params_.accept.empty()) headers.emplace_back("Accept", params_.accept);
  if (auth) headers.push_back(std::move(*auth));
  std::string via = manager_.txl().makeVia(target_);
  OutOfDialogRequest r;
  r.method = "SUBSCRIBE";
  r.requestUri = params_.requestUri;
  r.via = via;
  r.from = params_.from;
  r.fromTag = fromTag_;
  r.to = params_.to;
  r.callId = callId_;
  r.cseq = cseq_;
  r.contact = params_.contact;
  r.routes = &params_.routes;
  r.headers = &headers;
  r.contentType = params_.contentType;
  r.body = params_.body;
  std::string bytes = buildOutOfDialogRequest(r);
  auto copy = parseMessage(bytes);
  if (!copy.ok()) return makeError(400, "bad SUBSCRIBE: " + copy.error.reason);
  uint32_t requested = params_.expires;
  auto tx = manager_.send(
      std::move(bytes), target_,
      manager_.guard(
          id(), [this, requested](const Message& resp) { onSubscribeResponse(resp, requested); },
          [this](ClientTxFailure why) { onSubscribeFailure(why); }));
  if (!tx) return tx.error();
  request_ = std::move(copy.message);
  return {};
}

Result<void> ClientSubscription::sendInDialogSubscribe(uint32_t expires, AuthHeader auth) {
  std::string ex = std::to_string(expires);
  auto tx = sendInDialog(
      "SUBSCRIBE", true,
      [&](MessageBuilder& b) {
        b.header(HeaderId::Event, params_.event);
        b.header(HeaderId::Expires, ex);
        if (!params_.accept.empty()) b.header(HeaderId::Accept, params_.accept);
        if (auth) b.header(auth->first, auth->second);
      },
      [this, expires](const Message& resp) { onSubscribeResponse(resp, expires); },
      [this](ClientTxFailure why) { onSubscribeFailure(why); });
  if (!tx) return tx.error();
  return {};
}

Result<void> ClientSubscription::refresh() {
  if (!hasDialog() || state_ == State::Unsubscribing || state_ == State::Terminated)
    return makeError(500, "nothing to refresh");
  if (refreshTimer_) manager_.timers().cancel(refreshTimer_);
  refreshTimer_ = 0;
  authAttempts_ = 0;
  return sendInDialogSubscribe(params_.expires, std::nullopt);
}

Result<void> ClientSubscription::unsubscribe() {
  if (state_ == State::Terminated || state_ == State::Unsubscribing) return {};
  if (!hasDialog()) {
    // No dialog yet to send it in: forget the subscription; the notifier's side expires.
    finish("unsubscribed", 0, std::nullopt);
    return {};
  }
  state_ = State::Unsubscribing;
  if (refreshTimer_) manager_.timers().cancel(refreshTimer_);
  refreshTimer_ = 0;
  // RFC 6665 §4.1.2.3: wait for the terminated NOTIFY, but not forever.
  if (expiryTimer_) manager_.timers().cancel(expiryTimer_);
  expiryTimer_ = manager_.timers().after(64 * manager_.txl().config().t1, [this] {
    expiryTimer_ = 0;
    finish("unsubscribed", 0, std::nullopt);
  });
  return sendInDialogSubscribe(0, std::nullopt);
}

void ClientSubscription::scheduleRefresh(uint32_t seconds) {
  Timers& t = manager_.timers();
  if (refreshTimer_) t.cancel(refreshTimer_);
  if (expiryTimer_) t.cancel(expiryTimer_);
  refreshTimer_ = expiryTimer_ = 0;
  if (state_ == State::Unsubscribing || state_ == State::Terminated) return;
  expires_ = seconds;
  refreshTimer_ =
      t.after(refreshDelay(seconds, manager_.config().subscriptionRefreshMargin), [this] {
        refreshTimer_ = 0;
        if (auto r = refresh(); !r)
          logger("sip")->info("subscription {}: refresh not sent: {}", callId_, r.error().message);
      });
  // RFC 6665 §4.1.2.2: without a successful refresh the subscription ends when it expires.
  expiryTimer_ = t.after(Duration(int64_t(seconds) * 1000), [this] {
    expiryTimer_ = 0;
    finish("expired", 0, std::nullopt);
  });
}

void ClientSubscription::onSubscribeResponse(const Message& response, uint32_t requested) {
  int status = response.statusCode();
  if (status < 200) return;
  if (status < 300) {
    if (!hasDialog() && !response.toTag().empty() && request_) {
      // RFC 6665 §4.1.2.1: the 2xx creates the dialog (unless a NOTIFY did already).
      auto d = Dialog::fromUac(*request_, response);
      if (d) {
        dialog_ = std::move(*d);
        remotePeer_ = response.source();
        manager_.unbindPendingSubscription(callId_, fromTag_);
        manager_.bindDialog(*this);
      }
    } else if (hasDialog() && response.toTag() == dialog().id().remoteTag) {
      dialog_->refreshTarget(response);
    }
    if (state_ == State::Unsubscribing) return;
    if (state_ == State::Subscribing) state_ = State::Pending;
    // RFC 6665 §4.1.2.1: the 2xx's Expires is what was granted (never more than requested).
    uint32_t granted = std::min(expiresHeader(response).value_or(requested), requested);
    if (granted == 0) return; // a fetch: the terminated NOTIFY follows
    scheduleRefresh(granted);
    handler_.onAccepted(*this, response);
    return;
  }
  if ((status == 401 || status == 407) && params_.auth && authAttempts_ < 2) {
    if (auto v = params_.auth(response)) {
      ++authAttempts_;
      AuthHeader h = std::make_pair(std::string(authHeaderFor(status)), std::move(*v));
      Result<void> r = hasDialog() ? sendInDialogSubscribe(requested, std::move(h))
                                   : (++cseq_, sendInitial(std::move(h)));
      if (r) return;
    }
  }
  if (status == 423 && state_ != State::Unsubscribing) {
    // RFC 3261 §10.2.8 / RFC 6665 §4.1.2.1: ask again with at least Min-Expires.
    if (auto mv = response.header(HeaderId::MinExpires))
      if (auto m = parseUint(text::trim(*mv)); m && *m > requested) {
        params_.expires = *m;
        Result<void> r = hasDialog() ? sendInDialogSubscribe(*m, std::nullopt)
                                     : (++cseq_, sendInitial(std::nullopt));
        if (r) return;
      }
  }
  if (state_ == State::Unsubscribing) {
    finish("unsubscribed", status, std::nullopt);
    return;
  }
  // RFC 6665 §4.1.2.2: a failed refresh leaves the subscription valid until it expires, except
  // 481 (it is gone). A failed initial SUBSCRIBE ends it.
  if (state_ == State::Subscribing || status == 481 || !hasDialog())
    finish("rejected", status, retryAfterSeconds(response));
}

void ClientSubscription::onSubscribeFailure(ClientTxFailure why) {
  int status = why == ClientTxFailure::Timeout ? 408 : 503;
  if (state_ == State::Subscribing || state_ == State::Unsubscribing)
    finish(state_ == State::Unsubscribing ? "unsubscribed" : "rejected", status, std::nullopt);
}

void ClientSubscription::onDialogCreatingNotify(ServerTxId tx, const Message& notify) {
  // RFC 6665 §4.1.2.4: a NOTIFY before the 2xx creates the dialog.
  if (!request_) {
    (void)manager_.txl().respond(tx, 481);
    return;
  }
  auto d = Dialog::fromUacNotify(*request_, notify);
  if (!d) {
    (void)manager_.txl().respond(tx, d.error().code, d.error().message);
    return;
  }
  dialog_ = std::move(*d);
  (void)dialog_->acceptRemoteCSeq(notify);
  remotePeer_ = notify.source();
  manager_.unbindPendingSubscription(callId_, fromTag_);
  manager_.bindDialog(*this);
  manager_.bindServerTx(tx, id());
  handleNotify(tx, notify);
}

void ClientSubscription::onRequest(ServerTxId tx, const Message& request) {
  if (request.method() != Method::Notify) {
    (void)manager_.txl().respond(tx, 405);
    return;
  }
  handleNotify(tx, request);
}

void ClientSubscription::handleNotify(ServerTxId tx, const Message& notify) {
  // RFC 6665 §4.1.3: the Event must match the subscription's.
  auto ev = notify.header(HeaderId::Event);
  auto parsed = ev ? parseEvent(*ev) : Result<EventValue>(makeError(489, "Bad Event"));
  if (!parsed || !sameEvent(*parsed, event_)) {
    (void)manager_.txl().respond(tx, 489);
    return;
  }
  auto ss = notify.header(HeaderId::SubscriptionState);
  auto st = ss ? parseSubscriptionState(*ss)
               : Result<SubscriptionStateValue>(makeError(400, "Missing Subscription-State"));
  if (!st) {
    (void)manager_.txl().respond(tx, 400, st.error().message);
    return;
  }
  (void)manager_.txl().respond(tx, 200);
  dialog_->refreshTarget(notify); // RFC 6665 §4.1.3: NOTIFY is a target refresh request
  const SubscriptionStateValue& v = *st;
  if (v.state == SubState::Terminated) {
    handler_.onNotify(*this, v, notify);
    finish(v.reason.empty() ? "terminated" : v.reason, 0, v.retryAfter);
    return;
  }
  if (state_ != State::Unsubscribing) {
    state_ = v.state == SubState::Active ? State::Active : State::Pending;
    // RFC 6665 §4.1.3: the notifier may shorten the subscription.
    if (v.expires && (*v.expires < expires_ || expires_ == 0)) scheduleRefresh(*v.expires);
  }
  handler_.onNotify(*this, v, notify);
}

void ClientSubscription::finish(std::string_view reason, int status,
                                std::optional<uint32_t> retryAfter) {
  if (state_ == State::Terminated) return;
  state_ = State::Terminated;
  for (TimerId* t : {&refreshTimer_, &expiryTimer_})
    if (*t) {
      manager_.timers().cancel(*t);
      *t = 0;
    }
  manager_.unbindPendingSubscription(callId_, fromTag_);
  handler_.onTerminated(*this, reason, status, retryAfter);
  manager_.retire(*this);
}

// ---- ServerSubscription ----

ServerSubscription::ServerSubscription(DialogManager& m, UsageId id, Dialog dialog,
                                       ServerSubscriptionHandler& handler, EventValue event,
                                       std::string eventText, ServerTxId tx, uint32_t expires)
    : DialogUsage(m, id), handler_(handler), event_(std::move(event)),
      eventText_(std::move(eventText)), initialTx_(tx), expires_(expires) {
  dialog_ = std::move(dialog);
}

ServerSubscription::~ServerSubscription() {
  if (expiryTimer_) manager_.timers().cancel(expiryTimer_);
}

std::optional<uint32_t> ServerSubscription::grantExpires(DialogManager& m, ServerTxId tx,
                                                         const Message& subscribe) {
  const DialogConfig& c = m.config();
  auto hv = subscribe.header(HeaderId::Expires);
  uint32_t requested = c.subscriptionDefaultExpires;
  if (hv) {
    auto n = parseUint(text::trim(*hv));
    if (!n) {
      (void)m.txl().respond(tx, 400, "Bad Expires");
      return std::nullopt;
    }
    requested = *n;
  }
  if (requested != 0 && requested < c.subscriptionMinExpires) {
    // RFC 6665 §4.2.1.1: too short -> 423 with Min-Expires.
    if (auto b = m.txl().responseBuilder(tx, 423)) {
      b->header(HeaderId::MinExpires, std::to_string(c.subscriptionMinExpires));
      (void)m.txl().respond(tx, b->finish());
    }
    return std::nullopt;
  }
  return std::min(requested, c.subscriptionMaxExpires);
}

void ServerSubscription::start(DialogManager& m, ServerSubscriptionHandler& handler, ServerTxId tx,
                               const Message& subscribe) {
  auto ev = subscribe.header(HeaderId::Event);
  auto parsed = ev ? parseEvent(*ev) : Result<EventValue>(makeError(489, "Bad Event"));
  if (!parsed) {
    (void)m.txl().respond(tx, 489); // RFC 6665 §4.2.1: event package not understood
    return;
  }
  auto granted = grantExpires(m, tx, subscribe);
  if (!granted) return;
  auto d = Dialog::fromUas(subscribe, m.txl().localTag(tx), m.config().contact, true);
  if (!d) {
    (void)m.txl().respond(tx, d.error().code, d.error().message);
    return;
  }
  auto& s = m.create<ServerSubscription>(std::move(*d), handler, std::move(*parsed),
                                         std::string(text::trim(*ev)), tx, *granted);
  s.remotePeer_ = subscribe.source();
  m.bindDialog(s);
  m.bindServerTx(tx, s.id());
  handler.onNewSubscription(s, subscribe);
}

Result<void> ServerSubscription::answer(ServerTxId tx, int status, uint32_t expires) {
  auto b = manager_.txl().responseBuilder(tx, status);
  if (!b) return makeError(481, "no such transaction");
  if (status < 300) {
    b->header(HeaderId::Expires, std::to_string(expires));
    if (!dialog().localContact().empty())
      b->header(HeaderId::Contact, "<" + dialog().localContact() + ">");
  }
  return manager_.txl().respond(tx, b->finish());
}

Result<void> ServerSubscription::accept(SubState state, std::string_view contentType,
                                        std::string_view body) {
  if (!initialTx_) return makeError(500, "already answered");
  ServerTxId tx = initialTx_;
  initialTx_ = 0;
  if (auto r = answer(tx, 200, expires_); !r) return r;
  current_ = Content{state, {}, std::string(contentType), std::string(body)};
  state_ = state == SubState::Active ? State::Active : State::Pending;
  armExpiry();
  if (expires_ == 0) {
    // RFC 6665 §4.2.1.1: Expires 0 is a fetch: one NOTIFY with the state, terminated.
    current_.state = SubState::Terminated;
    current_.reason = "timeout";
    endReason_ = "timeout";
  }
  // RFC 6665 §4.2.1.1: the NOTIFY follows the 2xx at once.
  queued_ = current_;
  sendNotify();
  return {};
}

Result<void> ServerSubscription::reject(int status, std::string_view reason) {
  if (!initialTx_) return makeError(500, "already answered");
  ServerTxId tx = initialTx_;
  initialTx_ = 0;
  auto r = manager_.txl().respond(tx, status, reason);
  finish("rejected");
  return r;
}

Result<void> ServerSubscription::notify(SubState state, std::string_view contentType,
                                        std::string_view body) {
  if (state_ == State::Initial) return makeError(500, "not accepted yet");
  if (state_ == State::Terminated || terminatedSent_ ||
      (queued_ && queued_->state == SubState::Terminated))
    return makeError(481, "subscription terminated");
  if (state == SubState::Terminated) return end("noresource", contentType, body);
  current_ = Content{state, {}, std::string(contentType), std::string(body)};
  state_ = state == SubState::Active ? State::Active : State::Pending;
  queued_ = current_;
  sendNotify();
  return {};
}

Result<void> ServerSubscription::end(std::string_view reason, std::string_view contentType,
                                     std::string_view body) {
  if (state_ == State::Initial) return reject(480);
  if (terminatedSent_ || (queued_ && queued_->state == SubState::Terminated)) return {};
  endReason_ = std::string(reason);
  current_ = Content{SubState::Terminated, std::string(reason), std::string(contentType),
                     std::string(body)};
  queued_ = current_;
  sendNotify();
  return {};
}

void ServerSubscription::armExpiry() {
  Timers& t = manager_.timers();
  if (expiryTimer_) t.cancel(expiryTimer_);
  expiryTimer_ = 0;
  expiresAt_ = t.now() + Duration(int64_t(expires_) * 1000);
  if (expires_ == 0) return;
  expiryTimer_ = t.after(Duration(int64_t(expires_) * 1000), [this] {
    expiryTimer_ = 0;
    // RFC 6665 §4.2.2: not refreshed in time -> terminated;reason=timeout.
    (void)end("timeout", current_.contentType, current_.body);
  });
}

void ServerSubscription::sendNotify() {
  if (inFlight_ || !queued_ || terminatedSent_) return;
  Content c = std::move(*queued_);
  queued_.reset();
  std::string ss(subStateName(c.state));
  if (c.state == SubState::Terminated) {
    if (!c.reason.empty()) ss.append(";reason=").append(c.reason);
    terminatedSent_ = true;
    if (expiryTimer_) manager_.timers().cancel(expiryTimer_);
    expiryTimer_ = 0;
  } else {
    auto left =
        std::chrono::duration_cast<std::chrono::seconds>(expiresAt_ - manager_.timers().now());
    ss.append(";expires=").append(std::to_string(std::max<int64_t>(0, left.count())));
  }
  auto tx = sendInDialog(
      "NOTIFY", true,
      [&](MessageBuilder& b) {
        b.header(HeaderId::Event, eventText_);
        b.header(HeaderId::SubscriptionState, ss);
        if (!c.body.empty()) b.body(c.contentType, c.body);
      },
      [this](const Message& r) {
        if (r.statusCode() >= 200) onNotifyDone(r.statusCode() < 300);
      },
      [this](ClientTxFailure) { onNotifyDone(false); });
  if (!tx) {
    logger("sip")->info("subscription {}: NOTIFY not sent: {}", dialog().id().callId,
                        tx.error().message);
    finish(terminatedSent_ ? endReason_ : "error");
    return;
  }
  inFlight_ = true;
}

void ServerSubscription::onNotifyDone(bool ok) {
  inFlight_ = false;
  if (terminatedSent_) {
    finish(endReason_.empty() ? "terminated" : endReason_);
    return;
  }
  if (!ok) {
    // RFC 6665 §4.2.2: a NOTIFY that fails (481, timeout, ...) ends the subscription.
    finish("notify failed");
    return;
  }
  sendNotify();
}

void ServerSubscription::onRequest(ServerTxId tx, const Message& request) {
  if (request.method() != Method::Subscribe) {
    (void)manager_.txl().respond(tx, 405);
    return;
  }
  auto ev = request.header(HeaderId::Event);
  auto parsed = ev ? parseEvent(*ev) : Result<EventValue>(makeError(489, "Bad Event"));
  if (!parsed || !sameEvent(*parsed, event_)) {
    (void)manager_.txl().respond(tx, 489);
    return;
  }
  if (state_ == State::Initial || terminatedSent_) {
    (void)manager_.txl().respond(tx, state_ == State::Initial ? 500 : 481);
    return;
  }
  auto granted = grantExpires(manager_, tx, request);
  if (!granted) return;
  dialog_->refreshTarget(request); // RFC 6665 §4.2.1.2: SUBSCRIBE is a target refresh
  expires_ = *granted;
  (void)answer(tx, 200, expires_);
  if (expires_ == 0) {
    // RFC 6665 §4.2.1.4: unsubscribe -> a final NOTIFY.
    (void)end("timeout", current_.contentType, current_.body);
    return;
  }
  armExpiry();
  // RFC 6665 §4.2.1.2: a successful refresh is followed by a NOTIFY with the current state.
  queued_ = current_;
  sendNotify();
  handler_.onRefresh(*this, request);
}

void ServerSubscription::finish(std::string_view reason) {
  if (state_ == State::Terminated && retired()) return;
  state_ = State::Terminated;
  if (expiryTimer_) manager_.timers().cancel(expiryTimer_);
  expiryTimer_ = 0;
  std::string r(reason);
  handler_.onTerminated(*this, r);
  manager_.retire(*this);
}

} // namespace verbund::sip

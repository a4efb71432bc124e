#include "sip/dialog/registration.h"

#include "base/log.h"
#include "sip/message/text.h"

#include <algorithm>

namespace verbund::sip {

std::string_view registrationStateName(RegistrationClient::State s) {
  switch (s) {
  case RegistrationClient::State::Unregistered:
    return "unregistered";
  case RegistrationClient::State::Registering:
    return "registering";
  case RegistrationClient::State::Registered:
    return "registered";
  case RegistrationClient::State::Failing:
    return "failing";
  case RegistrationClient::State::Unregistering:
    return "unregistering";
  }
  return "?";
}

RegistrationClient::RegistrationClient(TransactionLayer& txl, Timers& timers,
                                       RegistrationConfig config, ChangeCallback onChange)
    : txl_(txl), timers_(timers), config_(std::move(config)), onChange_(std::move(onChange)) {
  callId_ = newCallId({});
  expires_ = config_.expires;
}

RegistrationClient::~RegistrationClient() {
  cancelTimer();
}

void RegistrationClient::cancelTimer() {
  if (timer_) timers_.cancel(timer_);
  timer_ = 0;
}

void RegistrationClient::setState(State s, std::string reason) {
  bool changed = s != state_ || reason != reason_;
  state_ = s;
  reason_ = std::move(reason);
  if (changed && onChange_) onChange_(state_, reason_);
}

void RegistrationClient::start() {
  if (state_ == State::Registering || state_ == State::Registered) return;
  cancelTimer();
  unregistering_ = false;
  failures_ = 0;
  authAttempts_ = 0;
  authHeader_.reset();
  setState(State::Registering, "starting");
  send();
}

void RegistrationClient::stop() {
  cancelTimer();
  if (state_ == State::Unregistered || state_ == State::Unregistering) return;
  bool maybeBound = state_ == State::Registered || state_ == State::Registering || granted_ > 0;
  if (!maybeBound) {
    ++gen_;
    setState(State::Unregistered, "stopped");
    return;
  }
  unregistering_ = true;
  authAttempts_ = 0;
  setState(State::Unregistering, "stopping");
  send();
}

void RegistrationClient::send() {
  Peer target;
  if (config_.target) {
    target = *config_.target;
  } else {
    std::string hop = config_.registrarUri;
    if (!config_.routes.empty())
      if (auto r = parseNameAddr(config_.routes.front())) hop = std::string(r->uri.text);
    auto u = parseUri(hop);
    std::optional<Peer> p;
    if (u) p = config_.resolve ? config_.resolve(*u) : resolveNumeric(*u);
    if (!p) {
      fail("cannot resolve " + hop, std::nullopt);
      return;
    }
    target = *p;
  }
  uint64_t gen = ++gen_;
  uint32_t expires = unregistering_ ? 0 : expires_;
  ExtraHeaders headers = config_.headers;
  headers.emplace_back("Expires", std::to_string(expires));
  if (authHeader_) headers.push_back(*authHeader_);
  std::string via = txl_.makeVia(target);
  std::string tag = newTag();
  OutOfDialogRequest r;
  r.method = "REGISTER";
  r.requestUri = config_.registrarUri;
  r.via = via;
  r.from = config_.aor;
  r.fromTag = tag;
  r.to = config_.aor;
  r.callId = callId_;
  r.cseq = ++cseq_; // RFC 3261 §10.2: incremented for each REGISTER with the same Call-ID
  r.contact = config_.contact;
  r.routes = &config_.routes;
  r.headers = &headers;
  auto parsed = parseMessage(buildOutOfDialogRequest(r));
  if (!parsed.ok()) {
    fail("bad REGISTER: " + parsed.error.reason, std::nullopt);
    return;
  }
  std::weak_ptr<char> alive = alive_;
  ClientTxCallbacks cb;
  cb.onResponse = [this, alive, gen](const Message& m) {
    if (!alive.expired()) onResponse(gen, m);
  };
  cb.onFailure = [this, alive, gen](ClientTxFailure why) {
    if (!alive.expired()) onFailure(gen, why);
  };
  auto tx = txl_.sendRequest(std::move(parsed.message), target, std::move(cb));
  if (!tx) fail("send failed: " + tx.error().message, std::nullopt);
}

uint32_t RegistrationClient::grantedFrom(const Message& response) const {
  // RFC 3261 §10.2.4: the expiry of our binding is the expires parameter of our Contact in the
  // 2xx, else the Expires header, else what we asked for.
  auto ours = parseUri(config_.contact);
  for (const auto& c : response.contacts()) {
    if (!ours || !uriEquals(c.uri, *ours)) continue;
    if (auto e = c.param("expires"))
      if (auto n = parseUint(text::trim(*e))) return *n;
    break;
  }
  return expiresHeader(response).value_or(expires_);
}

void RegistrationClient::onResponse(uint64_t gen, const Message& response) {
  if (gen != gen_) return;
  int status = response.statusCode();
  if (status < 200) return;
  std::string reason = std::to_string(status) + " " + std::string(response.reason());
  if (unregistering_) {
    if ((status == 401 || status == 407) && config_.auth && authAttempts_ < 2) {
      if (auto v = config_.auth(response)) {
        ++authAttempts_;
        authHeader_ = std::make_pair(std::string(authHeaderFor(status)), std::move(*v));
        send();
        return;
      }
    }
    granted_ = 0;
    authHeader_.reset();
    setState(State::Unregistered, reason);
    return;
  }
  if (status < 300) {
    uint32_t granted = grantedFrom(response);
    if (granted == 0) {
      fail("registrar granted no time", std::nullopt);
      return;
    }
    granted_ = granted;
    failures_ = 0;
    authAttempts_ = 0;
    setState(State::Registered, reason);
    Duration full(int64_t(granted) * 1000);
    Duration at = full > 2 * config_.refreshMargin ? full - config_.refreshMargin : full / 2;
    cancelTimer();
    timer_ = timers_.after(at, [this] {
      timer_ = 0;
      send();
    });
    return;
  }
  if (status == 401 || status == 407) {
    // RFC 3261 §22.2: answer the challenge; a second challenge in a row means the credentials
    // were refused (unless the nonce was only stale, which the auth callback handles).
    if (config_.auth && authAttempts_ < 2) {
      if (auto v = config_.auth(response)) {
        ++authAttempts_;
        authHeader_ = std::make_pair(std::string(authHeaderFor(status)), std::move(*v));
        send();
        return;
      }
      fail(reason + " (no credentials)", std::nullopt);
      return;
    }
    fail(reason + " (authentication failed)", std::nullopt);
    return;
  }
  if (status == 423) {
    // RFC 3261 §10.2.8: ask again with at least Min-Expires.
    if (auto mv = response.header(HeaderId::MinExpires))
      if (auto m = parseUint(text::trim(*mv)); m && *m > expires_) {
        expires_ = *m;
        send();
        return;
      }
  }
  fail(reason, retryAfterSeconds(response));
}

void RegistrationClient::onFailure(uint64_t gen, ClientTxFailure why) {
  if (gen != gen_) return;
  // RFC 3261 §8.1.3.1: a timeout counts as 408, a transport error as 503.
  std::string reason =
      why == ClientTxFailure::Timeout ? "408 Request Timeout" : "503 Transport Error";
  if (unregistering_) {
    granted_ = 0;
    setState(State::Unregistered, reason);
    return;
  }
  fail(reason, std::nullopt);
}

void RegistrationClient::fail(const std::string& reason, std::optional<uint32_t> retryAfter) {
  if (unregistering_) {
    setState(State::Unregistered, reason);
    return;
  }
  ++failures_;
  authAttempts_ = 0;
  authHeader_.reset();
  Duration wait;
  if (retryAfter) {
    wait = Duration(int64_t(*retryAfter) * 1000);
  } else {
    wait = config_.retryMin;
    for (int i = 1; i < failures_ && wait < config_.retryMax; ++i) wait *= 2;
    wait = std::min(wait, config_.retryMax);
  }
  setState(State::Failing, reason);
  logger("sip")->info("registration {}: {}, retry in {} ms", config_.aor, reason, wait.count());
  cancelTimer();
  timer_ = timers_.after(wait, [this] {
    timer_ = 0;
    send();
  });
}

} // namespace verbund::sip

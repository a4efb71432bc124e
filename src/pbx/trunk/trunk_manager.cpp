#include "pbx/trunk/trunk_manager.h"

#include "base/log.h"
#include "pbx/trunk/trunk_store.h"
#include "sip/message/headers.h"

#include <algorithm>
#include <chrono>

namespace verbund::pbx {

namespace {

// '#' is not allowed unescaped in a SIP URI user part (RFC 3261 §25.1).
std::string escapeUser(std::string_view number) {
  std::string out;
  for (char c : number) {
    if (c == '#')
      out += "%23";
    else
      out += c;
  }
  return out;
}

// A display name as a quoted-string followed by a space, or nothing.
std::string quotedName(std::string_view name) {
  std::string q = sip::quotedDisplayName(name);
  return q.empty() ? q : q + " ";
}

std::string withLr(const std::string& uri) {
  auto u = sip::parseUri(uri);
  if (u && u->hasParam("lr")) return "<" + uri + ">";
  return "<" + uri + ";lr>";
}

std::string userOf(const sip::Uri& uri) {
  std::string user = sip::unescape(uri.user).value_or(std::string(uri.user));
  // A local number with its context ("030123;phone-context=...", RFC 3966 §5.1.5).
  if (auto semi = user.find(';'); semi != std::string::npos) user.resize(semi);
  return user;
}

} // namespace

std::string_view trunkStateName(TrunkState s) {
  switch (s) {
  case TrunkState::Disabled:
    return "disabled";
  case TrunkState::Registering:
    return "registering";
  case TrunkState::Registered:
    return "registered";
  case TrunkState::Failing:
    return "failing";
  }
  return "?";
}

TrunkManager::TrunkManager(sip::DialogManager& dm, sip::Transport& transport, Timers& timers,
                           sip::SipLocator* locator, TrunkManagerOptions options)
    : dm_(dm), transport_(transport), timers_(timers), locator_(locator),
      options_(std::move(options)) {
  plan_ = std::make_unique<DialPlan>(config_);
  dids_ = std::make_unique<DidMap>(config_);
  status_.sinceMs = nowMs();
  status_.reason = "not configured";
}

TrunkManager::~TrunkManager() {
  alive_.reset();
  if (retryTimer_) timers_.cancel(retryTimer_);
  if (reapTimer_) timers_.cancel(reapTimer_);
}

int64_t TrunkManager::nowMs() const {
  if (options_.wallClockMs) return options_.wallClockMs();
  return timers_.wallMs();
}

// ---- Settings ----

Result<void> TrunkManager::configure(TrunkConfig config) {
  if (auto v = validateTrunk(config); !v) return v;
  config_ = std::move(config);
  plan_ = std::make_unique<DialPlan>(config_);
  dids_ = std::make_unique<DidMap>(config_);
  ++gen_;
  if (retryTimer_) timers_.cancel(retryTimer_);
  retryTimer_ = 0;
  retireClient();
  targets_.clear();
  targetIndex_ = 0;
  registrarIps_.clear();
  dnsFailures_ = 0;
  rebuildTrust();
  status_.targets.clear();
  status_.activeTarget.clear();
  status_.grantedExpires = 0;
  if (!config_.enabled) {
    setState(TrunkState::Disabled, "disabled");
    return {};
  }
  start();
  return {};
}

Result<void> TrunkManager::update(TrunkConfig config) {
  keepPasswordIfEmpty(config, config_);
  if (auto v = validateTrunk(config); !v) return v;
  if (options_.db)
    if (auto s = saveTrunk(*options_.db, config); !s) return s;
  return configure(std::move(config));
}

void TrunkManager::stop() {
  ++gen_;
  if (retryTimer_) timers_.cancel(retryTimer_);
  retryTimer_ = 0;
  retireClient();
  setState(TrunkState::Disabled, "stopped");
}

TrunkManager::ListenerId TrunkManager::addListener(Listener l) {
  ListenerId id = ++nextListener_;
  listeners_.emplace(id, std::move(l));
  return id;
}

void TrunkManager::removeListener(ListenerId id) {
  listeners_.erase(id);
}

// ---- State ----

void TrunkManager::setState(TrunkState s, std::string reason) {
  if (s == status_.state && reason == status_.reason) return;
  if (s != status_.state) {
    status_.sinceMs = nowMs();
    logger("trunk")->info("trunk {}: {}", trunkStateName(s), reason);
  }
  status_.state = s;
  status_.reason = std::move(reason);
  notify();
}

void TrunkManager::noteError(const std::string& error) {
  status_.lastError = error;
  status_.lastErrorMs = nowMs();
}

void TrunkManager::notify() {
  auto copy = listeners_; // listeners may add or remove listeners
  for (auto& [id, l] : copy)
    if (l) l(status_);
}

// ---- Resolution ----

void TrunkManager::start() {
  setState(TrunkState::Registering, "resolving " + nextHopUri(config_));
  resolve();
}

void TrunkManager::locateUri(const std::string& uri, bool background, bool registrarOnly) {
  uint64_t gen = gen_;
  auto handle = [this, gen, background, registrarOnly](Result<std::vector<sip::SipTarget>> r) {
    if (gen != gen_) return;
    if (registrarOnly) {
      if (r) {
        registrarIps_.clear();
        for (const auto& t : *r) registrarIps_.push_back(t.addr.ip);
        rebuildTrust();
      }
      return;
    }
    onResolved(std::move(r), background);
  };
  auto parsed = sip::parseUri(uri);
  if (!parsed) return handle(makeError(400, "bad URI " + uri));
  if (auto numeric = sip::locateNumeric(*parsed)) {
    if (numeric->empty()) return handle(makeError(400, "unsupported transport in " + uri));
    return handle(std::move(*numeric));
  }
  if (!locator_) return handle(makeError(503, "no DNS resolver for " + std::string(parsed->host)));
  std::weak_ptr<char> alive = alive_;
  locator_->locate(uri, [alive, handle](Result<std::vector<sip::SipTarget>> r) {
    if (!alive.expired()) handle(std::move(r));
  });
}

void TrunkManager::resolve() {
  locateUri(nextHopUri(config_), false, false);
  // With an outbound proxy the registrar's own addresses are trusted too (best effort).
  if (!config_.outboundProxy.empty()) locateUri(registrarRequestUri(config_), true, true);
}

void TrunkManager::onResolved(Result<std::vector<sip::SipTarget>> r, bool background) {
  if (!r) {
    if (background) return; // keep the addresses we have
    ++dnsFailures_;
    std::string why = r.error().message;
    noteError(why);
    setState(TrunkState::Failing, why);
    scheduleRetry();
    return;
  }
  std::optional<sip::SipTarget> current;
  if (targetIndex_ < targets_.size()) current = targets_[targetIndex_];
  targets_ = std::move(r.value());
  targetIndex_ = 0;
  if (current)
    if (auto it = std::find(targets_.begin(), targets_.end(), *current); it != targets_.end())
      targetIndex_ = size_t(it - targets_.begin());
  status_.targets.clear();
  for (const auto& t : targets_) status_.targets.push_back(t.toString());
  status_.activeTarget = targets_.empty() ? "" : targets_[targetIndex_].toString();
  rebuildTrust();
  if (background) return;
  dnsFailures_ = 0;
  if (config_.mode == TrunkMode::Ip) {
    setState(TrunkState::Registered, "ready (" + status_.activeTarget + ")");
    return;
  }
  startRegistration();
}

void TrunkManager::rebuildTrust() {
  trusted_.clear();
  for (const auto& a : config_.trustedAddresses)
    if (auto ip = IpAddress::parse(a)) trusted_.push_back(*ip);
  for (const auto& t : targets_) trusted_.push_back(t.addr.ip);
  for (const auto& ip : registrarIps_) trusted_.push_back(ip);
}

void TrunkManager::scheduleRetry() {
  Duration wait = options_.retryMin;
  for (int i = 1; i < dnsFailures_ && wait < options_.retryMax; ++i) wait *= 2;
  wait = std::min(wait, options_.retryMax);
  if (retryTimer_) timers_.cancel(retryTimer_);
  uint64_t gen = gen_;
  retryTimer_ = timers_.after(wait, [this, gen] {
    retryTimer_ = 0;
    if (gen != gen_) return;
    setState(TrunkState::Registering, "resolving " + nextHopUri(config_));
    resolve();
  });
}

std::optional<sip::Peer> TrunkManager::currentTarget() const {
  if (targetIndex_ >= targets_.size()) return std::nullopt;
  return targets_[targetIndex_].peer();
}

// ---- Registration ----

void TrunkManager::startRegistration() {
  auto target = currentTarget();
  if (!target) return;
  auto local = transport_.localAddress(target->transport, target->remote);
  if (!local) {
    std::string why = "no local " + std::string(sip::transportName(target->transport)) +
                      " address towards " + target->remote.toString();
    noteError(why);
    setState(TrunkState::Failing, why);
    ++dnsFailures_;
    scheduleRetry();
    return;
  }
  std::string domain = trunkDomain(config_);
  sip::RegistrationConfig rc;
  rc.registrarUri = registrarRequestUri(config_);
  rc.aor = "<sip:" + config_.username + "@" + domain + ">";
  rc.contact =
      "sip:" + config_.username + "@" + local->hostString() + ":" + std::to_string(local->port);
  if (target->transport == sip::TransportType::Tcp) rc.contact += ";transport=tcp";
  if (target->transport == sip::TransportType::Tls) rc.contact += ";transport=tls";
  rc.expires = config_.expiry;
  rc.refreshMargin = options_.refreshMargin;
  rc.retryMin = options_.retryMin;
  rc.retryMax = options_.retryMax;
  std::weak_ptr<char> alive = alive_;
  // Called before every REGISTER: the target in use now (it moves on after timeouts).
  rc.resolve = [this, alive](const sip::Uri&) -> std::optional<sip::Peer> {
    if (alive.expired()) return std::nullopt;
    return currentTarget();
  };
  if (!config_.outboundProxy.empty()) rc.routes.push_back(withLr(config_.outboundProxy));
  rc.auth = authCallback(rc.registrarUri);
  if (!options_.userAgent.empty()) rc.headers.emplace_back("User-Agent", options_.userAgent);
  uint64_t id = ++clientSeq_;
  clientId_ = id;
  client_ = std::make_unique<sip::RegistrationClient>(
      dm_.txl(), timers_, std::move(rc),
      [this, alive, id](sip::RegistrationClient::State s, const std::string& reason) {
        if (!alive.expired()) onRegistration(id, s, reason);
      });
  client_->start();
}

void TrunkManager::onRegistration(uint64_t clientId, sip::RegistrationClient::State s,
                                  const std::string& reason) {
  using S = sip::RegistrationClient::State;
  if (clientId != clientId_ || !client_) {
    if (s == S::Unregistered) scheduleReap();
    return;
  }
  switch (s) {
  case S::Registering:
    setState(TrunkState::Registering, reason == "starting" ? "registering" : reason);
    break;
  case S::Registered:
    status_.grantedExpires = client_->grantedExpires();
    setState(TrunkState::Registered, reason);
    // Keep the carrier's addresses fresh (answered from the DNS cache until the TTL runs out).
    locateUri(nextHopUri(config_), true, false);
    break;
  case S::Failing:
    noteError(reason);
    // RFC 3263 §4.3: no answer or a transport failure: the next attempt goes to the next address.
    if ((reason.rfind("408", 0) == 0 || reason.rfind("503 Transport", 0) == 0) &&
        targets_.size() > 1) {
      targetIndex_ = (targetIndex_ + 1) % targets_.size();
      status_.activeTarget = targets_[targetIndex_].toString();
    }
    setState(TrunkState::Failing, reason);
    locateUri(nextHopUri(config_), true, false);
    break;
  case S::Unregistering:
  case S::Unregistered:
    break;
  }
}

void TrunkManager::retireClient() {
  if (!client_) return;
  clientId_ = 0;
  client_->stop(); // RFC 3261 §10.2.2: remove our binding
  retiring_.push_back(std::move(client_));
  scheduleReap();
}

void TrunkManager::scheduleReap() {
  if (reapTimer_) return;
  // Clients are destroyed from a timer, never inside their own callbacks.
  reapTimer_ = timers_.after(Duration(0), [this] {
    reapTimer_ = 0;
    std::erase_if(retiring_, [](const auto& c) {
      return c->state() == sip::RegistrationClient::State::Unregistered;
    });
  });
}

// ---- Digest ----

sip::AuthCallback TrunkManager::authCallback(std::string requestUri) const {
  std::weak_ptr<char> alive = alive_;
  return [this, alive, uri = std::move(requestUri)](
             const sip::Message& challenge) -> std::optional<std::string> {
    if (alive.expired()) return std::nullopt;
    return answer(challenge, uri);
  };
}

std::optional<std::string> TrunkManager::answer(const sip::Message& challenge,
                                                const std::string& uri) const {
  int status = challenge.statusCode();
  if ((status != 401 && status != 407) || config_.password.empty()) return std::nullopt;
  sip::HeaderId id =
      status == 407 ? sip::HeaderId::ProxyAuthenticate : sip::HeaderId::WwwAuthenticate;
  std::vector<sip::AuthParams> offers;
  for (const auto& h : challenge.headers())
    if (h.id == id)
      if (auto p = sip::parseAuthParams(h.value)) offers.push_back(*p);
  auto pick = sip::DigestClient::pickChallenge(offers);
  if (!pick) return std::nullopt;
  const std::string& user = config_.authUser.empty() ? config_.username : config_.authUser;
  auto v =
      digest_.authorize(offers[*pick], user, config_.password, challenge.cseq().methodText, uri);
  if (!v) {
    logger("trunk")->warn("cannot answer the carrier's challenge: {}", v.error().message);
    return std::nullopt;
  }
  return std::move(v.value());
}

// ---- Questions of the call engine ----

bool TrunkManager::isTrunkPeer(const sip::Peer& peer) const {
  if (!config_.enabled || status_.state == TrunkState::Disabled) return false;
  return std::find(trusted_.begin(), trusted_.end(), peer.remote.ip) != trusted_.end();
}

bool TrunkManager::isExternalNumber(std::string_view dialled) const {
  if (!config_.enabled) return false;
  if (options_.isInternalNumber && options_.isInternalNumber(std::string(dialled))) return false;
  return plan_->external(dialled).has_value();
}

Result<OutboundTarget> TrunkManager::targetFor(std::string_view dialled,
                                               const CallerIdentity& caller) const {
  if (!config_.enabled) return makeError(503, "external line disabled");
  if (options_.isInternalNumber && options_.isInternalNumber(std::string(dialled)))
    return makeError(404, "internal number");
  auto number = plan_->external(dialled);
  if (!number) return makeError(404, "not an external number");
  if (config_.mode == TrunkMode::Register && status_.state != TrunkState::Registered)
    return makeError(503, "external line not registered (" + status_.reason + ")");
  auto peer = currentTarget();
  if (!peer) return makeError(503, "carrier address unknown");

  std::string domain = trunkDomain(config_);
  auto sipUri = [&](std::string_view user) { return "sip:" + escapeUser(user) + "@" + domain; };
  std::string fallback = !config_.defaultCallerId.empty() ? config_.defaultCallerId
                         : !config_.username.empty()      ? config_.username
                                                          : std::string("anonymous");
  std::string own = normalizeNumber(caller.externalNumber);
  std::string callerNumber = isDialString(own) ? own : fallback;
  std::string account = config_.username.empty() ? fallback : config_.username;
  std::string name = quotedName(caller.displayName);

  OutboundTarget t;
  t.number = *number;
  t.requestUri = sipUri(*number);
  t.to = "<" + t.requestUri + ">";
  switch (config_.callerIdMode) {
  case CallerIdMode::FromAndPai:
    t.from = name + "<" + sipUri(callerNumber) + ">";
    t.pAssertedIdentity = t.from;
    break;
  case CallerIdMode::PaiOnly:
    t.from = "<" + sipUri(account) + ">";
    t.pAssertedIdentity = name + "<" + sipUri(callerNumber) + ">";
    break;
  case CallerIdMode::TrunkNumber:
    t.from = "<" + sipUri(fallback) + ">";
    break;
  }
  if (!config_.outboundProxy.empty()) t.routes.push_back(withLr(config_.outboundProxy));
  t.peer = *peer;
  t.auth = authCallback(t.requestUri);
  return t;
}

Result<void> TrunkManager::prepareInvite(std::string_view dialled, const CallerIdentity& caller,
                                         sip::DialogManager::InviteParams& params) const {
  auto t = targetFor(dialled, caller);
  if (!t) return t.error();
  params.requestUri = t->requestUri;
  params.from = t->from;
  params.to = t->to;
  params.routes = t->routes;
  params.target = t->peer;
  params.auth = std::move(t->auth);
  if (t->pAssertedIdentity)
    params.headers.emplace_back("P-Asserted-Identity", *t->pAssertedIdentity);
  return {};
}

std::optional<InboundRoute> TrunkManager::inboundDid(const sip::Message& request) const {
  if (!config_.enabled || !request.isRequest()) return std::nullopt;
  std::string rUser = userOf(request.requestUri());
  std::string toUser = userOf(request.to().uri);
  if (auto t = dids_->lookup(rUser, false)) return InboundRoute{rUser, *t};
  if (auto t = dids_->lookup(toUser, false)) return InboundRoute{toUser, *t};
  if (auto t = dids_->lookup(toUser.empty() ? rUser : toUser, true))
    return InboundRoute{toUser.empty() ? rUser : toUser, *t};
  return std::nullopt;
}

} // namespace verbund::pbx

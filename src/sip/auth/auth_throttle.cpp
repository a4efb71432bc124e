#include "sip/auth/auth_throttle.h"

#include "base/log.h"
#include "base/metrics.h"
#include "sip/message/text.h"

#include <algorithm>

namespace verbund::sip {

namespace {

Counter g_accepted("verbund_sip_auth_accepted_total",
                   "Digest-authenticated requests (any method) whose credentials were right");
Counter g_wrongResponse("verbund_sip_auth_failed_total",
                        "Digest checks (any method) failed: wrong response, unknown user or "
                        "another user's address of record");
Counter g_uriMismatch("verbund_sip_auth_uri_mismatch_total",
                      "Digest checks (any method) failed because the digest uri does not name "
                      "the Request-URI (counted as failures by the throttle)");
Counter g_refused("verbund_sip_auth_refused_total",
                  "Requests (any method) refused with 403 because their source is blocked after "
                  "too many failed digest checks");
Counter g_blocks("verbund_sip_auth_blocks_total",
                 "Sources blocked after too many failed digest checks");

std::shared_ptr<spdlog::logger> log() {
  return logger("auth");
}

template <typename D> uint32_t secondsCeil(D d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return uint32_t(std::max<int64_t>(1, (ms + 999) / 1000));
}

uint16_t defaultPort(UriScheme s) {
  return s == UriScheme::Sips ? 5061 : 5060;
}

bool sameUnescaped(std::string_view a, std::string_view b) {
  if (a == b) return true;
  auto ua = unescape(a), ub = unescape(b);
  return ua && ub && *ua == *ub;
}

} // namespace

std::string logSafe(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : s.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > kMax) out += "...";
  return out;
}

std::string claimedUser(const Message& m) {
  for (const auto& h : m.headers()) {
    if (h.id != HeaderId::Authorization && h.id != HeaderId::ProxyAuthorization) continue;
    auto p = parseAuthParams(h.value);
    if (!p) break;
    if (auto u = p->get("username")) return std::string(*u);
    break;
  }
  return unescape(m.from().uri.user).value_or(std::string(m.from().uri.user));
}

bool digestUriMatches(std::string_view digestUri, const Uri& requestUri, bool allowWithoutUser) {
  if (digestUri == requestUri.text) return true;
  auto u = parseUri(digestUri);
  if (!u) return false;
  if (uriEquals(*u, requestUri)) return true;
  // What phones differ in without naming another target (see the header).
  if (u->scheme != requestUri.scheme) return false;
  if (u->scheme != UriScheme::Sip && u->scheme != UriScheme::Sips) return false;
  if (!sameUnescaped(u->user, requestUri.user) && !(allowWithoutUser && u->user.empty()))
    return false;
  if (!text::iequals(u->host, requestUri.host)) return false;
  uint16_t pa = u->port ? u->port : defaultPort(u->scheme);
  uint16_t pb = requestUri.port ? requestUri.port : defaultPort(requestUri.scheme);
  if (pa != pb) return false;
  // maddr overrides the host as the destination (RFC 3261 §19.1.1): never tolerated.
  auto ma = u->param("maddr"), mb = requestUri.param("maddr");
  if (ma.has_value() != mb.has_value()) return false;
  return !ma || text::iequals(*ma, *mb);
}

AuthThrottle::AuthThrottle(AuthThrottleConfig config, const Timers& timers)
    : config_(std::move(config)), timers_(timers) {}

SockAddr AuthThrottle::sourceKey(const SockAddr& remote) {
  SockAddr k;
  k.ip = remote.ip;
  if (k.ip.v6)
    for (size_t i = 8; i < 16; ++i) k.ip.bytes[i] = 0;
  return k;
}

bool AuthThrottle::blocked(const SockAddr& remote) const {
  auto it = sources_.find(sourceKey(remote));
  return it != sources_.end() && it->second->blockedUntil > timers_.now();
}

AuthThrottle::SourceState& AuthThrottle::touch(const SockAddr& key) {
  auto it = sources_.find(key);
  if (it != sources_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return *it->second;
  }
  while (!lru_.empty() && sources_.size() >= config_.maxTrackedSources) {
    sources_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(SourceState{key, 0, timers_.now(), {}, {}, false, {}, 0});
  sources_.emplace(key, lru_.begin());
  return lru_.front();
}

bool AuthThrottle::mayLog(SourceState& s, bool force) {
  TimePoint now = timers_.now();
  if (!force && s.logged && now - s.lastLog < config_.logInterval) return false;
  if (now - budgetStart_ >= std::chrono::seconds(1)) {
    budgetStart_ = now;
    budgetUsed_ = 0;
  }
  if (budgetUsed_ >= config_.logBurst) return false;
  ++budgetUsed_;
  s.logged = true;
  s.lastLog = now;
  return true;
}

std::optional<uint32_t> AuthThrottle::refuse(const SockAddr& remote, std::string_view method,
                                             std::string_view user) {
  auto it = sources_.find(sourceKey(remote));
  if (it == sources_.end()) return std::nullopt;
  TimePoint now = timers_.now();
  SourceState& s = *it->second;
  if (s.blockedUntil <= now) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  g_refused.inc();
  uint32_t left = secondsCeil(s.blockedUntil - now);
  ++s.unlogged;
  const std::string_view shortMethod = method.substr(0, 16);
  if (mayLog(s, s.refusedMethod != shortMethod)) {
    s.refusedMethod = std::string(shortMethod);
    log()->warn("refused {} from {} (user '{}'): source blocked for another {} s after failed "
                "digest authentication ({} refused or failed since the last line)",
                method, remote.ip.toString(), logSafe(user), left, s.unlogged);
    s.unlogged = 0;
  }
  return left;
}

bool AuthThrottle::failed(const SockAddr& remote, std::string_view method, std::string_view user,
                          AuthFailure why) {
  (why == AuthFailure::UriMismatch ? g_uriMismatch : g_wrongResponse).inc();
  const char* reason = why == AuthFailure::UriMismatch ? "digest uri does not match the Request-URI"
                                                       : "wrong digest response or unknown user";
  if (config_.maxTrackedSources == 0) {
    log()->warn("failed digest authentication: {} from {} (user '{}'): {}", method,
                remote.ip.toString(), logSafe(user), reason);
    return false;
  }
  TimePoint now = timers_.now();
  SourceState& s = touch(sourceKey(remote));
  if (now - s.windowStart >= config_.failureWindow) {
    s.windowStart = now;
    s.failures = 0;
  }
  ++s.failures;
  ++s.unlogged;
  if (config_.maxFailures != 0 && s.failures >= config_.maxFailures) {
    g_blocks.inc();
    s.blockedUntil = now + config_.cooldown;
    s.failures = 0;
    s.windowStart = s.blockedUntil;
    s.refusedMethod.clear();
    if (mayLog(s, true)) {
      log()->warn("blocking digest authentication from {} for {} s: {} failures within {} s "
                  "(last: {} user '{}': {})",
                  remote.ip.toString(), secondsCeil(config_.cooldown), config_.maxFailures,
                  secondsCeil(config_.failureWindow), method, logSafe(user), reason);
      s.unlogged = 0;
    }
    return true;
  }
  if (mayLog(s, false)) {
    log()->warn("failed digest authentication: {} from {} (user '{}'): {} ({} failed since the "
                "last line; {} of {} within {} s)",
                method, remote.ip.toString(), logSafe(user), reason, s.unlogged, s.failures,
                config_.maxFailures, secondsCeil(config_.failureWindow));
    s.unlogged = 0;
  }
  return false;
}

void AuthThrottle::accepted() {
  g_accepted.inc();
}

} // namespace verbund::sip

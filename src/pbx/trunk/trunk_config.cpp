#include "pbx/trunk/trunk_config.h"

#include "base/net.h"
#include "sip/message/uri.h"

#include <algorithm>
#include <array>
#include <set>

namespace verbund::pbx {

namespace {

constexpr std::array<std::string_view, 2> kModes{"register", "ip"};
constexpr std::array<std::string_view, 4> kTransports{"auto", "udp", "tcp", "tls"};
constexpr std::array<std::string_view, 3> kCallerIdModes{"from-and-pai", "pai-only",
                                                         "trunk-number"};

template <typename E, size_t N>
std::optional<E> fromName(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == s) return E(i);
  return std::nullopt;
}

Error fieldError(std::string_view field, std::string_view why) {
  return makeError(400, std::string(field) + ": " + std::string(why));
}

bool hasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

bool isUserChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("-_.!~*'()+").find(c) != std::string_view::npos;
}

bool isTargetChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("*#+._-").find(c) != std::string_view::npos;
}

bool isTarget(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), isTargetChar);
}

// A sip:/sips: URI with a host, no user part needed, no headers.
Result<void> checkServerUri(std::string_view field, const std::string& text) {
  if (text.size() > 255 || hasControl(text) || text.find(' ') != std::string::npos)
    return fieldError(field, "not a valid address");
  auto u = sip::parseUri(text);
  if (!u) return fieldError(field, u.error().message);
  if (u->scheme != sip::UriScheme::Sip && u->scheme != sip::UriScheme::Sips)
    return fieldError(field, "must be a sip: or sips: URI or a host name");
  if (u->host.empty()) return fieldError(field, "no host");
  if (!u->headers.empty()) return fieldError(field, "URI headers are not allowed");
  return {};
}

// The registrar as a URI: "host[:port]" gets "sip:" in front.
std::string registrarAsUri(const std::string& r) {
  if (r.rfind("sip:", 0) == 0 || r.rfind("sips:", 0) == 0) return r;
  return "sip:" + r;
}

} // namespace

std::string_view trunkModeName(TrunkMode m) {
  return kModes[size_t(m)];
}
std::optional<TrunkMode> trunkModeFromName(std::string_view s) {
  return fromName<TrunkMode>(kModes, s);
}
std::string_view trunkTransportName(TrunkTransport t) {
  return kTransports[size_t(t)];
}
std::optional<TrunkTransport> trunkTransportFromName(std::string_view s) {
  return fromName<TrunkTransport>(kTransports, s);
}
std::string_view callerIdModeName(CallerIdMode m) {
  return kCallerIdModes[size_t(m)];
}
std::optional<CallerIdMode> callerIdModeFromName(std::string_view s) {
  return fromName<CallerIdMode>(kCallerIdModes, s);
}

std::string normalizeNumber(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::string_view("-.() ").find(c) == std::string_view::npos) out += c;
  return out;
}

bool isDialString(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '*' || c == '#'; });
}

TrunkView redacted(const TrunkConfig& c) {
  TrunkView v;
  v.enabled = c.enabled;
  v.mode = c.mode;
  v.registrar = c.registrar;
  v.domain = c.domain;
  v.username = c.username;
  v.authUser = c.authUser;
  v.outboundProxy = c.outboundProxy;
  v.passwordSet = !c.password.empty();
  v.transport = c.transport;
  v.expiry = c.expiry;
  v.dids = c.dids;
  v.defaultTarget = c.defaultTarget;
  v.dialPrefix = c.dialPrefix;
  v.outboundPattern = c.outboundPattern;
  v.callerIdMode = c.callerIdMode;
  v.defaultCallerId = c.defaultCallerId;
  v.trustedAddresses = c.trustedAddresses;
  return v;
}

void keepPasswordIfEmpty(TrunkConfig& incoming, const TrunkConfig& current) {
  if (incoming.password.empty()) incoming.password = current.password;
}

Result<void> validateTrunk(const TrunkConfig& c) {
  bool need = c.enabled;
  if (c.registrar.empty()) {
    if (need) return fieldError("registrar", "required");
  } else if (auto r = checkServerUri("registrar", registrarAsUri(c.registrar)); !r) {
    return r.error();
  }
  if (!c.domain.empty()) {
    std::string text = "sip:" + c.domain; // parseUri returns views into it
    auto u = sip::parseUri(text);
    if (c.domain.size() > 255 || !u || u->host != c.domain)
      return fieldError("domain", "not a host name or address");
  }
  if (c.username.empty()) {
    if (need && c.mode == TrunkMode::Register) return fieldError("username", "required");
  } else if (c.username.size() > 64 ||
             !std::all_of(c.username.begin(), c.username.end(), isUserChar)) {
    return fieldError("username", "only letters, digits and -_.!~*'()+ (at most 64)");
  }
  if (c.authUser.size() > 128 || hasControl(c.authUser) ||
      c.authUser.find_first_of("\"\\") != std::string::npos)
    return fieldError("authUser", "not a valid user name");
  if (c.password.size() > 128 || hasControl(c.password))
    return fieldError("password", "at most 128 characters, no control characters");
  if (need && c.mode == TrunkMode::Register && c.password.empty())
    return fieldError("password", "required");
  if (!c.outboundProxy.empty())
    if (auto r = checkServerUri("outboundProxy", c.outboundProxy); !r) return r.error();
  if (c.expiry < 60 || c.expiry > 86400) return fieldError("expiry", "between 60 and 86400");
  if (c.dids.size() > 10000) return fieldError("dids", "too many");
  std::set<std::string> seen;
  for (const auto& d : c.dids) {
    std::string n = normalizeNumber(d.did);
    if (!isDialString(n)) return fieldError("dids", "\"" + d.did + "\" is not a number");
    if (!isTarget(d.target))
      return fieldError("dids", "target of " + d.did + " is not an extension or group number");
    if (!seen.insert(n).second) return fieldError("dids", d.did + " is listed twice");
  }
  if (!c.defaultTarget.empty() && !isTarget(c.defaultTarget))
    return fieldError("defaultTarget", "not an extension or group number");
  if (c.dialPrefix.size() > 8 ||
      !std::all_of(c.dialPrefix.begin(), c.dialPrefix.end(),
                   [](char ch) { return (ch >= '0' && ch <= '9') || ch == '*' || ch == '#'; }))
    return fieldError("dialPrefix", "at most 8 of 0-9 * #");
  if (c.outboundPattern.size() > 200 || hasControl(c.outboundPattern))
    return fieldError("outboundPattern", "at most 200 characters");
  if (!c.outboundPattern.empty()) {
    try {
      std::regex re(c.outboundPattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return fieldError("outboundPattern", std::string("invalid regular expression: ") + e.what());
    }
  }
  if (!c.defaultCallerId.empty() && !isDialString(c.defaultCallerId))
    return fieldError("defaultCallerId", "not a number");
  if (c.trustedAddresses.size() > 64) return fieldError("trustedAddresses", "too many");
  for (const auto& a : c.trustedAddresses)
    if (!IpAddress::parse(a))
      return fieldError("trustedAddresses", "\"" + a + "\" is not an IP address");
  return {};
}

std::string trunkDomain(const TrunkConfig& c) {
  if (!c.domain.empty()) return c.domain;
  std::string text = registrarAsUri(c.registrar); // parseUri returns views into it
  auto u = sip::parseUri(text);
  return u ? std::string(u->host) : c.registrar;
}

std::string registrarRequestUri(const TrunkConfig& c) {
  std::string text = registrarAsUri(c.registrar);
  auto u = sip::parseUri(text);
  if (!u) return text;
  std::string out = u->scheme == sip::UriScheme::Sips ? "sips:" : "sip:";
  out += u->host;
  if (u->port) out += ":" + std::to_string(u->port);
  return out;
}

std::optional<sip::TransportType> toTransportType(TrunkTransport t) {
  switch (t) {
  case TrunkTransport::Auto:
    return std::nullopt;
  case TrunkTransport::Udp:
    return sip::TransportType::Udp;
  case TrunkTransport::Tcp:
    return sip::TransportType::Tcp;
  case TrunkTransport::Tls:
    return sip::TransportType::Tls;
  }
  return std::nullopt;
}

std::string nextHopUri(const TrunkConfig& c) {
  std::string base = c.outboundProxy.empty() ? registrarAsUri(c.registrar) : c.outboundProxy;
  auto u = sip::parseUri(base);
  if (!u || c.transport == TrunkTransport::Auto || !u->transportParam().empty()) return base;
  if (c.transport == TrunkTransport::Tls && u->scheme == sip::UriScheme::Sips) return base;
  return base + ";transport=" + std::string(trunkTransportName(c.transport));
}

DialPlan::DialPlan(const TrunkConfig& c) : prefix_(c.dialPrefix) {
  std::string p =
      c.outboundPattern.empty() ? std::string(kDefaultOutboundPattern) : c.outboundPattern;
  try {
    pattern_.emplace(p, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    pattern_.reset(); // validateTrunk rejects these; match nothing
  }
}

std::optional<std::string> DialPlan::external(std::string_view dialled) const {
  if (!pattern_ || dialled.size() > 64) return std::nullopt;
  if (!prefix_.empty()) {
    if (dialled.substr(0, prefix_.size()) != prefix_) return std::nullopt;
    dialled.remove_prefix(prefix_.size());
  }
  std::string number = normalizeNumber(dialled);
  if (!isDialString(number)) return std::nullopt;
  try {
    if (!std::regex_match(number, *pattern_)) return std::nullopt;
  } catch (const std::regex_error&) {
    return std::nullopt; // complexity limits: treat as no match
  }
  return number;
}

DidMap::DidMap(const TrunkConfig& c) : defaultTarget_(c.defaultTarget) {
  for (const auto& d : c.dids) routes_.emplace(normalizeNumber(d.did), d.target);
}

std::optional<std::string> DidMap::lookup(std::string_view did, bool useDefault) const {
  std::string n = normalizeNumber(did);
  if (auto it = routes_.find(n); it != routes_.end()) return it->second;
  if (useDefault && !defaultTarget_.empty()) return defaultTarget_;
  return std::nullopt;
}

} // namespace verbund::pbx

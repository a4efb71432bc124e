#include "sip/message/uri.h"

#include "sip/message/headers.h"
#include "sip/message/text.h"

#include <cstring>

namespace verbund::sip {

namespace {

bool isHex(char c) { return text::isDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

bool isUserChar(char c) { return text::is(c, text::kUser); }
bool isPasswordChar(char c) { return text::is(c, text::kPassword); }
bool isParamChar(char c) { return text::is(c, text::kParam); }
bool isHeaderChar(char c) { return text::is(c, text::kHeader); }

bool validEscapes(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

Error uriError(const char* why) { return Error{400, std::string("Bad URI: ") + why}; }

bool parsePort(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (!text::isDigit(c)) return false;
    v = v * 10 + unsigned(c - '0');
  }
  if (v > 65535) return false;
  out = uint16_t(v);
  return true;
}

bool validHost(std::string_view h) {
  if (h.empty()) return false;
  if (h.front() == '[') {
    if (h.size() < 4 || h.back() != ']') return false;
    for (char c : h.substr(1, h.size() - 2))
      if (!isHex(c) && c != ':' && c != '.') return false;
    return true;
  }
  // hostname or IPv4: alphanum, '-', '.'; labels must not be empty except a trailing dot.
  char prev = '.';
  for (size_t i = 0; i < h.size(); ++i) {
    char c = h[i];
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!text::is(c, text::kHost)) {
      return false;
    }
    prev = c;
  }
  return true;
}

} // namespace

namespace {
template <typename F>
void forEachParam(std::string_view params, F&& f);
} // namespace

Result<Uri> parseUri(std::string_view in) {
  Uri u;
  u.text = in;
  auto colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0) return uriError("no scheme");
  u.schemeText = in.substr(0, colon);
  for (size_t i = 0; i < colon; ++i) {
    char c = in[i];
    if (!(text::isAlnum(c) || c == '+' || c == '-' || c == '.') || (i == 0 && !text::isAlpha(c)))
      return uriError("bad scheme");
  }
  std::string_view rest = in.substr(colon + 1);
  if (text::iequals(u.schemeText, "sip")) {
    u.scheme = UriScheme::Sip;
  } else if (text::iequals(u.schemeText, "sips")) {
    u.scheme = UriScheme::Sips;
  } else if (text::iequals(u.schemeText, "tel")) {
    u.scheme = UriScheme::Tel;
    // RFC 3966: telephone-subscriber *par. Keep it simple: number up to ';'.
    auto semi = rest.find(';');
    u.user = rest.substr(0, semi);
    if (semi != std::string_view::npos) u.params = rest.substr(semi);
    if (u.user.empty()) return uriError("empty tel number");
    for (char c : rest)
      if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7f) return uriError("bad character");
    return u;
  } else {
    u.scheme = UriScheme::Other;
    for (char c : rest)
      if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7f) return uriError("bad character");
    if (rest.empty()) return uriError("empty");
    return u;
  }

  // SIP / SIPS: [userinfo "@"] hostport uri-parameters [headers]
  auto at = rest.find('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto pc = userinfo.find(':');
    u.user = userinfo.substr(0, pc);
    if (pc != std::string_view::npos) u.password = userinfo.substr(pc + 1);
    if (u.user.empty()) return uriError("empty user");
    for (char c : u.user)
      if (!isUserChar(c)) return uriError("bad character in user");
    for (char c : u.password)
      if (!isPasswordChar(c)) return uriError("bad character in password");
    if (!validEscapes(u.user) || !validEscapes(u.password)) return uriError("bad escape");
  }
  // headers
  auto q = rest.find('?');
  if (q != std::string_view::npos) {
    u.headers = rest.substr(q + 1);
    rest = rest.substr(0, q);
    for (char c : u.headers)
      if (!isHeaderChar(c)) return uriError("bad character in headers");
    if (!validEscapes(u.headers)) return uriError("bad escape in headers");
  }
  // hostport; an IPv6 reference may contain ':' and no ';'
  size_t hostEnd;
  if (!rest.empty() && rest.front() == '[') {
    hostEnd = rest.find(']');
    if (hostEnd == std::string_view::npos) return uriError("unterminated IPv6 reference");
    ++hostEnd;
  } else {
    hostEnd = rest.find_first_of(":;");
    if (hostEnd == std::string_view::npos) hostEnd = rest.size();
  }
  u.host = rest.substr(0, hostEnd);
  if (!validHost(u.host)) return uriError("bad host");
  rest = rest.substr(hostEnd);
  if (!rest.empty() && rest.front() == ':') {
    auto semi = rest.find(';');
    if (!parsePort(rest.substr(1, semi == std::string_view::npos ? rest.npos : semi - 1), u.port))
      return uriError("bad port");
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi);
  }
  if (!rest.empty()) {
    if (rest.front() != ';') return uriError("junk after host");
    for (char c : rest)
      if (!isParamChar(c)) return uriError("bad character in parameters");
    if (!validEscapes(rest)) return uriError("bad escape in parameters");
    // RFC 3261 §19.1.1: a parameter MUST NOT appear more than once (comparison would otherwise
    // depend on which copy is read).
    std::string_view names[32];
    size_t count = 0;
    bool duplicate = false, tooMany = false;
    forEachParam(rest, [&](std::string_view n, std::string_view) {
      for (size_t k = 0; k < count; ++k)
        if (text::iequals(names[k], n)) duplicate = true;
      if (count == std::size(names)) tooMany = true;
      else names[count++] = n;
    });
    if (duplicate) return uriError("duplicate parameter");
    if (tooMany) return uriError("too many parameters");
    u.params = rest;
  }
  return u;
}

std::optional<std::string_view> Uri::param(std::string_view name) const {
  return findParam(params, name);
}

std::string_view Uri::transportParam() const {
  auto t = param("transport");
  return t ? *t : std::string_view{};
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) return std::nullopt;
    auto hv = [](char c) { return text::isDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10; };
    out += char(hv(s[i + 1]) * 16 + hv(s[i + 2]));
    i += 2;
  }
  return out;
}

namespace {
// Iterates ";name=value" elements of a raw parameter string.
template <typename F>
void forEachParam(std::string_view params, F&& f) {
  while (!params.empty()) {
    if (params.front() == ';') params.remove_prefix(1);
    auto end = params.find(';');
    std::string_view p = params.substr(0, end);
    auto eq = p.find('=');
    f(text::trim(p.substr(0, eq)),
      eq == std::string_view::npos ? std::string_view{} : text::trim(p.substr(eq + 1)));
    if (end == std::string_view::npos) break;
    params = params.substr(end);
  }
}

bool escEqual(std::string_view a, std::string_view b, bool caseInsensitive) {
  auto ua = unescape(a), ub = unescape(b);
  if (!ua || !ub) return false;
  return caseInsensitive ? text::iequals(*ua, *ub) : *ua == *ub;
}
} // namespace

bool uriEquals(const Uri& a, const Uri& b) {
  if (a.scheme != b.scheme) return false;
  if (a.scheme == UriScheme::Other) return a.text == b.text;
  if (!escEqual(a.user, b.user, a.scheme == UriScheme::Tel)) return false;
  if (a.scheme == UriScheme::Tel) return text::iequals(a.params, b.params);
  if (!escEqual(a.password, b.password, false)) return false;
  if (!text::iequals(a.host, b.host) || a.port != b.port) return false;
  // RFC 3261 §19.1.4: user, ttl, method, maddr and transport must match when present in either;
  // any other parameter is compared only when present in both.
  bool ok = true;
  auto check = [&](const Uri& x, const Uri& y) {
    forEachParam(x.params, [&](std::string_view n, std::string_view v) {
      auto other = y.param(n);
      bool mustMatch = text::iequals(n, "user") || text::iequals(n, "ttl") ||
                       text::iequals(n, "method") || text::iequals(n, "maddr") ||
                       text::iequals(n, "transport");
      if (!other) {
        if (mustMatch) ok = false;
        return;
      }
      if (!escEqual(v, *other, true)) ok = false;
    });
  };
  check(a, b);
  check(b, a);
  if (!ok) return false;
  // Headers: each must be present in both and equal (order-independent). Compare sets naively.
  if (a.headers.empty() != b.headers.empty()) return false;
  return a.headers.empty() || text::iequals(a.headers, b.headers);
}

} // namespace verbund::sip

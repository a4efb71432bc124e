#include "sip/message/uri.h"

#include "sip/message/headers.h"
#include "sip/message/text.h"

#include <cstring>

namespace verbund::sip {

namespace {

bool isHex(char c) {
  return text::isDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

bool isUserChar(char c) {
  return text::is(c, text::kUser);
}
bool isPasswordChar(char c) {
  return text::is(c, text::kPassword);
}
bool isParamChar(char c) {
  return text::is(c, text::kParam);
}
bool isHeaderChar(char c) {
  return text::is(c, text::kHeader);
}

bool validEscapes(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !isHex(s[i + 1]) || !isHex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

Error uriError(const char* why) {
  return Error{400, std::string("Bad URI: ") + why};
}

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
template <typename F> void forEachParam(std::string_view params, F&& f);

// The general URI parser: every scheme, every error with its reason. parseUri() runs the fast
// path below first and comes here only when that one declines.
Result<Uri> parseUriGeneral(std::string_view in) {
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
      if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7f)
        return uriError("bad character");
    return u;
  } else {
    u.scheme = UriScheme::Other;
    for (char c : rest)
      if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7f)
        return uriError("bad character");
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
      if (count == std::size(names))
        tooMany = true;
      else
        names[count++] = n;
    });
    if (duplicate) return uriError("duplicate parameter");
    if (tooMany) return uriError("too many parameters");
    u.params = rest;
  }
  return u;
}

constexpr size_t kBad = std::string_view::npos;

// Scans characters of class k from i, stopping before end or at the first character outside the
// class; %-escapes (RFC 3261 §25.1 escaped = "%" HEXDIG HEXDIG) must lie wholly before end, as
// validEscapes() requires of a component. Returns where it stopped, or kBad on a bad escape.
size_t scanEscaped(const char* b, size_t i, size_t end, uint32_t k) {
  for (;;) {
    i = text::scan(b, i, end, k | text::kNotPct);
    if (i >= end || b[i] != '%') return i;
    if (i + 2 >= end || !text::is(b[i + 1], text::kHex) || !text::is(b[i + 2], text::kHex))
      return kBad;
    i += 3;
  }
}

// Fast path for the URIs routing headers carry: "sip:" / "sips:", no whitespace. One left-to-right
// pass validates and splits at the same time; anything it is not sure about (another scheme, a
// bad character, a duplicate parameter, ...) makes it return false, and parseUriGeneral() then
// decides - so the fast path only has to agree with the general parser on what it accepts.
// The grammar is RFC 3261 §25.1 SIP-URI as parseUriGeneral() implements it:
//   [ user [ ":" password ] "@" ] host [ ":" port ] *( ";" uri-parameter ) [ "?" headers ]
// with the first '@' anywhere ending the userinfo and the first '?' starting the headers.
bool parseSipUriFast(std::string_view in, Uri& u) {
  const char* const b = in.data();
  const size_t n = in.size();
  size_t i;
  if (n > 4 && (b[0] | 0x20) == 's' && (b[1] | 0x20) == 'i' && (b[2] | 0x20) == 'p') {
    if (b[3] == ':') {
      i = 4;
      u.scheme = UriScheme::Sip;
    } else if ((b[3] | 0x20) == 's' && b[4] == ':') {
      i = 5;
      u.scheme = UriScheme::Sips;
    } else {
      return false;
    }
  } else {
    return false;
  }
  u.text = in;
  u.schemeText = std::string_view(b, i - 1);

  // userinfo ends at the first '@' of the whole rest.
  if (const void* at = std::memchr(b + i, '@', n - i)) {
    const size_t a = size_t(static_cast<const char*>(at) - b);
    size_t j = scanEscaped(b, i, a, text::kUser);
    if (j == i || j == kBad) return false;
    u.user = std::string_view(b + i, j - i);
    if (j < a) {
      if (b[j] != ':') return false;
      const size_t ps = ++j;
      if (scanEscaped(b, ps, a, text::kPassword) != a) return false;
      u.password = std::string_view(b + ps, a - ps);
    }
    i = a + 1;
  }

  // host: hostname / IPv4address, or an IPv6 reference in brackets.
  const size_t hs = i;
  if (i < n && b[i] == '[') {
    i = text::scan(b, i + 1, n, text::kIPv6);
    if (i >= n || b[i] != ']' || i - hs < 3) return false;
    ++i;
  } else {
    // Labels must not be empty, except that a trailing dot is allowed.
    for (;;) {
      const size_t ls = i;
      i = text::scan(b, i, n, text::kLabel);
      if (i == n || b[i] != '.') break;
      if (i == ls) return false;
      ++i;
    }
    if (i == hs) return false;
  }
  u.host = std::string_view(b + hs, i - hs);

  // port = 1*5DIGIT, at most 65535
  if (i < n && b[i] == ':') {
    const size_t ps = ++i;
    unsigned port = 0;
    while (i < n && text::isDigit(b[i]) && i - ps < 5) port = port * 10 + unsigned(b[i++] - '0');
    if (i == ps || port > 65535) return false;
    u.port = uint16_t(port);
  }

  // uri-parameters; RFC 3261 §19.1.1: no parameter may appear twice (names compared
  // case-insensitively, as the general parser does).
  if (i < n && b[i] == ';') {
    const size_t ps = i;
    uint32_t nameAt[8], nameLen[8];
    size_t count = 0;
    while (i < n && b[i] == ';') {
      const size_t ns = ++i;
      i = scanEscaped(b, i, n, text::kParamName);
      if (i == kBad) return false;
      const std::string_view name(b + ns, i - ns);
      for (size_t m = 0; m < count; ++m)
        if (text::iequals(std::string_view(b + nameAt[m], nameLen[m]), name)) return false;
      if (count == std::size(nameAt)) return false;
      nameAt[count] = uint32_t(ns);
      nameLen[count++] = uint32_t(i - ns);
      if (i < n && b[i] == '=') {
        i = scanEscaped(b, i + 1, n, text::kParamValue);
        if (i == kBad) return false;
      }
    }
    u.params = std::string_view(b + ps, i - ps);
  }

  // headers: everything after the first '?'.
  if (i < n) {
    if (b[i] != '?') return false;
    const size_t qs = ++i;
    if (scanEscaped(b, qs, n, text::kHeader) != n) return false;
    u.headers = std::string_view(b + qs, n - qs);
  }
  return true;
}
} // namespace

Result<Uri> parseUri(std::string_view in) {
  Uri u;
  if (parseSipUriFast(in, u)) return u;
  return parseUriGeneral(in);
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
template <typename F> void forEachParam(std::string_view params, F&& f) {
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

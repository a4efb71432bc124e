#include "sip/message/headers.h"

#include "sip/message/text.h"

#include <cstring>

namespace verbund::sip {

namespace {
Error bad(const char* what) {
  return Error{400, what};
}

// Skips a quoted string starting at s[i] == '"'; returns index after the closing quote or npos.
// quoted-string body: qdtext / quoted-pair (RFC 3261 §25.1). memchr finds the closing quote;
// only when a backslash comes before it is the body walked character by character.
size_t skipQuoted(std::string_view s, size_t i) {
  const char* const b = s.data();
  const size_t n = s.size();
  ++i;
  for (;;) {
    const void* q = i < n ? std::memchr(b + i, '"', n - i) : nullptr;
    if (!q) break;
    const size_t e = size_t(static_cast<const char*>(q) - b);
    if (!std::memchr(b + i, '\\', e - i)) return e + 1;
    for (; i < e; ++i)
      if (b[i] == '\\') ++i; // may step onto or past the quote, which is then escaped
    if (i == e) return e + 1;
    i = e + 1; // the quote at e was escaped; look for the next one
  }
  return std::string_view::npos;
}

// Validates ";name[=value]" generic-params (RFC 3261 §25.1 generic-param).
bool validParams(std::string_view params) {
  const char* p = params.data();
  const size_t n = params.size();
  size_t i = 0;
  auto skipWs = [&] { i = text::scan(p, i, n, text::kWs); };
  while (i < n) {
    if (p[i] != ';') return false;
    ++i;
    skipWs();
    size_t ns = i;
    i = text::scan(p, i, n, text::kToken);
    if (i == ns) return false;
    skipWs();
    if (i < n && p[i] == '=') {
      ++i;
      skipWs();
      if (i < n && p[i] == '"') {
        i = skipQuoted(params, i);
        if (i == std::string_view::npos) return false;
      } else {
        size_t vs = i;
        // gen-value = token / host / quoted-string; host may be an IPv6 reference
        i = text::scan(p, i, n, text::kGenValue);
        if (i == vs) return false;
      }
      skipWs();
    }
    if (i < n && p[i] != ';') return false;
  }
  return true;
}

} // namespace

std::optional<std::string_view> findParam(std::string_view params, std::string_view name) {
  const char* p = params.data();
  const size_t n = params.size();
  size_t i = 0;
  while (i < n) {
    if (p[i] != ';') {
      ++i;
      continue;
    }
    ++i;
    while (i < n && text::is(p[i], text::kWs)) ++i;
    const size_t ns = i;
    while (i < n && p[i] != '=' && p[i] != ';' && !text::is(p[i], text::kWs)) ++i;
    const size_t nameLen = i - ns;
    while (i < n && text::is(p[i], text::kWs)) ++i;
    std::string_view v;
    if (i < n && p[i] == '=') {
      ++i;
      while (i < n && text::is(p[i], text::kWs)) ++i;
      const size_t vs = i;
      if (i < n && p[i] == '"') {
        size_t e = skipQuoted(params, i);
        if (e == std::string_view::npos) {
          v = params.substr(vs + 1); // unterminated: callers validate with validParams
          i = n;
        } else {
          v = params.substr(vs + 1, e - vs - 2);
          i = e;
        }
      } else {
        while (i < n && p[i] != ';') ++i;
        v = text::trim(params.substr(vs, i - vs));
      }
    }
    if (nameLen == name.size() && text::iequals(std::string_view(p + ns, nameLen), name)) return v;
  }
  return std::nullopt;
}

namespace {
// The general name-addr parser: every form, every error with its reason. parseNameAddr() runs the
// fast path below first and comes here only when that one declines.
Result<NameAddr> parseNameAddrGeneral(std::string_view value) {
  NameAddr na;
  std::string_view v = text::trim(value);
  na.text = v;
  if (v.empty()) return bad("Empty address");
  size_t i = 0;
  std::string_view uriText;
  if (v[0] == '"') {
    size_t e = skipQuoted(v, 0);
    if (e == std::string_view::npos) return bad("Unterminated quoted display name");
    na.displayName = v.substr(1, e - 2);
    i = e;
    while (i < v.size() && text::isWs(v[i])) ++i;
    if (i >= v.size() || v[i] != '<') return bad("Display name without <URI>");
  } else {
    auto lt = v.find('<');
    if (lt != std::string_view::npos) {
      // display-name = *(token LWS). RFC 4475 §3.1.2.15 (baddn): a liberal element may accept
      // other characters (e.g. "Bell, Alexander") in an unquoted display name; we do, except
      // quotes and control characters.
      std::string_view dn = text::trim(v.substr(0, lt));
      for (char c : dn)
        if (c == '"' || (unsigned char)c < 0x20 || c == 0x7f) return bad("Bad display name");
      na.displayName = dn;
      i = lt;
    }
  }
  if (i < v.size() && v[i] == '<') {
    auto gt = v.find('>', i);
    if (gt == std::string_view::npos) return bad("Unterminated <URI>");
    // RFC 4475 §3.1.2.14 (badaspec): tolerate spaces just inside the brackets.
    uriText = text::trim(v.substr(i + 1, gt - i - 1));
    i = gt + 1;
    while (i < v.size() && text::isWs(v[i])) ++i;
    na.params = v.substr(i);
  } else {
    // addr-spec: parameters after ';' belong to the header (RFC 3261 §20.10), and the URI must
    // not contain ',', '?' or ';' itself.
    auto semi = v.find(';');
    uriText = text::trim(v.substr(0, semi));
    if (semi != std::string_view::npos) na.params = v.substr(semi);
    // RFC 4475 §3.1.2.13 (regbadct): a '?' here is unambiguous up to the first ';', so accept it.
    if (uriText.find_first_of(" \t<>\"") != std::string_view::npos)
      return bad("Bad addr-spec (URI needs <>)");
  }
  for (char c : uriText)
    if (text::isWs(c)) return bad("Whitespace inside URI");
  auto uri = parseUri(uriText);
  if (!uri) return uri.error();
  na.uri = uri.value();
  if (!na.params.empty() && !validParams(na.params)) return bad("Bad header parameters");
  return na;
}

// Fast path for well-formed name-addr / addr-spec values (RFC 3261 §25.1): the same splitting as
// parseNameAddrGeneral() with memchr instead of find() and without the separate whitespace pass
// over the URI (no URI scheme accepts whitespace, so parseUri() rejects it anyway). Returns false
// on any error; the general parser then reports it.
bool parseNameAddrFast(std::string_view value, NameAddr& na) {
  const std::string_view v = text::trim(value);
  const char* const b = v.data();
  const size_t n = v.size();
  if (n == 0) return false;
  na.text = v;
  size_t i = 0;
  std::string_view uriText;
  const void* lt = nullptr;
  if (b[0] == '"') {
    size_t e = skipQuoted(v, 0);
    if (e == std::string_view::npos) return false;
    na.displayName = v.substr(1, e - 2);
    i = e;
    while (i < n && text::is(b[i], text::kWs)) ++i;
    if (i >= n || b[i] != '<') return false;
  } else if ((lt = std::memchr(b, '<', n)) != nullptr) {
    // Unquoted display name: see the RFC 4475 §3.1.2.15 note in parseNameAddrGeneral().
    i = size_t(static_cast<const char*>(lt) - b);
    std::string_view dn = text::trim(v.substr(0, i));
    for (char c : dn)
      if (c == '"' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    na.displayName = dn;
  }
  if (i < n && b[i] == '<') {
    const void* gt = std::memchr(b + i, '>', n - i);
    if (!gt) return false;
    size_t g = size_t(static_cast<const char*>(gt) - b);
    uriText = text::trim(v.substr(i + 1, g - i - 1));
    i = g + 1;
    while (i < n && text::is(b[i], text::kWs)) ++i;
    na.params = v.substr(i);
  } else {
    const void* semi = std::memchr(b, ';', n);
    size_t sc = semi ? size_t(static_cast<const char*>(semi) - b) : n;
    uriText = text::trim(v.substr(0, sc));
    if (semi) na.params = v.substr(sc);
  }
  auto uri = parseUri(uriText);
  if (!uri) return false;
  na.uri = *uri;
  return na.params.empty() || validParams(na.params);
}

// Fast path for the parameters of a Via: validation (as validParams()) and extraction of branch,
// received and rport in one pass. Declines quoted values, because the general loop splits those
// at every ';' (quoted or not) and its result must stay what it was.
bool viaParamsFast(Via& via) {
  const char* const p = via.params.data();
  const size_t n = via.params.size();
  size_t i = 0;
  auto skipWs = [&] { i = text::scan(p, i, n, text::kWs); };
  while (i < n) {
    if (p[i] != ';') return false;
    ++i;
    skipWs();
    const size_t ns = i;
    i = text::scan(p, i, n, text::kToken);
    const std::string_view name(p + ns, i - ns);
    if (name.empty()) return false;
    skipWs();
    std::string_view val;
    if (i < n && p[i] == '=') {
      ++i;
      skipWs();
      const size_t vs = i;
      i = text::scan(p, i, n, text::kGenValue);
      if (i == vs) return false; // empty, or a quoted-string
      val = std::string_view(p + vs, i - vs);
      skipWs();
    }
    if (i < n && p[i] != ';') return false;
    // Later duplicates win, as in the general loop.
    switch (name.size()) {
    case 5:
      if (text::iequals(name, "rport")) {
        via.hasRport = true;
        if (!val.empty()) {
          if (val.size() > 5) return false;
          unsigned port = 0;
          for (char c : val) {
            if (!text::isDigit(c)) return false;
            port = port * 10 + unsigned(c - '0');
          }
          if (port > 65535) return false;
          via.rport = uint16_t(port);
        }
      }
      break;
    case 6:
      if (text::iequals(name, "branch")) via.branch = val;
      break;
    case 8:
      if (text::iequals(name, "received")) via.received = val;
      break;
    default:
      break;
    }
  }
  return true;
}
} // namespace

Result<NameAddr> parseNameAddr(std::string_view value) {
  NameAddr na;
  if (parseNameAddrFast(value, na)) return na;
  return parseNameAddrGeneral(value);
}

namespace {
// Fast path for the common Via form "SIP/2.0/<transport> <host>[:<port>][;params]" (RFC 3261
// §20.42, §25.1 via-parm): no whitespace inside sent-protocol, params without quoted strings.
// Returns false for anything else, and parseViaGeneral() decides.
bool parseViaFast(std::string_view value, Via& via) {
  const std::string_view v = text::trim(value);
  const char* const b = v.data();
  const size_t n = v.size();
  if (n < 9 || (b[0] | 0x20) != 's' || (b[1] | 0x20) != 'i' || (b[2] | 0x20) != 'p' ||
      b[3] != '/' || b[4] != '2' || b[5] != '.' || b[6] != '0' || b[7] != '/')
    return false;
  via.text = v;
  via.protocol = v.substr(0, 7);
  size_t i = text::scan(b, 8, n, text::kToken);
  if (i == 8) return false;
  via.transport = v.substr(8, i - 8);
  i = text::scan(b, i, n, text::kWs);
  // sent-by = host [ COLON port ]
  const size_t hs = i;
  if (i < n && b[i] == '[') {
    const void* e = std::memchr(b + i, ']', n - i);
    if (!e) return false;
    i = size_t(static_cast<const char*>(e) - b) + 1;
  } else {
    i = text::scan(b, i, n, text::kHost);
    if (i == hs) return false;
  }
  via.host = v.substr(hs, i - hs);
  i = text::scan(b, i, n, text::kWs);
  if (i < n && b[i] == ':') {
    i = text::scan(b, i + 1, n, text::kWs);
    const size_t ps = i;
    unsigned port = 0;
    while (i < n && text::isDigit(b[i]) && i - ps < 6) port = port * 10 + unsigned(b[i++] - '0');
    if (i == ps || port > 65535) return false;
    via.port = uint16_t(port);
    i = text::scan(b, i, n, text::kWs);
  }
  via.params = v.substr(i);
  return via.params.empty() || viaParamsFast(via);
}

Result<Via> parseViaGeneral(std::string_view value) {
  Via via;
  std::string_view v = text::trim(value);
  via.text = v;
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport (LWS allowed around /)
  size_t i = 0;
  auto token = [&](std::string_view& out) {
    while (i < v.size() && text::isWs(v[i])) ++i;
    size_t s = i;
    while (i < v.size() && text::isTokenChar(v[i])) ++i;
    out = v.substr(s, i - s);
    while (i < v.size() && text::isWs(v[i])) ++i;
    return !out.empty();
  };
  auto slash = [&]() {
    if (i < v.size() && v[i] == '/') {
      ++i;
      return true;
    }
    return false;
  };
  std::string_view name, version;
  size_t protoStart = 0;
  if (!token(name) || !slash() || !token(version) || !slash() || !token(via.transport))
    return bad("Bad Via sent-protocol");
  if (!text::iequals(name, "SIP") || version != "2.0") return bad("Bad Via protocol version");
  via.protocol = v.substr(protoStart, size_t(version.data() + version.size() - v.data()));
  // sent-by = host [ COLON port ]
  size_t hs = i;
  if (i < v.size() && v[i] == '[') {
    auto e = v.find(']', i);
    if (e == std::string_view::npos) return bad("Bad Via host");
    i = e + 1;
  } else {
    while (i < v.size() && (text::isAlnum(v[i]) || v[i] == '-' || v[i] == '.')) ++i;
  }
  via.host = v.substr(hs, i - hs);
  if (via.host.empty()) return bad("Missing Via host");
  while (i < v.size() && text::isWs(v[i])) ++i;
  if (i < v.size() && v[i] == ':') {
    ++i;
    while (i < v.size() && text::isWs(v[i])) ++i;
    size_t ps = i;
    unsigned port = 0;
    while (i < v.size() && text::isDigit(v[i]) && i - ps < 6)
      port = port * 10 + unsigned(v[i++] - '0');
    if (i == ps || port > 65535) return bad("Bad Via port");
    via.port = uint16_t(port);
  }
  while (i < v.size() && text::isWs(v[i])) ++i;
  via.params = v.substr(i);
  if (!via.params.empty()) {
    if (!validParams(via.params)) return bad("Bad Via parameters");
    // One pass over the parameters for the three the core reads.
    std::string_view p = via.params;
    while (!p.empty()) {
      p.remove_prefix(1); // ';' (validParams guarantees the shape)
      auto end = p.find(';');
      std::string_view item = p.substr(0, end);
      auto eq = item.find('=');
      std::string_view n = text::trim(item.substr(0, eq));
      std::string_view val =
          eq == std::string_view::npos ? std::string_view{} : text::trim(item.substr(eq + 1));
      if (n.size() == 6 && text::iequals(n, "branch")) {
        via.branch = val;
      } else if (n.size() == 8 && text::iequals(n, "received")) {
        via.received = val;
      } else if (n.size() == 5 && text::iequals(n, "rport")) {
        via.hasRport = true;
        if (!val.empty()) {
          auto num = parseUint(val);
          if (!num || *num > 65535) return bad("Bad Via rport");
          via.rport = uint16_t(*num);
        }
      }
      if (end == std::string_view::npos) break;
      p = p.substr(end);
    }
  }
  return via;
}

} // namespace

Result<Via> parseVia(std::string_view value) {
  Via via;
  if (parseViaFast(value, via)) return via;
  return parseViaGeneral(value);
}

Result<uint32_t> parseUint(std::string_view value) {
  std::string_view v = text::trim(value);
  if (v.empty() || v.size() > 10) return bad("Bad number");
  uint64_t n = 0;
  for (char c : v) {
    if (!text::isDigit(c)) return bad("Bad number");
    n = n * 10 + uint64_t(c - '0');
  }
  if (n > 0xffffffffull) return bad("Number too large");
  return uint32_t(n);
}

Result<CSeq> parseCSeq(std::string_view value) {
  std::string_view v = text::trim(value);
  size_t i = 0;
  while (i < v.size() && text::isDigit(v[i])) ++i;
  if (i == 0) return bad("Bad CSeq number");
  auto n = parseUint(v.substr(0, i));
  // RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
  if (!n || *n >= 0x80000000u) return bad("CSeq number too large");
  size_t ws = i;
  while (i < v.size() && text::isWs(v[i])) ++i;
  if (i == ws) return bad("Bad CSeq");
  CSeq c;
  c.seq = *n;
  c.methodText = v.substr(i);
  if (!text::isToken(c.methodText)) return bad("Bad CSeq method");
  c.method = methodFromName(c.methodText);
  return c;
}

} // namespace verbund::sip

#include "sip/message/headers.h"

#include "sip/message/text.h"

namespace verbund::sip {

namespace {
Error bad(const char* what) { return Error{400, what}; }

// Skips a quoted string starting at s[i] == '"'; returns index after the closing quote or npos.
size_t skipQuoted(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// Validates ";name[=value]" generic-params (RFC 3261 §25.1 generic-param).
bool validParams(std::string_view p) {
  size_t i = 0;
  while (i < p.size()) {
    if (p[i] != ';') return false;
    ++i;
    while (i < p.size() && text::isWs(p[i])) ++i;
    size_t ns = i;
    while (i < p.size() && text::isTokenChar(p[i])) ++i;
    if (i == ns) return false;
    while (i < p.size() && text::isWs(p[i])) ++i;
    if (i < p.size() && p[i] == '=') {
      ++i;
      while (i < p.size() && text::isWs(p[i])) ++i;
      if (i < p.size() && p[i] == '"') {
        i = skipQuoted(p, i);
        if (i == std::string_view::npos) return false;
      } else {
        size_t vs = i;
        // gen-value = token / host / quoted-string; host may be an IPv6 reference
        while (i < p.size() && (text::isTokenChar(p[i]) || p[i] == ':' || p[i] == '[' ||
                                p[i] == ']'))
          ++i;
        if (i == vs) return false;
      }
      while (i < p.size() && text::isWs(p[i])) ++i;
    }
    if (i < p.size() && p[i] != ';') return false;
  }
  return true;
}
} // namespace

std::optional<std::string_view> findParam(std::string_view params, std::string_view name) {
  size_t i = 0;
  while (i < params.size()) {
    if (params[i] != ';') {
      ++i;
      continue;
    }
    ++i;
    while (i < params.size() && text::isWs(params[i])) ++i;
    size_t ns = i;
    while (i < params.size() && params[i] != '=' && params[i] != ';' && !text::isWs(params[i]))
      ++i;
    std::string_view n = params.substr(ns, i - ns);
    while (i < params.size() && text::isWs(params[i])) ++i;
    std::string_view v;
    if (i < params.size() && params[i] == '=') {
      ++i;
      while (i < params.size() && text::isWs(params[i])) ++i;
      size_t vs = i;
      if (i < params.size() && params[i] == '"') {
        size_t e = skipQuoted(params, i);
        if (e == std::string_view::npos) {
          v = params.substr(vs + 1);  // unterminated: callers validate with validParams
          i = params.size();
        } else {
          v = params.substr(vs + 1, e - vs - 2);
          i = e;
        }
      } else {
        while (i < params.size() && params[i] != ';') ++i;
        v = text::trim(params.substr(vs, i - vs));
      }
    }
    if (text::iequals(n, name)) return v;
  }
  return std::nullopt;
}

Result<NameAddr> parseNameAddr(std::string_view value) {
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

Result<Via> parseVia(std::string_view value) {
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
    while (i < v.size() && text::isDigit(v[i]) && i - ps < 6) port = port * 10 + unsigned(v[i++] - '0');
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
      p.remove_prefix(1);  // ';' (validParams guarantees the shape)
      auto end = p.find(';');
      std::string_view item = p.substr(0, end);
      auto eq = item.find('=');
      std::string_view n = text::trim(item.substr(0, eq));
      std::string_view val = eq == std::string_view::npos ? std::string_view{}
                                                          : text::trim(item.substr(eq + 1));
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

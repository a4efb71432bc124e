#pragma once
// Typed header values. Every string_view points into the owning Message's buffer.
#include "base/result.h"
#include "sip/message/text.h"
#include "sip/message/types.h"
#include "sip/message/uri.h"

#include <cstdint>
#include <optional>
#include <string_view>

namespace verbund::sip {

// Generic ";name=value" parameter list lookup on a raw parameter string that starts with ';'.
std::optional<std::string_view> findParam(std::string_view params, std::string_view name);

// name-addr or addr-spec with header parameters (From, To, Contact, Route, Record-Route, ...).
struct NameAddr {
  std::string_view displayName; // without quotes, still backslash-escaped; may be empty
  Uri uri;
  std::string_view params; // raw ";tag=x;expires=3" after the address, or empty
  std::string_view text;   // whole value as written

  std::optional<std::string_view> param(std::string_view name) const {
    return findParam(params, name);
  }
  std::string_view tag() const { return param("tag").value_or(std::string_view{}); }
};
Result<NameAddr> parseNameAddr(std::string_view value);

struct Via {
  std::string_view protocol;  // "SIP/2.0"
  std::string_view transport; // "UDP", "TCP", "TLS", "SCTP", "WS", ... as written
  std::string_view host;      // sent-by host, IPv6 with brackets
  uint16_t port = 0;          // 0 when absent
  std::string_view params;    // raw ";branch=...;rport"
  std::string_view branch;    // empty when absent
  std::string_view received;  // empty when absent
  bool hasRport = false;
  std::optional<uint16_t> rport; // value when present with a value
  std::string_view text;

  std::optional<std::string_view> param(std::string_view name) const {
    return findParam(params, name);
  }
  bool rfc3261Branch() const { return branch.substr(0, kMagicCookie.size()) == kMagicCookie; }
};
Result<Via> parseVia(std::string_view value);

struct CSeq {
  uint32_t seq = 0;
  Method method = Method::Unknown;
  std::string_view methodText;
};
Result<CSeq> parseCSeq(std::string_view value);

// Parses a decimal header (Content-Length, Max-Forwards, Expires); rejects overflow and junk.
Result<uint32_t> parseUint(std::string_view value);

// Authorization / Proxy-Authorization / WWW-Authenticate / Proxy-Authenticate:
// scheme followed by comma-separated auth-params. Values of quoted params are unquoted views
// (still backslash-escaped: use unquote() when escapes matter).
struct AuthParams {
  std::string_view scheme; // "Digest"
  struct Param {
    std::string_view name;
    std::string_view value;
    bool quoted = false;
  };
  static constexpr size_t kMaxParams = 24;
  Param items[kMaxParams];
  size_t count = 0;

  std::optional<std::string_view> get(std::string_view name) const; // case-insensitive
};
Result<AuthParams> parseAuthParams(std::string_view value);

// Calls emit(element) for each comma-separated element of a list header value, splitting only
// outside quoted strings and <...> (RFC 3261 §7.3.1). Empty elements are skipped. Returns false
// on unbalanced quotes or brackets, or as soon as emit returns false.
template <typename F> bool forEachListElement(std::string_view v, F&& emit) {
  size_t start = 0;
  bool inQuote = false;
  int angle = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (inQuote) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inQuote = false;
      continue;
    }
    if (c == '"')
      inQuote = true;
    else if (c == '<')
      ++angle;
    else if (c == '>')
      --angle;
    else if (c == ',' && angle == 0) {
      auto e = text::trim(v.substr(start, i - start));
      if (!e.empty() && !emit(e)) return false;
      start = i + 1;
    }
  }
  if (inQuote || angle != 0) return false;
  auto e = text::trim(v.substr(start));
  return e.empty() || emit(e);
}

// Removes backslash escapes of a quoted-string body.
std::string unquote(std::string_view quotedBody);

} // namespace verbund::sip

#pragma once
// SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966). All fields are views into text that the
// caller keeps alive (normally the Message's buffer).
#include "base/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace verbund::sip {

enum class UriScheme : uint8_t { Sip, Sips, Tel, Other };

struct Uri {
  UriScheme scheme = UriScheme::Sip;
  std::string_view schemeText; // as written
  std::string_view user;       // still %-escaped; tel: the number
  std::string_view password;
  std::string_view host;    // IPv6 references keep their brackets: "[::1]"
  uint16_t port = 0;        // 0 when absent
  std::string_view params;  // raw ";a=b;lr" including the leading ';', or empty
  std::string_view headers; // raw "?a=b&c=d" without the '?', or empty
  std::string_view text;    // the whole URI as written

  // Parameter lookup (case-insensitive name). A flag parameter ("lr") yields an empty view;
  // absence yields nullopt.
  std::optional<std::string_view> param(std::string_view name) const;
  bool hasParam(std::string_view name) const { return param(name).has_value(); }
  // transport param lower-cased semantic: "udp", "tcp", "tls", ... or empty.
  std::string_view transportParam() const;
  bool isSecure() const { return scheme == UriScheme::Sips; }
};

// Parses a URI from text (no surrounding <>). Errors carry a reason fit for a 400 phrase.
Result<Uri> parseUri(std::string_view text);

// RFC 3261 §19.1.4 URI comparison (user case-sensitive, host case-insensitive, parameters by the
// rules of that section).
bool uriEquals(const Uri& a, const Uri& b);

// Unescapes %XX sequences; returns nullopt on malformed escapes.
std::optional<std::string> unescape(std::string_view s);

} // namespace verbund::sip

#pragma once
// Which browsers' requests the admin API accepts (pure functions, no I/O).
//
// DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 talks to the admin
// server "same-origin"; its requests carry Host: evil.example. Cross-site requests: a page of
// any site may POST to the admin server; its requests carry that site's Origin. So:
// - hostAllowed: a Host header names an IP literal, "localhost", or a host of one of the
//   configured origins (admin.allowed_origins). No Host header (non-browser clients) passes.
// - originAllowed: no Origin header (non-browser clients) passes; "null" never does; otherwise the
//   Origin must be one of the configured origins, or the request's own Host (same origin) when
//   that Host is allowed.
#include <string>
#include <string_view>
#include <vector>

namespace verbund::http {

// "https://pbx.example.com" or "http://[::1]:8080": scheme, "://", host, optional port; no path.
bool validOrigin(std::string_view origin);
// The host of "host", "host:port", "[v6]" or "[v6]:port" (brackets kept off), lower-case.
std::string hostOf(std::string_view hostPort);

bool hostAllowed(std::string_view hostHeader, const std::vector<std::string>& allowedOrigins);
bool originAllowed(std::string_view origin, std::string_view hostHeader,
                   const std::vector<std::string>& allowedOrigins);

} // namespace verbund::http

#pragma once
// The headers a command-line client of the admin API sends: a bearer token, or the session
// cookie with its CSRF token (the CLI's commands and `verbund doctor`).
#include <httplib.h>

#include <string>

namespace verbund::app {

inline httplib::Headers adminApiHeaders(const std::string& bearer, const std::string& cookie,
                                        const std::string& csrf) {
  httplib::Headers h;
  if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
  if (!cookie.empty()) {
    h.emplace("Cookie", cookie);
    h.emplace("X-CSRF-Token", csrf);
  }
  return h;
}

} // namespace verbund::app

#include "http/origin_check.h"

#include "base/net.h"
#include "http/request_parser.h"

#include <algorithm>

namespace verbund::http {

namespace {

std::string lowered(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; });
  return out;
}

// "https://pbx.example.com:8443" -> "pbx.example.com:8443"; "" when not an origin.
std::string_view authorityOf(std::string_view origin) {
  auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return {};
  return origin.substr(sep + 3);
}

} // namespace

bool validOrigin(std::string_view origin) {
  auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  auto scheme = origin.substr(0, sep);
  if (!equalsIgnoreCase(scheme, "http") && !equalsIgnoreCase(scheme, "https")) return false;
  auto authority = origin.substr(sep + 3);
  if (authority.empty() || hostOf(authority).empty()) return false;
  return authority.find_first_of("/?#@ \t") == std::string_view::npos;
}

std::string hostOf(std::string_view hostPort) {
  if (hostPort.starts_with('[')) {
    auto close = hostPort.find(']');
    if (close == std::string_view::npos) return {};
    auto rest = hostPort.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return {};
    return lowered(hostPort.substr(1, close - 1));
  }
  auto colon = hostPort.rfind(':');
  if (colon != std::string_view::npos) {
    auto port = hostPort.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string_view::npos) return {};
    hostPort = hostPort.substr(0, colon);
  }
  return lowered(hostPort);
}

bool hostAllowed(std::string_view hostHeader, const std::vector<std::string>& allowedOrigins) {
  if (hostHeader.empty()) return true;
  std::string host = hostOf(hostHeader);
  if (host.empty()) return false;
  if (host == "localhost" || IpAddress::parse(host)) return true;
  return std::any_of(allowedOrigins.begin(), allowedOrigins.end(),
                     [&](const std::string& o) { return hostOf(authorityOf(o)) == host; });
}

bool originAllowed(std::string_view origin, std::string_view hostHeader,
                   const std::vector<std::string>& allowedOrigins) {
  if (origin.empty()) return true;
  if (!validOrigin(origin)) return false; // also "null" (sandboxed frames, file: pages)
  std::string o = lowered(origin);
  for (const auto& a : allowedOrigins)
    if (lowered(a) == o) return true;
  return !hostHeader.empty() && lowered(authorityOf(o)) == lowered(hostHeader) &&
         hostAllowed(hostHeader, allowedOrigins);
}

} // namespace verbund::http

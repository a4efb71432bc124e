#include "http/static_assets.h"

#include <utility>

namespace verbund::http {

std::optional<StaticAsset> findAsset(std::string_view path) {
  if (path.empty() || path == "/") path = "/index.html";
  for (const auto& a : embeddedAssets())
    if (a.path == path) return a;
  return std::nullopt;
}

std::span<const std::pair<std::string_view, std::string_view>> uiSecurityHeaders() {
  // Everything the UI loads comes from the node itself: no inline script or style, no frames.
  static const std::pair<std::string_view, std::string_view> kHeaders[] = {
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'"},
      {"X-Frame-Options", "DENY"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
  };
  return kHeaders;
}

} // namespace verbund::http

#pragma once
// The admin web UI (web/ of the source tree), built into the binary by cmake/embed_web.cmake.
// The UI is plain HTML, CSS and JavaScript modules; it is a client of the REST API only.
#include <optional>
#include <span>
#include <string_view>

namespace verbund::http {

struct StaticAsset {
  std::string_view path;        // "/index.html", "/js/app.js", ...
  std::string_view contentType; // from the file name's extension
  std::string_view data;
  std::string_view etag; // quoted, from the content's SHA-256
};

// Every embedded file (generated code).
std::span<const StaticAsset> embeddedAssets();

// The asset for a request path: "/" is index.html; nullopt for anything else not embedded
// (including paths with "..", which are never generated).
std::optional<StaticAsset> findAsset(std::string_view path);

// The security headers every UI response carries (name, value).
std::span<const std::pair<std::string_view, std::string_view>> uiSecurityHeaders();

} // namespace verbund::http

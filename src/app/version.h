#pragma once
// The product version: shown by `verbund version`, in the status API, to federation peers and in
// backup manifests (a backup of a newer major version is refused by `verbund restore`).
#include <string_view>

namespace verbund::app {

#ifndef VERBUND_VERSION
#error "VERBUND_VERSION comes from project(VERSION) in CMakeLists.txt (target verbund_app_backup)"
#endif
inline constexpr std::string_view kProductVersion = VERBUND_VERSION;

} // namespace verbund::app

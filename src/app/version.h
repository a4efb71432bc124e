#pragma once
// The product version: shown by `verbund version`, in the status API, to federation peers and in
// backup manifests (a backup of a newer major version is refused by `verbund restore`).
#include <string_view>

namespace verbund::app {

inline constexpr std::string_view kProductVersion = "0.1.0";

} // namespace verbund::app

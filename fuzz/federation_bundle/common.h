#pragma once
// Shared by the fuzz target and its seed generator.
#include "federation/trust/ossl.h"

#include <string_view>

namespace verbund::federation::fuzz {

inline constexpr std::string_view kPassphrase = "fuzz passphrase 0123";
inline constexpr int kKdfIterations = 1000; // keeps each decrypt attempt cheap
// 2025-06-01 00:00:00 UTC: the fuzzer's "now", so seeds do not expire.
inline SysTime fixedNow() {
  return detail::fromUnixSeconds(1748736000);
}

} // namespace verbund::federation::fuzz

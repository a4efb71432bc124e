// Feeds arbitrary Diversion header values (RFC 5806) to the call engine's codec: the input is one
// value; a parsed entry must respect the bounds and survive format + parse unchanged.
#include "pbx/calls/diversion.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace verbund::pbx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto d = parseDiversion(input);
  if (!d) return 0;
  if (d->user.empty() || d->user.size() > kMaxDiversionUser) __builtin_trap();
  if (d->counter == 0 || d->counter > kMaxDiversionCounter) __builtin_trap();
  auto again = parseDiversion(formatDiversion(*d, "pbx.example"));
  if (!again || again->user != d->user || again->reason != d->reason ||
      again->counter != d->counter)
    __builtin_trap();
  return 0;
}

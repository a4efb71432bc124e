// Fuzzes "calls-held" (calls_held.h), the list of cross-site calls a peer sends on link up. The
// bytes are one JSON document. An accepted message must hold a valid owner and at most
// kMaxCallsHeld sorted, distinct, printable ids, and survive its own JSON form unchanged.
// Nothing may crash, leak or throw.
#include "federation/replication/calls_held.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund::federation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  auto held = callsHeldFromJson(j);
  if (!held) return 0;
  if (held->owner.empty() || held->calls.size() > kMaxCallsHeld) std::abort();
  if (std::adjacent_find(held->calls.begin(), held->calls.end(), [](const auto& a, const auto& b) {
        return !(a < b);
      }) != held->calls.end())
    std::abort();
  for (const auto& id : held->calls)
    if (id.empty() || id.size() > kMaxHeldIdBytes) std::abort();
  auto again = callsHeldFromJson(callsHeldMessage(held->owner, held->calls));
  if (!again || again->owner != held->owner || again->calls != held->calls) std::abort();
  return 0;
}

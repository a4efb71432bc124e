// Feeds arbitrary SDP bodies (from phones, carriers and other nodes) to the call engine's SDP
// helper: parse, hold detection (music on hold) and the pickup answer built from the body against
// itself. Nothing may crash; an answer the helper builds must parse again with the same streams.
#include "pbx/calls/sdp.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace verbund::pbx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto d = sdp::parse(input);
  bool held = sdp::holdsOtherParty(input);
  if (!d) {
    if (held) __builtin_trap(); // an unparsable body never holds
    return 0;
  }
  if (held != sdp::holdsOtherParty(*d)) __builtin_trap();
  for (const auto& m : d->media) (void)sdp::directionOf(*d, m);
  auto answer = sdp::answerFrom(*d, *d, 1);
  if (!answer) return 0;
  auto back = sdp::parse(*answer);
  if (!back || back->media.size() != d->media.size()) __builtin_trap();
  return 0;
}

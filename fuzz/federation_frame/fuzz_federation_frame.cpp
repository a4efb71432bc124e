// Fuzzes the control plane's wire format: bytes from a peer go through FrameDecoder (fed in
// pieces whose size the first input byte chooses, so frames split across reads are covered), and
// every decoded message through helloFromJson and refusalFromJson. A valid hello or refusal must
// survive a round trip through toJson/encodeFrame/FrameDecoder unchanged. Nothing may crash,
// leak or throw.
#include "federation/control/wire.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

using namespace verbund::federation;

namespace {

void roundTrip(const nlohmann::json& j) {
  std::string frame = encodeFrame(j);
  FrameDecoder d;
  std::vector<nlohmann::json> out;
  if (!d.feed(frame, out) || out.size() != 1 || out[0] != j) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = static_cast<size_t>(data[0]) + 1;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  FrameDecoder decoder;
  std::vector<nlohmann::json> messages;
  while (!bytes.empty()) {
    size_t n = std::min(piece, bytes.size());
    if (!decoder.feed(bytes.substr(0, n), messages)) break;
    bytes.remove_prefix(n);
  }
  for (const auto& m : messages) {
    if (auto h = helloFromJson(m)) {
      roundTrip(toJson(*h));
      auto again = helloFromJson(toJson(*h));
      if (!again || toJson(*again) != toJson(*h)) std::abort();
    }
    if (auto r = refusalFromJson(m)) roundTrip(toJson(*r));
  }
  return 0;
}

// Feeds arbitrary bytes to StreamFramer in fuzzer-chosen chunks. Layout: byte 0 selects small
// limits or the defaults, the next up to 8 bytes are chunk sizes (cycled; 0 means 1), the rest is
// the stream. Checks the framer's own promises besides memory safety.
#include "sip/transport/framing.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using verbund::sip::StreamFramer;
  if (size < 2) return 0;
  const bool small = data[0] & 1;
  const size_t maxHeader = small ? 64 : StreamFramer::kDefaultMaxHeaderBytes;
  const size_t maxMessage = small ? 256 : StreamFramer::kDefaultMaxMessageBytes;
  size_t nSizes = std::min<size_t>(8, size_t(data[0] >> 5) + 1);
  nSizes = std::min(nSizes, size - 1);
  const uint8_t* sizes = data + 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 1 + nSizes), size - 1 - nSizes);

  StreamFramer f(maxHeader, maxMessage);
  size_t pos = 0, chunk = 0, total = 0;
  while (pos < stream.size()) {
    size_t n = std::max<size_t>(1, sizes[chunk++ % nSizes]);
    n = std::min(n, stream.size() - pos);
    f.feed(stream.substr(pos, n));
    pos += n;
    for (;;) {
      auto fr = f.next();
      if (fr.kind == StreamFramer::Kind::NeedMore) break;
      if (fr.kind == StreamFramer::Kind::Error) {
        if (f.error().empty()) std::abort();
        return 0;
      }
      if (fr.kind == StreamFramer::Kind::Message) {
        if (fr.message.size() > maxMessage || fr.message.empty()) std::abort();
        total += fr.message.size();
      }
    }
    // Only one partial message plus the last chunk may stay buffered.
    if (f.buffered() > maxMessage + 256) std::abort();
  }
  if (total > stream.size()) std::abort();
  return 0;
}

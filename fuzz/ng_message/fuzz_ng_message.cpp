// Fuzzes the ng control protocol's codec: a datagram from an rtpengine instance (or anyone who
// can reach the client's socket) goes through decodeNgMessage, and the payload alone through
// bencode::decode with small limits. The decoder accepts only canonical bencode, so whatever it
// accepts must encode back to exactly the input bytes. Nothing may crash, leak or throw.
#include "media/bencode.h"
#include "media/ng_message.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund::media;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto m = decodeNgMessage(in)) {
    if (encodeNgMessage(m->cookie, m->dict) != in) std::abort();
  }
  bencode::Limits small;
  small.maxDepth = 4;
  small.maxItems = 64;
  small.maxStringLength = 256;
  if (auto v = bencode::decode(in, small)) {
    if (bencode::encode(*v) != in) std::abort();
    auto again = bencode::decode(bencode::encode(*v), small);
    if (!again || !(*again == *v)) std::abort();
  }
  return 0;
}

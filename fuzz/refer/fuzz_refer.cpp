// Feeds arbitrary text to the transfer codecs (src/pbx/calls/refer.h): as a Refer-To value, as a
// Replaces value and as a sipfrag body. What parses must respect the documented bounds, and a
// sipfrag the node builds must read back with its status.
#include "pbx/calls/refer.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund::pbx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto t = parseReferTo(input)) {
    if (t->user.empty() || t->user.size() > kMaxReferUser) std::abort();
    if (t->replaces &&
        (t->replaces->callId.empty() || t->replaces->toTag.empty() || t->replaces->fromTag.empty()))
      std::abort();
  }
  if (auto r = parseReplaces(input)) {
    if (r->callId.size() > kMaxReplacesPart || r->toTag.size() > kMaxReplacesPart ||
        r->fromTag.size() > kMaxReplacesPart)
      std::abort();
  }
  (void)sipfragStatus(input);
  int status = size ? 100 + data[0] % 600 : 200;
  if (sipfragStatus(sipfrag(status, input)) != status) std::abort();
  return 0;
}

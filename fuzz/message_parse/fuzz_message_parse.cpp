// Fuzzes the SIP message parser as datagram and as framed stream message. Every accepted message
// must serialize and re-parse to the same routing fields; every rejected request must yield an
// error response that itself parses.
#include "sip/message/builder.h"
#include "sip/message/message.h"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace verbund::sip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  for (bool stream : {false, true}) {
    ParseOptions opt;
    opt.stream = stream;
    auto r = parseMessage(input, opt);
    if (!r.ok()) {
      std::string resp = buildErrorResponse(input, r.error);
      if (!resp.empty()) {
        auto back = parseMessage(resp);
        (void)back;
      }
      continue;
    }
    const Message& m = *r.message;
    for (const auto& h : m.headers()) (void)h.value.size();
    (void)m.header("X-Unknown");
    std::string wire = m.serialize();
    auto again = parseMessage(wire, ParseOptions{});
    if (!again.ok()) continue; // a datagram body may legally differ once re-framed
    const Message& a = *again.message;
    if (a.callId() != m.callId() || a.cseq().seq != m.cseq().seq || a.fromTag() != m.fromTag() ||
        a.toTag() != m.toTag() || a.branch() != m.branch())
      std::abort();
    if (m.isRequest()) {
      std::string resp = responseTo(m, 200, {}, "t").finish();
      if (!parseMessage(resp).ok()) std::abort();
    }
  }
  return 0;
}

// Feeds arbitrary header values to the RFC 4028 codecs of the dialog layer: the input is split at
// newlines into the values of Session-Expires, Min-SE, Supported and Allow of an INVITE; when the
// message parses, every codec runs on it and the session-timer deadlines are checked for sanity.
#include "sip/dialog/session_timer.h"
#include "sip/message/message.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace verbund;
using namespace verbund::sip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view values[4];
  for (auto& v : values) {
    size_t nl = input.find('\n');
    v = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  }
  std::string text =
      "INVITE sip:100@192.0.2.1 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-fuzz\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.9>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\n"
      "Call-ID: fuzz\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.9>\r\n";
  const char* names[4] = {"Session-Expires", "Min-SE", "Supported", "Allow"};
  for (int i = 0; i < 4; ++i) text.append(names[i]).append(": ").append(values[i]).append("\r\n");
  text.append("Content-Length: 0\r\n\r\n");
  auto parsed = parseMessage(std::move(text));
  if (!parsed.ok()) return 0;
  const Message& m = *parsed.message;
  if (auto se = sessionExpiresOf(m)) {
    // The deadlines must stay inside the interval and never be negative.
    Duration refresh = sessionRefreshDelay(se->seconds), expiry = sessionExpiryDelay(se->seconds);
    if (refresh.count() < 0 || expiry.count() < 0) __builtin_trap();
    if (se->seconds > 0 && uint64_t(expiry.count()) > uint64_t(se->seconds) * 1000)
      __builtin_trap();
    if (formatSessionExpires(se->seconds, se->refresher).empty()) __builtin_trap();
  }
  (void)minSEOf(m);
  (void)hasOptionTag(m, HeaderId::Supported, "timer");
  (void)allowsMethod(m, "UPDATE");
  return 0;
}

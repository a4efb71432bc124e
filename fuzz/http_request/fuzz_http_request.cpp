// Fuzzes the admin server's request reading: bytes -> RequestParser (fed in pieces whose size the
// first byte picks, then the pipelined rest as the next request) -> the Origin/Host checks. The
// limits must hold whatever the split: the body never exceeds maxBodyBytes, a failure is sticky.
#include "http/origin_check.h"
#include "http/request_parser.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// Returns the bytes not consumed once the request is complete.
std::string_view parseOne(http::RequestParser& p, std::string_view in, size_t step) {
  const size_t limit = 4096;
  while (!in.empty() && !p.done() && !p.failed()) {
    auto piece = in.substr(0, step);
    size_t used = p.feed(piece);
    check(used <= piece.size());
    check(p.request().body.size() <= limit);
    in.remove_prefix(used);
    if (used < piece.size()) break;
  }
  if (p.failed()) {
    check(p.errorStatus() >= 400 && p.errorStatus() < 600 && !p.errorMessage().empty());
    check(p.feed("x") == 0);
  }
  if (p.done()) {
    const auto& r = p.request();
    check(!r.method.empty() && !r.path.empty());
    (void)http::hostAllowed(r.headerValue("Host"), {"https://pbx.example.com"});
    (void)http::originAllowed(r.headerValue("Origin"), r.headerValue("Host"), {});
  }
  return in;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = size_t(data[0] % 64) + 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  http::RequestLimits limits;
  limits.maxHeadBytes = 2048;
  limits.maxHeaders = 16;
  limits.maxBodyBytes = 4096;
  http::RequestParser p(limits);
  auto rest = parseOne(p, in, step);
  if (p.done()) {
    p.reset();
    (void)parseOne(p, rest, step);
  }
  return 0;
}

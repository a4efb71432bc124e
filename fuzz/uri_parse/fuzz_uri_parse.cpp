// Fuzzes URI, name-addr, Via and CSeq parsing and URI comparison.
#include "sip/message/headers.h"
#include "sip/message/uri.h"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace verbund::sip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  auto u = parseUri(s);
  if (u.ok()) {
    (void)u->param("transport");
    (void)u->param("lr");
    if (!uriEquals(*u, *u) && u->scheme != UriScheme::Other) {
      // A URI whose escapes are valid must equal itself.
      if (unescape(u->user) && unescape(u->password)) std::abort();
    }
    (void)unescape(u->user);
  }
  auto na = parseNameAddr(s);
  if (na.ok()) (void)na->tag();
  auto v = parseVia(s);
  if (v.ok()) (void)v->param("maddr");
  (void)parseCSeq(s);
  (void)parseUint(s);
  (void)findParam(s, "tag");
  return 0;
}

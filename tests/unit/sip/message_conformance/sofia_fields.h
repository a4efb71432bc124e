#pragma once
// Field extraction with Debian's sofia-sip parser (libsofia-sip-ua), the reference the
// differential test compares our parser against. Only built when pkg-config finds sofia-sip-ua.
#include "message_fields.h"

#include <string_view>

namespace verbund::sip::conformance {

struct SofiaFields : MessageFields {
  // Headers sofia could not parse and kept as "erroneous" (sip_error list), e.g. "Contact".
  std::string erroneousHeaders;
};

// Parses `data` as one complete message (msg_make with sip_default_mclass(), no flags).
SofiaFields sofiaFields(std::string_view data);

} // namespace verbund::sip::conformance

#pragma once
// Field-by-field comparison of two parsers' views of one message.
#include "message_fields.h"

#include <string>
#include <string_view>
#include <vector>

namespace verbund::sip::conformance {

// Request-URI normalisation applied to both sides before comparing. sofia-sip's url_d() decodes
// %XX escapes whose character may appear unescaped ("%75se%72" -> "user", "%2f" -> "/"), our
// parser reports the URI as written. We decode escapes of RFC 3986/3261 unreserved characters
// (ALPHA DIGIT - _ . ! ~ * ' ( )) and of '/' on both sides; nothing else (case, parameter
// order, reserved escapes) is touched.
std::string normalizeUri(std::string_view uri);

// Differences between `ours` and `reference`, one human-readable line each; empty when they
// agree. Both are expected to be parsed; a parse failure on either side is reported as a
// difference.
std::vector<std::string> compareFields(const MessageFields& ours, const MessageFields& reference);

} // namespace verbund::sip::conformance

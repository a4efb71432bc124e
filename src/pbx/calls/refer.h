#pragma once
// Codecs of call transfer (RFC 3515 REFER, RFC 3891 Replaces, RFC 3420 sipfrag). Pure: no I/O,
// no clock; every input is untrusted (a phone's REFER) and fuzzed (fuzz/refer).
#include "base/result.h"

#include <optional>
#include <string>
#include <string_view>

namespace verbund::pbx {

// RFC 3891 §6.1: Replaces = callid *(SEMI replaces-param); exactly one to-tag and one from-tag.
struct ReplacesValue {
  std::string callId, toTag, fromTag;
  bool earlyOnly = false;
};
Result<ReplacesValue> parseReplaces(std::string_view value);

// RFC 3515 §2.1: Refer-To = ( name-addr / addr-spec ) *(SEMI generic-param). The target's user
// part (unescaped: a dialled string) and, for an attended transfer, the Replaces carried as an
// escaped URI header (RFC 3891 §5, "?Replaces=...").
struct ReferTarget {
  std::string user; // unescaped, without visual separators
  std::string host;
  std::optional<ReplacesValue> replaces;
};
Result<ReferTarget> parseReferTo(std::string_view value);

inline constexpr size_t kMaxReferUser = 64;
inline constexpr size_t kMaxReplacesPart = 256; // Call-ID and each tag

// RFC 3515 §2.4.5: the body of a NOTIFY of the refer event: the status line of the response the
// referred request got ("SIP/2.0 180 Ringing").
std::string sipfrag(int status, std::string_view reason = {});
// The status code of a sipfrag body (its first line), for tests and the fuzz target.
std::optional<int> sipfragStatus(std::string_view body);

} // namespace verbund::pbx

#pragma once
// RFC 4028 header codecs for the INVITE usage: Session-Expires, Min-SE, the option-tag lists and
// Allow, plus the two deadlines of the session timer. Pure functions: no I/O, no clock.
#include "base/clock.h"
#include "sip/message/message.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace verbund::sip {

// RFC 4028 §4: who refreshes, relative to the transaction that carries the header.
enum class RefresherParam : uint8_t { Unspecified, Uac, Uas };

struct SessionExpiresValue {
  uint32_t seconds = 0;
  RefresherParam refresher = RefresherParam::Unspecified;
};

// RFC 4028 §4: Session-Expires = delta-seconds *(SEMI se-params). nullopt when absent or not a
// number (a malformed value is treated as absent).
std::optional<SessionExpiresValue> sessionExpiresOf(const Message& m);
// RFC 4028 §5: Min-SE = delta-seconds *(SEMI generic-param).
std::optional<uint32_t> minSEOf(const Message& m);
// "1800;refresher=uac"
std::string formatSessionExpires(uint32_t seconds, RefresherParam refresher);

// RFC 3261 §20.37 / §20.32: whether a Supported or Require header of `m` lists `tag`.
bool hasOptionTag(const Message& m, HeaderId list, std::string_view tag);
// RFC 3261 §20.5: whether the Allow headers of `m` list `method`; nullopt without Allow header.
std::optional<bool> allowsMethod(const Message& m, std::string_view method);

// RFC 4028 §10: the refresher refreshes at half the interval ...
Duration sessionRefreshDelay(uint32_t seconds);
// ... and the other side ends the session when no refresh came by SE - min(32, SE/3) seconds.
Duration sessionExpiryDelay(uint32_t seconds);

} // namespace verbund::sip

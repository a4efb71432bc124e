#pragma once
// rtpengine's ng control protocol on the wire: one UDP datagram = a cookie, one space, and a
// bencoded dictionary. The cookie is the client's; rtpengine echoes it in its reply and answers a
// retransmission (same cookie) from its cache instead of running the command twice. Pure codec.
#include "base/result.h"
#include "media/bencode.h"

#include <string>
#include <string_view>

namespace verbund::media {

// The largest datagram either side sends or accepts (an offer or answer carries a whole SDP).
inline constexpr size_t kNgMaxDatagram = 65535;
// Cookies are printable, without spaces, and short.
inline constexpr size_t kNgMaxCookie = 64;

struct NgMessage {
  std::string cookie;
  bencode::Dict dict;
};

enum class NgDecodeError {
  NoCookie = 100, // no space, or an empty cookie
  BadCookie,      // too long or not printable
  NotADictionary, // the payload decoded but is not a dictionary
  TooLarge,       // datagram above kNgMaxDatagram
  // Errors of the payload itself carry bencode::DecodeError codes (1..99).
};

Result<NgMessage> decodeNgMessage(std::string_view datagram);
std::string encodeNgMessage(std::string_view cookie, const bencode::Dict& dict);
bool validCookie(std::string_view cookie);

} // namespace verbund::media

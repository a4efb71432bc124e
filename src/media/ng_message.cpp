#include "media/ng_message.h"

namespace verbund::media {

bool validCookie(std::string_view cookie) {
  if (cookie.empty() || cookie.size() > kNgMaxCookie) return false;
  for (char c : cookie)
    if (c <= ' ' || c > '~') return false;
  return true;
}

Result<NgMessage> decodeNgMessage(std::string_view datagram) {
  if (datagram.size() > kNgMaxDatagram)
    return Error{int(NgDecodeError::TooLarge), "ng: datagram too large"};
  size_t space = datagram.find(' ');
  if (space == std::string_view::npos || space == 0)
    return Error{int(NgDecodeError::NoCookie), "ng: no cookie"};
  std::string_view cookie = datagram.substr(0, space);
  if (!validCookie(cookie)) return Error{int(NgDecodeError::BadCookie), "ng: bad cookie"};
  bencode::Limits limits;
  limits.maxStringLength = kNgMaxDatagram;
  auto v = bencode::decode(datagram.substr(space + 1), limits);
  if (!v) return v.error();
  if (!v->isDict())
    return Error{int(NgDecodeError::NotADictionary), "ng: payload is not a dictionary"};
  return NgMessage{std::string(cookie), std::move(v->asDict())};
}

std::string encodeNgMessage(std::string_view cookie, const bencode::Dict& dict) {
  std::string out(cookie);
  out += ' ';
  bencode::encode(bencode::Value(dict), out);
  return out;
}

} // namespace verbund::media

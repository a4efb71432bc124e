#include "sip/message/peer.h"

namespace verbund::sip {

std::string Peer::toString() const {
  std::string s(transportName(transport));
  s += ':';
  s += remote.toString();
  if (connection) {
    s += "#";
    s += std::to_string(connection);
  }
  return s;
}

} // namespace verbund::sip

#pragma once
// Where a message came from or goes to: transport, remote address, and the connection (for stream
// transports) so that responses go back over the connection the request came on.
#include "base/net.h"
#include "sip/message/types.h"

#include <cstdint>
#include <string>

namespace verbund::sip {

using ConnectionId = uint64_t; // 0: none / any

struct Peer {
  TransportType transport = TransportType::Udp;
  SockAddr remote;
  SockAddr local;              // the local address the message arrived on / should leave from
  ConnectionId connection = 0; // stream transports: the connection it arrived on

  std::string toString() const;
  friend bool operator==(const Peer&, const Peer&) = default;
};

} // namespace verbund::sip

#pragma once
// The transport layer seen from above (RFC 3261 §18). Implementations: UDP, TCP and TLS on Asio
// (transport_manager.h), and a fake for transaction/dialog tests.
#include "base/clock.h"
#include "base/result.h"
#include "sip/message/peer.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace verbund::sip {

// Receives complete messages: datagrams as they arrive, stream messages framed by
// Content-Length. `bytes` is handed over (moved) so the parser can own it without a copy.
class TransportUser {
public:
  virtual ~TransportUser() = default;
  // `receivedAt` is when the bytes reached this host, on verbund::Clock: the kernel's receive
  // timestamp for a datagram, the time of the read for a stream. now - receivedAt is how long the
  // message queued before the event loop got to it (the overload signal, see sip/stack).
  virtual void onReceive(std::string bytes, const Peer& from, TimePoint receivedAt) = 0;
  // Datagrams drained in one wake-up are delivered between these two calls, so the user may hold
  // new work back until the rest of the batch (responses, in-dialog requests) has been served.
  // `kernelDrops`: datagrams the kernel discarded for a full receive buffer since the previous
  // batch on that socket (a full buffer hides queue delay, so drops are a signal of their own).
  virtual void onReceiveBatchBegin() {}
  virtual void onReceiveBatchEnd(uint64_t kernelDrops) {}
  // A stream connection (or a send on it) failed; messages in flight to it are lost
  // (RFC 3261 §17.1.4 "transport error").
  virtual void onTransportError(const Peer& peer, const std::string& reason) {}
};

class Transport {
public:
  virtual ~Transport() = default;
  // Sends bytes to `to`. For TCP/TLS: over `to.connection` when it is set and still open,
  // otherwise over an existing connection to `to.remote`, otherwise over a new one. An error
  // known at once is returned; later failures reach TransportUser::onTransportError.
  virtual Result<void> send(const Peer& to, std::string_view bytes) = 0;
  // The address to put in Via/Contact for messages leaving over `transport` towards `remote`.
  virtual std::optional<SockAddr> localAddress(TransportType transport,
                                               const SockAddr& remote) const = 0;
};

} // namespace verbund::sip

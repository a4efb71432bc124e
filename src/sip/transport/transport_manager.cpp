#include "sip/transport/transport_manager.h"

#include "base/asio_timers.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/address.h"
#include "net/listener.h"
#include "net/tls.h"
#include "sip/transport/framing.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>
#include <sys/socket.h>

namespace verbund::sip {

namespace {

using asio::ip::tcp;
using asio::ip::udp;
using TlsStream = asio::ssl::stream<tcp::socket>;

constexpr size_t kDatagramBufferSize = 64 * 1024;
// Datagrams handled per wake-up before other handlers get a turn. Large enough that the receiver
// can serve in-dialog traffic of a burst first, small enough to keep timers on time.
constexpr size_t kMaxDatagramBatch = 32;
constexpr auto kMaxDatagramAge = std::chrono::seconds(60);
constexpr int kTransportErrorCode = 503; // RFC 3261 §8.1.3.1: a transport error acts like a 503
using net::fromEndpoint;
using net::toEndpoint;

Counter datagramsReceived("sip_transport_datagrams_received_total", "UDP datagrams delivered");
Counter keepalivesReceived("sip_transport_keepalives_received_total",
                           "CRLF keep-alive datagrams and stream pings received");
Counter streamMessagesReceived("sip_transport_stream_messages_received_total",
                               "SIP messages framed from TCP/TLS streams");
Counter framingErrors("sip_transport_framing_errors_total",
                      "stream connections closed because of a framing error");
Counter connectionsAccepted("sip_transport_connections_accepted_total",
                            "incoming TCP/TLS connections accepted");
Counter connectionsOpened("sip_transport_connections_opened_total",
                          "outgoing TCP/TLS connections started");
Counter connectionsRejected("sip_transport_connections_rejected_total",
                            "incoming connections refused at the connection limit");
Counter connectionsRefusedPerSource(
    "sip_transport_connections_refused_per_source_total",
    "incoming connections refused at a per-source limit (open or awaiting a first message)");
Counter firstMessageTimeouts("sip_transport_first_message_timeouts_total",
                             "incoming connections closed for sending no complete message in time");
Counter acceptFdErrors("sip_transport_accept_fd_limit_total",
                       "accept() failures for want of file descriptors (EMFILE/ENFILE)");
Gauge connectionsGauge("sip_transport_connections", "open TCP/TLS connections, both directions");
Gauge incomingGauge("sip_transport_incoming_connections", "open incoming TCP/TLS connections");
Gauge pendingGauge("sip_transport_incoming_connections_pending",
                   "incoming TCP/TLS connections that have not sent a complete message yet");
Counter connectionsClosed("sip_transport_connections_closed_total", "TCP/TLS connections closed");
Counter connectionsReaped("sip_transport_connections_reaped_total",
                          "TCP/TLS connections closed for being idle");
Counter tlsHandshakeFailures("sip_transport_tls_handshake_failures_total",
                             "TLS handshakes that failed or whose peer was rejected");
Counter datagramsDroppedByKernel("sip_transport_datagrams_dropped_by_kernel_total",
                                 "UDP datagrams the kernel discarded for a full receive buffer");
Counter sendErrors("sip_transport_send_errors_total", "sends that failed");
Counter receiveErrors("sip_transport_receive_errors_total", "socket receive/accept errors");

spdlog::logger& transportLog() {
  static std::shared_ptr<spdlog::logger> l = verbund::logger("transport");
  return *l;
}

Error transportError(std::string message) {
  return makeError(kTransportErrorCode, std::move(message));
}

// Kernel receive timestamps (the overload signal is a datagram's age) and the drop counter
// (SO_RXQ_OVFL, Linux). A larger receive buffer turns bursts into measurable delay instead of
// drops; the kernel caps it at its configured maximum. All best effort.
void enableDatagramStamps(udp::socket& s, int receiveBuffer) {
  int on = 1;
  int fd = s.native_handle();
  (void)::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
#ifdef SO_RXQ_OVFL
  (void)::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);
#endif
  if (receiveBuffer > 0)
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
}

bool onlyCrlf(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != '\r' && p[i] != '\n') return false;
  return true;
}

} // namespace

struct TransportManager::Listener {
  explicit Listener(TransportType t) : type(t) {}
  TransportType type;
  SockAddr local;
  std::shared_ptr<net::StreamListener> stream; // TCP, TLS
  std::optional<udp::socket> datagram;
  std::unique_ptr<char[]> buffer; // UDP receive buffer
  uint32_t kernelDropsSeen = 0;   // the socket's SO_RXQ_OVFL counter at the last datagram
  bool closed = false;
};

// A SIP stream: the shared connection layer plus SIP framing.
struct TransportManager::Connection {
  Connection(TransportType t, bool out, size_t maxHeader, size_t maxMessage)
      : type(t), outgoing(out), framer(maxHeader, maxMessage) {}

  ConnectionId id = 0;
  TransportType type;
  bool outgoing;
  bool closed = false;
  std::shared_ptr<net::StreamConnection> stream;
  SockAddr remote;
  SockAddr local;
  StreamFramer framer;
};

TransportManager::TransportManager(asio::io_context& io, TransportOptions options, Timers* timers)
    : io_(io), options_(options), ownTimers_(timers ? nullptr : std::make_unique<AsioTimers>(io)),
      timers_(timers ? *timers : *ownTimers_), guard_(std::make_shared<TransportManager*>(this)) {
  net::ConnectionMetrics metrics;
  metrics.refusedGlobalCap = &connectionsRejected;
  metrics.refusedPerSourceCap = &connectionsRefusedPerSource;
  metrics.firstMessageTimeouts = &firstMessageTimeouts;
  metrics.fdLimitErrors = &acceptFdErrors;
  metrics.open = &incomingGauge;
  metrics.pending = &pendingGauge;
  admission_ = std::make_shared<net::Admission>(options_.admission, metrics);
}

TransportManager::~TransportManager() {
  close();
  *guard_ = nullptr;
}

Result<void> TransportManager::configureTls(const TlsConfig& config) {
  // RFC 8996: TLS 1.0 and 1.1 are not offered or accepted.
  net::TlsBaseline baseline;
  baseline.requireTls13 = config.requireTls13;
  baseline.sessionContext = "verbund-sip";
  auto made = net::makeTlsContext(baseline);
  if (!made) return made.error();
  std::shared_ptr<asio::ssl::context> ctx = std::move(made.value());
  SSL_CTX* h = ctx->native_handle();

  asio::error_code ec;
  bool haveCert = false;
  if (!config.certificateChainPem.empty()) {
    ctx->use_certificate_chain(asio::buffer(config.certificateChainPem), ec);
    haveCert = true;
  } else if (!config.certificateChainFile.empty()) {
    ctx->use_certificate_chain_file(config.certificateChainFile, ec);
    haveCert = true;
  }
  if (ec) return makeError(500, "TLS certificate chain: " + ec.message());
  bool haveKey = false;
  if (!config.privateKeyPem.empty()) {
    ctx->use_private_key(asio::buffer(config.privateKeyPem), asio::ssl::context::pem, ec);
    haveKey = true;
  } else if (!config.privateKeyFile.empty()) {
    ctx->use_private_key_file(config.privateKeyFile, asio::ssl::context::pem, ec);
    haveKey = true;
  }
  if (ec) return makeError(500, "TLS private key: " + ec.message());
  if (haveCert != haveKey) return makeError(500, "TLS: certificate and private key go together");
  if (haveCert && SSL_CTX_check_private_key(h) != 1)
    return makeError(500, "TLS: private key does not match the certificate");

  if (!config.caPem.empty()) {
    ctx->add_certificate_authority(asio::buffer(config.caPem), ec);
  } else if (!config.caFile.empty()) {
    ctx->load_verify_file(config.caFile, ec);
  } else {
    ctx->set_default_verify_paths(ec);
  }
  if (ec) return makeError(500, "TLS CA: " + ec.message());

  tlsContext_ = std::move(ctx);
  clientCertMode_ = config.clientCertMode;
  verifyServer_ = config.verifyServer;
  tlsHasCertificate_ = haveCert;
  return {};
}

Result<SockAddr> TransportManager::listen(TransportType type, const SockAddr& addr) {
  if (closed_) return makeError(500, "transport manager closed");
  auto l = std::make_shared<Listener>(type);
  asio::error_code ec;
  if (type == TransportType::Udp) {
    auto ep = toEndpoint<udp::endpoint>(addr);
    l->datagram.emplace(io_);
    l->datagram->open(ep.protocol(), ec);
    // Separate v4 and v6 listeners may share a port; v4-mapped addresses would blur peers.
    if (!ec && addr.ip.v6) l->datagram->set_option(asio::ip::v6_only(true), ec);
    if (!ec) l->datagram->bind(ep, ec);
    // send() is synchronous and must never block the loop.
    if (!ec) l->datagram->non_blocking(true, ec);
    if (!ec) enableDatagramStamps(*l->datagram, options_.udpReceiveBuffer);
    if (!ec) ep = l->datagram->local_endpoint(ec);
    if (ec) return makeError(500, "UDP listen on " + addr.toString() + ": " + ec.message());
    l->local = fromEndpoint(ep);
    l->buffer = std::make_unique<char[]>(kDatagramBufferSize);
    listeners_.push_back(l);
    startReceive(l);
  } else {
    if (type == TransportType::Tls && (!tlsContext_ || !tlsHasCertificate_))
      return makeError(500, "TLS listen needs configureTls() with a certificate first");
    net::StreamListener::Hooks hooks;
    hooks.privileged = [g = guard_](const IpAddress& ip) {
      TransportManager* m = *g;
      return m && m->isReservedSource && m->isReservedSource(ip);
    };
    hooks.onAccept = [g = guard_, type](tcp::socket s, const SockAddr& remote,
                                        net::Admission::Ticket ticket) {
      if (TransportManager* m = *g) m->onAccept(type, std::move(s), remote, std::move(ticket));
    };
    auto opened = net::StreamListener::open(io_, timers_, addr, admission_,
                                            "SIP " + std::string(transportName(type)),
                                            std::move(hooks), /*v6Only=*/true);
    if (!opened)
      return makeError(500, std::string(transportName(type)) + " " + opened.error().message);
    l->stream = std::move(opened.value());
    l->local = l->stream->local();
    listeners_.push_back(l);
  }
  transportLog().info("listening on {} {}", transportName(type), l->local.toString());
  return l->local;
}

std::vector<SockAddr> TransportManager::listeningAddresses(TransportType type) const {
  std::vector<SockAddr> out;
  for (const auto& l : listeners_)
    if (l->type == type) out.push_back(l->local);
  return out;
}

void TransportManager::startReceive(const std::shared_ptr<Listener>& l) {
  // Wait for readability, then drain with recvmsg(): Asio's receive_from cannot hand over the
  // kernel receive timestamp. Only armed after the socket has been drained to EAGAIN, so no
  // readiness edge is missed (see drainDatagrams).
  l->datagram->async_wait(udp::socket::wait_read, [g = guard_, l](const asio::error_code& ec) {
    TransportManager* m = *g;
    if (!m || l->closed) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      receiveErrors.inc();
      transportLog().debug("UDP wait on {}: {}", l->local.toString(), ec.message());
      m->startReceive(l);
      return;
    }
    m->drainDatagrams(l);
  });
}

TransportManager::Datagram TransportManager::receiveDatagram(Listener& l) {
  sockaddr_storage from{};
  iovec iov{l.buffer.get(), kDatagramBufferSize};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec)) + CMSG_SPACE(sizeof(uint32_t)) + 64];
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(l.datagram->native_handle(), &msg, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  Datagram d;
  if (n < 0) {
    d.kind =
        (errno == EAGAIN || errno == EWOULDBLOCK) ? Datagram::Kind::Empty : Datagram::Kind::Error;
    d.error = errno;
    return d;
  }
  d.kind = Datagram::Kind::Received;
  d.size = size_t(n);
  udp::endpoint ep;
  if (msg.msg_namelen <= ep.capacity()) {
    std::memcpy(ep.data(), &from, msg.msg_namelen);
    ep.resize(msg.msg_namelen);
  }
  d.from = fromEndpoint(ep);
  // The kernel stamps datagrams with CLOCK_REALTIME; carry the age over to the steady clock.
  TimePoint now = Clock::now();
  d.receivedAt = now;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_TIMESTAMPNS) {
      timespec ts, wall;
      std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      ::clock_gettime(CLOCK_REALTIME, &wall);
      auto age = std::chrono::seconds(wall.tv_sec - ts.tv_sec) +
                 std::chrono::nanoseconds(wall.tv_nsec - ts.tv_nsec);
      // A wall-clock step between receipt and now would give nonsense; keep it within bounds.
      if (age > Clock::duration::zero() && age < kMaxDatagramAge)
        d.receivedAt = now - std::chrono::duration_cast<Clock::duration>(age);
    }
#ifdef SO_RXQ_OVFL
    if (c->cmsg_type == SO_RXQ_OVFL) {
      uint32_t dropped;
      std::memcpy(&dropped, CMSG_DATA(c), sizeof dropped);
      d.kernelDrops = dropped - l.kernelDropsSeen; // the kernel's counter wraps at 2^32
      l.kernelDropsSeen = dropped;
    }
#endif
  }
  return d;
}

void TransportManager::drainDatagrams(const std::shared_ptr<Listener>& l) {
  Guard g = guard_; // the user may close or destroy us from onReceive
  if (user_) user_->onReceiveBatchBegin();
  uint64_t drops = 0;
  bool drained = false;
  for (size_t i = 0; i < kMaxDatagramBatch; ++i) {
    Datagram d = receiveDatagram(*l);
    if (d.kind == Datagram::Kind::Empty) {
      drained = true;
      break;
    }
    if (d.kind == Datagram::Kind::Error) {
      // Pending socket errors (e.g. ICMP reports) are consumed by the read; go on draining.
      receiveErrors.inc();
      transportLog().debug("UDP receive on {}: {}", l->local.toString(), std::strerror(d.error));
      continue;
    }
    drops += d.kernelDrops;
    if (onlyCrlf(l->buffer.get(), d.size)) {
      keepalivesReceived.inc(); // CRLF keep-alive (or empty datagram): nothing to deliver
      continue;
    }
    if (!user_) continue;
    datagramsReceived.inc();
    Peer from{TransportType::Udp, d.from, l->local, 0};
    user_->onReceive(std::string(l->buffer.get(), d.size), from, d.receivedAt);
    if (!*g) return; // destroyed by the user
    if (l->closed) break;
  }
  if (drops) datagramsDroppedByKernel.inc(drops);
  if (user_) user_->onReceiveBatchEnd(drops);
  if (!*g || l->closed) return;
  if (drained) {
    startReceive(l);
    return;
  }
  // A full batch: let timers and other sockets run, then go on draining this one. (Not
  // async_wait: the socket may already be readable, and the reactor only reports edges.)
  asio::post(io_, [g, l] {
    TransportManager* m = *g;
    if (m && !l->closed) m->drainDatagrams(l);
  });
}

void TransportManager::setConnectionLimits(const net::AdmissionLimits& limits,
                                           Duration firstMessageTimeout) {
  options_.admission = limits;
  options_.firstMessageTimeout = firstMessageTimeout;
  admission_->setLimits(limits);
}

net::StreamConnection::Options TransportManager::streamOptions(bool outgoing) const {
  net::StreamConnection::Options o;
  o.connectTimeout = options_.connectTimeout;
  o.firstMessageTimeout = outgoing ? Duration(0) : options_.firstMessageTimeout;
  o.idleTimeout = options_.idleTimeout;
  o.maxWriteQueueBytes = options_.maxWriteQueueBytes;
  o.firstMessageTimeouts = &firstMessageTimeouts;
  return o;
}

void TransportManager::onAccept(TransportType type, tcp::socket s, const SockAddr& remote,
                                net::Admission::Ticket ticket) {
  if (closed_) return;
  asio::error_code ignored;
  if (type == TransportType::Tls && !tlsContext_) {
    s.close(ignored);
    return;
  }
  auto c = makeConnection(type, false);
  c->remote = remote;
  c->stream = net::StreamConnection::accepted(std::move(s),
                                              type == TransportType::Tls ? tlsContext_ : nullptr,
                                              timers_, streamOptions(false), std::move(ticket));
  c->local = c->stream->local();
  connectionsAccepted.inc();
  attach(c, true);
  c->stream->start();
}

std::shared_ptr<TransportManager::Connection> TransportManager::makeConnection(TransportType type,
                                                                               bool outgoing) {
  auto c = std::make_shared<Connection>(type, outgoing, options_.maxHeaderBytes,
                                        options_.maxMessageBytes);
  c->id = ++nextId_;
  connections_.emplace(c->id, c);
  publishCount();
  return c;
}

void TransportManager::publishCount() {
  connectionsGauge.set(static_cast<double>(connections_.size()));
}

Peer TransportManager::peerOf(const Connection& c) const {
  return Peer{c.type, c.remote, c.local, c.id};
}

// Wires the stream's callbacks (by id: the stream must not own its SIP connection) and, for TLS,
// the verification mode of the handshake.
void TransportManager::attach(const std::shared_ptr<Connection>& c, bool server) {
  ConnectionId id = c->id;
  net::StreamConnection::Handler h;
  h.onOpen = [g = guard_, id] {
    if (TransportManager* m = *g) m->onOpen(id);
  };
  h.onData = [g = guard_, id](std::string_view bytes) {
    if (TransportManager* m = *g) m->onData(id, bytes);
  };
  h.onClosed = [g = guard_, id](net::StreamConnection::CloseReason why, const std::string& d) {
    if (TransportManager* m = *g) m->onStreamClosed(id, why, d);
  };
  c->stream->setHandler(std::move(h));
  if (SSL* ssl = c->stream->ssl()) {
    int mode = SSL_VERIFY_NONE;
    if (server) {
      if (clientCertMode_ == TlsConfig::ClientCertMode::Optional) mode = SSL_VERIFY_PEER;
      if (clientCertMode_ == TlsConfig::ClientCertMode::Required)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    } else if (verifyServer_) {
      mode = SSL_VERIFY_PEER;
    }
    SSL_set_verify(ssl, mode, nullptr);
  }
}

void TransportManager::onOpen(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  c->local = c->stream->local();
  c->remote = c->stream->remote();
  if (c->stream->isTls() && onTlsPeerVerified) {
    Guard g = guard_;
    X509* cert = SSL_get0_peer_certificate(c->stream->ssl());
    bool accepted = onTlsPeerVerified(c->id, peerOf(*c), cert);
    if (!*g || c->closed) return;
    if (!accepted) {
      tlsHandshakeFailures.inc();
      closeConnection(c, CloseReason::Error, "TLS peer rejected");
      return;
    }
  }
  // Incoming connections are reusable for requests towards the same address too (RFC 5923 idea).
  byRemote_.try_emplace(ConnKey{c->type, c->remote}, c->id);
  transportLog().debug("{} connection #{} open {} <-> {}", transportName(c->type), c->id,
                       c->local.toString(), c->remote.toString());
}

void TransportManager::onData(ConnectionId id, std::string_view bytes) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  Guard g = guard_;
  // The kernel queue of a stream is invisible here (TCP flow control pushes back on the
  // sender); its messages count as received when read.
  TimePoint readAt = Clock::now();
  c->framer.feed(bytes);
  for (;;) {
    StreamFramer::Frame f = c->framer.next();
    switch (f.kind) {
    case StreamFramer::Kind::NeedMore:
      return;
    case StreamFramer::Kind::Ping:
      keepalivesReceived.inc();
      c->stream->write("\r\n"); // RFC 5626 §3.5.1 pong
      break;
    case StreamFramer::Kind::Message:
      streamMessagesReceived.inc();
      // A ping does not count: it costs nothing to send and would keep an idle slot forever.
      c->stream->firstMessage();
      if (user_) {
        user_->onReceive(std::move(f.message), peerOf(*c), readAt);
        if (!*g || c->closed) return;
      }
      break;
    case StreamFramer::Kind::Error:
      framingErrors.inc();
      transportLog().warn("{} connection #{} from {}: {}; closing", transportName(c->type), c->id,
                          c->remote.toString(), c->framer.error());
      closeConnection(c, CloseReason::Error, "framing error: " + c->framer.error());
      return;
    }
  }
}

void TransportManager::onStreamClosed(ConnectionId id, net::StreamConnection::CloseReason why,
                                      const std::string& detail) {
  using R = net::StreamConnection::CloseReason;
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  std::string what = std::string(net::closeReasonName(why));
  if (!detail.empty()) what += ": " + detail;
  switch (why) {
  case R::PeerClosed:
    closeConnection(c, CloseReason::PeerClosed, "connection closed by peer");
    return;
  case R::Idle:
    closeConnection(c, CloseReason::Idle, "idle");
    return;
  case R::FirstMessageTimeout:
    closeConnection(c, CloseReason::FirstMessage, what);
    return;
  case R::HandshakeFailed:
  case R::SetupTimeout:
    if (c->type == TransportType::Tls) tlsHandshakeFailures.inc();
    break;
  case R::WriteFailed:
    sendErrors.inc();
    break;
  default:
    break;
  }
  closeConnection(c, CloseReason::Error, what);
}

void TransportManager::closeConnection(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  closeConnection(c, CloseReason::Local, "closed locally");
}

void TransportManager::abortConnection(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  closeConnection(c, CloseReason::Local, "aborted locally", true);
}

size_t TransportManager::abortConnectionsTo(TransportType type, const SockAddr& remote) {
  std::vector<std::shared_ptr<Connection>> hit;
  for (const auto& [id, c] : connections_)
    if (c->type == type && c->remote == remote) hit.push_back(c);
  for (const auto& c : hit) closeConnection(c, CloseReason::Local, "aborted locally", true);
  return hit.size();
}

void TransportManager::closeConnection(const std::shared_ptr<Connection>& c, CloseReason why,
                                       const std::string& reason, bool abort) {
  if (c->closed) return;
  c->closed = true;
  size_t unsent = c->stream->isClosed() ? c->stream->unsentBytes() : c->stream->queuedBytes();
  if (abort)
    c->stream->abort();
  else
    c->stream->close();
  connections_.erase(c->id);
  publishCount();
  if (auto it = byRemote_.find(ConnKey{c->type, c->remote});
      it != byRemote_.end() && it->second == c->id)
    byRemote_.erase(it);
  connectionsClosed.inc();
  if (why == CloseReason::Idle) connectionsReaped.inc();
  transportLog().debug("{} connection #{} to {} closed: {}", transportName(c->type), c->id,
                       c->remote.toString(), reason);
  bool lostData = unsent > 0;
  Guard g = guard_; // the callbacks may close us
  if (user_ && (why == CloseReason::Error || (why == CloseReason::PeerClosed && lostData)))
    user_->onTransportError(peerOf(*c), reason);
  if (*g && onConnectionClosed)
    onConnectionClosed(c->id, peerOf(*c),
                       why == CloseReason::PeerClosed || why == CloseReason::Error);
}

Result<void> TransportManager::send(const Peer& to, std::string_view bytes) {
  if (closed_) return transportError("transport manager closed");
  if (to.transport == TransportType::Udp) return sendDatagram(to, bytes);
  return sendStream(to, bytes);
}

Result<void> TransportManager::sendDatagram(const Peer& to, std::string_view bytes) {
  Listener* best = nullptr;
  for (const auto& l : listeners_) {
    if (l->type != TransportType::Udp || l->closed || l->local.ip.v6 != to.remote.ip.v6) continue;
    if (!best) best = l.get();
    if (to.local.port != 0 && l->local == to.local) {
      best = l.get();
      break;
    }
  }
  if (!best) {
    sendErrors.inc();
    return transportError("no UDP listener for " + to.remote.toString());
  }
  if (to.remote.port == 0) {
    sendErrors.inc();
    return transportError("UDP destination without port");
  }
  asio::error_code ec;
  size_t n = best->datagram->send_to(asio::buffer(bytes.data(), bytes.size()),
                                     toEndpoint<udp::endpoint>(to.remote), 0, ec);
  if (ec || n != bytes.size()) {
    sendErrors.inc();
    return transportError("UDP send to " + to.remote.toString() + ": " +
                          (ec ? ec.message() : std::string("short write")));
  }
  return {};
}

Result<void> TransportManager::sendStream(const Peer& to, std::string_view bytes) {
  std::shared_ptr<Connection> c;
  if (to.connection != 0) {
    if (auto it = connections_.find(to.connection);
        it != connections_.end() && it->second->type == to.transport)
      c = it->second;
  }
  if (!c) {
    if (auto it = byRemote_.find(ConnKey{to.transport, to.remote}); it != byRemote_.end()) {
      if (auto ct = connections_.find(it->second); ct != connections_.end()) c = ct->second;
    }
  }
  if (!c) {
    auto r = connect(to.transport, to.remote);
    if (!r) {
      sendErrors.inc();
      return r.error();
    }
    c = std::move(r.value());
  }
  switch (c->stream->write(std::string(bytes))) {
  case net::StreamConnection::WriteResult::Queued:
    return {};
  case net::StreamConnection::WriteResult::QueueFull:
    sendErrors.inc();
    return transportError("write queue full for " + c->remote.toString());
  case net::StreamConnection::WriteResult::Closed:
    break;
  }
  sendErrors.inc();
  return transportError("connection to " + c->remote.toString() + " closed");
}

Result<std::shared_ptr<TransportManager::Connection>>
TransportManager::connect(TransportType type, const SockAddr& remote) {
  if (type == TransportType::Tls && !tlsContext_) return transportError("TLS not configured");
  if (remote.port == 0 || remote.ip.isAny())
    return transportError("cannot connect to " + remote.toString());
  if (connections_.size() >= options_.admission.maxConnections)
    return transportError("connection limit reached");
  std::shared_ptr<net::StreamConnection> stream;
  try {
    stream = net::StreamConnection::outgoing(
        io_, type == TransportType::Tls ? tlsContext_ : nullptr, timers_, streamOptions(true));
  } catch (const std::exception& e) {
    return transportError(std::string("cannot create connection: ") + e.what());
  }
  auto c = makeConnection(type, true);
  c->remote = remote;
  c->stream = std::move(stream);
  attach(c, false);
  byRemote_[ConnKey{type, remote}] = c->id; // later sends queue behind the pending connect
  connectionsOpened.inc();
  c->stream->connect({toEndpoint<tcp::endpoint>(remote)});
  return c;
}

std::optional<SockAddr> TransportManager::localAddress(TransportType transport,
                                                       const SockAddr& remote) const {
  const Listener* found = nullptr;
  for (const auto& l : listeners_)
    if (l->type == transport && !l->closed && l->local.ip.v6 == remote.ip.v6) {
      found = l.get();
      if (!found->local.ip.isAny()) break;
    }
  if (!found) return std::nullopt;
  if (!found->local.ip.isAny()) return found->local;
  // Bound to the wildcard: ask the kernel which source address routes towards `remote`.
  // Connecting a UDP socket sends nothing.
  asio::error_code ec;
  udp::socket probe(io_);
  SockAddr target = remote;
  if (target.port == 0) target.port = 5060;
  probe.connect(toEndpoint<udp::endpoint>(target), ec);
  if (ec) return found->local;
  auto ep = probe.local_endpoint(ec);
  if (ec) return found->local;
  SockAddr out = fromEndpoint(ep);
  out.port = found->local.port;
  return out;
}

void TransportManager::close() {
  if (closed_) return;
  closed_ = true;
  asio::error_code ignored;
  for (auto& l : listeners_) {
    l->closed = true;
    if (l->stream) l->stream->close();
    if (l->datagram) l->datagram->close(ignored);
  }
  listeners_.clear();
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(connections_.size());
  for (auto& [id, c] : connections_) all.push_back(c);
  for (auto& c : all) closeConnection(c, CloseReason::Local, "shutdown");
  byRemote_.clear();
}

} // namespace verbund::sip

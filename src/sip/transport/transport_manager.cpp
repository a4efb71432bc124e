#include "sip/transport/transport_manager.h"

#include "base/log.h"
#include "base/metrics.h"
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
constexpr size_t kStreamReadSize = 16 * 1024;
constexpr size_t kMaxWriteBatch = 64;
constexpr int kTransportErrorCode = 503; // RFC 3261 §8.1.3.1: a transport error acts like a 503
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

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

asio::ip::address toAsio(const IpAddress& ip) {
  if (ip.v6) {
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), ip.bytes.data(), 16);
    return asio::ip::address_v6(b);
  }
  asio::ip::address_v4::bytes_type b;
  std::memcpy(b.data(), ip.bytes.data(), 4);
  return asio::ip::address_v4(b);
}

SockAddr fromAsio(const asio::ip::address& a, uint16_t port) {
  SockAddr s;
  s.port = port;
  if (a.is_v6()) {
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
      auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes();
      std::memcpy(s.ip.bytes.data(), b.data(), 4);
    } else {
      auto b = v6.to_bytes();
      s.ip.v6 = true;
      std::memcpy(s.ip.bytes.data(), b.data(), 16);
    }
  } else {
    auto b = a.to_v4().to_bytes();
    std::memcpy(s.ip.bytes.data(), b.data(), 4);
  }
  return s;
}

template <typename Endpoint> SockAddr fromEndpoint(const Endpoint& e) {
  return fromAsio(e.address(), e.port());
}

template <typename Endpoint> Endpoint toEndpoint(const SockAddr& a) {
  return Endpoint(toAsio(a.ip), a.port);
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
  Listener(asio::io_context& io, TransportType t) : type(t), backoff(io) {}
  TransportType type;
  SockAddr local;
  std::optional<tcp::acceptor> acceptor;
  std::optional<udp::socket> datagram;
  std::unique_ptr<char[]> buffer; // UDP receive buffer
  uint32_t kernelDropsSeen = 0;   // the socket's SO_RXQ_OVFL counter at the last datagram
  asio::steady_timer backoff;     // after accept errors such as EMFILE, so we do not spin
  bool closed = false;
};

struct TransportManager::Connection {
  enum class State { Connecting, Handshaking, Open, Closed };
  Connection(TransportType t, bool out, size_t maxHeader, size_t maxMessage)
      : type(t), outgoing(out), framer(maxHeader, maxMessage) {}

  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  template <typename F> void withStream(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*plain);
    }
  }

  ConnectionId id = 0;
  TransportType type;
  bool outgoing;
  State state = State::Connecting;
  std::optional<tcp::socket> plain;
  std::optional<TlsStream> tls;
  SockAddr remote;
  SockAddr local;
  StreamFramer framer;
  std::deque<std::string> queue;
  size_t queuedBytes = 0;
  size_t inFlight = 0; // queue entries handed to the current async_write
  std::vector<asio::const_buffer> writeBuffers;
  TimePoint lastActivity;
  std::unique_ptr<char[]> readBuffer;
};

TransportManager::TransportManager(asio::io_context& io, TransportOptions options)
    : io_(io), options_(options), guard_(std::make_shared<TransportManager*>(this)),
      sweepTimer_(io) {}

TransportManager::~TransportManager() {
  close();
  *guard_ = nullptr;
}

Result<void> TransportManager::configureTls(const TlsConfig& config) {
  std::unique_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls);
  } catch (const std::exception& e) {
    return makeError(500, std::string("TLS context: ") + e.what());
  }
  SSL_CTX* h = ctx->native_handle();
  // RFC 8996: TLS 1.0 and 1.1 are not offered or accepted.
  if (SSL_CTX_set_min_proto_version(h, config.requireTls13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1)
    return makeError(500, "TLS: cannot set minimum protocol version");
  SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Needed for session resumption when clients are asked for certificates.
  static const unsigned char kSessionContext[] = "verbund-sip";
  SSL_CTX_set_session_id_context(h, kSessionContext, sizeof kSessionContext - 1);

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
  auto l = std::make_shared<Listener>(io_, type);
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
    auto ep = toEndpoint<tcp::endpoint>(addr);
    l->acceptor.emplace(io_);
    l->acceptor->open(ep.protocol(), ec);
    if (!ec && addr.ip.v6) l->acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) l->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) l->acceptor->bind(ep, ec);
    if (!ec) l->acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) ep = l->acceptor->local_endpoint(ec);
    if (ec)
      return makeError(500, std::string(transportName(type)) + " listen on " + addr.toString() +
                                ": " + ec.message());
    l->local = fromEndpoint(ep);
    listeners_.push_back(l);
    startAccept(l);
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

void TransportManager::startAccept(const std::shared_ptr<Listener>& l) {
  l->acceptor->async_accept([g = guard_, l](const asio::error_code& ec, tcp::socket s) {
    TransportManager* m = *g;
    if (!m || l->closed) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      receiveErrors.inc();
      transportLog().warn("accept on {}: {}", l->local.toString(), ec.message());
      l->backoff.expires_after(kAcceptBackoff);
      l->backoff.async_wait([g, l](const asio::error_code& e) {
        if (TransportManager* mm = *g; mm && !e && !l->closed) mm->startAccept(l);
      });
      return;
    }
    m->startAccept(l);
    asio::error_code ignored;
    if (m->connections_.size() >= m->options_.maxConnections) {
      connectionsRejected.inc();
      s.close(ignored);
      return;
    }
    if (l->type == TransportType::Tls && !m->tlsContext_) {
      s.close(ignored);
      return;
    }
    auto remote = s.remote_endpoint(ignored);
    if (ignored) return; // already reset by the peer
    s.set_option(tcp::no_delay(true), ignored);
    auto c = m->makeConnection(l->type, false);
    c->remote = fromEndpoint(remote);
    c->local = l->local;
    if (auto local = s.local_endpoint(ignored); !ignored) c->local = fromEndpoint(local);
    connectionsAccepted.inc();
    if (l->type == TransportType::Tls) {
      try {
        c->tls.emplace(std::move(s), *m->tlsContext_);
      } catch (const std::exception& e) {
        m->closeConnection(c, CloseReason::Local, e.what());
        return;
      }
      m->startHandshake(c, true);
    } else {
      c->plain.emplace(std::move(s));
      m->onOpen(c);
    }
  });
}

std::shared_ptr<TransportManager::Connection> TransportManager::makeConnection(TransportType type,
                                                                               bool outgoing) {
  auto c = std::make_shared<Connection>(type, outgoing, options_.maxHeaderBytes,
                                        options_.maxMessageBytes);
  c->id = ++nextId_;
  c->lastActivity = Clock::now();
  c->readBuffer = std::make_unique<char[]>(kStreamReadSize);
  connections_.emplace(c->id, c);
  armSweep();
  return c;
}

Peer TransportManager::peerOf(const Connection& c) const {
  return Peer{c.type, c.remote, c.local, c.id};
}

void TransportManager::startHandshake(const std::shared_ptr<Connection>& c, bool server) {
  c->state = Connection::State::Handshaking;
  asio::ssl::verify_mode mode = asio::ssl::verify_none;
  if (server) {
    if (clientCertMode_ == TlsConfig::ClientCertMode::Optional) mode = asio::ssl::verify_peer;
    if (clientCertMode_ == TlsConfig::ClientCertMode::Required)
      mode = asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert;
  } else if (verifyServer_) {
    mode = asio::ssl::verify_peer;
  }
  asio::error_code ec;
  c->tls->set_verify_mode(mode, ec);
  c->tls->async_handshake(server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client,
                          [g = guard_, c](const asio::error_code& ec2) {
                            TransportManager* m = *g;
                            if (!m || c->state == Connection::State::Closed) return;
                            if (ec2) {
                              tlsHandshakeFailures.inc();
                              m->closeConnection(c, CloseReason::Error,
                                                 "TLS handshake failed: " + ec2.message());
                              return;
                            }
                            if (m->onTlsPeerVerified) {
                              X509* cert = SSL_get0_peer_certificate(c->tls->native_handle());
                              bool accepted = m->onTlsPeerVerified(c->id, m->peerOf(*c), cert);
                              if (!*g || c->state == Connection::State::Closed) return;
                              if (!accepted) {
                                tlsHandshakeFailures.inc();
                                m->closeConnection(c, CloseReason::Error, "TLS peer rejected");
                                return;
                              }
                            }
                            m->onOpen(c);
                          });
}

void TransportManager::onOpen(const std::shared_ptr<Connection>& c) {
  c->state = Connection::State::Open;
  c->lastActivity = Clock::now();
  // Incoming connections are reusable for requests towards the same address too (RFC 5923 idea).
  byRemote_.try_emplace(ConnKey{c->type, c->remote}, c->id);
  transportLog().debug("{} connection #{} open {} <-> {}", transportName(c->type), c->id,
                       c->local.toString(), c->remote.toString());
  startRead(c);
  if (!c->queue.empty()) startWrite(c);
}

void TransportManager::startRead(const std::shared_ptr<Connection>& c) {
  auto handler = [g = guard_, c](const asio::error_code& ec, size_t n) {
    TransportManager* m = *g;
    if (!m || c->state == Connection::State::Closed) return;
    if (ec) {
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        m->closeConnection(c, CloseReason::PeerClosed, "connection closed by peer");
      } else {
        m->closeConnection(c, CloseReason::Error, "read failed: " + ec.message());
      }
      return;
    }
    m->onRead(c, n);
  };
  auto buffer = asio::buffer(c->readBuffer.get(), kStreamReadSize);
  c->withStream([&](auto& stream) { stream.async_read_some(buffer, handler); });
}

void TransportManager::onRead(const std::shared_ptr<Connection>& c, size_t n) {
  Guard g = guard_;
  c->lastActivity = Clock::now();
  // The kernel queue of a stream is invisible here (TCP flow control pushes back on the
  // sender); its messages count as received when read.
  TimePoint readAt = c->lastActivity;
  c->framer.feed(std::string_view(c->readBuffer.get(), n));
  for (;;) {
    StreamFramer::Frame f = c->framer.next();
    switch (f.kind) {
    case StreamFramer::Kind::NeedMore:
      startRead(c);
      return;
    case StreamFramer::Kind::Ping:
      keepalivesReceived.inc();
      queueWrite(c, "\r\n"); // RFC 5626 §3.5.1 pong
      break;
    case StreamFramer::Kind::Message:
      streamMessagesReceived.inc();
      if (user_) {
        user_->onReceive(std::move(f.message), peerOf(*c), readAt);
        if (!*g || c->state == Connection::State::Closed) return;
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

void TransportManager::queueWrite(const std::shared_ptr<Connection>& c, std::string bytes) {
  c->queuedBytes += bytes.size();
  c->queue.push_back(std::move(bytes));
  if (c->state == Connection::State::Open && c->inFlight == 0) startWrite(c);
}

void TransportManager::startWrite(const std::shared_ptr<Connection>& c) {
  // Gather everything queued (bounded) into one write; deque elements do not move when more are
  // appended, so the buffers stay valid while the write is in flight.
  c->writeBuffers.clear();
  for (const auto& s : c->queue) {
    if (c->writeBuffers.size() == kMaxWriteBatch) break;
    c->writeBuffers.push_back(asio::buffer(s));
  }
  c->inFlight = c->writeBuffers.size();
  auto handler = [g = guard_, c](const asio::error_code& ec, size_t) {
    TransportManager* m = *g;
    if (!m || c->state == Connection::State::Closed) return;
    if (ec) {
      sendErrors.inc();
      m->closeConnection(c, CloseReason::Error, "write failed: " + ec.message());
      return;
    }
    c->lastActivity = Clock::now();
    for (size_t i = 0; i < c->inFlight; ++i) {
      c->queuedBytes -= c->queue.front().size();
      c->queue.pop_front();
    }
    c->inFlight = 0;
    if (!c->queue.empty()) m->startWrite(c);
  };
  c->withStream([&](auto& stream) { asio::async_write(stream, c->writeBuffers, handler); });
}

void TransportManager::closeConnection(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  auto c = it->second;
  closeConnection(c, CloseReason::Local, "closed locally");
}

void TransportManager::closeConnection(const std::shared_ptr<Connection>& c, CloseReason why,
                                       const std::string& reason) {
  if (c->state == Connection::State::Closed) return;
  bool lostData = !c->queue.empty();
  c->state = Connection::State::Closed;
  // Closing the socket aborts pending operations; their handlers hold `c`, so the TLS stream they
  // touch stays alive until they have run.
  asio::error_code ignored;
  c->socket().shutdown(tcp::socket::shutdown_both, ignored);
  c->socket().close(ignored);
  connections_.erase(c->id);
  if (auto it = byRemote_.find(ConnKey{c->type, c->remote});
      it != byRemote_.end() && it->second == c->id)
    byRemote_.erase(it);
  connectionsClosed.inc();
  if (why == CloseReason::Idle) connectionsReaped.inc();
  transportLog().debug("{} connection #{} to {} closed: {}", transportName(c->type), c->id,
                       c->remote.toString(), reason);
  c->queue.clear();
  c->queuedBytes = 0;
  if (user_ && (why == CloseReason::Error || (why == CloseReason::PeerClosed && lostData)))
    user_->onTransportError(peerOf(*c), reason);
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
  if (c->queuedBytes + bytes.size() > options_.maxWriteQueueBytes) {
    sendErrors.inc();
    return transportError("write queue full for " + c->remote.toString());
  }
  queueWrite(c, std::string(bytes));
  return {};
}

Result<std::shared_ptr<TransportManager::Connection>>
TransportManager::connect(TransportType type, const SockAddr& remote) {
  if (type == TransportType::Tls && !tlsContext_) return transportError("TLS not configured");
  if (remote.port == 0 || remote.ip.isAny())
    return transportError("cannot connect to " + remote.toString());
  if (connections_.size() >= options_.maxConnections)
    return transportError("connection limit reached");
  auto c = makeConnection(type, true);
  c->remote = remote;
  try {
    if (type == TransportType::Tls) {
      c->tls.emplace(tcp::socket(io_), *tlsContext_);
    } else {
      c->plain.emplace(io_);
    }
  } catch (const std::exception& e) {
    connections_.erase(c->id);
    return transportError(std::string("cannot create connection: ") + e.what());
  }
  byRemote_[ConnKey{type, remote}] = c->id; // later sends queue behind the pending connect
  connectionsOpened.inc();
  c->socket().async_connect(
      toEndpoint<tcp::endpoint>(remote), [g = guard_, c](const asio::error_code& ec) {
        TransportManager* m = *g;
        if (!m || c->state == Connection::State::Closed) return;
        if (ec) {
          m->closeConnection(c, CloseReason::Error, "connect failed: " + ec.message());
          return;
        }
        asio::error_code ignored;
        c->socket().set_option(tcp::no_delay(true), ignored);
        if (auto local = c->socket().local_endpoint(ignored); !ignored)
          c->local = fromEndpoint(local);
        c->lastActivity = Clock::now();
        if (c->tls) {
          m->startHandshake(c, false);
        } else {
          m->onOpen(c);
        }
      });
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

void TransportManager::armSweep() {
  if (sweepArmed_ || closed_) return;
  sweepArmed_ = true;
  Duration interval = std::min(options_.idleTimeout, options_.connectTimeout) / 4;
  interval = std::clamp(interval, Duration(10), Duration(1000));
  sweepTimer_.expires_after(interval);
  sweepTimer_.async_wait([g = guard_](const asio::error_code& ec) {
    TransportManager* m = *g;
    if (!m) return;
    m->sweepArmed_ = false;
    if (ec) return;
    m->sweep();
  });
}

void TransportManager::sweep() {
  Guard g = guard_; // onTransportError may destroy us
  TimePoint now = Clock::now();
  std::vector<std::pair<std::shared_ptr<Connection>, bool>> expired; // bool: still connecting
  for (const auto& [id, c] : connections_) {
    bool open = c->state == Connection::State::Open;
    Duration limit = open ? options_.idleTimeout : options_.connectTimeout;
    if (now - c->lastActivity >= limit) expired.emplace_back(c, !open);
  }
  for (auto& [c, connecting] : expired) {
    if (connecting) {
      if (c->type == TransportType::Tls) tlsHandshakeFailures.inc();
      closeConnection(c, CloseReason::Error, "connect/handshake timed out");
    } else {
      closeConnection(c, CloseReason::Idle, "idle");
    }
    if (!*g) return;
  }
  if (!connections_.empty()) armSweep();
}

void TransportManager::close() {
  if (closed_) return;
  closed_ = true;
  asio::error_code ignored;
  for (auto& l : listeners_) {
    l->closed = true;
    l->backoff.cancel();
    if (l->acceptor) l->acceptor->close(ignored);
    if (l->datagram) l->datagram->close(ignored);
  }
  listeners_.clear();
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(connections_.size());
  for (auto& [id, c] : connections_) all.push_back(c);
  for (auto& c : all) closeConnection(c, CloseReason::Local, "shutdown");
  byRemote_.clear();
  sweepTimer_.cancel();
}

} // namespace verbund::sip

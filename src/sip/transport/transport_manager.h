#pragma once
// UDP, TCP and TLS transports on one Asio io_context (RFC 3261 §18). Single-threaded: every
// callback runs on the io_context's thread, so nothing here is locked. Network input never throws:
// bad streams are closed and counted, failures reach TransportUser::onTransportError.
#include "base/clock.h"
#include "base/result.h"
#include "net/admission.h"
#include "net/stream_connection.h"
#include "sip/transport/transport.h"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

typedef struct x509_st X509;

namespace asio::ssl {
class context;
}

namespace verbund::sip {

struct TlsConfig {
  enum class ClientCertMode {
    None,     // do not ask clients for a certificate
    Optional, // ask; a presented certificate must verify, none is accepted
    Required, // ask and fail the handshake without a verifiable certificate
  };
  // Our certificate chain (leaf first) and its private key, as PEM text or as file paths (the
  // text wins when both are set). Required for listening; optional for client-only use.
  std::string certificateChainPem;
  std::string privateKeyPem;
  std::string certificateChainFile;
  std::string privateKeyFile;
  // Trust anchors for verifying peers; when both are empty the system default paths are used.
  std::string caPem;
  std::string caFile;
  ClientCertMode clientCertMode = ClientCertMode::None;
  // Verify the server's chain on outgoing connections. Host names are not checked (we connect to
  // addresses); identity checks belong in TransportManager::onTlsPeerVerified.
  bool verifyServer = true;
  // TLS 1.2 is the floor (RFC 8996 deprecates 1.0/1.1); a higher one may be chosen.
  bool requireTls13 = false;
};

struct TransportOptions {
  Duration idleTimeout = std::chrono::seconds(300);   // streams with no traffic are closed
  Duration connectTimeout = std::chrono::seconds(10); // TCP connect + TLS handshake
  // An incoming stream must deliver its first complete SIP message (TLS handshake included)
  // within this, or it is closed: an idle connection costs a descriptor and buys nothing.
  Duration firstMessageTimeout = std::chrono::seconds(10);
  // TCP + TLS connections, incoming and outgoing (net::connectionBudget derives it from the
  // open-file limit in the node). Incoming ones are also capped per source address (IPv4, or
  // IPv6 /64), and those that have not sent a complete message yet have caps of their own.
  // maxPerSource 256: an office of phones behind one NAT. `reserved` of maxConnections and
  // maxPending is kept for sources isReservedSource() accepts.
  net::AdmissionLimits admission{.maxConnections = 4096,
                                 .maxPerSource = 256,
                                 .maxPending = 1024,
                                 .maxPendingPerSource = 32,
                                 .reserved = 0};
  size_t maxHeaderBytes = 16 * 1024;
  size_t maxMessageBytes = 64 * 1024;
  size_t maxWriteQueueBytes = 4 * 1024 * 1024; // per connection; beyond it send() fails
  int udpReceiveBuffer = 4 * 1024 * 1024;      // SO_RCVBUF asked for; 0 keeps the system's
};

class TransportManager final : public Transport {
public:
  // Called after each TLS handshake, for both directions, with the peer's certificate (null when
  // the peer sent none). The certificate was verified against the CA unless verification is off
  // for that direction. Returning false closes the connection.
  using TlsPeerVerified = std::function<bool(ConnectionId, const Peer&, X509* peerCert)>;

  // `timers` runs the stream deadlines (first message, idle, connect); null: timers of its own on
  // `io`. It must outlive the manager.
  explicit TransportManager(asio::io_context& io, TransportOptions options = {},
                            Timers* timers = nullptr);
  ~TransportManager() override;
  TransportManager(const TransportManager&) = delete;
  TransportManager& operator=(const TransportManager&) = delete;

  void setUser(TransportUser* user) { user_ = user; }
  // New connection caps and first-message deadline (a configuration reload): they apply to
  // connections accepted from now on; open ones stay.
  void setConnectionLimits(const net::AdmissionLimits& limits, Duration firstMessageTimeout);
  // Replaces the TLS settings; connections already open keep theirs.
  Result<void> configureTls(const TlsConfig& config);
  TlsPeerVerified onTlsPeerVerified;
  // Sources that may use the reserved connection slots and are not held to the per-source caps
  // (e.g. the addresses of federation members on the SIP-TLS listener). Unset: none.
  std::function<bool(const IpAddress&)> isReservedSource;

  // Binds a listener; port 0 picks a free port. Returns the bound address.
  Result<SockAddr> listen(TransportType type, const SockAddr& addr);

  Result<void> send(const Peer& to, std::string_view bytes) override;
  std::optional<SockAddr> localAddress(TransportType transport,
                                       const SockAddr& remote) const override;

  // Closes one stream connection without reporting an error. Unknown ids are ignored.
  void closeConnection(ConnectionId id);
  // Closes one stream connection abortively: what is still queued for it (here and in the
  // kernel) is dropped, never delivered later (net::StreamConnection::abort). No error reported.
  void abortConnection(ConnectionId id);
  // abortConnection for every stream connection of `type` to `remote` (also those still
  // connecting or in their handshake, whose queued requests would go out once they complete).
  size_t abortConnectionsTo(TransportType type, const SockAddr& remote);
  // Called after a stream connection closed, for every reason; `byPeer` when the peer closed it
  // or it failed (not a local close, idle reaping or a deadline).
  std::function<void(ConnectionId, const Peer&, bool byPeer)> onConnectionClosed;
  // Closes every listener and connection; send() fails afterwards. Idempotent.
  void close();

  size_t connectionCount() const { return connections_.size(); }
  bool isOpen(ConnectionId id) const { return connections_.count(id) != 0; }
  std::vector<SockAddr> listeningAddresses(TransportType type) const;

private:
  struct Connection;
  struct Listener;
  struct ConnKey {
    TransportType type;
    SockAddr remote;
    friend bool operator==(const ConnKey&, const ConnKey&) = default;
  };
  struct ConnKeyHash {
    size_t operator()(const ConnKey& k) const noexcept {
      return SockAddrHash{}(k.remote) * 3 + size_t(k.type);
    }
  };
  enum class CloseReason { Local, PeerClosed, Error, Idle, FirstMessage };
  // Handlers hold this token instead of `this`: the manager clears it on destruction so handlers
  // still queued in the io_context become no-ops.
  using Guard = std::shared_ptr<TransportManager*>;

  struct Datagram {
    enum class Kind { Received, Empty, Error };
    Kind kind = Kind::Empty;
    size_t size = 0;
    int error = 0;
    SockAddr from;
    TimePoint receivedAt;
    uint64_t kernelDrops = 0;
  };
  void startReceive(const std::shared_ptr<Listener>& l);
  void drainDatagrams(const std::shared_ptr<Listener>& l);
  static Datagram receiveDatagram(Listener& l);
  void onAccept(TransportType type, asio::ip::tcp::socket socket, const SockAddr& remote,
                net::Admission::Ticket ticket);
  void attach(const std::shared_ptr<Connection>& c, bool server);
  void onOpen(ConnectionId id);
  void onData(ConnectionId id, std::string_view bytes);
  void onStreamClosed(ConnectionId id, net::StreamConnection::CloseReason why,
                      const std::string& detail);
  void closeConnection(const std::shared_ptr<Connection>& c, CloseReason why,
                       const std::string& reason, bool abort = false);
  Result<void> sendDatagram(const Peer& to, std::string_view bytes);
  Result<void> sendStream(const Peer& to, std::string_view bytes);
  Result<std::shared_ptr<Connection>> connect(TransportType type, const SockAddr& remote);
  std::shared_ptr<Connection> makeConnection(TransportType type, bool outgoing);
  Peer peerOf(const Connection& c) const;
  net::StreamConnection::Options streamOptions(bool outgoing) const;
  void publishCount();

  asio::io_context& io_;
  TransportOptions options_;
  std::unique_ptr<Timers> ownTimers_;
  Timers& timers_;
  TransportUser* user_ = nullptr;
  Guard guard_;
  bool closed_ = false;
  std::shared_ptr<asio::ssl::context> tlsContext_;
  TlsConfig::ClientCertMode clientCertMode_ = TlsConfig::ClientCertMode::None;
  bool verifyServer_ = true;
  bool tlsHasCertificate_ = false;
  std::shared_ptr<net::Admission> admission_; // incoming streams, all listeners together
  std::vector<std::shared_ptr<Listener>> listeners_;
  std::unordered_map<ConnectionId, std::shared_ptr<Connection>> connections_;
  std::unordered_map<ConnKey, ConnectionId, ConnKeyHash> byRemote_;
  ConnectionId nextId_ = 0;
};

} // namespace verbund::sip

#include "federation/control/link_manager.h"

#include "base/log.h"
#include "base/metrics.h"
#include "federation/trust/errors.h"
#include "net/listener.h"
#include "net/stream_connection.h"
#include "net/tls.h"

#include <algorithm>
#include <charconv>
#include <deque>

#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace verbund::federation {

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

// After a refusal is written: how long we wait for the peer to close before we do.
constexpr auto kFlushTimeout = 1000ms;
constexpr size_t kMaxLoggedTypeChars = 32;

Counter connectionsAccepted("federation_control_connections_accepted_total",
                            "incoming control-plane connections accepted");
Counter connectionsRefused("federation_control_connections_refused_total",
                           "incoming control-plane connections refused (certificate, TLS, limit)");
Counter refusedGlobalCap("federation_control_connections_refused_limit_total",
                         "incoming control-plane connections refused at the global limit (open or "
                         "before hello; the members' reserve excluded)");
Counter refusedPerSource("federation_control_connections_refused_per_source_total",
                         "incoming control-plane connections refused at a per-source limit");
Counter helloTimeouts("federation_control_hello_timeouts_total",
                      "control-plane connections closed for no TLS handshake + hello in time");
Counter acceptFdErrors("federation_control_accept_fd_limit_total",
                       "accept() failures for want of file descriptors (EMFILE/ENFILE)");
Gauge incomingGauge("federation_control_incoming_connections",
                    "open incoming control-plane connections");
Gauge pendingGauge("federation_control_incoming_connections_pending",
                   "incoming control-plane connections before their hello");
Counter peersRejected("federation_control_peers_rejected_total",
                      "dialled peers whose certificate or hello we rejected");
Counter dialFailures("federation_control_dial_failures_total",
                     "outgoing control-plane connections that failed before hello");
Counter badFrames("federation_control_bad_frames_total",
                  "links closed because of a malformed frame");
Counter badMessages("federation_control_bad_messages_total",
                    "malformed known messages (logged and dropped, or closing before hello)");
Counter linksUp("federation_control_links_up_total", "links that completed hello");
Counter linksDown("federation_control_links_down_total", "links that went down");
Counter duplicatesClosed("federation_control_duplicates_closed_total",
                         "second connections to the same peer closed by the tie-break");
Counter messagesReceived("federation_control_messages_received_total",
                         "messages received on up links");
Counter messagesSent("federation_control_messages_sent_total", "messages queued on up links");

spdlog::logger& fedLog() {
  static std::shared_ptr<spdlog::logger> l = verbund::logger("federation");
  return *l;
}

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

// OpenSSL's own chain check is not the authority here: verifyPeer() runs after the handshake and
// knows the federation's rules (revocations, node URI, which federation). The peer still has to
// prove possession of its key during the handshake.
int acceptAnyCertificate(int, X509_STORE_CTX*) {
  return 1;
}

// "host:port" with host an IP literal (IPv6 in brackets) or a DNS name.
bool splitHostPort(std::string_view hp, std::string& host, uint16_t& port) {
  size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = hp.substr(0, colon);
  std::string_view p = hp.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535)
    return false;
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  }
  host = std::string(h);
  port = static_cast<uint16_t>(value);
  return true;
}

std::string shortType(const std::string& t) {
  if (t.size() <= kMaxLoggedTypeChars) return t;
  return t.substr(0, kMaxLoggedTypeChars) + "...";
}

std::string durationText(Duration d) {
  return std::to_string(d.count()) + " ms";
}

} // namespace

std::string_view linkStateName(LinkState s) {
  switch (s) {
  case LinkState::Connecting:
    return "connecting";
  case LinkState::Up:
    return "up";
  case LinkState::Down:
    return "down";
  case LinkState::Incompatible:
    return "incompatible";
  case LinkState::Revoked:
    return "revoked";
  }
  return "unknown";
}

struct LinkManager::Impl {
  using Guard = std::shared_ptr<Impl*>;

  // What closing a connection does to its peer's link.
  enum class Outcome {
    Down,         // an ordinary failure: the link (if this was it) goes down and is redialled
    Incompatible, // protocol majors differ: the peer's link shows Incompatible
    Revoked,      // the peer is revoked: the link shows Revoked and is not redialled
    Quiet,        // the peer's link is not affected (duplicate, replaced, stopping)
  };

  // One control connection. The bytes move through the shared connection layer
  // (net::StreamConnection: TCP, TLS, write queue, the hello deadline); what is kept here is the
  // link protocol's view of it.
  struct Conn {
    enum class Phase {
      Setup, // TCP connect (outgoing) and TLS handshake, in the stream
      Hello, // peer certificate verified, our hello sent, waiting for theirs
      Up,    // the peer's link
      Closed,
    };
    explicit Conn(asio::io_context& io) : heartbeat(io) {}

    uint64_t id = 0;
    bool outgoing = false;
    Phase phase = Phase::Setup;
    std::shared_ptr<net::StreamConnection> stream;
    std::optional<tcp::resolver> resolver;
    asio::steady_timer heartbeat; // ping / dead-link check while up
    std::string address;          // remote "host:port"
    std::string expectedNode;     // dialled for this peer (empty: probe or incoming)
    std::string nodeId;           // from the verified certificate
    std::string fingerprint;
    bool verified = false;
    bool detached = false; // the peer's state no longer depends on this connection
    FrameDecoder decoder;
    std::optional<Hello> hello;
    TimePoint lastReceived;
    TimePoint lastPing;
    std::function<void(Result<LinkInfo>)> probeDone;
  };
  using ConnPtr = std::shared_ptr<Conn>;

  struct Peer {
    explicit Peer(asio::io_context& io) : retry(io) {}
    LinkInfo info;
    std::vector<std::string> targets; // from setPeers
    bool wanted = false;              // listed by setPeers: we (re)dial it
    bool removed = false;
    bool handoff = false; // the live connection closed while another one finishes hello
    ConnPtr live;
    ConnPtr dialing;
    asio::steady_timer retry;
    bool retryPending = false;
    uint64_t retryGeneration = 0;
    Duration backoff{0};
    size_t nextAddress = 0;
  };
  using PeerPtr = std::shared_ptr<Peer>;

  // Callbacks collected while state changes and run once it is consistent.
  struct Notices {
    std::optional<LinkInfo> down;
    std::function<void(Result<LinkInfo>)> done;
    std::optional<Result<LinkInfo>> doneResult;
  };

  Impl(asio::io_context& io, Timers& timers, Handler& handler, LinkOptions options)
      : io_(io), timers_(timers), handler_(handler), options_(options),
        guard_(std::make_shared<Impl*>(this)) {
    net::ConnectionMetrics metrics;
    metrics.refusedGlobalCap = &refusedGlobalCap;
    metrics.refusedPerSourceCap = &refusedPerSource;
    metrics.firstMessageTimeouts = &helloTimeouts;
    metrics.fdLimitErrors = &acceptFdErrors;
    metrics.open = &incomingGauge;
    metrics.pending = &pendingGauge;
    admission_ = std::make_shared<net::Admission>(options_.admission, metrics);
  }

  asio::io_context& io_;
  Timers& timers_; // hello deadlines, wall clock of link states and hellos
  Handler& handler_;
  LinkOptions options_;
  Guard guard_;
  const TrustStore* trust_ = nullptr;
  LinkManager::PeerVerifier verifier_;
  Hello self_;
  std::shared_ptr<asio::ssl::context> ctx_;
  std::shared_ptr<net::Admission> admission_; // incoming connections, all listeners
  std::vector<std::shared_ptr<net::StreamListener>> listeners_;
  std::map<uint64_t, ConnPtr> conns_;
  std::map<std::string, PeerPtr> peers_;
  uint64_t nextConnId_ = 0;
  bool stopped_ = false;

  // ---- peers -------------------------------------------------------------------------------

  PeerPtr findPeer(const std::string& id) const {
    if (id.empty()) return nullptr;
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second;
  }

  PeerPtr peerFor(const std::string& id) {
    if (auto p = findPeer(id)) return p;
    auto p = std::make_shared<Peer>(io_);
    p->info.nodeId = id;
    p->info.sinceMs = timers_.wallMs();
    p->backoff = options_.retryMin;
    peers_.emplace(id, p);
    return p;
  }

  void setState(Peer& p, LinkState s, const std::string& error) {
    if (p.info.state != s) p.info.sinceMs = timers_.wallMs();
    p.info.state = s;
    p.info.lastError = s == LinkState::Up ? std::string() : error;
    if (s != LinkState::Up) p.info.rttMs.reset();
  }

  void cancelRetry(Peer& p) {
    ++p.retryGeneration;
    p.retryPending = false;
    p.retry.cancel();
  }

  void scheduleRedial(const PeerPtr& p) {
    if (stopped_ || !ctx_ || p->removed || !p->wanted || p->live || p->dialing || p->retryPending ||
        p->targets.empty() || p->info.state == LinkState::Revoked)
      return;
    Duration delay;
    if (p->info.state == LinkState::Incompatible) {
      delay = options_.incompatibleRetry;
    } else {
      delay = p->backoff;
      p->backoff = std::min(p->backoff * 2, options_.retryMax);
    }
    p->retryPending = true;
    uint64_t generation = ++p->retryGeneration;
    p->retry.expires_after(delay);
    p->retry.async_wait([g = guard_, p, generation](const asio::error_code& ec) {
      Impl* m = *g;
      if (!m || ec || p->retryGeneration != generation) return;
      p->retryPending = false;
      m->dial(p);
    });
  }

  void dialSoon(const PeerPtr& p) {
    asio::post(io_, [g = guard_, p]() {
      if (Impl* m = *g) m->dial(p);
    });
  }

  bool hasPending(const Peer& p, const Conn* except) const {
    for (const auto& [id, c] : conns_) {
      if (c.get() != except && !c->detached && c->verified && c->phase == Conn::Phase::Hello &&
          c->nodeId == p.info.nodeId)
        return true;
    }
    return false;
  }

  // ---- connections -------------------------------------------------------------------------

  net::StreamConnection::Options streamOptions() const {
    net::StreamConnection::Options o;
    // One deadline from the first moment: TCP + TLS + hello within connectTimeout.
    o.firstMessageTimeout = options_.connectTimeout;
    o.maxWriteQueueBytes = options_.maxWriteQueueBytes;
    o.firstMessageTimeouts = &helloTimeouts;
    return o;
  }

  ConnPtr newConn(std::shared_ptr<net::StreamConnection> stream, bool outgoing) {
    auto c = std::make_shared<Conn>(io_);
    c->id = ++nextConnId_;
    c->outgoing = outgoing;
    c->stream = std::move(stream);
    conns_.emplace(c->id, c);
    std::weak_ptr<Conn> w = c;
    net::StreamConnection::Handler h;
    h.onOpen = [g = guard_, w] {
      Impl* m = *g;
      if (auto cc = w.lock(); m && cc && cc->phase == Conn::Phase::Setup) m->onHandshake(cc);
    };
    h.onData = [g = guard_, w](std::string_view bytes) {
      Impl* m = *g;
      if (auto cc = w.lock(); m && cc && cc->phase != Conn::Phase::Closed) m->onRead(cc, bytes);
    };
    h.onClosed = [g = guard_, w](net::StreamConnection::CloseReason why, const std::string& d) {
      Impl* m = *g;
      if (auto cc = w.lock(); m && cc && cc->phase != Conn::Phase::Closed)
        m->onStreamClosed(cc, why, d);
    };
    c->stream->setHandler(std::move(h));
    // OpenSSL's chain check is not the authority (verifyPeer after the handshake is), but the
    // peer must present a certificate and prove its key. Incoming: no certificate, no handshake.
    SSL_set_verify(c->stream->ssl(),
                   outgoing ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                   acceptAnyCertificate);
    return c;
  }

  ConnPtr newOutgoing() {
    return newConn(net::StreamConnection::outgoing(io_, ctx_, timers_, streamOptions()), true);
  }

  // The stream closed by itself (peer, error, deadline): what that means for the link.
  void onStreamClosed(const ConnPtr& c, net::StreamConnection::CloseReason why,
                      const std::string& detail) {
    using R = net::StreamConnection::CloseReason;
    using S = net::StreamConnection::State;
    Error err;
    if (why == R::FirstMessageTimeout || why == R::SetupTimeout) {
      // Where the deadline caught it: the stream's state before it closed.
      bool beforeTcp = c->stream->closedIn() == S::Connecting;
      bool handshaking = c->stream->closedIn() == S::Handshaking;
      std::string what = beforeTcp     ? "no connection"
                         : handshaking ? "TLS handshake not finished"
                                       : "no hello";
      err = controlError(beforeTcp ? ControlErrc::kUnreachable : ControlErrc::kClosed,
                         what + " within " + durationText(options_.connectTimeout) +
                             (c->address.empty() ? "" : " (" + c->address + ")"));
      if (!c->outgoing && handshaking) {
        connectionsRefused.inc();
        fedLog().warn("federation: refused connection from {}: {}", c->address, err.message);
      }
    } else if (why == R::ConnectFailed) {
      dialFailures.inc();
      err = controlError(ControlErrc::kUnreachable,
                         "cannot connect to " + c->address + ": " + detail);
    } else if (why == R::HandshakeFailed) {
      err = controlError(ControlErrc::kRefused,
                         "TLS handshake with " + c->address + " failed: " + detail);
      if (c->outgoing) {
        dialFailures.inc();
      } else {
        connectionsRefused.inc();
        fedLog().warn("federation: refused connection from {}: {}", c->address, err.message);
      }
    } else if (why == R::WriteFailed) {
      err = controlError(ControlErrc::kClosed, "write failed: " + detail);
    } else if (c->phase == Conn::Phase::Hello) {
      err = controlError(ControlErrc::kRefused,
                         "connection closed by " + c->address +
                             " before its hello (it may have refused our certificate)");
    } else {
      err =
          controlError(ControlErrc::kClosed, why == R::PeerClosed ? "connection closed by the peer"
                                                                  : "read failed: " + detail);
    }
    closeConn(c, err, Outcome::Down);
  }

  void dial(const PeerPtr& p) {
    if (stopped_ || !ctx_ || p->removed || !p->wanted || p->live || p->dialing || p->retryPending ||
        p->targets.empty() || p->info.state == LinkState::Revoked)
      return;
    const std::string& address = p->targets[p->nextAddress % p->targets.size()];
    auto c = newOutgoing();
    c->expectedNode = p->info.nodeId;
    c->address = address;
    p->dialing = c;
    connect(c);
  }

  void connect(const ConnPtr& c) {
    std::string host;
    uint16_t port = 0;
    if (!splitHostPort(c->address, host, port)) {
      asio::post(io_, [g = guard_, c]() {
        if (Impl* m = *g)
          m->closeConn(c, controlError(ControlErrc::kUnreachable, "bad address " + c->address),
                       Outcome::Down);
      });
      return;
    }
    asio::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (!ec) {
      c->stream->connect({tcp::endpoint(ip, port)});
      return;
    }
    c->resolver.emplace(io_);
    c->resolver->async_resolve(
        host, std::to_string(port),
        [g = guard_, c](const asio::error_code& rec, const tcp::resolver::results_type& results) {
          Impl* m = *g;
          if (!m || c->phase != Conn::Phase::Setup) return;
          if (rec) {
            dialFailures.inc();
            m->closeConn(c,
                         controlError(ControlErrc::kUnreachable,
                                      "cannot resolve " + c->address + ": " + rec.message()),
                         Outcome::Down);
            return;
          }
          std::vector<tcp::endpoint> targets;
          for (const auto& r : results) targets.push_back(r.endpoint());
          c->stream->connect(std::move(targets));
        });
  }

  void onHandshake(const ConnPtr& c) {
    SSL* ssl = c->stream->ssl();
    X509* cert = SSL_get0_peer_certificate(ssl);
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    auto identity = !trust_     ? Result<PeerIdentity>(controlError(ControlErrc::kNotInFederation,
                                                                    "no federation credentials"))
                    : verifier_ ? verifier_(*trust_, cert, chain, !c->outgoing)
                                : verifyPeer(cert, chain, *trust_, sysTimeFromMs(timers_.wallMs()));
    ERR_clear_error();
    if (!identity) {
      refuseCertificate(c, identity.error(), cert);
      return;
    }
    c->nodeId = identity->nodeId;
    c->fingerprint = identity->fingerprint;
    if (c->nodeId == self_.nodeId) {
      closeConn(c, controlError(ControlErrc::kRefused, c->address + " is this node itself"),
                Outcome::Down);
      return;
    }
    if (!c->expectedNode.empty() && c->nodeId != c->expectedNode) {
      peersRejected.inc();
      std::string msg =
          c->address + " answered as node " + c->nodeId + ", not node " + c->expectedNode;
      fedLog().warn("federation: {}", msg);
      c->nodeId.clear(); // the link of the expected node shows the error
      closeConn(c, controlError(ControlErrc::kRefused, msg), Outcome::Down);
      return;
    }
    c->verified = true;
    c->phase = Conn::Phase::Hello;
    Hello h = self_;
    h.sentMs = timers_.wallMs();
    enqueue(c, toJson(h));
  }

  void refuseCertificate(const ConnPtr& c, const Error& err, X509* cert) {
    if (c->outgoing) {
      peersRejected.inc();
      fedLog().warn("federation: refusing node at {}: {}", c->address, err.message);
    } else {
      connectionsRefused.inc();
      fedLog().warn("federation: refused connection from {}: {}", c->address, err.message);
    }
    Outcome outcome = Outcome::Down;
    if (isTrustError(err, TrustErrc::kRevoked)) {
      // The id is one on our revocation list (checked before anything else).
      std::optional<std::string> id = cert ? nodeIdOf(cert) : std::nullopt;
      if (id && *id != self_.nodeId) {
        c->nodeId = *id;
        peerFor(*id);
        outcome = Outcome::Revoked;
      }
    }
    // A peer of this federation refused for a membership reason is told why (its certificate is
    // not trusted, so nothing else is sent): a joiner with an outdated federation file can then
    // name the cause to its admin.
    const char* code = isTrustError(err, TrustErrc::kStaleCa)       ? "stale-ca"
                       : isTrustError(err, TrustErrc::kNotMember)   ? "not-member"
                       : isTrustError(err, TrustErrc::kPinMismatch) ? "pin-mismatch"
                       : isTrustError(err, TrustErrc::kRevoked)     ? "revoked"
                                                                    : nullptr;
    if (!c->outgoing && code != nullptr) {
      refuse(c, code, err, outcome);
      return;
    }
    closeConn(c, err, outcome);
  }

  // ---- reading -----------------------------------------------------------------------------

  void onRead(const ConnPtr& c, std::string_view bytes) {
    c->lastReceived = Clock::now();
    std::vector<nlohmann::json> messages;
    Result<void> framed = c->decoder.feed(bytes, messages);
    Guard g = guard_;
    for (const auto& msg : messages) {
      handleMessage(c, msg);
      if (!*g || c->phase == Conn::Phase::Closed) break;
    }
    if (!*g || c->phase == Conn::Phase::Closed) return;
    if (!framed) {
      badFrames.inc();
      fedLog().warn("federation: closing the link with {} ({}): {}", c->address,
                    c->nodeId.empty() ? "?" : c->nodeId, framed.error().message);
      closeConn(c, framed.error(), Outcome::Down);
    }
  }

  void handleMessage(const ConnPtr& c, const nlohmann::json& msg) {
    const std::string& type = msg["t"].get_ref<const std::string&>();
    if (c->phase == Conn::Phase::Hello) {
      if (type == "hello") {
        auto h = helloFromJson(msg);
        if (!h) {
          badMessages.inc();
          peersRejected.inc();
          fedLog().warn("federation: bad hello from {}: {}", c->address, h.error().message);
          closeConn(c, h.error(), Outcome::Down);
          return;
        }
        onHello(c, std::move(*h));
      } else if (type == "refuse") {
        onRefuse(c, msg);
      } else {
        badMessages.inc();
        closeConn(c,
                  controlError(ControlErrc::kBadMessage,
                               "expected hello from " + c->address + ", got " + shortType(type)),
                  Outcome::Down);
      }
      return;
    }
    if (c->phase != Conn::Phase::Up) return;
    if (type == "ping") {
      auto ms = msg.find("ms");
      if (ms == msg.end() || !ms->is_number_integer()) {
        badMessages.inc();
        fedLog().debug("federation: ping without ms from {}", c->nodeId);
        return;
      }
      enqueue(c, nlohmann::json{{"t", "pong"}, {"ms", *ms}});
    } else if (type == "pong") {
      auto ms = msg.find("ms");
      if (ms == msg.end() || !ms->is_number_integer()) {
        badMessages.inc();
        fedLog().debug("federation: pong without ms from {}", c->nodeId);
        return;
      }
      int64_t sent =
          ms->is_number_unsigned() && ms->get<uint64_t>() > INT64_MAX ? -1 : ms->get<int64_t>();
      int64_t rtt = steadyMs() - sent;
      auto p = findPeer(c->nodeId);
      if (sent < 0 || rtt < 0 || rtt > 3'600'000 || !p || p->live != c) return;
      // RFC 6298 §2-style smoothing (alpha = 1/8).
      double sample = static_cast<double>(rtt);
      p->info.rttMs = p->info.rttMs ? *p->info.rttMs * 0.875 + sample * 0.125 : sample;
    } else if (type == "hello") {
      badMessages.inc();
      fedLog().debug("federation: second hello from {} ignored", c->nodeId);
    } else if (type == "refuse") {
      onRefuse(c, msg);
    } else {
      messagesReceived.inc();
      handler_.onMessage(c->nodeId, msg);
    }
  }

  void onHello(const ConnPtr& c, Hello h) {
    if (h.nodeId != c->nodeId) {
      badMessages.inc();
      peersRejected.inc();
      std::string msg = "hello from " + c->address + " names node " + h.nodeId +
                        " but its certificate is of node " + c->nodeId;
      fedLog().warn("federation: {}", msg);
      closeConn(c, controlError(ControlErrc::kBadMessage, msg), Outcome::Down);
      return;
    }
    auto p = peerFor(c->nodeId);
    p->info.name = h.name;
    p->info.clockOffsetMs = h.sentMs - timers_.wallMs();
    p->info.productVersion = h.productVersion;
    p->info.protocolVersion = h.protocol.toString();
    p->info.sipAddress = h.sipAddress;
    if (!h.controlAddresses.empty()) p->info.controlAddresses = h.controlAddresses;
    if (h.federationId != self_.federationId) {
      std::string msg = "node " + h.nodeId + " says it belongs to federation " + h.federationId;
      fedLog().warn("federation: {}", msg);
      refuse(c, "other-federation", controlError(ControlErrc::kOtherFederation, msg),
             Outcome::Down);
      return;
    }
    if (!h.protocol.compatibleWith(self_.protocol)) {
      std::string msg = "protocol " + h.protocol.toString() + " of node " + h.name +
                        " is incompatible with ours (" + self_.protocol.toString() + ")";
      fedLog().warn("federation: {}", msg);
      refuse(c, "incompatible", controlError(ControlErrc::kIncompatible, msg),
             Outcome::Incompatible);
      return;
    }
    c->hello = std::move(h);
    c->stream->firstMessage(); // the hello deadline is met; no longer a pending slot
    establish(c, p);
  }

  void onRefuse(const ConnPtr& c, const nlohmann::json& msg) {
    auto r = refusalFromJson(msg);
    if (!r) {
      badMessages.inc();
      closeConn(c, r.error(), Outcome::Down);
      return;
    }
    auto p = findPeer(c->nodeId);
    std::string who = p && !p->info.name.empty() ? p->info.name : c->nodeId;
    if (r->code == "duplicate") {
      closeConn(c, controlError(ControlErrc::kClosed, "duplicate connection"), Outcome::Quiet);
      return;
    }
    fedLog().warn("federation: node {} at {} refused the link ({}): {}", who, c->address, r->code,
                  r->message);
    if (r->code == "incompatible") {
      closeConn(c,
                controlError(ControlErrc::kIncompatible, "protocol " + r->protocol + " of node " +
                                                             who + " is incompatible with ours (" +
                                                             self_.protocol.toString() + ")"),
                Outcome::Incompatible);
    } else if (r->code == "revoked") {
      closeConn(c,
                controlError(ControlErrc::kRefused, "node " + who + " refused us: " + r->message),
                Outcome::Revoked);
    } else if (r->code == "other-federation") {
      closeConn(c, controlError(ControlErrc::kOtherFederation, r->message), Outcome::Down);
    } else if (r->code == "stale-ca") {
      closeConn(c, trustError(TrustErrc::kStaleCa, "node " + who + " refused us: " + r->message),
                Outcome::Down);
    } else {
      closeConn(c,
                controlError(ControlErrc::kRefused,
                             "node " + who + " refused the link (" + r->code + "): " + r->message),
                Outcome::Down);
    }
  }

  // ---- link up -----------------------------------------------------------------------------

  void establish(const ConnPtr& c, const PeerPtr& p) {
    Guard g = guard_;
    if (p->live && p->live != c) {
      // Two connections to the same peer: keep the one dialled by the smaller node id (both
      // sides decide alike); two dialled by the same side: the newer one (the older is stale).
      const std::string& dialerNew = c->outgoing ? self_.nodeId : p->info.nodeId;
      const std::string& dialerOld = p->live->outgoing ? self_.nodeId : p->info.nodeId;
      bool keepNew = dialerNew == dialerOld || dialerNew < dialerOld;
      duplicatesClosed.inc();
      if (!keepNew) {
        fedLog().debug("federation: second connection to {} closed (tie-break)", p->info.nodeId);
        auto done = std::move(c->probeDone);
        c->probeDone = nullptr;
        closeConn(c, controlError(ControlErrc::kClosed, "duplicate connection"), Outcome::Quiet);
        if (done && *g) done(p->info);
        return;
      }
      auto old = p->live;
      p->live = nullptr;
      closeConn(old, controlError(ControlErrc::kClosed, "replaced by a newer connection"),
                Outcome::Quiet);
      if (!*g) return;
    }
    if (p->dialing == c) p->dialing = nullptr;
    cancelRetry(*p);
    bool wasUp = p->info.state == LinkState::Up;
    p->live = c;
    p->handoff = false;
    p->backoff = options_.retryMin;
    c->phase = Conn::Phase::Up;
    p->info.address = c->address;
    p->info.fingerprint = c->fingerprint;
    p->info.outgoing = c->outgoing;
    if (p->info.controlAddresses.empty()) p->info.controlAddresses = p->targets;
    if (!wasUp) setState(*p, LinkState::Up, "");
    linksUp.inc();
    fedLog().info("federation: link to {} ({}) up, {} {}", p->info.name, p->info.nodeId,
                  c->outgoing ? "dialled" : "accepted from", c->address);
    c->lastReceived = Clock::now();
    c->lastPing = Clock::now();
    scheduleHeartbeat(c);
    auto done = std::move(c->probeDone);
    c->probeDone = nullptr;
    LinkInfo info = p->info;
    if (done) {
      done(info);
      if (!*g) return;
    }
    // Also when a newer connection replaced the live one (simultaneous dialling): what the
    // handler sent on the old connection may be lost, so it gets the chance to send it again.
    handler_.onLinkUp(info);
  }

  void scheduleHeartbeat(const ConnPtr& c) {
    TimePoint next =
        std::min(c->lastPing + options_.heartbeat, c->lastReceived + options_.deadAfter);
    c->heartbeat.expires_at(next);
    c->heartbeat.async_wait([g = guard_, c](const asio::error_code& ec) {
      Impl* m = *g;
      if (!m || ec || c->phase != Conn::Phase::Up) return;
      m->onHeartbeat(c);
    });
  }

  void onHeartbeat(const ConnPtr& c) {
    TimePoint now = Clock::now();
    if (now - c->lastReceived >= options_.deadAfter) {
      fedLog().warn("federation: nothing from {} for {}; link down", c->nodeId,
                    durationText(options_.deadAfter));
      closeConn(c,
                controlError(ControlErrc::kClosed,
                             "no heartbeat for " + durationText(options_.deadAfter)),
                Outcome::Down);
      return;
    }
    if (now - c->lastPing >= options_.heartbeat) {
      c->lastPing = now;
      if (!enqueue(c, nlohmann::json{{"t", "ping"}, {"ms", steadyMs()}})) return;
    }
    scheduleHeartbeat(c);
  }

  // ---- writing -----------------------------------------------------------------------------

  bool enqueue(const ConnPtr& c, const nlohmann::json& msg) {
    if (c->phase == Conn::Phase::Closed || !c->stream || c->stream->isClosed()) return false;
    std::string frame = encodeFrame(msg);
    if (frame.size() - 4 > kMaxFrameBytes) {
      fedLog().error("federation: message {} of {} bytes to {} exceeds the frame limit; dropped",
                     shortType(msg.value("t", std::string())), frame.size(), c->nodeId);
      return false;
    }
    switch (c->stream->write(std::move(frame))) {
    case net::StreamConnection::WriteResult::Queued:
      return true;
    case net::StreamConnection::WriteResult::Closed:
      return false;
    case net::StreamConnection::WriteResult::QueueFull:
      break;
    }
    fedLog().warn("federation: write queue to {} full ({} bytes); closing the link", c->nodeId,
                  c->stream->queuedBytes());
    closeConn(c, controlError(ControlErrc::kClosed, "write queue full (peer stalled)"),
              Outcome::Down);
    return false;
  }

  // Sends a refusal, settles the peer's state now and closes once it is written (the stream
  // waits up to kFlushTimeout for the peer to close first).
  void refuse(ConnPtr c, const std::string& code, const Error& err, Outcome outcome) {
    enqueue(c, toJson(Refusal{code, err.message, self_.protocol.toString()}));
    if (c->phase == Conn::Phase::Closed) return;
    Notices notices = detach(c, err, outcome);
    c->stream->closeAfterFlush(kFlushTimeout);
    forgetConn(*c);
    notify(std::move(notices));
  }

  // ---- closing -----------------------------------------------------------------------------

  // The connection leaves the manager; its stream is closed by the caller (or is flushing).
  void forgetConn(Conn& c) {
    if (c.phase == Conn::Phase::Closed) return;
    c.phase = Conn::Phase::Closed;
    c.detached = true;
    c.heartbeat.cancel();
    if (c.resolver) c.resolver->cancel();
    conns_.erase(c.id);
  }

  void physicalClose(Conn& c) {
    if (c.phase == Conn::Phase::Closed) return;
    forgetConn(c);
    if (c.stream) c.stream->close();
  }

  // Applies what closing `c` means to its peer's link; the connection itself stays open.
  Notices detach(ConnPtr c, const Error& err, Outcome outcome) {
    Notices n;
    if (c->probeDone) {
      n.done = std::move(c->probeDone);
      c->probeDone = nullptr;
    }
    if (c->detached) return n;
    c->detached = true;
    PeerPtr p = findPeer(c->nodeId.empty() ? c->expectedNode : c->nodeId);
    if (n.done) n.doneResult = Result<LinkInfo>(err);
    if (!p || outcome == Outcome::Quiet) {
      if (p && p->dialing == c) p->dialing = nullptr;
      return n;
    }
    bool wasLive = p->live == c;
    bool wasDialing = p->dialing == c;
    if (wasLive) p->live = nullptr;
    if (wasDialing) p->dialing = nullptr;
    LinkState old = p->info.state;
    if (outcome == Outcome::Incompatible || outcome == Outcome::Revoked) {
      if (p->live) {
        auto other = p->live;
        p->live = nullptr;
        closeConn(other, err, Outcome::Quiet);
      }
      p->handoff = false;
      LinkState s = outcome == Outcome::Revoked ? LinkState::Revoked : LinkState::Incompatible;
      setState(*p, s, err.message);
      if (old == LinkState::Up || (s == LinkState::Incompatible && old != s)) n.down = p->info;
      if (s == LinkState::Revoked) cancelRetry(*p);
      scheduleRedial(p);
    } else if (wasLive) {
      if (hasPending(*p, c.get())) {
        p->handoff = true; // state stays Up: the other connection takes over
      } else {
        setState(*p, LinkState::Down, err.message);
        n.down = p->info;
        scheduleRedial(p);
      }
    } else if (!p->live && !hasPending(*p, c.get())) {
      if (p->handoff) {
        p->handoff = false;
        setState(*p, LinkState::Down, err.message);
        n.down = p->info;
        scheduleRedial(p);
      } else if (wasDialing) {
        if (old != LinkState::Revoked) setState(*p, LinkState::Down, err.message);
        ++p->nextAddress;
        if (!p->targets.empty() && p->nextAddress % p->targets.size() != 0) {
          dialSoon(p); // the next address of this round
        } else {
          scheduleRedial(p);
        }
      }
    }
    if (n.down) {
      linksDown.inc();
      if (old == LinkState::Up)
        fedLog().info("federation: link to {} ({}) down: {}", p->info.name, p->info.nodeId,
                      err.message);
    }
    if (n.done && p->live && p->info.state == LinkState::Up) n.doneResult = p->info;
    return n;
  }

  void notify(Notices n) {
    Guard g = guard_;
    if (n.down) {
      handler_.onLinkDown(*n.down);
      if (!*g) return;
    }
    if (n.done && n.doneResult) n.done(std::move(*n.doneResult));
  }

  // c by value here and in detach/refuse: callers pass p->live, which detach() resets.
  void closeConn(ConnPtr c, const Error& err, Outcome outcome) {
    if (c->phase == Conn::Phase::Closed) return;
    Notices n = detach(c, err, outcome);
    physicalClose(*c);
    notify(std::move(n));
  }

  // Closes everything without calling the handler (stop, destruction, credentials cleared).
  std::vector<std::function<void(Result<LinkInfo>)>> closeAll(const std::string& why) {
    std::vector<std::function<void(Result<LinkInfo>)>> probes;
    auto all = conns_;
    for (auto& [id, c] : all) {
      if (c->probeDone) probes.push_back(std::move(c->probeDone));
      c->probeDone = nullptr;
      physicalClose(*c);
    }
    for (auto& [id, p] : peers_) {
      cancelRetry(*p);
      p->live = nullptr;
      p->dialing = nullptr;
      p->handoff = false;
      if (p->info.state == LinkState::Up || p->info.state == LinkState::Connecting)
        setState(*p, LinkState::Down, why);
    }
    return probes;
  }

  // Known members' addresses may use the reserved slots (and skip the per-source caps): the
  // hosts of the addresses we dial and of the links we had.
  bool isMemberAddress(const IpAddress& ip) const {
    for (const auto& [id, p] : peers_) {
      if (p->removed || p->info.state == LinkState::Revoked) continue;
      auto matches = [&](const std::string& hostPort) {
        std::string host;
        uint16_t port = 0;
        if (!splitHostPort(hostPort, host, port)) return false;
        auto a = IpAddress::parse(host);
        return a && *a == ip;
      };
      for (const auto& t : p->targets)
        if (matches(t)) return true;
      for (const auto& t : p->info.controlAddresses)
        if (matches(t)) return true;
      if (!p->info.address.empty() && matches(p->info.address)) return true;
    }
    return false;
  }

  void onAccept(tcp::socket socket, const SockAddr& remote, net::Admission::Ticket ticket) {
    std::string address = remote.toString();
    if (!ctx_ || stopped_) {
      connectionsRefused.inc();
      fedLog().debug("federation: connection from {} closed: not in a federation", address);
      asio::error_code ec;
      socket.close(ec);
      return;
    }
    connectionsAccepted.inc();
    auto c = newConn(net::StreamConnection::accepted(std::move(socket), ctx_, timers_,
                                                     streamOptions(), std::move(ticket)),
                     false);
    c->address = address;
    c->stream->start();
  }
};

// ---- public API ----------------------------------------------------------------------------

LinkManager::LinkManager(asio::io_context& io, Timers& timers, Handler& handler,
                         LinkOptions options)
    : impl_(std::make_unique<Impl>(io, timers, handler, options)) {}

LinkManager::~LinkManager() {
  *impl_->guard_ = nullptr; // pending handlers see a dead manager and return
  impl_->stopped_ = true;
  for (auto& l : impl_->listeners_) l->close();
  impl_->closeAll("stopped");
  impl_->peers_.clear();
}

void LinkManager::setVerifier(PeerVerifier verifier) {
  impl_->verifier_ = std::move(verifier);
}

Result<void> LinkManager::setCredentials(const TrustStore* trust, Hello self) {
  Impl& m = *impl_;
  if (trust == nullptr) {
    auto probes = m.closeAll("left the federation");
    m.trust_ = nullptr;
    m.ctx_.reset();
    Impl::Guard g = m.guard_;
    for (auto& done : probes) {
      done(controlError(ControlErrc::kClosed, "credentials cleared"));
      if (!*g) break;
    }
    return {};
  }
  const auto& creds = trust->nodeCredentials();
  if (!creds || !creds->cert || !creds->key)
    return controlError(ControlErrc::kNotInFederation, "this node has no node certificate");
  auto nodeId = nodeIdOf(creds->cert.get());
  if (!nodeId)
    return controlError(ControlErrc::kNotInFederation, "the node certificate has no node id");
  if (self.nodeId.empty()) self.nodeId = *nodeId;
  if (self.federationId.empty()) self.federationId = trust->ca().federationId();
  if (self.nodeId != *nodeId)
    return controlError(ControlErrc::kBadMessage,
                        "hello.nodeId differs from the node certificate's node id");
  if (self.federationId != trust->ca().federationId())
    return controlError(ControlErrc::kBadMessage, "hello.federationId differs from the CA's");
  auto checked = helloFromJson(toJson(self));
  if (!checked) return checked.error();

  // No resumption: every connection presents (and we verify) the peer's certificate.
  net::TlsBaseline baseline;
  baseline.resumption = false;
  auto made = net::makeTlsContext(baseline);
  if (!made)
    return controlError(ControlErrc::kNotInFederation, "TLS setup failed: " + made.error().message);
  std::shared_ptr<asio::ssl::context> ctx = std::move(made.value());
  SSL_CTX* h = ctx->native_handle();
  bool ok = SSL_CTX_use_certificate(h, creds->cert.get()) == 1 &&
            SSL_CTX_use_PrivateKey(h, creds->key.get()) == 1 && SSL_CTX_check_private_key(h) == 1;
  // The federation CA is the only trust anchor (no system store); names it to clients too.
  ok = ok && X509_STORE_add_cert(SSL_CTX_get_cert_store(h), trust->ca().cert()) == 1 &&
       SSL_CTX_add_client_CA(h, trust->ca().cert()) == 1;
  SSL_CTX_set_verify(h, SSL_VERIFY_PEER, acceptAnyCertificate);
  if (!ok) {
    std::string why = detail::drainOpensslErrors();
    return controlError(ControlErrc::kNotInFederation, "TLS setup failed: " + why);
  }
  m.trust_ = trust;
  m.self_ = std::move(self);
  m.ctx_ = std::move(ctx);
  m.stopped_ = false;
  for (auto& [id, p] : m.peers_) m.dial(p);
  return {};
}

Result<SockAddr> LinkManager::listen(const SockAddr& addr) {
  Impl& m = *impl_;
  net::StreamListener::Hooks hooks;
  hooks.privileged = [g = m.guard_](const IpAddress& ip) {
    Impl* i = *g;
    return i && i->isMemberAddress(ip);
  };
  hooks.onAccept = [g = m.guard_](tcp::socket s, const SockAddr& remote,
                                  net::Admission::Ticket ticket) {
    if (Impl* i = *g) i->onAccept(std::move(s), remote, std::move(ticket));
  };
  auto l = net::StreamListener::open(m.io_, m.timers_, addr, m.admission_, "federation",
                                     std::move(hooks));
  if (!l) return controlError(ControlErrc::kClosed, l.error().message);
  SockAddr bound = (*l)->local();
  m.listeners_.push_back(std::move(l.value()));
  fedLog().info("federation: control plane listening on {}", bound.toString());
  return bound;
}

void LinkManager::setPeers(std::vector<PeerTarget> peers) {
  Impl& m = *impl_;
  std::map<std::string, std::vector<std::string>> wanted;
  for (auto& t : peers) {
    if (t.nodeId.empty() || t.nodeId == m.self_.nodeId) continue;
    wanted[t.nodeId] = std::move(t.addresses);
  }
  std::vector<std::string> drop;
  for (auto& [id, p] : m.peers_) {
    if (wanted.count(id) != 0 || !p->wanted) continue;
    if (p->live && !p->live->outgoing) {
      // The peer dialled us: it keeps that link; we only stop redialling it.
      p->wanted = false;
      m.cancelRetry(*p);
      if (p->dialing) {
        auto d = p->dialing;
        p->dialing = nullptr;
        m.closeConn(d, controlError(ControlErrc::kClosed, "no longer a peer"),
                    Impl::Outcome::Quiet);
      }
    } else {
      drop.push_back(id);
    }
  }
  for (const auto& id : drop) forget(id);
  for (auto& [id, addresses] : wanted) {
    auto p = m.peerFor(id);
    if (p->targets != addresses) p->nextAddress = 0;
    p->targets = std::move(addresses);
    p->wanted = true;
    if (p->info.controlAddresses.empty()) p->info.controlAddresses = p->targets;
    m.dial(p);
  }
}

void LinkManager::probe(const std::string& address, std::function<void(Result<LinkInfo>)> done) {
  Impl& m = *impl_;
  if (!m.ctx_ || m.stopped_) {
    asio::post(m.io_, [done = std::move(done)]() {
      done(controlError(ControlErrc::kNotInFederation, "this node is not in a federation"));
    });
    return;
  }
  auto c = m.newOutgoing();
  c->address = address;
  c->probeDone = std::move(done);
  m.connect(c);
}

bool LinkManager::send(const std::string& nodeId, const nlohmann::json& message) {
  auto p = impl_->findPeer(nodeId);
  if (!p || !p->live || p->info.state != LinkState::Up) return false;
  auto c = p->live;
  if (!impl_->enqueue(c, message)) return false;
  messagesSent.inc();
  return true;
}

size_t LinkManager::broadcast(const nlohmann::json& message) {
  std::vector<std::string> ids;
  for (const auto& [id, p] : impl_->peers_)
    if (p->live && p->info.state == LinkState::Up) ids.push_back(id);
  size_t n = 0;
  for (const auto& id : ids)
    if (send(id, message)) ++n;
  return n;
}

bool LinkManager::isUp(const std::string& nodeId) const {
  auto p = impl_->findPeer(nodeId);
  return p && p->live && p->info.state == LinkState::Up;
}

std::optional<LinkInfo> LinkManager::link(const std::string& nodeId) const {
  auto p = impl_->findPeer(nodeId);
  if (!p) return std::nullopt;
  return p->info;
}

std::vector<LinkInfo> LinkManager::links() const {
  std::vector<LinkInfo> out;
  out.reserve(impl_->peers_.size());
  for (const auto& [id, p] : impl_->peers_) out.push_back(p->info);
  return out;
}

void LinkManager::closeRevoked() {
  Impl& m = *impl_;
  if (!m.trust_) return;
  Impl::Guard g = m.guard_;
  std::vector<Impl::PeerPtr> peers;
  for (auto& [id, p] : m.peers_) peers.push_back(p);
  for (auto& p : peers) {
    if (!*g) return;
    const auto& revocations = m.trust_->revocations();
    std::string fingerprint = p->live ? p->live->fingerprint : p->info.fingerprint;
    const RevocationEntry* e = revocations.find(p->info.nodeId, fingerprint);
    if (!e) continue;
    Error err = trustError(TrustErrc::kRevoked, "node " + p->info.nodeId + " was revoked" +
                                                    (e->reason.empty() ? "" : ": " + e->reason));
    // Connections of this node that are still in hello go too.
    std::vector<Impl::ConnPtr> pending;
    for (auto& [cid, c] : m.conns_)
      if (c != p->live && c->nodeId == p->info.nodeId) pending.push_back(c);
    for (auto& c : pending) m.closeConn(c, err, Impl::Outcome::Quiet);
    if (!*g) return;
    if (p->live) {
      m.refuse(p->live, "revoked", err, Impl::Outcome::Revoked);
    } else if (p->info.state != LinkState::Revoked) {
      if (p->dialing) {
        auto d = p->dialing;
        p->dialing = nullptr;
        m.closeConn(d, err, Impl::Outcome::Quiet);
      }
      m.cancelRetry(*p);
      m.setState(*p, LinkState::Revoked, err.message);
    }
  }
}

void LinkManager::forget(const std::string& nodeId) {
  Impl& m = *impl_;
  auto p = m.findPeer(nodeId);
  if (!p) return;
  p->removed = true;
  p->wanted = false;
  m.cancelRetry(*p);
  m.peers_.erase(nodeId);
  std::vector<Impl::ConnPtr> victims;
  for (auto& [id, c] : m.conns_)
    if (c->nodeId == nodeId || (c->nodeId.empty() && c->expectedNode == nodeId))
      victims.push_back(c);
  p->live = nullptr;
  p->dialing = nullptr;
  Impl::Guard g = m.guard_;
  for (auto& c : victims) {
    m.closeConn(c, controlError(ControlErrc::kClosed, "node " + nodeId + " was removed"),
                Impl::Outcome::Quiet);
    if (!*g) return;
  }
}

void LinkManager::stop() {
  Impl& m = *impl_;
  if (m.stopped_ && m.listeners_.empty() && m.conns_.empty()) return;
  m.stopped_ = true;
  for (auto& l : m.listeners_) l->close();
  m.listeners_.clear();
  auto probes = m.closeAll("stopped");
  Impl::Guard g = m.guard_;
  for (auto& done : probes) {
    done(controlError(ControlErrc::kClosed, "link manager stopped"));
    if (!*g) return;
  }
}

} // namespace verbund::federation

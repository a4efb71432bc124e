#pragma once
// The federation's links: one mutual-TLS connection to every other member (full mesh), on the
// node's event loop (single thread, no locks).
//
// - Listens on the federation port (default 3090/tcp) and dials every peer it is told about
//   (setPeers), trying each address of a peer in turn with exponential back-off between rounds.
// - TLS 1.2+ with the node certificate; both directions verify the other's certificate against
//   the federation CA and the revocation list (verifyPeer of trust_store.h). A connection that
//   fails verification is closed and logged with the reason (other federation, self-signed,
//   revoked, none) and counted; the dialler's link shows the refusal.
// - After the handshake each side sends "hello" (wire.h). The hello's node id must equal the
//   certificate's node id. Protocol majors that differ: "refuse" with code "incompatible", the
//   link state becomes Incompatible on both sides with both versions in lastError.
// - When two connections to the same peer come up (both dialled at once), the one dialled by the
//   node with the smaller node id is kept, on both sides; the other is closed quietly.
// - Heartbeats: every `heartbeat` a {"t":"ping","ms":..} is sent, answered by "pong"; RTT is the
//   smoothed round trip. A link that receives nothing for `deadAfter` is Down (closed, redialled).
// - ping/pong/hello/refuse are handled here; every other message goes to Handler::onMessage.
//   The ping's "ms" is the sender's monotonic clock; only the sender interprets it (RTT).
// - The accepting side sends nothing to a peer whose certificate fails verification: it logs
//   "federation: refused connection from <addr>: <reason>" (warning), counts it and closes. A
//   revoked node's id is recorded with state Revoked. Accepted connections are admitted by
//   net::Admission (LinkOptions: global and per-source caps, slots reserved for known members;
//   over a cap: accepted and closed at once); every connection must finish TCP + TLS + hello
//   within connectTimeout.
// - The sockets, TLS, write queues and the hello deadline are the shared connection layer's
//   (net::StreamConnection, net::StreamListener); this class keeps only the peer policy.
// - Redial back-off: retryMin, doubling up to retryMax, back to retryMin after a link was up;
//   Incompatible peers are retried after incompatibleRetry, Revoked ones never.
//
//   LinkManager links(io, timers, handler);
//   links.setCredentials(&trust, hello);           // after create/join/load
//   links.listen(SockAddr::parse("0.0.0.0:3090").value());
//   links.setPeers({{"id-b", {"10.0.0.2:3090"}}});
//   links.send("id-b", {{"t", "dir-delta"}, ...});
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"
#include "federation/control/wire.h"
#include "federation/trust/trust_store.h"
#include "net/admission.h"

#include <asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace verbund::federation {

// The state of the link to one peer (LinkInfo::state), changed only by the manager:
//   Connecting   → Up            hello exchanged on a verified connection (either direction)
//   Connecting/Down → Down       a dial failed or timed out (redialled with back-off)
//   Up           → Down          the connection closed, no heartbeat for deadAfter, write queue
//                                full; unless another connection of the peer is in hello
//                                (hand-off: the state stays Up)
//   any          → Incompatible  protocol majors differ (retried after incompatibleRetry)
//   any          → Revoked       the peer's certificate is revoked (never redialled)
//   Incompatible → Up            a later hello is compatible (after an upgrade)
// Connections themselves (TCP, TLS, write queue, hello deadline) belong to the net layer.
enum class LinkState : uint8_t { Connecting, Up, Down, Incompatible, Revoked };
std::string_view
linkStateName(LinkState s); // "connecting", "up", "down", "incompatible", "revoked"

struct LinkInfo {
  std::string nodeId;
  std::string name;           // from the peer's hello ("" before the first hello)
  std::string productVersion; // from hello
  std::string protocolVersion;
  std::vector<std::string> controlAddresses; // from hello (else what setPeers gave)
  std::string sipAddress;                    // from hello
  std::string address;                       // remote address of the current/last connection
  std::string fingerprint;                   // peer's key (SPKI SHA-256)
  LinkState state = LinkState::Connecting;
  std::optional<double> rttMs; // smoothed; none before the first pong
  // The peer's wall clock minus ours when its last hello arrived (Hello::sentMs; one-way delay
  // included, bounded by connectTimeout); none before a hello. `verbund doctor` reports skew.
  std::optional<int64_t> clockOffsetMs;
  int64_t sinceMs = 0;   // Unix ms of the last state change
  std::string lastError; // why it is not up ("" when up)
  bool outgoing = false; // the live connection was dialled by us
};

struct PeerTarget {
  std::string nodeId;
  std::vector<std::string> addresses; // control-plane "host:port"
};

struct LinkOptions {
  Duration heartbeat = std::chrono::milliseconds(400);
  Duration deadAfter = std::chrono::milliseconds(1500);
  Duration connectTimeout = std::chrono::milliseconds(2000); // TCP + TLS + hello
  Duration retryMin = std::chrono::milliseconds(200);
  Duration retryMax = std::chrono::seconds(5);
  Duration incompatibleRetry = std::chrono::seconds(30);
  size_t maxWriteQueueBytes = 32u << 20; // per link; beyond it the link is closed (peer stalled)
  // Incoming connections (net::Admission). Pending: not through TLS + hello yet; those are also
  // held to connectTimeout. A source is an IPv4 address or an IPv6 /64. `admission.reserved` of
  // maxConnections and of maxPending only serve known members' addresses (the hosts of the
  // addresses dialled, advertised in hellos, or seen on a link), which are not held to the
  // per-source caps: idle connections from elsewhere cannot keep a member from relinking.
  // `reserved` is kept for members; maxConnections is derived by the node from the open-file
  // limit.
  net::AdmissionLimits admission{.maxConnections = 256,
                                 .maxPerSource = 16,
                                 .maxPending = 64,
                                 .maxPendingPerSource = 4,
                                 .reserved = 16};
};

class LinkManager {
public:
  class Handler {
  public:
    virtual ~Handler() = default;
    // A link completed hello (also links from nodes not given to setPeers: new members), and
    // again when a newer connection replaced the live one (simultaneous dialling): anything sent
    // on the replaced connection may be lost, so the handler resends its link-up state.
    virtual void onLinkUp(const LinkInfo& link) = 0;
    // A link that was Up is no longer (Down, Revoked, ...); also called when a link becomes
    // Incompatible, even if it never was up. Not called by forget(), stop() or destruction.
    virtual void onLinkDown(const LinkInfo& link) = 0;
    virtual void onMessage(const std::string& nodeId, const nlohmann::json& message) = 0;
  };

  // `timers` runs the hello deadlines and gives the wall clock (LinkInfo::sinceMs,
  // Hello::sentMs); it must outlive the manager.
  LinkManager(asio::io_context& io, Timers& timers, Handler& handler, LinkOptions options = {});
  ~LinkManager();
  LinkManager(const LinkManager&) = delete;
  LinkManager& operator=(const LinkManager&) = delete;

  // Sets (or, with trust == nullptr, clears: every link closes) the credentials and our hello.
  // self.nodeId / self.federationId may be empty (taken from the certificate / CA); when given
  // they must match them. Errors: kNotInFederation (no node certificate), kBadMessage.
  // `trust` must outlive the manager or the next call; its node credentials must be set. The
  // revocation list is read from `trust` at every handshake, so revocations apply at once to new
  // connections; call closeRevoked() to drop live ones.
  Result<void> setCredentials(const TrustStore* trust, Hello self);
  // Who may link (the membership policy, e.g. verifyMember of trust_store.h): called after each
  // TLS handshake with the peer's certificate; `incoming` for accepted connections. Without one,
  // verifyPeer against the trust store's CA and revocations decides. A refused incoming peer
  // gets a "refuse" frame naming the reason when its certificate was of this federation
  // ("stale-ca", "not-member", "pin-mismatch", "revoked") so that it can tell its admin.
  using PeerVerifier = std::function<Result<PeerIdentity>(const TrustStore& trust, X509* cert,
                                                          STACK_OF(X509) * chain, bool incoming)>;
  void setVerifier(PeerVerifier verifier);
  // Binds the control-plane listener (port 0: any). Connections are refused until credentials
  // are set.
  Result<SockAddr> listen(const SockAddr& addr);
  // The peers to keep links to (our own node id is skipped). Peers listed before and missing now
  // are forgotten (links closed), except a live link the peer dialled itself (a new member
  // dialled us): that stays until it drops and is not redialled. Links from probes and incoming
  // connections of peers never listed are left alone.
  void setPeers(std::vector<PeerTarget> peers);
  // Dials one address without knowing who answers (joining with a bundle). `done` gets the peer's
  // link info once hello completed (the connection then stays as that peer's link), or an error:
  // kUnreachable, kIncompatible, kRefused, kOtherFederation, or a trust error code.
  void probe(const std::string& address, std::function<void(Result<LinkInfo>)> done);

  // Queues a message on the peer's live link. False when the link is not up.
  bool send(const std::string& nodeId, const nlohmann::json& message);
  // To every up link; returns how many.
  size_t broadcast(const nlohmann::json& message);

  bool isUp(const std::string& nodeId) const;
  std::optional<LinkInfo> link(const std::string& nodeId) const;
  std::vector<LinkInfo> links() const; // every peer known (setPeers, probes, incoming)
  // Closes live links whose peer is now revoked in the trust store; their state becomes Revoked.
  void closeRevoked();
  // Forgets a peer entirely (removed member): closes its link, stops dialling. No onLinkDown.
  void forget(const std::string& nodeId);
  // Closes everything and stops listening. Idempotent. The handler is not called; pending probes
  // get kClosed. Safe with handlers still queued on the io_context (they see a dead guard).
  void stop();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace verbund::federation

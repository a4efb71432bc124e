#pragma once
// The SIP transaction layer (RFC 3261 §17 with the RFC 6026 changes for INVITE 2xx).
//
// Four machines: INVITE client (Timers A, B, D, M), non-INVITE client (E, F, K), INVITE server
// (G, H, I, L) and non-INVITE server (J). Transactions live in hash maps keyed by compact strings
// (O(1) per message, no allocation for the lookup itself; the server index holds views of the key
// each transaction owns, not copies); outside the layer they are plain integer ids. A Completed
// non-INVITE server transaction over UDP (RFC 3261 branch) shrinks, once the TU's callback has
// returned, to what §17.2.2 needs to absorb retransmissions until Timer J: its key and the final
// response's bytes in one allocation, plus the response's destination (CompletedTx). Everything
// runs on one event loop: no locks, all time through the injected verbund::Timers, so tests run in
// simulated time with ManualTimers.
//
// Callbacks into the TU are made from receive(), onTransportError() and timer callbacks, never
// from inside a call the TU makes (sendRequest, cancel, respond, ...).
// A server transaction is only ever destroyed from a timer callback (a zero-delay timer when the
// RFC says "immediately"), so the request handed to onRequest()/onCancel() stays valid for the
// whole callback, even if the TU answers (and thereby ends) the transaction inside it.
#include "base/clock.h"
#include "base/result.h"
#include "sip/message/builder.h"
#include "sip/message/message.h"
#include "sip/transport/transport.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace verbund::sip {

using ClientTxId = uint64_t; // 0: none
using ServerTxId = uint64_t; // 0: none

struct TransactionConfig {
  Duration t1{500};  // RFC 3261 §17.1.1.1: RTT estimate
  Duration t2{4000}; // maximum retransmit interval for non-INVITE requests and INVITE responses
  Duration t4{5000}; // maximum time a message remains in the network
  Duration timerD{32000}; // RFC 3261 §17.1.1.2: "at least 32 seconds" on unreliable transports
  // RFC 3261 §17.2.1: the server INVITE transaction sends 100 Trying itself when the TU has not
  // responded within this time (the RFC's "200 ms" rule). Zero: send it at once, before the TU
  // sees the request.
  Duration trying100{200};
  // RFC 3261 §13.3.1.4: retransmit a 2xx to INVITE (T1 doubling up to T2) from the Accepted
  // state until the ACK for it arrives. When the ACK never comes, the transaction ends with
  // ServerTxEnd::NoAck at Timer L (64*T1), which is when §13.3.1.4 gives up, so the TU should
  // send BYE. Turn off when the TU (dialog layer) retransmits 2xx itself.
  bool retransmitInvite2xx = true;
};

// Why a client transaction failed. RFC 3261 §8.1.3.1: treat Timeout as a 408 and TransportError
// as a 503 response.
enum class ClientTxFailure : uint8_t { Timeout, TransportError };

// Per-transaction client callbacks. Neither is called from inside the call that created the
// transaction.
struct ClientTxCallbacks {
  // Every provisional and final response, except retransmissions of a non-2xx final (those are
  // absorbed and re-ACKed). For INVITE every 2xx (RFC 6026 §7.2: retransmissions and 2xx from
  // other forks) while the transaction is in Accepted state (Timer M); the TU sends the ACK.
  std::function<void(const Message& response)> onResponse;
  // Timer B / Timer F fired, or the transport failed (RFC 3261 §17.1.4). The transaction is gone.
  std::function<void(ClientTxFailure)> onFailure;
};

enum class ServerTxEnd : uint8_t {
  Normal,         // completed and its absorbing timer ran out
  NoAck,          // Timer H: no ACK for a non-2xx final; or no ACK for 2xx (retransmitInvite2xx)
  TransportError, // RFC 3261 §17.2.4: a response could not be sent
};

// The layer above (UA core, dialogs). All references are valid for the duration of the call
// only; copy what you keep.
class TransactionUser {
public:
  virtual ~TransactionUser() = default;
  // A new request that created server transaction `tx` (never ACK or CANCEL). Answer it with
  // TransactionLayer::respond(); the request stays available through request(tx) until the
  // transaction ends. The TU must send a final response eventually: the layer has no timer for
  // an unanswered request (an INVITE may ring for minutes), so an unanswered transaction stays.
  virtual void onRequest(ServerTxId tx, const Message& request) = 0;
  // An ACK that is not absorbed by an INVITE server transaction: the ACK for a 2xx (RFC 3261
  // §13.2.2.4, RFC 6026 §8.7), or a stray ACK. Goes to the dialog layer.
  virtual void onAck(const Message& ack) = 0;
  // RFC 3261 §9.2: a CANCEL matched INVITE server transaction `inviteTx`, which has not sent a
  // final response yet. The CANCEL has been answered with 200 already; the TU should now
  // respond 487 on inviteTx. (A CANCEL for an INVITE that got a final answer gets its 200 without
  // this call; a CANCEL that matches nothing gets 481.)
  virtual void onCancel(ServerTxId inviteTx, const Message& cancel) = 0;
  // A server transaction announced by onRequest() ended. Called exactly once per transaction.
  virtual void onServerTxTerminated(ServerTxId tx, ServerTxEnd how) {}
  // A 2xx to INVITE that matches no client transaction any more (after Timer M, RFC 6026 §8.4);
  // the dialog layer may resend its ACK. Other stray responses are dropped and counted.
  virtual void onStrayResponse(const Message& response) {}
};

// A header line for helpers that take extra headers.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// Answers that the stack's request screen wants the layer to send instead of passing a new
// request to the TU (RFC 3261 §8.2 checks).
struct Rejection {
  int status = 400;
  std::string reason;                  // empty: default reason phrase
  std::string headerName, headerValue; // one optional extra header (e.g. Unsupported for 420)
};

// RFC 3261 §18.2.2: where responses to `request` go. Reliable: back over the connection the
// request came on (falling back to the source address). Unreliable: to the source address
// (= "received") and, with rport (RFC 3581), the source port, otherwise the sent-by port.
Peer responseDestination(const Message& request);

class TransactionLayer {
public:
  TransactionLayer(Transport& transport, Timers& timers, TransactionUser& tu,
                   TransactionConfig config = {});
  ~TransactionLayer();
  TransactionLayer(const TransactionLayer&) = delete;
  TransactionLayer& operator=(const TransactionLayer&) = delete;

  const TransactionConfig& config() const { return config_; }

  // ---- Input (from the stack) ----
  // A parsed message with its source set. Requests are matched per RFC 3261 §17.2.3, responses
  // per §17.1.3.
  void receive(MessagePtr message);
  // A stream connection failed (RFC 3261 §17.1.4, §17.2.4): client transactions still waiting
  // for a final response fail with TransportError; server transactions that still owe a
  // response (or wait for the ACK of a non-2xx) end with ServerTxEnd::TransportError; others
  // using the peer end quietly (client) or run out on their timers (server). Matches by
  // connection id when both sides know it, else by transport and remote address. Scans all
  // transactions (transport errors are rare).
  void onTransportError(const Peer& peer);
  // Called for every new request except ACK before the TU sees it (and before merge detection);
  // a Rejection is sent from an internal server transaction instead (the TU never sees it).
  using RequestScreen = std::function<std::optional<Rejection>(const Message&)>;
  void setRequestScreen(RequestScreen screen) { screen_ = std::move(screen); }

  // ---- Client side ----
  // Starts a client transaction for `request`, which the TU built completely: its top Via must
  // carry a fresh RFC 3261 branch (see makeVia()). Sent over `target` (already resolved, RFC
  // 3263). ACK is not allowed (use sendStateless). An error is returned when the request is
  // unfit or the transport refuses it at once; then no callback will ever be made.
  Result<ClientTxId> sendRequest(MessagePtr request, const Peer& target, ClientTxCallbacks cb);
  // RFC 3261 §9.1: cancels a client INVITE. Builds the CANCEL (buildCancel) and sends it as its
  // own client transaction to the INVITE's destination. If no provisional response has arrived
  // yet the CANCEL is held until one does (§9.1: MUST NOT send before); if the INVITE gets a
  // final response or fails first, the held CANCEL is dropped and `cb` is never called.
  Result<ClientTxId> cancel(ClientTxId invite, ClientTxCallbacks cb,
                            std::span<const HeaderField> extraHeaders = {});
  // RFC 3261 §9.1: a CANCEL for `invite`: same Request-URI, Call-ID, To, From, CSeq number, a
  // single Via equal to the INVITE's top Via, the INVITE's Route headers, plus `extraHeaders`
  // (e.g. Reason, RFC 3326).
  static Result<MessagePtr> buildCancel(const Message& invite,
                                        std::span<const HeaderField> extraHeaders = {});
  // The request of a live client transaction, or null.
  const Message* clientRequest(ClientTxId tx) const;
  // "SIP/2.0/UDP 192.0.2.1:5060;branch=<branch>;rport" for a request towards `target`, with the
  // address the transport reports for that destination. An empty branch gets newBranch().
  std::string makeVia(const Peer& target, std::string_view branch = {}) const;

  // ---- Server side ----
  // Sends a response on server transaction `tx`. `response` is the complete wire text, normally
  // built from responseBuilder() or responseTo(*request(tx), ...). Fails when the transaction is
  // unknown, the bytes are not a response, or the state forbids it (a second final response; for
  // INVITE, only further 2xx are allowed after a 2xx). A transport failure ends the transaction
  // (ServerTxEnd::TransportError is reported later from the event loop).
  Result<void> respond(ServerTxId tx, std::string response);
  // Shorthand: responseTo(request, status, reason, localTag(tx)) with no further headers.
  Result<void> respond(ServerTxId tx, int status, std::string_view reason = {});
  // responseTo(request(tx), status, reason, localTag(tx)) for the TU to add Contact, body, ...
  std::optional<MessageBuilder> responseBuilder(ServerTxId tx, int status,
                                                std::string_view reason = {});
  // The request of a live server transaction, or null (also once a Completed non-INVITE
  // transaction over UDP has released it, see releaseRequestLater).
  const Message* request(ServerTxId tx) const;
  // A To tag made up once per server transaction. Responses built by the layer use it (also the
  // 200 to a CANCEL, RFC 3261 §9.2: same tag as the INVITE's response). Empty for unknown tx.
  std::string_view localTag(ServerTxId tx);

  // ---- Outside transactions ----
  // Sends bytes without a transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4) or a stateless
  // response (then to responseDestination(request)).
  Result<void> sendStateless(const Peer& to, std::string_view bytes);
  // RFC 3261 §8.2.7: a response from no transaction (never retransmitted; a retransmitted
  // request is answered again), with optional extra headers.
  Result<void> respondStateless(const Message& request, int status, std::string_view reason = {},
                                std::span<const HeaderField> extraHeaders = {});

  // Live transactions (for tests and metrics).
  size_t clientCount() const { return clients_.size(); }
  size_t serverCount() const { return servers_.size() + completed_.size(); }
  // Server transactions announced to the TU that have not sent a final response yet: the work
  // the TU has in hand (the overload cap counts these, not those lingering in Timer J/I/L).
  size_t pendingServerCount() const { return pendingServers_; }
  // True when `request` matches a live server transaction (RFC 3261 §17.2.3), i.e. it is a
  // retransmission the layer will absorb; an ACK is matched against INVITE transactions.
  bool hasServerTransaction(const Message& request);

private:
  enum class State : uint8_t {
    Held, // client CANCEL waiting for a provisional response to its INVITE
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated, // gone at the next zero-delay timer
  };

  struct ClientTx {
    ClientTxId id = 0;
    bool invite = false;
    bool reliable = false;
    bool provisionalSeen = false;
    bool cancelled = false; // cancel() was called
    State state = State::Calling;
    MessagePtr request;
    Peer target;
    ClientTxCallbacks cb;
    std::string key;
    std::string ack;           // RFC 3261 §17.1.1.3 ACK for a non-2xx final, once built
    Peer ackPeer;              // where the ACK goes (the INVITE's destination and connection)
    ClientTxId heldCancel = 0; // a CANCEL waiting for this INVITE's first provisional response
    ClientTxId cancelOf = 0;   // for a held CANCEL: its INVITE
    Duration interval{0};
    TimerId retransmit = 0; // A or E
    TimerId timeout = 0;    // B or F
    TimerId end = 0;        // D, K or M
  };

  struct ServerTx {
    ServerTxId id = 0;
    bool invite = false;
    bool reliable = false;
    bool internal = false; // created by the layer itself (CANCEL, 482, screen): no TU calls
    bool acked = false;    // ACK for our 2xx seen (retransmitInvite2xx)
    State state = State::Proceeding;
    ServerTxEnd endReason = ServerTxEnd::Normal;
    MessagePtr request;
    Peer responsePeer;
    std::string key;      // RFC 3261 §17.2.3 or the RFC 2543 fallback key
    std::string mergeKey; // RFC 3261 §8.2.2.2, for requests without To tag
    std::string ackKey;   // dialog + CSeq of a 2xx sent (retransmitInvite2xx)
    std::string tag;      // localTag()
    std::string lastResponse;
    int lastStatus = 0;
    // The request's To tag, kept for RFC 2543 matching once a Completed non-INVITE transaction
    // has released its request (releaseRequests).
    std::string requestToTag;
    Duration interval{0};
    TimerId retransmit = 0; // G or the 2xx retransmission
    TimerId timeout = 0;    // H or L
    TimerId end = 0;        // I, J, or a zero-delay termination
    TimerId trying = 0;     // 100 Trying
  };

  // Receive paths.
  void receiveRequest(MessagePtr req);
  void receiveResponse(MessagePtr resp);
  void receiveAck(MessagePtr ack);
  void receiveCancel(MessagePtr cancel);
  void requestRetransmitted(ServerTx& tx);
  ServerTx* findServer(const Message& req, std::string_view methodOverride);

  // Client machinery.
  Result<ClientTxId> startClient(MessagePtr request, const Peer& target, ClientTxCallbacks cb,
                                 bool held);
  Result<void> sendClientRequest(ClientTx& tx); // first transmission + timers A/B or E/F
  void clientTimerRetransmit(ClientTxId id);
  void clientTimerTimeout(ClientTxId id);
  void clientFail(ClientTxId id, ClientTxFailure why);
  void clientEnd(ClientTx& tx, Duration after);
  void eraseClient(ClientTxId id);
  void releaseHeldCancel(ClientTx& invite, bool send);
  void sendAckForNon2xx(ClientTx& tx, const Message& response);

  // Server machinery.
  // mergeKey: the request's merge key when the caller already built it (else built here).
  ServerTx& createServer(MessagePtr request, bool internal, std::string mergeKey = {});
  Result<void> sendOnServer(ServerTx& tx, int status, std::string bytes);
  void serverTimerRetransmit(ServerTxId id);
  void serverTimerTimeout(ServerTxId id);
  void serverEnd(ServerTx& tx, Duration after, ServerTxEnd how);
  void eraseServer(ServerTxId id);
  // Every state change of a server transaction after creation, to keep pendingServers_.
  void setServerState(ServerTx& tx, State s);
  // Answers a request from a server transaction of the layer's own (no TU calls).
  ServerTxId internalRespond(MessagePtr request, int status, std::string_view reason,
                             std::string_view headerName = {}, std::string_view headerValue = {},
                             std::string_view toTag = {});
  void noteAckFor2xx(const Message& ack);
  // A Completed non-INVITE server transaction over UDP lingers 32 s (Timer J) only to answer
  // retransmissions with its last response: its parsed request (the bulk of its memory) is
  // released at the next zero-delay timer, after the TU's callback has returned.
  void releaseRequestLater(ServerTx& tx);
  void releaseRequests();
  // Moves a Completed non-INVITE UDP transaction with an RFC 3261 key into completed_ (same id,
  // same Timer J).
  void compactServer(ServerTx& tx);
  // The id of the live server transaction `req` matches (RFC 3261 §17.2.3), in servers_ or
  // completed_, or 0.
  ServerTxId matchServer(const Message& req, std::string_view method);
  void requestRetransmitted(ServerTxId id);
  std::string_view ensureTag(ServerTx& tx);

  void cancelTimer(TimerId& t);
  std::string& clientKey(std::string_view method, std::string_view branch);
  std::string& serverKey(const Message& req, std::string_view method);

  Transport& transport_;
  Timers& timers_;
  TransactionUser& tu_;
  TransactionConfig config_;
  RequestScreen screen_;
  uint64_t nextId_ = 0;
  size_t pendingServers_ = 0;
  std::vector<ServerTxId> releasable_;
  TimerId releaseTimer_ = 0;
  std::string scratch_; // lookup keys are built here to avoid an allocation per message

  std::unordered_map<ClientTxId, ClientTx> clients_;
  // What RFC 3261 §17.2.2 needs of a Completed non-INVITE server transaction (see above).
  struct CompletedTx {
    // The transaction key, the RFC 3261 §8.2.2.2 merge key (empty for requests with a To tag),
    // then the final response's wire bytes: one allocation.
    std::string bytes;
    uint32_t keyLen = 0;
    uint32_t mergeKeyLen = 0;
    bool internal = false;
    Peer responsePeer;
    TimerId end = 0; // Timer J
    std::string_view key() const { return {bytes.data(), keyLen}; }
    std::string_view mergeKey() const {
      return std::string_view(bytes).substr(keyLen, mergeKeyLen);
    }
    std::string_view response() const {
      return std::string_view(bytes).substr(keyLen + mergeKeyLen);
    }
  };

  std::unordered_map<ServerTxId, ServerTx> servers_;
  std::unordered_map<ServerTxId, CompletedTx> completed_;
  std::unordered_map<std::string, ClientTxId> clientByKey_;
  // Views of ServerTx::key or CompletedTx::bytes (map nodes do not move; a key is never changed
  // while indexed).
  std::unordered_map<std::string_view, ServerTxId> serverByKey_;
  std::unordered_map<std::string_view, ServerTxId> serverByMergeKey_; // views of ServerTx::mergeKey
  std::unordered_map<std::string, ServerTxId> serverByAckKey_;
};

} // namespace verbund::sip

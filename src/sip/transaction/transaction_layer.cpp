// Transaction layer: dispatch, matching and the client machines (RFC 3261 §17.1, RFC 6026).
// The server machines are in server_transaction.cpp.
#include "sip/transaction/transaction_layer.h"

#include "base/log.h"
#include "sip/message/text.h"
#include "sip/transaction/counters.h"

namespace verbund::sip {

namespace tx_counters {
Counter created("verbund_sip_transactions_created_total", "SIP transactions created");
Counter terminated("verbund_sip_transactions_terminated_total", "SIP transactions terminated");
Counter timeouts("verbund_sip_transaction_timeouts_total",
                 "SIP transactions ended by Timer B, F or H, or by a CANCEL left unanswered");
Counter retransmissionsSent("verbund_sip_retransmissions_sent_total",
                            "SIP requests and responses retransmitted by the transaction layer");
Counter retransmissionsAbsorbed("verbund_sip_retransmissions_absorbed_total",
                                "Retransmitted SIP messages absorbed by a transaction");
Counter strayResponses("verbund_sip_stray_responses_dropped_total",
                       "SIP responses that matched no client transaction and were dropped");
Counter sent481("verbund_sip_481_sent_total", "481 responses sent to CANCEL without transaction");
Counter sent482("verbund_sip_482_sent_total", "482 responses sent to merged requests");
Counter transportErrors("verbund_sip_transaction_transport_errors_total",
                        "SIP transactions ended by a transport error");
} // namespace tx_counters

using namespace tx_counters;

namespace {
constexpr char kSep = '\x1f'; // cannot occur in any of the key parts (no CTLs in SIP tokens)
} // namespace

Peer responseDestination(const Message& request) {
  Peer p = request.source();
  if (request.vias().empty()) return p;
  const Via& via = request.topVia();
  if (p.remote.port == 0) {
    // No source known (a locally made request): the Via's transport and sent-by.
    if (text::iequals(via.transport, "TCP")) p.transport = TransportType::Tcp;
    if (text::iequals(via.transport, "TLS")) p.transport = TransportType::Tls;
    if (auto ip = IpAddress::parse(via.host)) p.remote.ip = *ip;
  }
  uint16_t sentByPort = via.port ? via.port : (p.transport == TransportType::Tls ? 5061 : 5060);
  if (p.remote.port == 0) {
    p.remote.port = sentByPort;
    return p;
  }
  // RFC 3261 §18.2.2: reliable transports answer over the request's connection (p.connection);
  // should it be gone, a new connection goes to "received" and the sent-by port.
  if (isReliable(p.transport)) {
    p.remote.port = sentByPort;
    return p;
  }
  // Unreliable: to "received" (the source address; RFC 3261 §18.2.1 adds received whenever it
  // differs from sent-by) and the sent-by port, or with rport the source port (RFC 3581 §4).
  // maddr (multicast) is not supported.
  if (!via.hasRport) p.remote.port = sentByPort;
  return p;
}

TransactionLayer::TransactionLayer(Transport& transport, Timers& timers, TransactionUser& tu,
                                   TransactionConfig config)
    : transport_(transport), timers_(timers), tu_(tu), config_(config) {
  scratch_.reserve(256);
}

TransactionLayer::~TransactionLayer() {
  cancelTimer(releaseTimer_);
  for (auto& [id, tx] : clients_) {
    cancelTimer(tx.retransmit);
    cancelTimer(tx.timeout);
    cancelTimer(tx.end);
  }
  for (auto& [id, tx] : servers_) {
    cancelTimer(tx.retransmit);
    cancelTimer(tx.timeout);
    cancelTimer(tx.end);
    cancelTimer(tx.trying);
  }
  for (auto& [id, tx] : completed_) cancelTimer(tx.end);
}

void TransactionLayer::cancelTimer(TimerId& t) {
  if (t) timers_.cancel(t);
  t = 0;
}

std::string& TransactionLayer::clientKey(std::string_view method, std::string_view branch) {
  scratch_.clear();
  scratch_.append(method).push_back(kSep);
  scratch_.append(branch);
  return scratch_;
}

// RFC 3261 §17.2.3: branch + sent-by + method for RFC 3261 branches; otherwise the RFC 2543
// fallback: Request-URI, From tag, Call-ID, CSeq and top Via (the To tag is checked separately in
// findServer because the ACK carries the tag of our response, not the INVITE's).
std::string& TransactionLayer::serverKey(const Message& req, std::string_view method) {
  const Via& via = req.topVia();
  scratch_.clear();
  if (via.rfc3261Branch()) {
    scratch_.push_back('3');
    scratch_.push_back(kSep);
    scratch_.append(method).push_back(kSep);
    scratch_.append(via.branch).push_back(kSep);
    for (char c : via.host) scratch_.push_back(text::lower(c));
    scratch_.push_back(':');
    char digits[5];
    size_t n = 0;
    for (uint32_t p = via.port; n == 0 || p; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
    while (n) scratch_.push_back(digits[--n]);
  } else {
    scratch_.push_back('2');
    scratch_.push_back(kSep);
    scratch_.append(method).push_back(kSep);
    scratch_.append(req.requestUri().text).push_back(kSep);
    scratch_.append(req.fromTag()).push_back(kSep);
    scratch_.append(req.callId()).push_back(kSep);
    scratch_.append(std::to_string(req.cseq().seq)).push_back(kSep);
    scratch_.append(via.text);
  }
  return scratch_;
}

void TransactionLayer::receive(MessagePtr message) {
  if (!message || message->vias().empty()) return;
  if (message->isRequest())
    receiveRequest(std::move(message));
  else
    receiveResponse(std::move(message));
}

void TransactionLayer::onTransportError(const Peer& peer) {
  auto hits = [&](const Peer& p) {
    if (p.transport != peer.transport) return false;
    if (peer.connection && p.connection) return p.connection == peer.connection;
    return p.remote == peer.remote;
  };
  std::vector<ClientTxId> clientIds;
  for (auto& [id, tx] : clients_) {
    if (hits(tx.target)) clientIds.push_back(id);
  }
  std::vector<ServerTxId> serverIds;
  for (auto& [id, tx] : servers_) {
    // Only transactions that still owe a response, or wait for the ACK of a non-2xx (whose
    // retransmissions need the transport). The rest run out on their timers as usual.
    bool owes = tx.state == State::Trying || tx.state == State::Proceeding ||
                (tx.invite && tx.state == State::Completed);
    if (owes && hits(tx.responsePeer)) serverIds.push_back(id);
  }
  for (ClientTxId id : clientIds) {
    auto it = clients_.find(id);
    if (it == clients_.end()) continue;
    State s = it->second.state;
    transportErrors.inc();
    if (s == State::Calling || s == State::Trying || s == State::Proceeding) {
      clientFail(id, ClientTxFailure::TransportError);
    } else {
      // RFC 3261 §17.1.4: the TU already has its final response; just end.
      eraseClient(id);
    }
  }
  for (ServerTxId id : serverIds) {
    auto it = servers_.find(id);
    if (it == servers_.end()) continue;
    transportErrors.inc();
    serverEnd(it->second, Duration(0), ServerTxEnd::TransportError);
  }
}

// ---------------------------------------------------------------------------------------------
// Client side (RFC 3261 §17.1)

Result<ClientTxId> TransactionLayer::sendRequest(MessagePtr request, const Peer& target,
                                                 ClientTxCallbacks cb) {
  return startClient(std::move(request), target, std::move(cb), false);
}

Result<ClientTxId> TransactionLayer::startClient(MessagePtr request, const Peer& target,
                                                 ClientTxCallbacks cb, bool held) {
  if (!request || !request->isRequest() || request->vias().empty())
    return makeError(400, "not a request");
  if (request->method() == Method::Ack)
    return makeError(400, "ACK is sent outside client transactions");
  // RFC 3261 §8.1.1.7: the branch must be unique and start with the magic cookie.
  if (!request->topVia().rfc3261Branch()) return makeError(400, "top Via lacks an RFC 3261 branch");
  std::string& key = clientKey(request->methodName(), request->branch());
  if (clientByKey_.count(key)) return makeError(400, "branch already in use");

  ClientTxId id = ++nextId_;
  ClientTx& tx = clients_[id];
  tx.id = id;
  tx.invite = request->method() == Method::Invite;
  tx.reliable = isReliable(target.transport);
  tx.state = held ? State::Held : (tx.invite ? State::Calling : State::Trying);
  tx.request = std::move(request);
  tx.target = target;
  tx.cb = std::move(cb);
  tx.key = key;
  clientByKey_.emplace(tx.key, id);
  created.inc();
  if (!held) {
    if (auto r = sendClientRequest(tx); !r) {
      eraseClient(id);
      return r.error();
    }
  }
  return id;
}

Result<void> TransactionLayer::sendClientRequest(ClientTx& tx) {
  auto r = transport_.send(tx.target, tx.request->raw());
  if (!r) return r;
  ClientTxId id = tx.id;
  // RFC 3261 §17.1.1.2 Timer A / §17.1.2.2 Timer E: only on unreliable transports.
  if (!tx.reliable) {
    tx.interval = config_.t1;
    tx.retransmit = timers_.after(tx.interval, [this, id] { clientTimerRetransmit(id); });
  }
  // Timer B / Timer F: 64*T1 on every transport.
  tx.timeout = timers_.after(64 * config_.t1, [this, id] { clientTimerTimeout(id); });
  return {};
}

void TransactionLayer::clientTimerRetransmit(ClientTxId id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  ClientTx& tx = it->second;
  tx.retransmit = 0;
  if (tx.invite ? tx.state != State::Calling
                : (tx.state != State::Trying && tx.state != State::Proceeding))
    return;
  if (!transport_.send(tx.target, tx.request->raw())) {
    clientFail(id, ClientTxFailure::TransportError);
    return;
  }
  retransmissionsSent.inc();
  if (tx.invite) {
    // RFC 3261 §17.1.1.2: Timer A doubles without bound (Timer B ends it).
    tx.interval *= 2;
  } else {
    // RFC 3261 §17.1.2.2: Timer E doubles up to T2; in Proceeding it fires every T2.
    tx.interval =
        tx.state == State::Proceeding ? config_.t2 : std::min(tx.interval * 2, config_.t2);
  }
  tx.retransmit = timers_.after(tx.interval, [this, id] { clientTimerRetransmit(id); });
}

void TransactionLayer::clientTimerTimeout(ClientTxId id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  ClientTx& tx = it->second;
  tx.timeout = 0;
  if (tx.state != State::Calling && tx.state != State::Trying && tx.state != State::Proceeding)
    return;
  // Timer B / Timer F, or (INVITE in Proceeding) 64*T1 after our CANCEL without a final
  // response (RFC 3261 §9.1).
  timeouts.inc();
  logger("sip")->debug("client transaction {} timed out ({} {})", id, tx.request->methodName(),
                       tx.request->callId());
  clientFail(id, ClientTxFailure::Timeout);
}

void TransactionLayer::clientFail(ClientTxId id, ClientTxFailure why) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  ClientTx& tx = it->second;
  releaseHeldCancel(tx, false);
  auto onFailure = std::move(tx.cb.onFailure);
  eraseClient(id);
  if (onFailure) onFailure(why);
}

void TransactionLayer::clientEnd(ClientTx& tx, Duration after) {
  cancelTimer(tx.retransmit);
  cancelTimer(tx.timeout);
  cancelTimer(tx.end);
  ClientTxId id = tx.id;
  tx.end = timers_.after(after, [this, id] {
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    it->second.end = 0;
    eraseClient(id);
  });
}

void TransactionLayer::eraseClient(ClientTxId id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  ClientTx& tx = it->second;
  cancelTimer(tx.retransmit);
  cancelTimer(tx.timeout);
  cancelTimer(tx.end);
  if (tx.cancelOf) {
    auto inv = clients_.find(tx.cancelOf);
    if (inv != clients_.end() && inv->second.heldCancel == id) inv->second.heldCancel = 0;
  }
  auto k = clientByKey_.find(tx.key);
  if (k != clientByKey_.end() && k->second == id) clientByKey_.erase(k);
  clients_.erase(it);
  terminated.inc();
}

void TransactionLayer::releaseHeldCancel(ClientTx& invite, bool send) {
  ClientTxId cancelId = invite.heldCancel;
  if (!cancelId) return;
  invite.heldCancel = 0;
  auto it = clients_.find(cancelId);
  if (it == clients_.end()) return;
  ClientTx& c = it->second;
  c.cancelOf = 0;
  if (!send) {
    eraseClient(cancelId);
    return;
  }
  c.state = State::Trying;
  if (!sendClientRequest(c)) {
    clientFail(cancelId, ClientTxFailure::TransportError);
    return;
  }
  // RFC 3261 §9.1: give up on the INVITE 64*T1 after the CANCEL if no final response comes.
  ClientTxId inviteId = invite.id;
  if (!invite.timeout)
    invite.timeout =
        timers_.after(64 * config_.t1, [this, inviteId] { clientTimerTimeout(inviteId); });
}

Result<ClientTxId> TransactionLayer::cancel(ClientTxId inviteId, ClientTxCallbacks cb,
                                            std::span<const HeaderField> extraHeaders) {
  auto it = clients_.find(inviteId);
  if (it == clients_.end()) return makeError(481, "no such transaction");
  ClientTx& inv = it->second;
  if (!inv.invite) return makeError(400, "only INVITE transactions are cancelled");
  if (inv.state != State::Calling && inv.state != State::Proceeding)
    return makeError(400, "INVITE already has a final response");
  if (inv.cancelled) return makeError(400, "already cancelled");
  auto msg = buildCancel(*inv.request, extraHeaders);
  if (!msg) return msg.error();
  bool held = !inv.provisionalSeen;
  Peer target = inv.target;
  auto id = startClient(std::move(msg.value()), target, std::move(cb), held);
  if (!id) return id;
  ClientTx& invite = clients_.find(inviteId)->second;
  invite.cancelled = true;
  if (held) {
    invite.heldCancel = *id;
    clients_.find(*id)->second.cancelOf = inviteId;
  } else if (!invite.timeout) {
    // RFC 3261 §9.1: give up on the INVITE 64*T1 after the CANCEL if no final response comes.
    invite.timeout =
        timers_.after(64 * config_.t1, [this, inviteId] { clientTimerTimeout(inviteId); });
  }
  return id;
}

Result<MessagePtr> TransactionLayer::buildCancel(const Message& invite,
                                                 std::span<const HeaderField> extraHeaders) {
  if (!invite.isRequest() || invite.method() != Method::Invite || invite.vias().empty())
    return makeError(400, "not an INVITE");
  auto b = MessageBuilder::request("CANCEL", invite.requestUri().text);
  b.header(HeaderId::Via, invite.topVia().text);
  b.copyHeaders(invite, HeaderId::Route);
  b.header(HeaderId::MaxForwards, "70");
  b.header(HeaderId::From, invite.from().text);
  b.header(HeaderId::To, invite.to().text);
  b.header(HeaderId::CallId, invite.callId());
  b.header(HeaderId::CSeq, std::to_string(invite.cseq().seq) + " CANCEL");
  for (const HeaderField& h : extraHeaders) b.header(h.name, h.value);
  auto parsed = parseMessage(b.finish());
  if (!parsed.ok()) return makeError(500, "CANCEL does not parse: " + parsed.error.reason);
  return std::move(parsed.message);
}

const Message* TransactionLayer::clientRequest(ClientTxId id) const {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.request.get();
}

std::string TransactionLayer::makeVia(const Peer& target, std::string_view branch) const {
  std::optional<SockAddr> local = transport_.localAddress(target.transport, target.remote);
  SockAddr a = local ? *local : target.local;
  std::string v = "SIP/2.0/";
  v.append(transportName(target.transport)).append(" ").append(a.hostString());
  if (a.port) v.append(":").append(std::to_string(a.port));
  v.append(";branch=");
  if (branch.empty())
    v.append(newBranch());
  else
    v.append(branch);
  v.append(";rport");
  return v;
}

// RFC 3261 §17.1.1.3: the ACK for a non-2xx final response is part of the INVITE transaction.
void TransactionLayer::sendAckForNon2xx(ClientTx& tx, const Message& response) {
  const Message& inv = *tx.request;
  auto b = MessageBuilder::request("ACK", inv.requestUri().text);
  b.header(HeaderId::Via, inv.topVia().text); // only the INVITE's top Via
  b.copyHeaders(inv, HeaderId::Route);
  b.header(HeaderId::MaxForwards, "70");
  b.header(HeaderId::From, inv.from().text);
  b.header(HeaderId::To, response.to().text); // with the response's tag
  b.header(HeaderId::CallId, inv.callId());
  b.header(HeaderId::CSeq, std::to_string(inv.cseq().seq) + " ACK");
  tx.ack = b.finish();
  // "sent to the same address, port, and transport" as the INVITE: over a stream, the connection
  // the response came in on.
  tx.ackPeer = tx.target;
  if (tx.reliable && response.source().connection)
    tx.ackPeer.connection = response.source().connection;
  (void)transport_.send(tx.ackPeer, tx.ack); // a lost ACK is recovered by the retransmission
}

void TransactionLayer::receiveResponse(MessagePtr resp) {
  const Message& r = *resp;
  auto k = clientByKey_.find(clientKey(r.cseq().methodText, r.branch()));
  int status = r.statusCode();
  if (k == clientByKey_.end()) {
    if (r.cseq().method == Method::Invite && status >= 200 && status < 300) {
      // RFC 6026 §8.4: a 2xx after Timer M goes to the core, which may resend its ACK.
      tu_.onStrayResponse(r);
      return;
    }
    strayResponses.inc();
    logger("sip")->debug("stray response {} {} dropped (Call-ID {})", status, r.cseq().methodText,
                         r.callId());
    return;
  }
  ClientTxId id = k->second;
  ClientTx& tx = clients_.find(id)->second;

  if (tx.invite) {
    switch (tx.state) {
    case State::Calling:
    case State::Proceeding:
      if (status < 200) {
        if (tx.state == State::Calling) {
          // RFC 3261 §17.1.1.2: Proceeding stops Timer A; Timer B only runs in Calling. (Later,
          // tx.timeout may hold the guard timer of a CANCEL; leave that.)
          cancelTimer(tx.retransmit);
          cancelTimer(tx.timeout);
        }
        tx.state = State::Proceeding;
        tx.provisionalSeen = true;
        releaseHeldCancel(tx, true);
        // releaseHeldCancel may fail the CANCEL (not this tx); tx is still valid.
        if (tx.cb.onResponse) tx.cb.onResponse(r);
        return;
      }
      releaseHeldCancel(tx, false);
      if (status < 300) {
        // RFC 6026 §7.2: Accepted; Timer M keeps the transaction to pass further 2xx up.
        tx.state = State::Accepted;
        clientEnd(tx, 64 * config_.t1);
      } else {
        // RFC 3261 §17.1.1.2: Completed; ACK; Timer D (zero on reliable transports).
        tx.state = State::Completed;
        sendAckForNon2xx(tx, r);
        clientEnd(tx, tx.reliable ? Duration(0) : config_.timerD);
      }
      if (tx.cb.onResponse) tx.cb.onResponse(r);
      return;
    case State::Accepted:
      if (status >= 200 && status < 300) {
        if (tx.cb.onResponse) tx.cb.onResponse(r);
      } else {
        retransmissionsAbsorbed.inc();
      }
      return;
    case State::Completed:
      if (status >= 300) {
        // A retransmitted final: the ACK was lost (RFC 3261 §17.1.1.2).
        retransmissionsAbsorbed.inc();
        if (transport_.send(tx.ackPeer, tx.ack)) retransmissionsSent.inc();
      }
      return;
    default:
      return;
    }
  }

  switch (tx.state) {
  case State::Trying:
  case State::Proceeding:
    if (status < 200) {
      tx.state = State::Proceeding;
    } else {
      // RFC 3261 §17.1.2.2: Completed; Timer K (zero on reliable transports).
      tx.state = State::Completed;
      clientEnd(tx, tx.reliable ? Duration(0) : config_.t4);
    }
    if (tx.cb.onResponse) tx.cb.onResponse(r);
    return;
  case State::Completed:
    retransmissionsAbsorbed.inc();
    return;
  default:
    return;
  }
}

// ---------------------------------------------------------------------------------------------
// Outside transactions

Result<void> TransactionLayer::sendStateless(const Peer& to, std::string_view bytes) {
  return transport_.send(to, bytes);
}

Result<void> TransactionLayer::respondStateless(const Message& request, int status,
                                                std::string_view reason,
                                                std::span<const HeaderField> extraHeaders) {
  if (!request.isRequest() || request.method() == Method::Ack)
    return makeError(400, "cannot respond to this message");
  std::string tag = status > 100 ? newTag() : std::string();
  auto b = responseTo(request, status, reason, tag);
  for (const HeaderField& h : extraHeaders) b.header(h.name, h.value);
  return transport_.send(responseDestination(request), b.finish());
}

} // namespace verbund::sip

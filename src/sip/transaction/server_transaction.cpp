// The server machines of the transaction layer (RFC 3261 §17.2, RFC 6026 §7.1), request matching
// (§17.2.3), CANCEL (§9.2) and merged requests (§8.2.2.2).
#include "base/log.h"
#include "sip/message/text.h"
#include "sip/transaction/counters.h"
#include "sip/transaction/transaction_layer.h"

namespace verbund::sip {

using namespace tx_counters;

namespace {
constexpr char kSep = '\x1f';

// "SIP/2.0 NNN ..." -> NNN, or 0.
int statusOf(std::string_view bytes) {
  if (bytes.size() < 12 || bytes.substr(0, 8) != "SIP/2.0 ") return 0;
  int s = 0;
  for (size_t i = 8; i < 11; ++i) {
    if (!text::isDigit(bytes[i])) return 0;
    s = s * 10 + (bytes[i] - '0');
  }
  if (bytes[11] != ' ' && bytes[11] != '\r') return 0;
  return s >= 100 && s <= 699 ? s : 0;
}

// The To tag of a response we sent (parsed back; only on rare paths: CANCEL, RFC 2543 ACK, 2xx).
std::string toTagOf(std::string_view response) {
  auto p = parseMessage(std::string(response));
  return p.ok() ? std::string(p.message->toTag()) : std::string();
}

// RFC 3261 §8.2.2.2 and §13.3.1.4 keys.
std::string mergeKeyOf(const Message& req) {
  std::string k(req.fromTag());
  k.push_back(kSep);
  k.append(req.callId()).push_back(kSep);
  k.append(std::to_string(req.cseq().seq)).push_back(kSep);
  k.append(req.methodName());
  return k;
}

std::string ackKeyOf(std::string_view callId, uint32_t seq, std::string_view fromTag,
                     std::string_view toTag) {
  std::string k(callId);
  k.push_back(kSep);
  k.append(std::to_string(seq)).push_back(kSep);
  k.append(fromTag).push_back(kSep);
  k.append(toTag);
  return k;
}
} // namespace

ServerTxId TransactionLayer::matchServer(const Message& req, std::string_view method) {
  auto it = serverByKey_.find(serverKey(req, method));
  if (it == serverByKey_.end()) return 0;
  auto s = servers_.find(it->second);
  if (s == servers_.end()) return it->second; // a CompletedTx: RFC 3261 key, nothing more to check
  ServerTx& tx = s->second;
  if (!req.topVia().rfc3261Branch()) {
    // RFC 3261 §17.2.3, RFC 2543 fallback: the To tag must match the INVITE's, or for an ACK the
    // tag of the response we sent.
    if (req.method() == Method::Ack) {
      if (tx.lastStatus < 200 || toTagOf(tx.lastResponse) != req.toTag()) return 0;
    } else if (req.toTag() != (tx.request ? tx.request->toTag() : tx.requestToTag)) {
      return 0;
    }
  }
  return tx.id;
}

TransactionLayer::ServerTx* TransactionLayer::findServer(const Message& req,
                                                         std::string_view method) {
  ServerTxId id = matchServer(req, method);
  if (!id) return nullptr;
  auto s = servers_.find(id);
  return s == servers_.end() ? nullptr : &s->second;
}

bool TransactionLayer::hasServerTransaction(const Message& request) {
  if (!request.isRequest() || request.vias().empty()) return false;
  std::string_view method = request.method() == Method::Ack ? "INVITE" : request.methodName();
  return matchServer(request, method) != 0;
}

void TransactionLayer::setServerState(ServerTx& tx, State s) {
  auto pending = [](State st) { return st == State::Trying || st == State::Proceeding; };
  if (!tx.internal && pending(tx.state) && !pending(s)) --pendingServers_;
  tx.state = s;
}

void TransactionLayer::receiveRequest(MessagePtr req) {
  if (req->method() == Method::Ack) return receiveAck(std::move(req));
  if (req->method() == Method::Cancel) return receiveCancel(std::move(req));

  if (ServerTxId id = matchServer(*req, req->methodName())) {
    requestRetransmitted(id);
    return;
  }
  // RFC 3261 §8.2.2.2: same From tag, Call-ID and CSeq as a pending request but another
  // transaction (it reached us twice through a forking proxy): 482.
  std::string mergeKey; // built once: looked up here, owned by the new transaction below
  if (req->toTag().empty()) {
    mergeKey = mergeKeyOf(*req);
    auto m = serverByMergeKey_.find(mergeKey);
    if (m != serverByMergeKey_.end()) {
      sent482.inc();
      internalRespond(std::move(req), 482, {});
      return;
    }
  }
  if (screen_) {
    if (auto rej = screen_(*req)) {
      internalRespond(std::move(req), rej->status, rej->reason, rej->headerName, rej->headerValue);
      return;
    }
  }
  ServerTx& tx = createServer(std::move(req), false, std::move(mergeKey));
  ServerTxId id = tx.id;
  const Message& request = *tx.request;
  if (tx.invite) {
    // RFC 3261 §17.2.1: 100 Trying unless the TU answers within 200 ms (configurable).
    if (config_.trying100 == Duration(0)) {
      auto b = responseTo(request, 100);
      if (auto ts = request.header(HeaderId::Timestamp)) b.header(HeaderId::Timestamp, *ts);
      (void)sendOnServer(tx, 100, b.finish());
    } else {
      tx.trying = timers_.after(config_.trying100, [this, id] {
        auto it = servers_.find(id);
        if (it == servers_.end()) return;
        ServerTx& t = it->second;
        t.trying = 0;
        if (t.state != State::Proceeding || t.lastStatus != 0) return;
        auto b = responseTo(*t.request, 100);
        // RFC 3261 §8.2.6.1: copy Timestamp into the 100.
        if (auto ts = t.request->header(HeaderId::Timestamp)) b.header(HeaderId::Timestamp, *ts);
        (void)sendOnServer(t, 100, b.finish());
      });
    }
  }
  // The tx (and the request it owns) lives at least until the next timer callback, whatever the
  // TU does inside onRequest.
  tu_.onRequest(id, request);
}

void TransactionLayer::requestRetransmitted(ServerTxId id) {
  if (auto s = servers_.find(id); s != servers_.end()) return requestRetransmitted(s->second);
  auto c = completed_.find(id);
  if (c == completed_.end()) return;
  // RFC 3261 §17.2.2: Completed, the final response again.
  retransmissionsAbsorbed.inc();
  if (!transport_.send(c->second.responsePeer, c->second.response())) {
    // Over UDP (the only transport of a CompletedTx) a failed send leaves nothing to tell the TU
    // that Timer J would not tell it anyway: count it and let Timer J run.
    transportErrors.inc();
    return;
  }
  retransmissionsSent.inc();
}

void TransactionLayer::requestRetransmitted(ServerTx& tx) {
  retransmissionsAbsorbed.inc();
  bool resend = false;
  switch (tx.state) {
  case State::Trying: // non-INVITE, no response yet: absorb
    break;
  case State::Proceeding: // the last provisional, if any (RFC 3261 §17.2.1, §17.2.2)
  case State::Completed:  // the final response
    resend = !tx.lastResponse.empty();
    break;
  default: // Accepted (RFC 6026 §7.1: absorbed), Confirmed, Terminated
    break;
  }
  if (!resend) return;
  if (!transport_.send(tx.responsePeer, tx.lastResponse)) {
    transportErrors.inc();
    serverEnd(tx, Duration(0), ServerTxEnd::TransportError);
    return;
  }
  retransmissionsSent.inc();
}

void TransactionLayer::receiveAck(MessagePtr ack) {
  if (ServerTx* tx = findServer(*ack, "INVITE")) {
    switch (tx->state) {
    case State::Completed:
      // RFC 3261 §17.2.1: Confirmed; Timer I (zero on reliable transports) absorbs further ACKs.
      setServerState(*tx, State::Confirmed);
      cancelTimer(tx->retransmit);
      cancelTimer(tx->timeout);
      serverEnd(*tx, tx->reliable ? Duration(0) : config_.t4, ServerTxEnd::Normal);
      return;
    case State::Accepted:
      break; // RFC 6026 §7.1: an ACK (for the 2xx) goes to the TU
    default: // Confirmed, Terminated: retransmitted ACK; Proceeding: nonsense
      retransmissionsAbsorbed.inc();
      return;
    }
  }
  noteAckFor2xx(*ack);
  tu_.onAck(*ack);
}

void TransactionLayer::noteAckFor2xx(const Message& ack) {
  if (serverByAckKey_.empty()) return;
  auto it =
      serverByAckKey_.find(ackKeyOf(ack.callId(), ack.cseq().seq, ack.fromTag(), ack.toTag()));
  if (it == serverByAckKey_.end()) return;
  auto s = servers_.find(it->second);
  serverByAckKey_.erase(it);
  if (s == servers_.end()) return;
  // RFC 3261 §13.3.1.4: the ACK stops the 2xx retransmissions.
  s->second.acked = true;
  s->second.ackKey.clear();
  cancelTimer(s->second.retransmit);
}

void TransactionLayer::receiveCancel(MessagePtr cancel) {
  if (ServerTxId own = matchServer(*cancel, "CANCEL")) {
    requestRetransmitted(own);
    return;
  }
  if (screen_) {
    if (auto rej = screen_(*cancel)) {
      internalRespond(std::move(cancel), rej->status, rej->reason, rej->headerName,
                      rej->headerValue);
      return;
    }
  }
  // RFC 3261 §9.2: the INVITE transaction with the same branch and sent-by (or the RFC 2543
  // equivalent). CANCEL of a non-INVITE request is not supported: it gets 481.
  ServerTx* inv = findServer(*cancel, "INVITE");
  if (!inv) {
    sent481.inc();
    internalRespond(std::move(cancel), 481, {});
    return;
  }
  ServerTxId inviteId = inv->id;
  bool pending = inv->state == State::Proceeding && !inv->internal;
  // RFC 3261 §9.2: the To tag of the 200 should be that of the INVITE's responses.
  std::string tag = inv->lastStatus > 100 ? toTagOf(inv->lastResponse) : std::string();
  if (tag.empty()) tag = ensureTag(*inv);
  ServerTxId cancelId = internalRespond(std::move(cancel), 200, {}, {}, {}, tag);
  if (!pending) return;
  // The CANCEL transaction owns the request and lives at least until the next timer callback.
  tu_.onCancel(inviteId, *servers_.find(cancelId)->second.request);
}

TransactionLayer::ServerTx& TransactionLayer::createServer(MessagePtr request, bool internal,
                                                           std::string mergeKey) {
  ServerTxId id = ++nextId_;
  ServerTx& tx = servers_[id];
  tx.id = id;
  tx.internal = internal;
  tx.invite = request->method() == Method::Invite;
  tx.reliable = isReliable(request->source().transport);
  tx.state = tx.invite ? State::Proceeding : State::Trying;
  if (!internal) ++pendingServers_;
  tx.responsePeer = responseDestination(*request);
  // The indexes hold views of the keys this transaction owns: an entry of another transaction
  // with the same key (RFC 2543 fallback with another To tag) is replaced, not just re-pointed.
  auto index = [id](auto& map, std::string_view key) {
    if (auto old = map.find(key); old != map.end()) map.erase(old);
    map.emplace(key, id);
  };
  tx.key = serverKey(*request, request->methodName());
  index(serverByKey_, tx.key);
  if (!internal && request->toTag().empty()) {
    tx.mergeKey = mergeKey.empty() ? mergeKeyOf(*request) : std::move(mergeKey);
    index(serverByMergeKey_, tx.mergeKey);
  }
  tx.request = std::move(request);
  created.inc();
  return tx;
}

ServerTxId TransactionLayer::internalRespond(MessagePtr request, int status,
                                             std::string_view reason, std::string_view headerName,
                                             std::string_view headerValue, std::string_view toTag) {
  ServerTx& tx = createServer(std::move(request), true);
  if (!toTag.empty()) tx.tag = toTag;
  auto b = responseTo(*tx.request, status, reason, ensureTag(tx));
  if (!headerName.empty()) b.header(headerName, headerValue);
  (void)sendOnServer(tx, status, b.finish());
  return tx.id;
}

std::string_view TransactionLayer::ensureTag(ServerTx& tx) {
  if (tx.tag.empty()) tx.tag = newTag();
  return tx.tag;
}

std::string_view TransactionLayer::localTag(ServerTxId id) {
  auto it = servers_.find(id);
  return it == servers_.end() ? std::string_view{} : ensureTag(it->second);
}

const Message* TransactionLayer::request(ServerTxId id) const {
  auto it = servers_.find(id);
  return it == servers_.end() ? nullptr : it->second.request.get(); // null once released
}

std::optional<MessageBuilder> TransactionLayer::responseBuilder(ServerTxId id, int status,
                                                                std::string_view reason) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return std::nullopt;
  ServerTx& tx = it->second;
  if (!tx.request) return std::nullopt; // Completed and released: no response may follow
  return responseTo(*tx.request, status, reason, status > 100 ? ensureTag(tx) : "");
}

Result<void> TransactionLayer::respond(ServerTxId id, int status, std::string_view reason) {
  auto b = responseBuilder(id, status, reason);
  if (!b) return makeError(481, "no such transaction");
  return respond(id, b->finish());
}

Result<void> TransactionLayer::respond(ServerTxId id, std::string response) {
  auto it = servers_.find(id);
  if (it == servers_.end() || it->second.internal) return makeError(481, "no such transaction");
  int status = statusOf(response);
  if (!status) return makeError(500, "not a SIP response");
  return sendOnServer(it->second, status, std::move(response));
}

Result<void> TransactionLayer::sendOnServer(ServerTx& tx, int status, std::string bytes) {
  bool allowed;
  switch (tx.state) {
  case State::Trying:
  case State::Proceeding:
    allowed = true;
    break;
  case State::Accepted: // RFC 6026 §7.1: further 2xx from the TU are sent
    allowed = status >= 200 && status < 300;
    break;
  default:
    allowed = false;
  }
  if (!allowed) return makeError(500, "transaction state does not allow this response");
  cancelTimer(tx.trying);
  auto sent = transport_.send(tx.responsePeer, bytes);
  tx.lastResponse = std::move(bytes);
  tx.lastStatus = status;
  if (!sent) {
    // RFC 3261 §17.2.4: inform the TU (from the event loop) and terminate.
    transportErrors.inc();
    serverEnd(tx, Duration(0), ServerTxEnd::TransportError);
    return sent;
  }
  ServerTxId id = tx.id;
  if (status < 200) {
    if (!tx.invite) setServerState(tx, State::Proceeding);
    return {};
  }
  if (!tx.invite) {
    // RFC 3261 §17.2.2: Completed; Timer J (zero on reliable transports).
    setServerState(tx, State::Completed);
    serverEnd(tx, tx.reliable ? Duration(0) : 64 * config_.t1, ServerTxEnd::Normal);
    if (!tx.reliable) releaseRequestLater(tx);
    return {};
  }
  if (status >= 300) {
    // RFC 3261 §17.2.1: Completed; Timer G (unreliable only) and Timer H.
    setServerState(tx, State::Completed);
    if (!tx.reliable) {
      tx.interval = config_.t1;
      tx.retransmit = timers_.after(tx.interval, [this, id] { serverTimerRetransmit(id); });
    }
    tx.timeout = timers_.after(64 * config_.t1, [this, id] { serverTimerTimeout(id); });
    return {};
  }
  if (tx.state == State::Accepted) return {}; // a 2xx resent by the TU
  // RFC 6026 §7.1: Accepted; Timer L absorbs INVITE retransmissions.
  setServerState(tx, State::Accepted);
  tx.timeout = timers_.after(64 * config_.t1, [this, id] { serverTimerTimeout(id); });
  if (config_.retransmitInvite2xx && !tx.internal) {
    // RFC 3261 §13.3.1.4: retransmit the 2xx (T1 doubling up to T2) until its ACK arrives.
    const Message& req = *tx.request;
    tx.ackKey = ackKeyOf(req.callId(), req.cseq().seq, req.fromTag(), toTagOf(tx.lastResponse));
    serverByAckKey_[tx.ackKey] = id;
    tx.interval = config_.t1;
    tx.retransmit = timers_.after(tx.interval, [this, id] { serverTimerRetransmit(id); });
  }
  return {};
}

void TransactionLayer::serverTimerRetransmit(ServerTxId id) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  ServerTx& tx = it->second;
  tx.retransmit = 0;
  // Timer G in Completed; the 2xx retransmission in Accepted until the ACK.
  if (tx.state != State::Completed && !(tx.state == State::Accepted && !tx.acked)) return;
  if (!transport_.send(tx.responsePeer, tx.lastResponse)) {
    transportErrors.inc();
    serverEnd(tx, Duration(0), ServerTxEnd::TransportError);
    return;
  }
  retransmissionsSent.inc();
  tx.interval = std::min(tx.interval * 2, config_.t2);
  tx.retransmit = timers_.after(tx.interval, [this, id] { serverTimerRetransmit(id); });
}

void TransactionLayer::serverTimerTimeout(ServerTxId id) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  ServerTx& tx = it->second;
  tx.timeout = 0;
  if (tx.state == State::Completed) {
    // RFC 3261 §17.2.1: Timer H, no ACK came.
    timeouts.inc();
    serverEnd(tx, Duration(0), ServerTxEnd::NoAck);
  } else if (tx.state == State::Accepted) {
    // RFC 6026 §7.1: Timer L. Without an ACK for the 2xx, §13.3.1.4 says end the session.
    bool noAck = config_.retransmitInvite2xx && !tx.acked && !tx.internal;
    serverEnd(tx, Duration(0), noAck ? ServerTxEnd::NoAck : ServerTxEnd::Normal);
  }
}

void TransactionLayer::serverEnd(ServerTx& tx, Duration after, ServerTxEnd how) {
  if (after == Duration(0)) {
    setServerState(tx, State::Terminated);
    cancelTimer(tx.retransmit);
    cancelTimer(tx.timeout);
  }
  cancelTimer(tx.trying);
  cancelTimer(tx.end);
  tx.endReason = how;
  ServerTxId id = tx.id;
  // Timer I / Timer J, or "terminate now" from the event loop.
  tx.end = timers_.after(after, [this, id] {
    auto it = servers_.find(id);
    if (it == servers_.end()) {
      // Timer J of a CompletedTx.
      auto c = completed_.find(id);
      if (c == completed_.end()) return;
      bool internal = c->second.internal;
      auto k = serverByKey_.find(c->second.key());
      if (k != serverByKey_.end() && k->second == id) serverByKey_.erase(k);
      if (c->second.mergeKeyLen) {
        auto m = serverByMergeKey_.find(c->second.mergeKey());
        if (m != serverByMergeKey_.end() && m->second == id) serverByMergeKey_.erase(m);
      }
      completed_.erase(c);
      terminated.inc();
      if (!internal) tu_.onServerTxTerminated(id, ServerTxEnd::Normal);
      return;
    }
    it->second.end = 0;
    ServerTxEnd reason = it->second.endReason;
    bool internal = it->second.internal;
    eraseServer(id);
    if (!internal) tu_.onServerTxTerminated(id, reason);
  });
}

void TransactionLayer::releaseRequestLater(ServerTx& tx) {
  releasable_.push_back(tx.id);
  if (!releaseTimer_)
    releaseTimer_ = timers_.after(Duration(0), [this] {
      releaseTimer_ = 0;
      releaseRequests();
    });
}

void TransactionLayer::releaseRequests() {
  for (ServerTxId id : releasable_) {
    auto it = servers_.find(id);
    if (it == servers_.end()) continue;
    ServerTx& tx = it->second;
    if (tx.state != State::Completed || !tx.request) continue;
    if (!tx.request->topVia().rfc3261Branch()) {
      tx.requestToTag = std::string(tx.request->toTag());
      tx.request.reset();
      continue;
    }
    compactServer(tx); // erases tx
  }
  releasable_.clear();
}

void TransactionLayer::compactServer(ServerTx& tx) {
  ServerTxId id = tx.id;
  auto k = serverByKey_.find(tx.key);
  if (k == serverByKey_.end() || k->second != id || tx.end == 0) return;
  auto m = tx.mergeKey.empty() ? serverByMergeKey_.end() : serverByMergeKey_.find(tx.mergeKey);
  if (m != serverByMergeKey_.end() && m->second != id) m = serverByMergeKey_.end();
  CompletedTx c;
  std::string_view mergeKey =
      m == serverByMergeKey_.end() ? std::string_view() : std::string_view(tx.mergeKey);
  c.bytes.reserve(tx.key.size() + mergeKey.size() + tx.lastResponse.size());
  c.bytes.append(tx.key).append(mergeKey).append(tx.lastResponse);
  c.keyLen = static_cast<uint32_t>(tx.key.size());
  c.mergeKeyLen = static_cast<uint32_t>(mergeKey.size());
  c.internal = tx.internal;
  c.responsePeer = tx.responsePeer;
  c.end = tx.end; // Timer J (its callback looks in completed_ when servers_ has no `id`)
  tx.end = 0;
  CompletedTx& stored = completed_.emplace(id, std::move(c)).first->second;
  // The index entries now view the CompletedTx's bytes (a node's key may be changed when
  // extracted; the hash stays the same as the text does).
  auto node = serverByKey_.extract(k);
  node.key() = stored.key();
  serverByKey_.insert(std::move(node));
  if (m != serverByMergeKey_.end()) {
    auto mn = serverByMergeKey_.extract(m);
    mn.key() = stored.mergeKey();
    serverByMergeKey_.insert(std::move(mn));
  }
  tx.key.clear(); // re-pointed: nothing of tx may be looked up or erased from the indexes
  tx.mergeKey.clear();
  cancelTimer(tx.retransmit);
  cancelTimer(tx.timeout);
  cancelTimer(tx.trying);
  servers_.erase(id);
}

void TransactionLayer::eraseServer(ServerTxId id) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  ServerTx& tx = it->second;
  setServerState(tx, State::Terminated);
  cancelTimer(tx.retransmit);
  cancelTimer(tx.timeout);
  cancelTimer(tx.end);
  cancelTimer(tx.trying);
  auto eraseIfOwn = [id](auto& map, const std::string& key) {
    if (key.empty()) return;
    auto k = map.find(key);
    if (k != map.end() && k->second == id) map.erase(k);
  };
  eraseIfOwn(serverByKey_, tx.key);
  eraseIfOwn(serverByMergeKey_, tx.mergeKey);
  eraseIfOwn(serverByAckKey_, tx.ackKey);
  servers_.erase(it);
  terminated.inc();
}

} // namespace verbund::sip

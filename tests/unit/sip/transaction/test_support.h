#pragma once
// Fakes and message factories for transaction-layer and stack tests (inject/expect scripts in
// simulated time).
#include "base/manual_timers.h"
#include "base/metrics.h"
#include "sip/message/builder.h"
#include "sip/transaction/transaction_layer.h"

#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace verbund::sip::testing {

inline Peer peer(TransportType t, const char* remote, ConnectionId conn = 0) {
  Peer p;
  p.transport = t;
  p.remote = *SockAddr::parse(remote);
  p.local = *SockAddr::parse("192.0.2.1:5060");
  p.connection = conn;
  return p;
}

inline bool samePeer(const Peer& a, const Peer& b) {
  return a.transport == b.transport && a.remote == b.remote && a.connection == b.connection;
}

// Records everything sent; can be told to fail.
class FakeTransport final : public Transport {
public:
  struct Sent {
    Peer to;
    std::string bytes;
  };
  std::vector<Sent> sent;
  bool fail = false;

  Result<void> send(const Peer& to, std::string_view bytes) override {
    if (fail) return makeError(503, "fake transport down");
    sent.push_back({to, std::string(bytes)});
    return {};
  }
  std::optional<SockAddr> localAddress(TransportType, const SockAddr&) const override {
    return SockAddr::parse("192.0.2.1:5060");
  }
  MessagePtr parsed(size_t i) const {
    auto r = parseMessage(sent.at(i).bytes);
    EXPECT_TRUE(r.ok()) << r.error.reason << "\n" << sent.at(i).bytes;
    return std::move(r.message);
  }
  MessagePtr last() const { return parsed(sent.size() - 1); }
  void clear() { sent.clear(); }
};

// Records the TU callbacks; onRequestHook lets a test answer inside onRequest.
class RecordingTu final : public TransactionUser {
public:
  struct Req {
    ServerTxId tx;
    std::string raw;
  };
  std::vector<Req> requests;
  std::vector<std::string> acks, strays;
  std::vector<std::pair<ServerTxId, std::string>> cancels;
  std::vector<std::pair<ServerTxId, ServerTxEnd>> ended;
  std::function<void(ServerTxId, const Message&)> onRequestHook;

  void onRequest(ServerTxId tx, const Message& r) override {
    requests.push_back({tx, std::string(r.raw())});
    if (onRequestHook) onRequestHook(tx, r);
  }
  void onAck(const Message& ack) override { acks.emplace_back(ack.raw()); }
  void onCancel(ServerTxId tx, const Message& c) override { cancels.emplace_back(tx, c.raw()); }
  void onServerTxTerminated(ServerTxId tx, ServerTxEnd how) override {
    ended.emplace_back(tx, how);
  }
  void onStrayResponse(const Message& r) override { strays.emplace_back(r.raw()); }
};

// Records a client transaction's callbacks.
struct ClientRecord {
  std::vector<int> statuses;
  std::vector<std::string> responses;
  std::vector<ClientTxFailure> failures;
  ClientTxCallbacks callbacks() {
    return ClientTxCallbacks{[this](const Message& r) {
                               statuses.push_back(r.statusCode());
                               responses.emplace_back(r.raw());
                             },
                             [this](ClientTxFailure f) { failures.push_back(f); }};
  }
};

struct RequestSpec {
  std::string method = "INVITE";
  std::string uri = "sip:bob@192.0.2.1";
  std::string via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKabc1";
  std::string fromTag = "ft1";
  std::string toTag;
  std::string callId = "call-1@198.51.100.7";
  uint32_t cseq = 1;
  std::string cseqMethod; // defaults to method
  std::string extra;      // raw header lines
};

inline std::string requestText(const RequestSpec& s) {
  std::string t = s.method + " " + s.uri + " SIP/2.0\r\n";
  t += "Via: " + s.via + "\r\n";
  t += "Max-Forwards: 70\r\n";
  t += "From: <sip:alice@198.51.100.7>;tag=" + s.fromTag + "\r\n";
  t += "To: <sip:bob@192.0.2.1>" + (s.toTag.empty() ? std::string() : ";tag=" + s.toTag) + "\r\n";
  t += "Call-ID: " + s.callId + "\r\n";
  t += "CSeq: " + std::to_string(s.cseq) + " " + (s.cseqMethod.empty() ? s.method : s.cseqMethod) +
       "\r\n";
  t += s.extra;
  t += "Content-Length: 0\r\n\r\n";
  return t;
}

inline MessagePtr parseOrDie(std::string text) {
  auto r = parseMessage(std::move(text));
  EXPECT_TRUE(r.ok()) << r.error.reason;
  return std::move(r.message);
}

inline MessagePtr requestFrom(const RequestSpec& s, const Peer& source) {
  auto m = parseOrDie(requestText(s));
  if (m) m->setSource(source);
  return m;
}

inline std::string header(const Message& m, HeaderId id) {
  return std::string(m.header(id).value_or(""));
}

// Value of a counter by name (counters are process-wide: compare deltas).
inline uint64_t counter(std::string_view name) {
  for (const Counter* c : allCounters())
    if (name == c->name()) return c->value();
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

} // namespace verbund::sip::testing

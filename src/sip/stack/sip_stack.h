#pragma once
// The glue between the transport and the transaction layer (RFC 3261 §18 receive side and the
// §8.2 checks that belong to the core). Owns the TransactionLayer.
//
//   transport --onReceive(bytes, peer)--> SipStack --parse, §18 / §8.2 checks--> TransactionLayer
//
// Malformed requests are answered with the parser's status and reason (normally 400) over the
// peer they came from; malformed responses are dropped and counted. Depends on the Transport
// interface only, so tests drive it with a fake transport and ManualTimers.
//
// Overload (docs/architecture.md, "Overload control"): within a batch of datagrams, responses,
// ACK, CANCEL and in-dialog requests are passed on at once and new requests after them; a new
// out-of-dialog INVITE, REGISTER or SUBSCRIBE may be refused with a stateless 503 and
// Retry-After (OverloadControl decides) before the transaction layer and the TU see it.
#include "sip/stack/overload_control.h"
#include "sip/transaction/transaction_layer.h"

#include <string>
#include <vector>

namespace verbund::sip {

struct StackConfig {
  TransactionConfig transactions;
  ParseLimits limits;
  // RFC 3261 §8.2.2.3: option tags this UA supports; a request whose Require lists anything else
  // is rejected with 420 Bad Extension and an Unsupported header.
  std::vector<std::string> supported;
  OverloadConfig overload;
};

class SipStack final : public TransportUser {
public:
  SipStack(Transport& transport, Timers& timers, TransactionUser& tu, StackConfig config = {});
  ~SipStack() override;
  SipStack(const SipStack&) = delete;
  SipStack& operator=(const SipStack&) = delete;

  TransactionLayer& transactions() { return layer_; }
  const StackConfig& config() const { return config_; }
  void setSupported(std::vector<std::string> optionTags) {
    config_.supported = std::move(optionTags);
  }

  const OverloadControl& overload() const { return overload_; }
  void setOverloadConfig(const OverloadConfig& c) { overload_.setConfig(c); }

  // TransportUser
  void onReceive(std::string bytes, const Peer& from, TimePoint receivedAt) override;
  void onReceiveBatchBegin() override;
  void onReceiveBatchEnd(uint64_t kernelDrops) override;
  void onTransportError(const Peer& peer, const std::string& reason) override;

private:
  struct Deferred {
    MessagePtr message;
    TimePoint receivedAt;
  };
  // True for a message that waits for the end of its batch (new work), see onReceive.
  bool deferrable(const Message& m) const;
  void dispatch(MessagePtr message, TimePoint receivedAt);
  // Answers `request` with 503 when overload control refuses it; true when it did.
  bool shed(const Message& request);
  void armTick();
  void tick();

  // RFC 3261 §8.2: checks run by the transaction layer on each new request before the TU.
  std::optional<Rejection> screen(const Message& request) const;

  Transport& transport_;
  Timers& timers_;
  StackConfig config_;
  TransactionLayer layer_;
  OverloadControl overload_;
  TimerId tick_ = 0;
  bool batching_ = false;
  std::vector<Deferred> deferred_;
};

} // namespace verbund::sip

#pragma once
// The glue between the transport and the transaction layer (RFC 3261 §18 receive side and the
// §8.2 checks that belong to the core). Owns the TransactionLayer.
//
//   transport --onReceive(bytes, peer)--> SipStack --parse, §18 / §8.2 checks--> TransactionLayer
//
// Malformed requests are answered with the parser's status and reason (normally 400) over the
// peer they came from; malformed responses are dropped and counted. Depends on the Transport
// interface only, so tests drive it with a fake transport and ManualTimers.
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
};

class SipStack final : public TransportUser {
public:
  SipStack(Transport& transport, Timers& timers, TransactionUser& tu, StackConfig config = {});

  TransactionLayer& transactions() { return layer_; }
  const StackConfig& config() const { return config_; }
  void setSupported(std::vector<std::string> optionTags) {
    config_.supported = std::move(optionTags);
  }

  // TransportUser
  void onReceive(std::string bytes, const Peer& from) override;
  void onTransportError(const Peer& peer, const std::string& reason) override;

private:
  // RFC 3261 §8.2: checks run by the transaction layer on each new request before the TU.
  std::optional<Rejection> screen(const Message& request) const;

  Transport& transport_;
  StackConfig config_;
  TransactionLayer layer_;
};

} // namespace verbund::sip

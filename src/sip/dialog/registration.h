#pragma once
// Registration client (RFC 3261 §10.2), used for SIP trunks: keeps one Contact registered with a
// registrar, answers digest challenges through a pluggable callback, refreshes before the
// granted expiry, retries with backoff (honouring Retry-After) and unregisters on stop().
//
// Runs on the event loop of its TransactionLayer; it needs no TU since all answers come through
// client transaction callbacks.
#include "base/clock.h"
#include "sip/dialog/uac_request.h"
#include "sip/transaction/transaction_layer.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace verbund::sip {

struct RegistrationConfig {
  std::string registrarUri; // Request-URI, e.g. "sip:carrier.example" (RFC 3261 §10.2)
  std::string aor;          // To and From, e.g. "<sip:4930123@carrier.example>"
  std::string contact;      // our Contact URI
  uint32_t expires = 3600;  // requested, seconds
  // Refresh this long before the granted expiry (at half time when the expiry is short).
  Duration refreshMargin{30000};
  // Retry after failures: retryMin doubling up to retryMax, unless Retry-After says otherwise.
  Duration retryMin{30000};
  Duration retryMax{1800000};
  std::optional<Peer> target; // destination; default: resolve the first route or the registrar
  Resolver resolve = resolveNumeric;
  std::vector<std::string> routes; // Route values (outbound proxy)
  AuthCallback auth;
  ExtraHeaders headers; // e.g. User-Agent
};

class RegistrationClient {
public:
  enum class State : uint8_t { Unregistered, Registering, Registered, Failing, Unregistering };
  // Called on every state change with a reason ("200 OK", "503 Service Unavailable",
  // "408 Request Timeout", "no credentials", ...).
  using ChangeCallback = std::function<void(State state, const std::string& reason)>;

  RegistrationClient(TransactionLayer& txl, Timers& timers, RegistrationConfig config,
                     ChangeCallback onChange = {});
  ~RegistrationClient();
  RegistrationClient(const RegistrationClient&) = delete;
  RegistrationClient& operator=(const RegistrationClient&) = delete;

  // Registers and keeps the registration alive until stop().
  void start();
  // RFC 3261 §10.2.2: removes the binding (Expires: 0). State goes to Unregistered once the
  // registrar answered (or at once when nothing was registered).
  void stop();

  State state() const { return state_; }
  const std::string& lastReason() const { return reason_; }
  uint32_t grantedExpires() const { return granted_; } // seconds, last 2xx
  const std::string& callId() const { return callId_; }

private:
  void send();
  void onResponse(uint64_t gen, const Message& response);
  void onFailure(uint64_t gen, ClientTxFailure why);
  void fail(const std::string& reason, std::optional<uint32_t> retryAfter);
  void setState(State s, std::string reason);
  void cancelTimer();
  uint32_t grantedFrom(const Message& response) const;

  TransactionLayer& txl_;
  Timers& timers_;
  RegistrationConfig config_;
  ChangeCallback onChange_;
  State state_ = State::Unregistered;
  std::string reason_;
  std::string callId_; // RFC 3261 §10.2: the same Call-ID for all registrations of this client
  uint32_t cseq_ = 0;
  uint32_t expires_ = 0; // requested (raised by 423)
  uint32_t granted_ = 0;
  std::optional<std::pair<std::string, std::string>> authHeader_;
  int authAttempts_ = 0;
  int failures_ = 0;
  bool unregistering_ = false;
  uint64_t gen_ = 0; // responses to anything but the newest request are ignored
  TimerId timer_ = 0;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

std::string_view registrationStateName(RegistrationClient::State s);

} // namespace verbund::sip

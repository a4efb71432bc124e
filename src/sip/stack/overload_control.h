#pragma once
// Overload control for new work (the rule is documented in docs/architecture.md, "Overload
// control"). Pure logic: no I/O, no clock; the stack feeds it samples and calls update() once per
// control interval, so it is tested in simulated time.
//
// Signal: the queue delay, how long a datagram waited between the kernel and the event loop; a
// single-threaded node that cannot keep up shows it first there. Kernel drops (a full receive
// buffer hides the delay) and the number of server transactions still awaiting a final response
// complete it. Each interval the shed fraction p is adapted from the interval's mean queue delay
// as PIE does for packets (RFC 8033 §4.2: p += α·(delay − target) + β·(delay − previous delay)),
// so that under sustained overload the queue settles near the target while the node stays busy.
// New out-of-dialog INVITE/REGISTER/SUBSCRIBE are then refused in proportion p (RFC 6357 §5: reject
// new work, keep serving what was admitted).
#include "base/clock.h"

#include <cstddef>
#include <cstdint>

namespace verbund::sip {

struct OverloadConfig {
  // Queue delay above which the node sheds new work, and which it holds under overload.
  // Zero turns the delay signal off (kernel drops then still count).
  Duration queueDelayTarget{150};
  // Server transactions awaiting a final response at which every new request is shed until they
  // fall below 90 % of it. Zero: no cap.
  size_t maxPendingTransactions = 20000;
  Duration interval{100}; // the control interval
};

class OverloadControl {
public:
  enum class State : uint8_t {
    Normal,   // everything admitted
    Shedding, // new requests refused in proportion shedFraction(), or all at the cap
  };
  enum class Verdict : uint8_t { Admit, Shed };

  explicit OverloadControl(OverloadConfig config = {}) : config_(config) {}
  const OverloadConfig& config() const { return config_; }
  // New thresholds (a configuration reload); the current state adapts from here.
  void setConfig(const OverloadConfig& config) { config_ = config; }

  // A datagram reached the event loop `age` after the kernel received it.
  void noteQueueDelay(Clock::duration age);
  // The kernel dropped `n` datagrams for a full receive buffer.
  void noteKernelDrops(uint64_t n) { drops_ += n; }
  // End of a control interval: adapt the shed fraction and the state.
  void update(size_t pendingTransactions);

  // A new out-of-dialog INVITE, REGISTER or SUBSCRIBE. `answersChallenge`: it carries
  // credentials, so a challenge was already spent on it; such requests are shed only when
  // refusing every fresh one is not enough (p at 1) or at the transaction cap.
  Verdict admit(bool answersChallenge);
  // RFC 3261 §21.5.4 / §20.33: how long a refused client should wait, 1–5 s by severity.
  int retryAfterSeconds() const;

  State state() const { return state_; }
  double shedFraction() const { return p_; }
  // Mean queue delay of the last interval, in seconds.
  double queueDelay() const { return delay_; }
  bool atTransactionCap() const { return capped_; }

private:
  void adapt(double delay, double maxAge, bool dropped);

  OverloadConfig config_;
  State state_ = State::Normal;
  double p_ = 0;        // shed fraction of fresh requests, 0..1
  double credit_ = 0;   // spreads the refusals evenly instead of drawing random numbers
  double delay_ = 0;    // mean queue delay of the last interval, s
  int aboveTarget_ = 0; // consecutive intervals with the delay above target (Normal only)
  bool capped_ = false; // at the transaction cap (hysteresis: until below 90 %)
  // The current interval.
  int64_t sumAgeUs_ = 0;
  int64_t maxAgeUs_ = 0;
  uint64_t samples_ = 0;
  uint64_t drops_ = 0;
};

} // namespace verbund::sip

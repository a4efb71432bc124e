#include "sip/stack/overload_control.h"

#include <algorithm>
#include <chrono>

namespace verbund::sip {

namespace {
// RFC 8033 §4.2 uses α = 0.125 and β = 1.25 per 15 ms update; with a 100 ms interval these
// react to a 1.5x overload within about half a second without overshooting much.
constexpr double kAlpha = 0.5;
constexpr double kBeta = 1.0;
// The delay must stay above target this many intervals before shedding starts: one stall of the
// loop (a slow disk write) is absorbed by the queue, not answered with 503s.
constexpr int kEnterIntervals = 2;
// While the whole interval's queue stayed under half the target the node keeps up: p halves
// (RFC 8033 §4.2 decays p when the queue is empty; faster here, so that the node takes its full
// rate again within a second of the overload ending).
constexpr double kDecay = 0.5;
constexpr double kStartFraction = 0.1; // p when shedding starts; the controller takes it from there
constexpr double kMinFraction = 0.01;  // below this p snaps to 0 and the node is Normal again
constexpr double kCapRelease = 0.9;
} // namespace

void OverloadControl::noteQueueDelay(Clock::duration age) {
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(age).count();
  if (us < 0) us = 0;
  sumAgeUs_ += us;
  maxAgeUs_ = std::max(maxAgeUs_, us);
  ++samples_;
}

void OverloadControl::update(size_t pending) {
  double delay = samples_ ? double(sumAgeUs_) / double(samples_) / 1e6 : 0.0;
  double maxAge = double(maxAgeUs_) / 1e6;
  bool dropped = drops_ > 0;
  sumAgeUs_ = maxAgeUs_ = 0;
  samples_ = drops_ = 0;

  size_t cap = config_.maxPendingTransactions;
  if (cap && pending >= cap) capped_ = true;
  if (capped_ && (!cap || double(pending) < kCapRelease * double(cap))) capped_ = false;

  adapt(delay, maxAge, dropped);
  delay_ = delay;
  state_ = (p_ > 0 || capped_) ? State::Shedding : State::Normal;
}

void OverloadControl::adapt(double delay, double maxAge, bool dropped) {
  double target = std::chrono::duration<double>(config_.queueDelayTarget).count();
  if (target <= 0 && !dropped) {
    p_ = 0;
    return;
  }
  // A full receive buffer means at least as much delay as the buffer holds; count it as twice
  // the target (with the delay signal off, as 100 ms).
  double effective = dropped ? std::max(delay, target > 0 ? 2 * target : 0.1) : delay;
  double setpoint = target > 0 ? target : 0.05;
  // The trend term only pushes up: a queue that just drained lowers p through the α term and
  // the decay, over a few intervals, so p does not collapse and flap back (hysteresis).
  double step = kAlpha * (effective - setpoint) + kBeta * std::max(0.0, effective - delay_);
  if (p_ == 0) {
    aboveTarget_ = effective >= setpoint ? aboveTarget_ + 1 : 0;
    if (aboveTarget_ < kEnterIntervals && !dropped) return;
    aboveTarget_ = 0;
    p_ = std::min(1.0, kStartFraction + std::max(0.0, step));
    return;
  }
  p_ += step;
  if (!dropped && maxAge < setpoint / 2) p_ *= kDecay;
  p_ = std::clamp(p_, 0.0, 1.0);
  if (p_ < kMinFraction) p_ = 0;
}

OverloadControl::Verdict OverloadControl::admit(bool answersChallenge) {
  if (capped_) return Verdict::Shed;
  if (p_ <= 0) return Verdict::Admit;
  if (answersChallenge) return p_ >= 1 ? Verdict::Shed : Verdict::Admit;
  credit_ += p_;
  if (credit_ < 1) return Verdict::Admit;
  credit_ -= 1;
  return Verdict::Shed;
}

int OverloadControl::retryAfterSeconds() const {
  if (capped_) return 5;
  return std::clamp(1 + int(p_ * 4), 1, 5);
}

} // namespace verbund::sip

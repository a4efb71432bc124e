#pragma once
// Time and timers are injected so that protocol state machines run in simulated time in tests.
#include <chrono>
#include <cstdint>
#include <functional>

namespace verbund {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;

// Opaque handle of a scheduled timer; 0 is "no timer".
using TimerId = uint64_t;

// A timer service bound to one event loop. Callbacks run on that loop; cancel() of a timer that
// already fired or was cancelled is a no-op.
class Timers {
public:
  virtual ~Timers() = default;
  virtual TimePoint now() const = 0;
  // Wall-clock time in milliseconds since the Unix epoch, for records and protocol fields that
  // carry dates. Comes from the timer service so that simulated time moves it too (tests).
  virtual int64_t wallMs() const = 0;
  virtual TimerId after(Duration delay, std::function<void()> fn) = 0;
  virtual void cancel(TimerId id) = 0;
};

} // namespace verbund

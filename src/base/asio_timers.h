#pragma once
// Timers on an Asio io_context: one steady_timer for the earliest deadline, the pending timers in
// a heap of our own. A protocol stack starts and cancels several timers per message (RFC 3261
// Timers A–K), nearly all cancelled long before they are due: here starting one is a heap push
// and a hash insert, cancelling one a hash erase, and the kernel timer is only moved when a new
// timer is due before every other. Zero-delay timers (an object erased "at once", outside the
// callback that ended it) go to a FIFO drained by one posted handler, never to the kernel timer.
#include "base/clock.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace verbund {

class AsioTimers final : public Timers {
public:
  explicit AsioTimers(asio::io_context& io);
  ~AsioTimers() override;
  AsioTimers(const AsioTimers&) = delete;
  AsioTimers& operator=(const AsioTimers&) = delete;

  TimePoint now() const override { return Clock::now(); }
  int64_t wallMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  TimerId after(Duration delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;

  size_t pending() const { return live_.size(); } // started, neither fired nor cancelled

private:
  using Due = std::pair<TimePoint, TimerId>; // ties fire in the order they were started
  void arm();                                // the kernel timer to the earliest live deadline
  void fireDue();
  void drainReady();
  void dropCancelledFromHeap();

  asio::io_context& io_;
  asio::steady_timer wake_;
  TimePoint armedFor_ = TimePoint::max(); // deadline wake_ waits for; max: not waiting
  TimerId next_ = 0;
  std::unordered_map<TimerId, std::function<void()>> live_;
  std::vector<Due> heap_; // min-heap; cancelled timers stay until they surface (lazy removal)
  std::deque<TimerId> ready_;
  bool drainPosted_ = false;
  // Tells handlers still queued in the io_context that this object is gone.
  std::shared_ptr<AsioTimers*> self_;
};

} // namespace verbund

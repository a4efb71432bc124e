#pragma once
// Simulated time for tests: nothing fires until advance() moves the clock.
#include "base/clock.h"

#include <map>
#include <utility>

namespace verbund {

class ManualTimers final : public Timers {
public:
  TimePoint now() const override { return now_; }
  // Simulated wall clock: a fixed start (2026-01-01T00:00:00Z unless set) plus simulated time.
  int64_t wallMs() const override {
    return wallStartMs_ + std::chrono::duration_cast<Duration>(now_.time_since_epoch()).count();
  }
  void setWallStart(int64_t ms) { wallStartMs_ = ms; }
  TimerId after(Duration delay, std::function<void()> fn) override {
    TimerId id = ++next_;
    queue_.emplace(std::make_pair(now_ + delay, id), std::move(fn));
    return id;
  }
  void cancel(TimerId id) override {
    for (auto it = queue_.begin(); it != queue_.end(); ++it)
      if (it->first.second == id) {
        queue_.erase(it);
        return;
      }
  }
  // Moves time forward by d, firing every timer due on the way in time order.
  void advance(Duration d) {
    TimePoint end = now_ + d;
    while (!queue_.empty() && queue_.begin()->first.first <= end) {
      auto node = queue_.extract(queue_.begin());
      now_ = node.key().first;
      node.mapped()();
    }
    now_ = end;
  }
  size_t pending() const { return queue_.size(); }

private:
  TimePoint now_{};
  int64_t wallStartMs_ = 1767225600000;
  TimerId next_ = 0;
  std::map<std::pair<TimePoint, TimerId>, std::function<void()>> queue_;
};

} // namespace verbund

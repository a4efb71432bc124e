#pragma once
// Timers on an Asio io_context: one steady_timer per pending timer, cancelled through its id.
#include "base/clock.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <unordered_map>

namespace verbund {

class AsioTimers final : public Timers {
public:
  explicit AsioTimers(asio::io_context& io) : io_(io) {}
  ~AsioTimers() override;
  TimePoint now() const override { return Clock::now(); }
  int64_t wallMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  TimerId after(Duration delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;

private:
  asio::io_context& io_;
  TimerId next_ = 0;
  std::unordered_map<TimerId, std::unique_ptr<asio::steady_timer>> live_;
};

} // namespace verbund

#include "base/asio_timers.h"

namespace verbund {

AsioTimers::~AsioTimers() {
  for (auto& [id, t] : live_) t->cancel();
}

TimerId AsioTimers::after(Duration delay, std::function<void()> fn) {
  TimerId id = ++next_;
  auto timer = std::make_unique<asio::steady_timer>(io_, delay);
  timer->async_wait([this, id, fn = std::move(fn)](const std::error_code& ec) {
    if (ec) return; // cancelled
    auto it = live_.find(id);
    if (it == live_.end()) return;
    // Keep the timer object alive until the handler returns: erase after the call is not
    // possible if fn cancels or reschedules, so move it out first.
    auto keep = std::move(it->second);
    live_.erase(it);
    fn();
  });
  live_.emplace(id, std::move(timer));
  return id;
}

void AsioTimers::cancel(TimerId id) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  it->second->cancel();
  live_.erase(it);
}

} // namespace verbund

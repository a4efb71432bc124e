#include "base/asio_timers.h"

#include <algorithm>
#include <asio/post.hpp>
#include <functional>

namespace verbund {

namespace {
constexpr std::greater<> kLater; // std::*_heap with it keeps the earliest deadline in front
// Cancelled timers are dropped from the heap when they surface, or all at once when they
// outnumber the live ones by this much (most transaction timers are cancelled long before due).
constexpr size_t kHeapSlack = 1024;
} // namespace

AsioTimers::AsioTimers(asio::io_context& io)
    : io_(io), wake_(io), self_(std::make_shared<AsioTimers*>(this)) {}

AsioTimers::~AsioTimers() {
  *self_ = nullptr;
  wake_.cancel();
}

TimerId AsioTimers::after(Duration delay, std::function<void()> fn) {
  TimerId id = ++next_;
  live_.emplace(id, std::move(fn));
  if (delay <= Duration::zero()) {
    ready_.push_back(id);
    if (!drainPosted_) {
      drainPosted_ = true;
      asio::post(io_, [s = self_] {
        if (*s) (*s)->drainReady();
      });
    }
    return id;
  }
  TimePoint due = now() + delay;
  heap_.emplace_back(due, id);
  std::push_heap(heap_.begin(), heap_.end(), kLater);
  if (heap_.size() > 2 * live_.size() + kHeapSlack) dropCancelledFromHeap();
  if (due < armedFor_) arm();
  return id;
}

void AsioTimers::cancel(TimerId id) {
  // Its heap or FIFO entry stays and is skipped: no search, no handler to post. The kernel timer
  // may then wake the loop once for nothing, unless nothing at all is left: then it stops, so
  // that the io_context runs out of work as it did before the timer was started.
  if (!live_.erase(id) || !live_.empty()) return;
  heap_.clear();
  if (armedFor_ != TimePoint::max()) wake_.cancel();
  armedFor_ = TimePoint::max();
}

void AsioTimers::dropCancelledFromHeap() {
  std::erase_if(heap_, [this](const Due& d) { return !live_.count(d.second); });
  std::make_heap(heap_.begin(), heap_.end(), kLater);
}

void AsioTimers::arm() {
  while (!heap_.empty() && !live_.count(heap_.front().second)) {
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    heap_.pop_back();
  }
  // Nothing pending: a wait already set may fire for nothing (harmless), none is set anew.
  if (heap_.empty() || heap_.front().first >= armedFor_) return;
  armedFor_ = heap_.front().first;
  wake_.expires_at(armedFor_); // cancels the wait for a later deadline, if any
  wake_.async_wait([s = self_](const std::error_code& ec) {
    if (ec || !*s) return; // replaced by an earlier deadline, or we are gone
    (*s)->armedFor_ = TimePoint::max();
    (*s)->fireDue();
  });
}

void AsioTimers::fireDue() {
  auto s = self_;
  TimePoint t = now();
  while (!heap_.empty() && heap_.front().first <= t) {
    TimerId id = heap_.front().second;
    std::pop_heap(heap_.begin(), heap_.end(), kLater);
    heap_.pop_back();
    auto it = live_.find(id);
    if (it == live_.end()) continue; // cancelled
    std::function<void()> fn = std::move(it->second);
    live_.erase(it);
    fn(); // may start and cancel timers
    if (!*s) return;
  }
  arm();
}

void AsioTimers::drainReady() {
  drainPosted_ = false;
  // Timers started at zero delay by these callbacks run in a later handler, after pending I/O.
  std::deque<TimerId> batch;
  batch.swap(ready_);
  auto s = self_;
  for (TimerId id : batch) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    std::function<void()> fn = std::move(it->second);
    live_.erase(it);
    fn();
    if (!*s) return;
  }
}

} // namespace verbund

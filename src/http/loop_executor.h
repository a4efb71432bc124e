#pragma once
// Runs work from other threads (the HTTP server's) on the node's event loop and waits for the
// result with a bound. All node state lives on that loop, so every API handler goes through here.
//
// Safe with captures by reference: a task that has not started when the wait times out is
// abandoned (it will see that and do nothing); a task that has started is waited for, so nothing
// it refers to goes away under it. A task that throws yields a 500 error, never an exception on
// the loop.
#include "base/clock.h"
#include "base/metrics.h"
#include "base/result.h"

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <type_traits>

namespace verbund::http {

namespace detail {
extern Counter loopTimeouts;
template <typename T> struct Unwrap { using Type = T; };
template <typename T> struct Unwrap<Result<T>> { using Type = T; };
} // namespace detail

class LoopExecutor {
public:
  explicit LoopExecutor(asio::io_context& io, Duration timeout = std::chrono::seconds(5))
      : io_(io), timeout_(timeout) {}

  Duration timeout() const { return timeout_; }
  bool onLoopThread() const { return io_.get_executor().running_in_this_thread(); }

  // fn returns T, Result<T> or void; the answer is Result<T> (Result<void> for void), or
  // Error{503} when the loop did not start it in time, Error{500} when it threw.
  template <typename F> auto run(F&& fn) {
    using Raw = std::invoke_result_t<F&>;
    using T = typename detail::Unwrap<Raw>::Type;
    using Out = Result<T>;
    if (onLoopThread()) return invoke<Raw, Out>(fn);

    struct State {
      std::atomic<int> phase{0}; // 0 queued, 1 running, 2 abandoned
      std::promise<void> done;
      std::optional<Out> out;
    };
    auto st = std::make_shared<State>();
    auto done = st->done.get_future();
    asio::post(io_, [st, &fn] {
      int expected = 0;
      if (!st->phase.compare_exchange_strong(expected, 1)) return; // abandoned: fn is gone
      st->out.emplace(invoke<Raw, Out>(fn));
      st->done.set_value();
    });
    if (done.wait_for(timeout_) == std::future_status::timeout) {
      int expected = 0;
      if (st->phase.compare_exchange_strong(expected, 2)) {
        detail::loopTimeouts.inc();
        return Out(Error{503, "node busy: the request timed out, try again"});
      }
      done.wait(); // already running on the loop: it finishes soon
    }
    return std::move(*st->out);
  }

private:
  template <typename Raw, typename Out, typename F> static Out invoke(F& fn) {
    try {
      if constexpr (std::is_void_v<Raw>) {
        fn();
        return Out();
      } else {
        return Out(fn());
      }
    } catch (const std::exception& e) {
      return Out(Error{500, std::string("internal error: ") + e.what()});
    } catch (...) {
      return Out(Error{500, "internal error"});
    }
  }

  asio::io_context& io_;
  Duration timeout_;
};

} // namespace verbund::http

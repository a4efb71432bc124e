// AsioTimers on a real io_context: order, cancellation, callbacks that start and cancel timers,
// an earlier deadline after a later one, and many cancelled timers.
#include "base/asio_timers.h"

#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace verbund {
namespace {

using std::chrono::milliseconds;

TEST(AsioTimers, FireInDeadlineOrderZeroDelayFirst) {
  asio::io_context io;
  AsioTimers timers(io);
  std::vector<std::string> seen;
  timers.after(Duration(30), [&] { seen.push_back("30"); });
  timers.after(Duration(10), [&] { seen.push_back("10a"); });
  timers.after(Duration(20), [&] { seen.push_back("20"); });
  timers.after(Duration(10), [&] { seen.push_back("10b"); }); // same deadline: started later
  timers.after(Duration(0), [&] { seen.push_back("0"); });
  EXPECT_EQ(timers.pending(), 5u);
  io.run();
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "10a", "10b", "20", "30"}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(AsioTimers, CancelledTimersNeverFire) {
  asio::io_context io;
  AsioTimers timers(io);
  std::vector<std::string> seen;
  TimerId first = timers.after(Duration(5), [&] { seen.push_back("first"); });
  TimerId zero = timers.after(Duration(0), [&] { seen.push_back("zero"); });
  timers.after(Duration(15), [&] { seen.push_back("later"); });
  timers.cancel(first); // the one the kernel timer waits for
  timers.cancel(zero);
  timers.cancel(zero); // twice: no-op
  timers.cancel(0);    // "no timer": no-op
  io.run();
  EXPECT_EQ(seen, (std::vector<std::string>{"later"}));
  timers.cancel(first); // already gone: no-op
}

TEST(AsioTimers, EverythingCancelledLetsTheLoopRunOut) {
  asio::io_context io;
  AsioTimers timers(io);
  TimerId a = timers.after(std::chrono::hours(1), [] { FAIL(); });
  TimerId b = timers.after(std::chrono::hours(2), [] { FAIL(); });
  timers.cancel(a);
  timers.cancel(b);
  auto t0 = Clock::now();
  io.run(); // would wait an hour if the kernel timer stayed armed
  EXPECT_LT(Clock::now() - t0, milliseconds(1000));
}

TEST(AsioTimers, AnEarlierDeadlineStartedLaterFiresOnTime) {
  asio::io_context io;
  AsioTimers timers(io);
  TimePoint t0 = Clock::now(), early{}, late{};
  timers.after(Duration(300), [&] { late = Clock::now(); });
  timers.after(Duration(10), [&] { early = Clock::now(); });
  io.run();
  EXPECT_GE(early - t0, milliseconds(10));
  EXPECT_LT(early - t0, milliseconds(200));
  EXPECT_GE(late - t0, milliseconds(300));
}

TEST(AsioTimers, CallbacksStartAndCancelTimers) {
  asio::io_context io;
  AsioTimers timers(io);
  std::vector<std::string> seen;
  TimerId victim = timers.after(Duration(20), [&] { seen.push_back("victim"); });
  timers.after(Duration(5), [&] {
    seen.push_back("a");
    timers.cancel(victim);
    timers.after(Duration(0), [&] {
      seen.push_back("a+0");
      timers.after(Duration(0), [&] { seen.push_back("a+0+0"); });
    });
    timers.after(Duration(10), [&] { seen.push_back("a+10"); });
  });
  io.run();
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "a+0", "a+0+0", "a+10"}));
}

TEST(AsioTimers, ManyCancelledTimersDoNotPileUp) {
  asio::io_context io;
  AsioTimers timers(io);
  int fired = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<TimerId> ids;
    for (int i = 0; i < 1000; ++i) ids.push_back(timers.after(Duration(32000 + i), [] { FAIL(); }));
    for (TimerId id : ids) timers.cancel(id);
    timers.after(Duration(1), [&] { ++fired; });
    io.run();
    io.restart();
  }
  EXPECT_EQ(fired, 20);
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(AsioTimers, NothingRunsAfterDestruction) {
  asio::io_context io;
  bool ran = false;
  {
    AsioTimers timers(io);
    timers.after(Duration(0), [&] { ran = true; });
    timers.after(Duration(1), [&] { ran = true; });
  }
  io.run();
  EXPECT_FALSE(ran);
}

} // namespace
} // namespace verbund

#pragma once
// Call-record retention (`[calls] retention_days`): records that started more than N days ago
// are deleted at start and then once a day. Deleting runs in batches of kBatch records, one
// transaction per loop turn, so a first run over a large backlog never holds the loop for long.
// Time comes from the injected Timers (wall clock for the cutoff, timers for the schedule).
#include "base/clock.h"
#include "pbx/calllog/call_log.h"

#include <cstdint>

namespace verbund::pbx {

class CallRetention {
public:
  static constexpr Duration kInterval = std::chrono::hours(24);
  static constexpr int kBatch = 1000;
  static constexpr Duration kBatchPause{10}; // between batches of one run

  // days == 0 keeps records forever (start() does nothing).
  CallRetention(CallLog& log, Timers& timers, int days);
  ~CallRetention();
  CallRetention(const CallRetention&) = delete;
  CallRetention& operator=(const CallRetention&) = delete;

  // Starts a run now; the next runs follow every kInterval after a run ended.
  void start();
  // Records deleted by retention since construction.
  int64_t deleted() const { return deleted_; }
  bool running() const { return running_; }

private:
  void sweep();
  CallLog& log_;
  Timers& timers_;
  int days_;
  TimerId timer_ = 0;
  bool running_ = false;
  int64_t cutoffMs_ = 0; // of the current run
  int64_t deleted_ = 0;
};

} // namespace verbund::pbx

#include "pbx/calllog/retention.h"

#include "base/log.h"
#include "base/metrics.h"

namespace verbund::pbx {

namespace {
Counter expired("verbund_call_records_expired_total",
                "Call records deleted because they were older than [calls] retention_days");
constexpr int64_t kDayMs = 24LL * 3600 * 1000;
} // namespace

CallRetention::CallRetention(CallLog& log, Timers& timers, int days)
    : log_(log), timers_(timers), days_(days) {}

CallRetention::~CallRetention() {
  if (timer_) timers_.cancel(timer_);
}

void CallRetention::start() {
  if (days_ <= 0 || running_) return;
  if (timer_) timers_.cancel(timer_);
  timer_ = 0;
  running_ = true;
  cutoffMs_ = timers_.wallMs() - int64_t(days_) * kDayMs;
  sweep();
}

void CallRetention::sweep() {
  timer_ = 0;
  auto n = log_.deleteStartedBefore(cutoffMs_, kBatch);
  if (!n) {
    logger("calls")->error("call-record retention: {}", n.error().message);
  } else {
    deleted_ += *n;
    expired.inc(uint64_t(*n));
    if (*n >= kBatch) {
      timer_ = timers_.after(kBatchPause, [this] { sweep(); });
      return;
    }
  }
  running_ = false;
  logger("calls")->info("call-record retention: records older than {} days deleted ({} so far)",
                        days_, deleted_);
  timer_ = timers_.after(kInterval, [this] { start(); });
}

} // namespace verbund::pbx

// Call-record retention with simulated time: records older than retention_days go at start (in
// batches, one per loop turn) and again every day; parties go with their record; 0 keeps all.
#include "pbx/calllog/retention.h"

#include "base/manual_timers.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

constexpr int64_t kDay = 24LL * 3600 * 1000;

CallRecord at(const std::string& id, int64_t start) {
  CallRecord r;
  r.correlationId = id;
  r.direction = "internal";
  r.caller = "100";
  r.dialled = "200";
  r.startMs = start;
  r.endMs = start + 1000;
  r.parties = {{PartyRole::Caller, "100", "A", "", Disposition::Missed},
               {PartyRole::Callee, "200", "B", "", Disposition::Missed}};
  return r;
}

class RetentionTest : public ::testing::Test {
protected:
  void SetUp() override {
    db_ = std::move(store::Database::open(":memory:", CallLog::migrations()).value());
    log_ = std::make_unique<CallLog>(*db_);
  }
  int64_t count(const char* table) {
    auto rows = db_->query(std::string("SELECT COUNT(*) FROM ") + table);
    return store::asInt(rows->at(0).at(0)).value_or(-1);
  }
  void save(const std::string& id, int64_t start) { ASSERT_TRUE(log_->save(at(id, start)).ok()); }
  ManualTimers timers_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<CallLog> log_;
};

TEST_F(RetentionTest, DeletesOlderThanTheRetentionAtStartAndDaily) {
  const int64_t now = timers_.wallMs();
  save("old", now - 31 * kDay);
  save("edge", now - 30 * kDay + 60000); // 30 days minus a minute: kept
  save("new", now - kDay);
  CallRetention retention(*log_, timers_, 30);
  retention.start();
  EXPECT_EQ(retention.deleted(), 1);
  EXPECT_EQ(count("call_records"), 2);
  EXPECT_EQ(count("call_parties"), 4); // the old record's parties went with it
  EXPECT_FALSE(log_->byCorrelation("old"));

  // A day later "edge" is older than 30 days: the daily run takes it, not before.
  timers_.advance(std::chrono::hours(23));
  EXPECT_EQ(count("call_records"), 2);
  timers_.advance(std::chrono::hours(1));
  EXPECT_EQ(retention.deleted(), 2);
  EXPECT_FALSE(log_->byCorrelation("edge"));
  EXPECT_TRUE(log_->byCorrelation("new"));
}

TEST_F(RetentionTest, LargeBacklogGoesInBatchesOnePerLoopTurn) {
  const int64_t now = timers_.wallMs();
  for (int i = 0; i < 2500; ++i) save("old-" + std::to_string(i), now - 40 * kDay + i);
  save("keep", now);
  CallRetention retention(*log_, timers_, 30);
  retention.start();
  EXPECT_EQ(retention.deleted(), CallRetention::kBatch); // the first batch at once
  EXPECT_TRUE(retention.running());
  timers_.advance(CallRetention::kBatchPause);
  EXPECT_EQ(retention.deleted(), 2 * CallRetention::kBatch);
  timers_.advance(CallRetention::kBatchPause);
  EXPECT_EQ(retention.deleted(), 2500);
  EXPECT_FALSE(retention.running());
  EXPECT_EQ(count("call_records"), 1);
  EXPECT_EQ(count("call_parties"), 2);
}

TEST_F(RetentionTest, ZeroKeepsEverything) {
  save("ancient", 1000);
  CallRetention retention(*log_, timers_, 0);
  retention.start();
  timers_.advance(std::chrono::hours(24 * 3));
  EXPECT_EQ(count("call_records"), 1);
  EXPECT_EQ(timers_.pending(), 0u);
}

TEST_F(RetentionTest, ExportPagesFollowTheCursor) {
  for (int i = 0; i < 7; ++i) save("c" + std::to_string(i), 1000 + (i / 2) * 10);
  CallQuery q;
  q.limit = 3;
  std::vector<std::string> seen;
  std::optional<CallCursor> cursor;
  for (;;) {
    auto page = log_->page(q, cursor);
    ASSERT_TRUE(page.ok()) << page.error().message;
    for (const auto& r : *page) {
      seen.push_back(r.correlationId);
      EXPECT_EQ(r.parties.size(), 2u);
    }
    if (page->size() < size_t(q.limit)) break;
    cursor = CallCursor{page->back().startMs, page->back().id};
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"c0", "c1", "c2", "c3", "c4", "c5", "c6"}));
  q.extension = "nobody";
  EXPECT_TRUE(log_->page(q, std::nullopt)->empty());
}

} // namespace
} // namespace verbund::pbx

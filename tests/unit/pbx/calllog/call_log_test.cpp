#include "pbx/calllog/call_log.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

CallRecord sample(std::string id, int64_t start) {
  CallRecord r;
  r.correlationId = std::move(id);
  r.direction = "internal";
  r.caller = "100";
  r.callerName = "Alice";
  r.dialled = "600";
  r.answeredBy = "102";
  r.disposition = Disposition::Answered;
  r.startMs = start;
  r.answerMs = start + 3000;
  r.endMs = start + 60000;
  r.parties = {{PartyRole::Caller, "100", "Alice", "", Disposition::Answered},
               {PartyRole::Rang, "101", "Bob", "", Disposition::CompletedElsewhere},
               {PartyRole::AnsweredBy, "102", "Carol", "", Disposition::Answered}};
  return r;
}

TEST(CallLog, SavesAndFindsPerUser) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ASSERT_TRUE(db.ok()) << db.error().message;
  CallLog log(**db);
  ASSERT_TRUE(log.save(sample("c1", 1000)).ok());
  auto missed = sample("c2", 2000);
  missed.disposition = Disposition::Missed;
  missed.answeredBy.clear();
  missed.parties.resize(2);
  ASSERT_TRUE(log.save(missed).ok());

  auto bob = log.find(CallQuery{.extension = "101"});
  ASSERT_TRUE(bob.ok());
  ASSERT_EQ(bob->size(), 2u);
  EXPECT_EQ(bob->at(0).correlationId, "c2"); // newest first
  auto carol = log.find(CallQuery{.extension = "102"});
  ASSERT_EQ(carol->size(), 1u);
  EXPECT_EQ(carol->at(0).parties.size(), 3u);
  EXPECT_EQ(carol->at(0).parties[1].disposition, Disposition::CompletedElsewhere);
  auto onlyMissed = log.find(CallQuery{.disposition = Disposition::Missed});
  ASSERT_EQ(onlyMissed->size(), 1u);
  auto range = log.find(CallQuery{.fromMs = 1500});
  ASSERT_EQ(range->size(), 1u);
}

TEST(CallLog, SaveAgainUpdatesTheSameRecord) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  CallLog log(**db);
  auto r = sample("c1", 1000);
  r.endMs = 0;
  auto id1 = log.save(r);
  r.endMs = 5000;
  r.parties.pop_back();
  auto id2 = log.save(r);
  ASSERT_TRUE(id1.ok() && id2.ok());
  EXPECT_EQ(*id1, *id2);
  auto back = log.byCorrelation("c1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->endMs, 5000);
  EXPECT_EQ(back->parties.size(), 2u);
  EXPECT_FALSE(log.byCorrelation("nope").has_value());
}

TEST(CallLog, DispositionNamesRoundTrip) {
  for (auto d : {Disposition::Answered, Disposition::Missed, Disposition::Busy,
                 Disposition::PickedUp, Disposition::CompletedElsewhere, Disposition::Failed})
    EXPECT_EQ(dispositionFromName(dispositionName(d)), d);
  EXPECT_FALSE(dispositionFromName("bogus").has_value());
}

} // namespace
} // namespace verbund::pbx

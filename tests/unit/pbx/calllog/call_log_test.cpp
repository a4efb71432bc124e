#include "pbx/calllog/call_log.h"

#include "base/manual_timers.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

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

// Node B's record of a group call of node A that rang two of B's users (two mode-"user" forks).
CallRecord forksOnB(std::string id) {
  CallRecord r;
  r.correlationId = std::move(id);
  r.direction = "internal";
  r.caller = "300";
  r.callerName = "Carol";
  r.dialled = "201";
  r.disposition = Disposition::CompletedElsewhere;
  r.startMs = 1000;
  r.endMs = 9000;
  r.parties = {{PartyRole::Caller, "300", "Carol", "nodeA", Disposition::CompletedElsewhere},
               {PartyRole::Rang, "201", "Bea", "", Disposition::CompletedElsewhere},
               {PartyRole::Rang, "202", "Ben", "", Disposition::CompletedElsewhere}};
  return r;
}

CallOutcome groupOutcome(std::string id) {
  CallOutcome o;
  o.correlationId = std::move(id);
  o.caller = "300";
  o.callerName = "Carol";
  o.callerOwner = "nodeA";
  o.callee = "600";
  o.calleeName = "Sales";
  o.calleeOwner = "nodeA";
  o.answeredBy = "202";
  o.answeredByName = "Ben";
  o.answeredByOwner = "nodeB"; // this node
  o.disposition = Disposition::Answered;
  o.answerMs = 4000;
  return o;
}

const CallParty* partyOf(const CallRecord& r, PartyRole role, const std::string& ext) {
  for (const auto& p : r.parties)
    if (p.role == role && p.extension == ext) return &p;
  return nullptr;
}

TEST(CallLogOutcome, UpdatesTheRecordWithThatCorrelationId) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ASSERT_TRUE(db.ok());
  CallLog log(**db);
  log.setLocalNode("nodeB");
  ASSERT_TRUE(log.save(forksOnB("x1")).ok());
  auto n = log.applyOutcome(groupOutcome("x1"));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto r = log.byCorrelation("x1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->answeredBy, "202");
  EXPECT_EQ(r->disposition, Disposition::Answered);
  EXPECT_EQ(r->answerMs, 4000);
  EXPECT_EQ(r->endMs, 9000);
  const CallParty* callee = partyOf(*r, PartyRole::Callee, "600");
  ASSERT_TRUE(callee);
  EXPECT_EQ(callee->owner, "nodeA");
  EXPECT_EQ(callee->disposition, Disposition::Answered);
  EXPECT_EQ(partyOf(*r, PartyRole::Rang, "201")->disposition, Disposition::CompletedElsewhere);
  EXPECT_EQ(partyOf(*r, PartyRole::Rang, "202")->disposition, Disposition::Answered);
  const CallParty* by = partyOf(*r, PartyRole::AnsweredBy, "202");
  ASSERT_TRUE(by);
  EXPECT_EQ(by->owner, ""); // this node's user
  EXPECT_EQ(partyOf(*r, PartyRole::Caller, "300")->disposition, Disposition::Answered);
  // Applying it again changes nothing more (one AnsweredBy party).
  ASSERT_TRUE(log.applyOutcome(groupOutcome("x1")).ok());
  r = log.byCorrelation("x1");
  int answerers = 0;
  for (const auto& p : r->parties) answerers += p.role == PartyRole::AnsweredBy;
  EXPECT_EQ(answerers, 1);
  EXPECT_EQ(r->parties.size(), 5u);
}

TEST(CallLogOutcome, KeptUntilTheRecordIsSavedAndAppliedOnLaterSaves) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  CallLog log(**db);
  log.setLocalNode("nodeB");
  auto n = log.applyOutcome(groupOutcome("x2"));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(log.keptOutcomes(), 1u);
  ASSERT_TRUE(log.save(forksOnB("x2")).ok());
  auto r = log.byCorrelation("x2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->answeredBy, "202");
  EXPECT_EQ(r->disposition, Disposition::Answered);
  // The engine saves its own view again at the call's end: the outcome still holds.
  auto end = forksOnB("x2");
  end.endMs = 12000;
  ASSERT_TRUE(log.save(end).ok());
  r = log.byCorrelation("x2");
  EXPECT_EQ(r->answeredBy, "202");
  EXPECT_EQ(r->endMs, 12000);
  EXPECT_TRUE(partyOf(*r, PartyRole::AnsweredBy, "202"));
  // Other records are untouched.
  ASSERT_TRUE(log.save(forksOnB("x3")).ok());
  EXPECT_EQ(log.byCorrelation("x3")->answeredBy, "");
}

TEST(CallLogOutcome, CrossSitePickupUpdatesThePickersCall) {
  // Node B: local user 250 dialled *8100 (user 100 of node A); the call went to node A, which
  // connected it with the call of 300 ringing 100. B saw its fork answered "by 100".
  auto db = store::Database::open(":memory:", CallLog::migrations());
  CallLog log(**db);
  log.setLocalNode("nodeB");
  CallRecord mine;
  mine.correlationId = "picker-1";
  mine.direction = "internal";
  mine.caller = "250";
  mine.callerName = "Paul";
  mine.dialled = "*8100";
  mine.answeredBy = "100";
  mine.disposition = Disposition::Answered;
  mine.startMs = 5000;
  mine.answerMs = 5100;
  mine.parties = {{PartyRole::Caller, "250", "Paul", "", Disposition::Answered},
                  {PartyRole::Callee, "100", "Alice", "nodeA", Disposition::Answered},
                  {PartyRole::AnsweredBy, "100", "Alice", "nodeA", Disposition::Answered}};
  ASSERT_TRUE(log.save(mine).ok());

  CallOutcome o;
  o.correlationId = "target-A-7";
  o.relatedCorrelationId = "picker-1";
  o.caller = "300";
  o.callerName = "Carol";
  o.callerOwner = "nodeA";
  o.callee = "100";
  o.calleeName = "Alice";
  o.calleeOwner = "nodeA";
  o.answeredBy = "250";
  o.answeredByName = "Paul";
  o.answeredByOwner = "nodeB";
  o.disposition = Disposition::PickedUp;
  o.answerMs = 5090;
  auto n = log.applyOutcome(o);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  auto r = log.byCorrelation("picker-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->caller, "300");
  EXPECT_EQ(r->answeredBy, "250");
  EXPECT_EQ(r->disposition, Disposition::PickedUp);
  EXPECT_EQ(r->answerMs, 5100); // our own answer time stays
  const CallParty* caller = partyOf(*r, PartyRole::Caller, "300");
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->owner, "nodeA");
  EXPECT_EQ(partyOf(*r, PartyRole::Callee, "100")->disposition, Disposition::PickedUp);
  EXPECT_FALSE(partyOf(*r, PartyRole::AnsweredBy, "100"));
  const CallParty* by = partyOf(*r, PartyRole::AnsweredBy, "250");
  ASSERT_TRUE(by);
  EXPECT_EQ(by->owner, "");
  // Paul still finds the call in his list.
  auto paul = log.find(CallQuery{.extension = "250"});
  ASSERT_TRUE(paul.ok());
  EXPECT_EQ(paul->size(), 1u);
  EXPECT_FALSE(log.byCorrelation("target-A-7"));
}

TEST(CallLogOutcome, RejectsOutcomesWithoutIdAndKeepsABoundedTable) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  CallLog log(**db);
  EXPECT_FALSE(log.applyOutcome(CallOutcome{}).ok());
  EXPECT_EQ(log.keptOutcomes(), 0u);
  for (size_t i = 0; i < CallLog::kKeptOutcomes + 10; ++i)
    ASSERT_TRUE(log.applyOutcome(groupOutcome("k" + std::to_string(i))).ok());
  EXPECT_EQ(log.keptOutcomes(), CallLog::kKeptOutcomes);
  // The oldest were dropped, the newest still apply.
  ASSERT_TRUE(log.save(forksOnB("k0")).ok());
  EXPECT_EQ(log.byCorrelation("k0")->answeredBy, "");
  std::string newest = "k" + std::to_string(CallLog::kKeptOutcomes + 9);
  ASSERT_TRUE(log.save(forksOnB(newest)).ok());
  EXPECT_EQ(log.byCorrelation(newest)->answeredBy, "202");
}

// A lock held by another process (busy, 503): the kept records stay and are written once the
// lock is gone, instead of being lost.
TEST(CallLog, DeferredWritesSurviveABusyDatabase) {
  auto path = std::filesystem::temp_directory_path() /
              ("verbund-calllog-busy-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  {
    auto db = store::Database::open(path.string(), CallLog::migrations());
    ASSERT_TRUE(db.ok()) << db.error().message;
    (*db)->setBusyTimeout(std::chrono::milliseconds(10));
    auto other = store::Database::open(path.string(), {});
    ASSERT_TRUE(other.ok());
    ManualTimers timers;
    CallLog log(**db);
    log.deferWrites(timers, Duration(250));
    ASSERT_TRUE(log.save(sample("c1", 1000)).ok());
    ASSERT_TRUE((*other)->execScript("BEGIN EXCLUSIVE"));
    timers.advance(Duration(250)); // the write meets the lock
    EXPECT_EQ(log.deferred(), 1u);
    ASSERT_TRUE((*other)->execScript("COMMIT"));
    timers.advance(std::chrono::seconds(1));
    EXPECT_EQ(log.deferred(), 0u);
    auto rows = (*other)->query("SELECT COUNT(*) FROM call_records");
    EXPECT_EQ(store::asInt(rows->at(0).at(0)), 1);
  }
  for (auto suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}

// deferWrites: saves are kept and written together after the delay; a newer save of the same call
// replaces the kept one; reads and outcomes see kept records; the destructor writes what is left.
TEST(CallLog, DeferredWritesAreBatchedAndReadsSeeThem) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ASSERT_TRUE(db.ok()) << db.error().message;
  ManualTimers timers;
  {
    CallLog log(**db);
    log.deferWrites(timers, Duration(250));
    auto answered = sample("c1", 1000);
    answered.endMs = 0;
    ASSERT_TRUE(log.save(answered).ok());
    ASSERT_TRUE(log.save(sample("c2", 2000)).ok());
    ASSERT_TRUE(log.save(sample("c1", 1000)).ok()); // the end of c1 replaces its answer
    EXPECT_EQ(log.deferred(), 2u);
    auto rows = (*db)->query("SELECT COUNT(*) FROM call_records");
    EXPECT_EQ(store::asInt(rows->at(0).at(0)), 0); // nothing written yet
    timers.advance(Duration(249));
    EXPECT_EQ(log.deferred(), 2u);
    timers.advance(Duration(1));
    EXPECT_EQ(log.deferred(), 0u);
    EXPECT_EQ(timers.pending(), 0u);
    auto c1 = log.byCorrelation("c1");
    ASSERT_TRUE(c1);
    EXPECT_EQ(c1->endMs, 61000);

    ASSERT_TRUE(log.save(sample("c3", 3000)).ok());
    auto all = log.find(CallQuery{}); // a read writes what is kept first
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->size(), 3u);
    EXPECT_EQ(log.deferred(), 0u);
    EXPECT_EQ(timers.pending(), 0u);

    // An outcome from another node merges into a record that is still kept.
    ASSERT_TRUE(log.save(sample("c4", 4000)).ok());
    CallOutcome o;
    o.correlationId = "c4";
    o.answeredBy = "105";
    o.answeredByName = "Eve";
    o.disposition = Disposition::Answered;
    auto changed = log.applyOutcome(o);
    ASSERT_TRUE(changed.ok());
    EXPECT_EQ(*changed, 1);
    EXPECT_EQ(log.byCorrelation("c4")->answeredBy, "105");

    ASSERT_TRUE(log.save(sample("c5", 5000)).ok());
    EXPECT_EQ(log.deferred(), 1u);
  } // the destructor writes c5
  auto rows = (*db)->query("SELECT COUNT(*) FROM call_records");
  EXPECT_EQ(store::asInt(rows->at(0).at(0)), 5);
}

TEST(CallLog, DeferredWritesFlushAtTheCap) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ManualTimers timers;
  CallLog log(**db);
  log.deferWrites(timers, Duration(250));
  for (size_t i = 0; i < CallLog::kMaxDeferred; ++i)
    ASSERT_TRUE(log.save(sample("c" + std::to_string(i), int64_t(i))).ok());
  EXPECT_EQ(log.deferred(), 0u);
  EXPECT_EQ(timers.pending(), 0u);
  auto rows = (*db)->query("SELECT COUNT(*) FROM call_records");
  EXPECT_EQ(store::asInt(rows->at(0).at(0)), int64_t(CallLog::kMaxDeferred));
}

} // namespace
} // namespace verbund::pbx

namespace verbund::pbx {
namespace {

// Issue 11: a call of 101 on node A to 201 on node B whose direct INVITE stalled (link cut) and
// went over the external line instead. B has two paths of one call: the direct INVITE that
// arrived late and was cancelled, and the inbound call over the carrier that 201 answered.
CallRecord lateDirectPath(std::string id) {
  CallRecord r;
  r.correlationId = std::move(id);
  r.direction = "internal";
  r.caller = "101";
  r.callerName = "Anna";
  r.dialled = "201";
  r.disposition = Disposition::Missed;
  r.startMs = 20000;
  r.endMs = 20100;
  r.parties = {{PartyRole::Caller, "101", "Anna", "nodeA", Disposition::Missed},
               {PartyRole::Rang, "201", "Bea", "", Disposition::Missed}};
  return r;
}

CallRecord carrierPath(std::string id, int64_t start = 10500) {
  CallRecord r;
  r.correlationId = std::move(id);
  r.direction = "inbound";
  r.caller = "+4931555101";
  r.callerName = "Anna";
  r.dialled = "201";
  r.answeredBy = "201";
  r.disposition = Disposition::Answered;
  r.viaTrunk = true;
  r.startMs = start;
  r.answerMs = start + 800;
  r.endMs = start + 5000;
  r.parties = {{PartyRole::Caller, "+4931555101", "Anna", "", Disposition::Answered},
               {PartyRole::Callee, "201", "Bea", "", Disposition::Answered},
               {PartyRole::AnsweredBy, "201", "Bea", "", Disposition::Answered}};
  return r;
}

CallOutcome fallbackOutcome(std::string id) {
  CallOutcome o;
  o.correlationId = std::move(id);
  o.caller = "101";
  o.callerName = "Anna";
  o.callerOwner = "nodeA";
  o.callee = "201";
  o.calleeName = "Bea";
  o.calleeOwner = "nodeB";
  o.answeredBy = "201";
  o.answeredByName = "Bea";
  o.answeredByOwner = "nodeB";
  o.disposition = Disposition::Answered;
  o.answerMs = 11300;
  o.fallbackNumber = "+4932555201";
  o.fallbackCaller = "004931555101"; // as node A's trunk sent it; B's carrier shows +49...
  o.fallbackMs = 10400;
  return o;
}

void expectNobodyMissed(const CallRecord& r) {
  EXPECT_EQ(r.disposition, Disposition::Answered);
  EXPECT_EQ(r.answeredBy, "201");
  for (const auto& p : r.parties) {
    EXPECT_NE(p.disposition, Disposition::Missed) << p.extension;
    if (p.extension == "201") {
      EXPECT_EQ(p.disposition, Disposition::Answered);
    }
  }
}

TEST(SameNumber, DigitsAndPrefixes) {
  EXPECT_TRUE(sameNumber("+4931555101", "+4931555101"));
  EXPECT_TRUE(sameNumber("+4931555101", "004931555101"));
  EXPECT_TRUE(sameNumber("031555101", "+49 31 555-101"));
  EXPECT_FALSE(sameNumber("+4931555101", "+4931555102"));
  EXPECT_FALSE(sameNumber("101", "+4931555101")); // too short to be a suffix match
  EXPECT_FALSE(sameNumber("", ""));
  EXPECT_FALSE(sameNumber("anonymous", "anonymous"));
}

TEST(CallLogPaths, AnswerOnEitherPathWinsInBothOrders) {
  for (bool directFirst : {true, false}) {
    CallRecord first = directFirst ? lateDirectPath("x@nodeA") : carrierPath("x@nodeA");
    CallRecord second = directFirst ? carrierPath("x@nodeA") : lateDirectPath("x@nodeA");
    CallLog::mergePaths(second, first);
    SCOPED_TRACE(directFirst ? "direct path first" : "carrier path first");
    expectNobodyMissed(second);
    EXPECT_EQ(second.caller, "101"); // the federation path knows the caller
    EXPECT_EQ(second.direction, "internal");
    EXPECT_TRUE(second.viaTrunk);
    EXPECT_EQ(second.startMs, 10500);
    EXPECT_EQ(second.endMs, 20100); // the later end
    const CallParty* caller = partyOf(second, PartyRole::Caller, "101");
    ASSERT_TRUE(caller);
    EXPECT_EQ(caller->owner, "nodeA");
    EXPECT_FALSE(partyOf(second, PartyRole::Caller, "+4931555101"));
    int callees = 0;
    for (const auto& p : second.parties) callees += p.role == PartyRole::Callee;
    EXPECT_LE(callees, 1);
  }
}

TEST(CallLogPaths, UnansweredPathsStayMissed) {
  auto a = lateDirectPath("y@nodeA");
  auto b = lateDirectPath("y@nodeA");
  b.parties[1].extension = "202";
  CallLog::mergePaths(b, a);
  EXPECT_EQ(b.disposition, Disposition::Missed);
  EXPECT_EQ(partyOf(b, PartyRole::Rang, "201")->disposition, Disposition::Missed);
  EXPECT_EQ(partyOf(b, PartyRole::Rang, "202")->disposition, Disposition::Missed);
}

TEST(CallLogFold, CarrierPathFoldedIntoTheLateDirectPathsRecord) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ASSERT_TRUE(db.ok());
  CallLog log(**db);
  log.setLocalNode("nodeB");
  ASSERT_TRUE(log.save(carrierPath("t1@nodeB")).ok());        // carrier dropped the header
  ASSERT_TRUE(log.save(lateDirectPath("x@nodeA")).ok());      // then the stalled INVITE + CANCEL
  ASSERT_TRUE(log.save(carrierPath("t9@nodeB", 90000)).ok()); // another call, much later
  auto n = log.applyOutcome(fallbackOutcome("x@nodeA"));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_FALSE(log.byCorrelation("t1@nodeB"));
  auto r = log.byCorrelation("x@nodeA");
  ASSERT_TRUE(r);
  expectNobodyMissed(*r);
  EXPECT_TRUE(r->viaTrunk);
  EXPECT_EQ(r->direction, "internal");
  EXPECT_EQ(r->caller, "101");
  auto bea = log.find(CallQuery{.extension = "201"});
  ASSERT_TRUE(bea.ok());
  ASSERT_EQ(bea->size(), 2u); // this call once, and the later one
  EXPECT_EQ(bea->at(1).correlationId, "x@nodeA");
  // The carrier path's call ends after the fold: its save goes to the call's record.
  auto end = carrierPath("t1@nodeB");
  end.endMs = 30000;
  ASSERT_TRUE(log.save(end).ok());
  EXPECT_FALSE(log.byCorrelation("t1@nodeB"));
  r = log.byCorrelation("x@nodeA");
  ASSERT_TRUE(r);
  expectNobodyMissed(*r);
  EXPECT_EQ(r->endMs, 30000);
  EXPECT_EQ(r->caller, "101");
  EXPECT_EQ(log.find(CallQuery{.extension = "201"})->size(), 2u);
}

TEST(CallLogFold, CarrierPathRenamedWhenNoDirectPathArrived) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  ManualTimers timers;
  CallLog log(**db);
  log.deferWrites(timers, Duration(50)); // deferred writes are seen as well
  log.setLocalNode("nodeB");
  ASSERT_TRUE(log.save(carrierPath("t2@nodeB")).ok());
  ASSERT_TRUE(log.applyOutcome(fallbackOutcome("x2@nodeA")).ok());
  EXPECT_FALSE(log.byCorrelation("t2@nodeB"));
  auto r = log.byCorrelation("x2@nodeA");
  ASSERT_TRUE(r);
  expectNobodyMissed(*r);
  EXPECT_EQ(r->caller, "101");
  EXPECT_EQ(r->direction, "internal");
  // The direct INVITE arrives after that and is cancelled: merged like the call engine does.
  auto late = lateDirectPath("x2@nodeA");
  CallLog::mergePaths(late, *log.byCorrelation("x2@nodeA"));
  ASSERT_TRUE(log.save(late).ok());
  expectNobodyMissed(*log.byCorrelation("x2@nodeA"));
  EXPECT_EQ(log.find(CallQuery{.extension = "201"})->size(), 1u);
}

TEST(CallLogFold, OnlyOneUnambiguousMatchOfThisNode) {
  auto db = store::Database::open(":memory:", CallLog::migrations());
  CallLog log(**db);
  log.setLocalNode("nodeB");
  auto o = fallbackOutcome("x3@nodeA");
  // Another caller number, outside the time window, a carried id of another call, answered by
  // someone else: none of them is this call.
  auto other = carrierPath("t3@nodeB");
  other.caller = "+4930999999";
  other.parties[0].extension = other.caller;
  ASSERT_TRUE(log.save(other).ok());
  ASSERT_TRUE(log.save(carrierPath("t4@nodeB", o.fallbackMs + CallLog::kFallbackMatchMs + 1)).ok());
  ASSERT_TRUE(log.save(carrierPath("q@nodeA")).ok());
  auto by202 = carrierPath("t5@nodeB");
  by202.answeredBy = "202";
  ASSERT_TRUE(log.save(by202).ok());
  auto f = log.foldFallback(o);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(*f);
  // Two that match: ambiguous, nothing is merged.
  ASSERT_TRUE(log.save(carrierPath("t6@nodeB")).ok());
  ASSERT_TRUE(log.save(carrierPath("t7@nodeB", 11000)).ok());
  f = log.foldFallback(o);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(*f);
  EXPECT_TRUE(log.byCorrelation("t6@nodeB"));
  EXPECT_TRUE(log.byCorrelation("t7@nodeB"));
  // Far apart: the nearest to the fallback is the call's (a redial 12 s later is another one).
  ASSERT_TRUE(log.save(carrierPath("t8@nodeB", o.fallbackMs + 12000)).ok());
  auto near = o;
  near.fallbackMs += 11500;
  f = log.foldFallback(near);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, std::optional<std::string>("t8@nodeB"));
  // Sent again on the next link up (or a call whose id was carried): nothing more is folded.
  f = log.foldFallback(near);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(*f);
  EXPECT_TRUE(log.byCorrelation("t6@nodeB"));
  // Answered on another node: not this node's to fold.
  auto elsewhere = o;
  elsewhere.answeredByOwner = "nodeC";
  ASSERT_TRUE(log.foldFallback(elsewhere).ok());
  EXPECT_TRUE(log.byCorrelation("t6@nodeB"));
}

} // namespace
} // namespace verbund::pbx

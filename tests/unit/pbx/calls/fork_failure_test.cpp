// Forks to a node that goes away (control link down, SIP-over-TLS connection closed), the journal
// of ringing calls that a restarted node ends, and late INVITEs for calls already answered or
// ended (issue 11), in simulated time over the real dialog and transaction layers.
#include "unit/pbx/calls/call_fixture.h"

#include "base/manual_timers.h"

namespace verbund::pbx {
namespace {

using namespace test;

// Records what the engine journals (the stored one is tested below on its own).
struct MemoryJournal final : CallJournal {
  void ringing(const RingingCall& c) override { entries[c.key] = c; }
  void settled(const std::string& key) override { entries.erase(key); }
  std::vector<RingingCall> interrupted() override {
    std::vector<RingingCall> out;
    for (auto& [k, c] : entries) out.push_back(c);
    return out;
  }
  std::map<std::string, RingingCall> entries;
};

struct ForkFailure : Fixture {
  ForkFailure() { calls->setJournal(&journal); }
  MemoryJournal journal;
};

TEST_F(ForkFailure, RingingNodeThatDiesFallsBackAtOnce) {
  h.inject(invite("201", "f1"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  EXPECT_TRUE(has(responses(), 180));
  // The fork rang (no fallback timer any more); the node dies: the fork fails now, not after
  // the no-answer timer, and the call goes to the callee's external number.
  calls->nodeLost("nodeB", "test");
  auto viaTrunk = sentTo(kCarrier, "INVITE");
  ASSERT_EQ(viaTrunk.size(), 1u);
  EXPECT_EQ(viaTrunk[0]->requestUri().user, "+4930201");
  EXPECT_EQ(calls->stats().forksLost, 1u);
  EXPECT_EQ(calls->stats().fallbacks, 1u);
  EXPECT_EQ(remote.fallbacks, std::vector<std::string>{"nodeB"});
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].state, "ringing");
}

TEST_F(ForkFailure, ClosedConnectionFailsOnlyForksSentOverIt) {
  h.inject(invite("201", "f2"), kPhone);
  ASSERT_EQ(sentTo(kNodeB, "INVITE").size(), 1u);
  SockAddr other = *SockAddr::parse("192.0.2.50:40000"); // node B's own outgoing connection
  calls->nodeLost("nodeB", "test", &other);
  EXPECT_EQ(calls->stats().forksLost, 0u);
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  calls->nodeLost("nodeC", "test");
  EXPECT_EQ(calls->stats().forksLost, 0u);
  calls->nodeLost("nodeB", "test", &kNodeB.remote);
  EXPECT_EQ(calls->stats().forksLost, 1u);
  EXPECT_EQ(sentTo(kCarrier, "INVITE").size(), 1u);
}

TEST_F(ForkFailure, OtherForksKeepRingingWhenAMembersNodeDies) {
  // Group 600: local 100 and 201 of node B. Group forks (mode User) may fall back too; node B
  // gone: 201 is reached at the external number, Alice's phone still rings.
  h.inject(invite("600", "f3"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  calls->nodeLost("nodeB", "test");
  EXPECT_EQ(calls->stats().forksLost, 1u);
  auto all = h.take();
  bool alicecancelled = false;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] && all[i]->isRequest() && all[i]->methodName() == "CANCEL" &&
        h.last[i].to.remote == kAliceDev.remote)
      alicecancelled = true;
  EXPECT_FALSE(alicecancelled);
  ASSERT_EQ(calls->activeCalls().size(), 1u);
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  EXPECT_EQ(calls->activeCalls()[0].state, "connected");
}

TEST_F(ForkFailure, ForkThatMayNotFallBackFailsTheCallAtOnce) {
  // A pickup forwarded to node B never falls back: with its only fork gone the caller hears a
  // final answer now, not after Timer B or the no-answer timer.
  h.inject(invite("*8201", "f4"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  h.take();
  calls->nodeLost("nodeB", "test");
  EXPECT_TRUE(has(responses(), 480));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
}

TEST_F(ForkFailure, CallsFromTheLostNodeEnd) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-7";
  caller.mode = CallMode::User;
  h.inject(invite("100", "f5"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  // Only a connection closing: calls it placed stay (the link may still be up).
  calls->nodeLost("nodeB", "test", &kPhone.remote);
  EXPECT_TRUE(sentTo(kAliceDev, "CANCEL").empty());
  calls->nodeLost("nodeB", "test");
  EXPECT_EQ(sentTo(kAliceDev, "CANCEL").size(), 1u);
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  auto rec = log->byCorrelation("corr-B-7");
  ASSERT_TRUE(rec);
  EXPECT_GT(rec->endMs, 0);
}

TEST_F(ForkFailure, JournalKeepsRingingCallsUntilAnswered) {
  h.inject(invite("100", "f6"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  ASSERT_EQ(journal.entries.size(), 1u);
  const RingingCall& e = journal.entries.begin()->second;
  EXPECT_EQ(e.record.caller, "300");
  EXPECT_EQ(e.record.dialled, "100");
  ASSERT_EQ(e.cancels.size(), 1u);
  EXPECT_EQ(e.cancels[0].target.remote, kAliceDev.remote);
  auto cancel = sip::parseMessage(e.cancels[0].request);
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(cancel.message->methodName(), "CANCEL");
  EXPECT_EQ(cancel.message->callId(), toAlice[0]->callId());
  EXPECT_EQ(cancel.message->topVia().branch, toAlice[0]->topVia().branch);
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  EXPECT_TRUE(journal.entries.empty());
}

TEST_F(ForkFailure, JournalEntryGoesWhenTheCallEnds) {
  h.inject(invite("100", "f7"), kPhone);
  ASSERT_EQ(journal.entries.size(), 1u);
  h.inject(cancel("100", "f7"), kPhone);
  EXPECT_TRUE(journal.entries.empty());
}

TEST_F(ForkFailure, RestartEndsInterruptedCallsAndCancelsTheirPhones) {
  h.inject(invite("100", "f8"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  std::string correlation = journal.entries.begin()->second.record.correlationId;
  // A new engine on the same journal and call log: the node after a kill -9.
  MemoryJournal kept = journal;
  h.dm.setInviteHandler(nullptr);
  calls.reset();
  CallManagerConfig cfg;
  cfg.domain = "nodeA.example";
  cfg.nodeId = "nodeA";
  calls = std::make_unique<CallManager>(h.dm, h.timers, dir, *log, cfg);
  calls->setJournal(&kept);
  h.dm.setInviteHandler(calls.get());
  h.take();
  EXPECT_EQ(calls->endInterrupted(), 1u);
  auto cancels = sentTo(kAliceDev, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0]->callId(), toAlice[0]->callId());
  EXPECT_EQ(cancels[0]->topVia().branch, toAlice[0]->topVia().branch);
  EXPECT_TRUE(kept.entries.empty());
  auto rec = log->byCorrelation(correlation);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->disposition, Disposition::Missed);
  EXPECT_GT(rec->endMs, 0);
  EXPECT_EQ(rec->caller, "300");
  EXPECT_EQ(calls->stats().interrupted, 1u);
  EXPECT_EQ(calls->endInterrupted(), 0u);
}

TEST_F(ForkFailure, LateInviteForAnAnsweredCallIsRefused) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-8";
  caller.mode = CallMode::User;
  h.inject(invite("100", "f9"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  // The same call's INVITE for another member, delivered late: no phone rings.
  h.inject(invite("101", "f10"), kPhone);
  EXPECT_TRUE(sentTo(kBobDev, "INVITE").empty());
  EXPECT_EQ(calls->stats().staleInvites, 1u);
}

TEST_F(ForkFailure, LateInviteForAnEndedCallIsRefusedAfterTheFallbackBound) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-9";
  caller.mode = CallMode::User;
  h.inject(invite("100", "f11"), kPhone);
  ASSERT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
  h.inject(cancel("100", "f11"), kPhone);
  h.take();
  // A sibling fork right after the end (a group's members on one node) still rings.
  h.inject(invite("101", "f12"), kPhone);
  EXPECT_EQ(sentTo(kBobDev, "INVITE").size(), 1u);
  h.inject(cancel("101", "f12"), kPhone);
  h.take();
  h.advance(Duration(1001));
  h.take(); // retransmissions of the earlier INVITEs (UDP, Timer A)
  h.inject(invite("101", "f13"), kPhone);
  auto all = h.take();
  bool rang = false, refused = false;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!all[i]) continue;
    if (all[i]->isRequest() && all[i]->methodName() == "INVITE") rang = true;
    if (all[i]->isResponse() && all[i]->statusCode() == 481) refused = true;
  }
  EXPECT_FALSE(rang);
  EXPECT_TRUE(refused);
  EXPECT_EQ(calls->stats().staleInvites, 1u);
}

TEST(StoredCallJournal, KeepsEntriesAcrossOpens) {
  auto opened = store::Database::open(":memory:", StoredCallJournal::migrations());
  ASSERT_TRUE(opened.ok());
  StoredCallJournal j(**opened);
  RingingCall c;
  c.key = "k1";
  c.record.correlationId = "corr-1";
  c.record.caller = "300";
  c.record.callerName = "Carol";
  c.record.dialled = "100";
  c.record.startMs = 42;
  c.record.parties.push_back({PartyRole::Caller, "300", "Carol", "", Disposition::Missed});
  c.record.parties.push_back({PartyRole::Rang, "201",
                              "B\x1e"
                              "ea",
                              "nodeB", Disposition::Missed});
  c.cancels.push_back({kAliceDev, "CANCEL sip:alice@192.0.2.2 SIP/2.0\r\n\r\n"});
  j.ringing(c);
  c.record.dialled = "101";
  j.ringing(c); // replaces
  auto all = j.interrupted();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].record.dialled, "101");
  EXPECT_EQ(all[0].record.callerName, "Carol");
  EXPECT_EQ(all[0].record.startMs, 42);
  ASSERT_EQ(all[0].record.parties.size(), 2u);
  EXPECT_EQ(all[0].record.parties[1].owner, "nodeB");
  EXPECT_EQ(all[0].record.parties[1].name, "Bea"); // separators are dropped from values
  EXPECT_EQ(all[0].record.parties[1].role, PartyRole::Rang);
  ASSERT_EQ(all[0].cancels.size(), 1u);
  EXPECT_EQ(all[0].cancels[0].target.remote, kAliceDev.remote);
  EXPECT_EQ(all[0].cancels[0].request, c.cancels[0].request);
  j.settled("k1");
  EXPECT_TRUE(j.interrupted().empty());
}

TEST(StoredCallJournal, DeletesAreWrittenBehindAndRideWithTheNextRow) {
  auto opened = store::Database::open(":memory:", StoredCallJournal::migrations());
  ASSERT_TRUE(opened.ok());
  ManualTimers timers;
  auto rows = [&] {
    auto r = (*opened)->query("SELECT key FROM ringing_calls ORDER BY key");
    std::vector<std::string> out;
    if (r)
      for (auto& row : *r) out.push_back(store::asText(row[0]).value_or(""));
    return out;
  };
  {
    StoredCallJournal j(**opened);
    j.deferDeletes(timers, Duration(50));
    RingingCall c;
    c.record.correlationId = "corr";
    for (const char* k : {"k1", "k2", "k3"}) {
      c.key = k;
      j.ringing(c); // committed at once
    }
    EXPECT_EQ(rows(), (std::vector<std::string>{"k1", "k2", "k3"}));
    j.settled("k1");
    EXPECT_EQ(j.deferred(), 1u);
    EXPECT_EQ(rows().size(), 3u); // not yet written
    c.key = "k4";
    j.ringing(c); // the kept delete goes with this row
    EXPECT_EQ(j.deferred(), 0u);
    EXPECT_EQ(rows(), (std::vector<std::string>{"k2", "k3", "k4"}));
    j.settled("k2");
    timers.advance(Duration(49));
    EXPECT_EQ(rows().size(), 3u);
    timers.advance(Duration(1));
    EXPECT_EQ(rows(), (std::vector<std::string>{"k3", "k4"}));
    j.settled("k3");
    // interrupted() (at start) and the destructor write what is kept first.
    auto left = j.interrupted();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].key, "k4");
    j.settled("k4");
  }
  EXPECT_TRUE(rows().empty());
}

TEST(StoredCallJournal, GarbageDecodesToNothing) {
  EXPECT_TRUE(decodeJournalParties("x\x1f").empty());
  EXPECT_TRUE(decodeJournalParties("9\x1f"
                                   "a\x1f"
                                   "b\x1f"
                                   "c\x1f\x1e")
                  .empty());
  EXPECT_TRUE(decodeJournalCancels("0\x1fnot-an-address\x1fX\x1f\x1e").empty());
  EXPECT_TRUE(decodeJournalCancels("7\x1f"
                                   "1.2.3.4:5\x1fX\x1f\x1e")
                  .empty());
}

} // namespace
} // namespace verbund::pbx

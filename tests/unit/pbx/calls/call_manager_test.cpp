// The call engine's federation stage in simulated time over the real dialog and transaction
// layers: forks to other nodes, fallback to the external line, federation callers, completed
// elsewhere, cross-site pickup forwarding, remote group login, outcomes.
#include "unit/pbx/calls/call_fixture.h"

namespace verbund::pbx {
namespace {

using namespace test;

TEST(FederationFallback, Decision) {
  EXPECT_TRUE(shouldFallBack(408, false));
  EXPECT_TRUE(shouldFallBack(503, false));
  EXPECT_FALSE(shouldFallBack(503, true));
  EXPECT_FALSE(shouldFallBack(408, true));
  for (int s : {404, 480, 486, 487, 500, 600, 603}) EXPECT_FALSE(shouldFallBack(s, false)) << s;
}

TEST(FederationFallback, CompletedElsewhereReason) {
  EXPECT_TRUE(isCompletedElsewhere("SIP;cause=200;text=\"Call completed elsewhere\""));
  EXPECT_TRUE(isCompletedElsewhere("sip ; cause = 200"));
  EXPECT_TRUE(isCompletedElsewhere("Q.850;cause=16, SIP;cause=200"));
  EXPECT_FALSE(isCompletedElsewhere("SIP;cause=487"));
  EXPECT_FALSE(isCompletedElsewhere("Q.850;cause=200"));
  EXPECT_FALSE(isCompletedElsewhere("SIP;text=\"cause=200\""));
  EXPECT_FALSE(isCompletedElsewhere(""));
}

TEST_F(Fixture, UnreachableNodeGoesOverTheExternalLine) {
  remote.up = false;
  h.inject(invite("201", "c1"), kPhone);
  auto viaTrunk = sentTo(kCarrier, "INVITE");
  ASSERT_EQ(viaTrunk.size(), 1u);
  EXPECT_EQ(viaTrunk[0]->requestUri().user, "+4930201");
  EXPECT_EQ(line.calls, std::vector<std::string>{"+4930201 from +49301carol"});
  EXPECT_EQ(remote.fallbacks, std::vector<std::string>{"nodeB"});
  EXPECT_TRUE(remote.invites.empty());
  EXPECT_EQ(calls->stats().fallbacks, 1u);
  EXPECT_EQ(calls->stats().remoteForks, 0u);
}

TEST_F(Fixture, DirectCallToAnotherNodeFallsBackWithoutProvisionalInTime) {
  h.inject(invite("201", "c2"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].owner, "nodeB");
  EXPECT_EQ(remote.invites[0].requestUser, "201");
  EXPECT_EQ(remote.invites[0].call.mode, CallMode::Route);
  EXPECT_EQ(remote.invites[0].call.caller.extension, "300");
  EXPECT_FALSE(remote.invites[0].call.correlationId.empty());
  EXPECT_EQ(calls->stats().remoteForks, 1u);

  h.advance(Duration(999));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  h.advance(Duration(1));
  EXPECT_EQ(sentTo(kCarrier, "INVITE").size(), 1u);
  EXPECT_EQ(remote.fallbacks, std::vector<std::string>{"nodeB"});
  // The CANCEL waits for a provisional answer of node B (RFC 3261 §9.1).
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  EXPECT_EQ(sentTo(kNodeB, "CANCEL").size(), 1u);
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].state, "ringing");
}

TEST_F(Fixture, RingingNodeIsNotFallenBackFrom) {
  h.inject(invite("201", "c3"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.advance(Duration(200));
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  EXPECT_TRUE(has(responses(), 180)); // ringing passed on to the caller
  h.advance(Duration(5000));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  EXPECT_TRUE(remote.fallbacks.empty());
}

TEST_F(Fixture, BusyIsPassedOnNotFallenBack) {
  h.inject(invite("201", "c4"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 486, "b1"), kNodeB);
  EXPECT_TRUE(has(responses(), 486));
  h.advance(Duration(2000));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  EXPECT_TRUE(remote.fallbacks.empty());
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
}

TEST_F(Fixture, UnavailableNodeBeforeProvisionalFallsBack) {
  h.inject(invite("201", "c5"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 503, "b1"), kNodeB);
  EXPECT_EQ(sentTo(kCarrier, "INVITE").size(), 1u);
  EXPECT_EQ(calls->stats().fallbacks, 1u);
}

TEST_F(Fixture, GroupMemberOfAnotherNodeIsAUserModeFork) {
  h.inject(invite("600", "c6"), kPhone);
  EXPECT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].requestUser, "201");
  EXPECT_EQ(remote.invites[0].call.mode, CallMode::User);
}

TEST_F(Fixture, FederationCallerInUserModeRingsExactlyTheLocalUser) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-1";
  caller.mode = CallMode::User;
  h.inject(invite("100", "c7"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  EXPECT_EQ(toAlice[0]->from().uri.user, "201");
  EXPECT_TRUE(remote.invites.empty());
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].correlationId, "corr-B-1");

  // The local user answers: node B hears who answered.
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  ASSERT_EQ(remote.outcomes.size(), 1u);
  EXPECT_EQ(remote.outcomes[0].first, std::vector<std::string>{"nodeB"});
  const CallOutcome& o = remote.outcomes[0].second;
  EXPECT_EQ(o.correlationId, "corr-B-1");
  EXPECT_EQ(o.caller, "201");
  EXPECT_EQ(o.callerOwner, "nodeB");
  EXPECT_EQ(o.callee, "100");
  EXPECT_EQ(o.answeredBy, "100");
  EXPECT_EQ(o.answeredByOwner, "nodeA");
  EXPECT_EQ(o.disposition, Disposition::Answered);
  auto rec = log->byCorrelation("corr-B-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->caller, "201");
  EXPECT_EQ(rec->direction, "internal");
  EXPECT_FALSE(rec->viaTrunk);
}

TEST_F(Fixture, FederationCallerIsNeverRoutedOnward) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeC", "401", "Cem", "", ""};
  caller.correlationId = "corr-C-1";
  caller.mode = CallMode::User;
  h.inject(invite("201", "c8"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  caller.mode = CallMode::Route;
  h.inject(invite("201", "c9"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  EXPECT_TRUE(remote.invites.empty());
  EXPECT_TRUE(line.calls.empty());
}

TEST_F(Fixture, CompletedElsewhereCancelIsPassedOn) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-2";
  caller.mode = CallMode::User;
  h.inject(invite("100", "c10"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  h.inject(cancel("100", "c10", "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"),
           kPhone);
  auto cancels = sentTo(kAliceDev, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  auto reason = cancels[0]->header("Reason");
  ASSERT_TRUE(reason);
  EXPECT_TRUE(isCompletedElsewhere(*reason));
  auto rec = log->byCorrelation("corr-B-2");
  ASSERT_TRUE(rec);
  for (const auto& p : rec->parties)
    EXPECT_EQ(p.disposition, Disposition::CompletedElsewhere) << p.extension;
}

TEST_F(Fixture, PlainCancelIsMissed) {
  h.inject(invite("100", "c11"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  h.inject(cancel("100", "c11"), kPhone);
  auto cancels = sentTo(kAliceDev, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_FALSE(cancels[0]->header("Reason"));
}

TEST_F(Fixture, PickupOfAnotherNodesUserIsForwardedThere) {
  h.inject(invite("*8201", "c12"), kPhone);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].requestUser, "*8201");
  EXPECT_EQ(remote.invites[0].call.mode, CallMode::Route);
  EXPECT_EQ(sentTo(kNodeB, "INVITE").size(), 1u);
  h.advance(Duration(5000)); // no fallback for a pickup
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
}

TEST_F(Fixture, ReplacesForAnotherNodesUserKeepsTheHeader) {
  h.inject(invite("201", "c13", "Replaces: other-call@b;to-tag=x;from-tag=y\r\n"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  auto rep = toB[0]->header("Replaces");
  ASSERT_TRUE(rep);
  EXPECT_EQ(*rep, "other-call@b;to-tag=x;from-tag=y");
  EXPECT_EQ(remote.invites[0].call.mode, CallMode::Route);
}

TEST_F(Fixture, GroupLoginAtAnotherNode) {
  h.inject(invite("*41700", "c14"), kPhone);
  EXPECT_EQ(remote.logins, std::vector<std::string>{"nodeB 700 300 in"});
  EXPECT_TRUE(has(responses(), 200));
  h.inject(invite("*42799", "c15"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  EXPECT_EQ(remote.logins.size(), 1u);
}

} // namespace
} // namespace verbund::pbx

namespace verbund::pbx {
namespace {

using namespace test;

TEST(CarriedCorrelation, Parse) {
  auto c = parseCarriedCorrelation(" 0a1b2c3d4e5f@node-b_1.x ");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, "0a1b2c3d4e5f@node-b_1.x");
  EXPECT_EQ(c->node, "node-b_1.x");
  for (std::string_view bad :
       {"", "@node", "abc@", "abc", "a@b@c", "a b@c", "abc@no;de", "abc@n\x01", "<abc@node>"})
    EXPECT_FALSE(parseCarriedCorrelation(bad)) << bad;
  EXPECT_FALSE(parseCarriedCorrelation(std::string(kMaxCarriedCorrelation, 'a') + "@n"));
}

// Issue 11: the fallback carries the call's id to the carrier, and the outcome says how it went
// out, so node B can find its record of the inbound call if the carrier dropped the header.
TEST_F(Fixture, FallbackCarriesTheCorrelationIdAndTheOutcomeNamesIt) {
  h.inject(invite("201", "f1"), kPhone);
  ASSERT_EQ(sentTo(kNodeB, "INVITE").size(), 1u);
  std::string id = remote.invites.at(0).call.correlationId;
  h.advance(Duration(1000)); // no provisional answer: fallback
  auto viaTrunk = sentTo(kCarrier, "INVITE");
  ASSERT_EQ(viaTrunk.size(), 1u);
  auto carried = viaTrunk[0]->header(kCorrelationHeader);
  ASSERT_TRUE(carried);
  EXPECT_EQ(*carried, id);
  int64_t sentAt = h.timers.wallMs();
  h.advance(Duration(700));
  h.inject(reply(*viaTrunk[0], 200, "k1", "Contact: <sip:+4930201@192.0.2.60:5060>"), kCarrier);
  ASSERT_FALSE(remote.outcomes.empty());
  const CallOutcome& o = remote.outcomes.back().second;
  EXPECT_EQ(remote.outcomes.back().first, std::vector<std::string>{"nodeB"});
  EXPECT_EQ(o.correlationId, id);
  EXPECT_EQ(o.answeredBy, "201");
  EXPECT_EQ(o.answeredByOwner, "nodeB");
  EXPECT_EQ(o.fallbackNumber, "+4930201");
  EXPECT_EQ(o.fallbackCaller, "+49301carol");
  EXPECT_EQ(o.fallbackMs, sentAt);
}

TEST_F(Fixture, FallbackWithoutDirectAttemptCarriesItToo) {
  remote.up = false;
  h.inject(invite("201", "f2"), kPhone); // link down: over the external line at once
  auto fallback = sentTo(kCarrier, "INVITE");
  ASSERT_EQ(fallback.size(), 1u);
  EXPECT_TRUE(fallback[0]->header(kCorrelationHeader));
}

// Node A here is the answering site: the carrier passed node B's id on.
// The call came in over the carrier with the calling node's correlation id and was answered;
// the direct INVITE the calling node sent before it noticed the cut arrives late, then its
// CANCEL: it is refused (487, "completed elsewhere") without ringing anyone, and the one record
// of the call stays answered.
TEST_F(Fixture, LateDirectPathOfACarriedCallIsRefusedAndTheRecordStaysAnswered) {
  caller = Caller{};
  caller.kind = Caller::Kind::Trunk;
  caller.number = "+4932555201";
  caller.name = "Bea";
  caller.correlationId = "abc123@nodeB";
  h.inject(invite("100", "f3"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  auto rec = log->byCorrelation("abc123@nodeB");
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->viaTrunk);
  EXPECT_EQ(rec->answeredBy, "100");
  h.take();

  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "abc123@nodeB";
  caller.mode = CallMode::Route;
  h.inject(invite("100", "f4"), kPhone);
  EXPECT_TRUE(sentTo(kAliceDev, "INVITE").empty()); // no ghost ring
  h.inject(cancel("100", "f4"), kPhone);
  h.advance(Duration(100));
  rec = log->byCorrelation("abc123@nodeB");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->disposition, Disposition::Answered);
  EXPECT_EQ(rec->answeredBy, "100");
  for (const auto& p : rec->parties) EXPECT_NE(p.disposition, Disposition::Missed) << p.extension;
  auto alice = log->find(CallQuery{.extension = "100"});
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->size(), 1u);
}

} // namespace
} // namespace verbund::pbx

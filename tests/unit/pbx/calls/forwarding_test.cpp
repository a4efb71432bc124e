// Call forwarding and do-not-disturb in the routing stages (issue 12): the seed PBX's order (DND
// or no device: the no-answer forwarding at once), the user's own no-answer time, feature codes,
// loops across nodes (Diversion), forwarding of callers from other nodes and from the external
// line, and what the external line is told about the original caller.
#include "pbx/calls/diversion.h"
#include "unit/pbx/calls/call_fixture.h"

namespace verbund::pbx::test {
namespace {

struct Forwarding : Fixture {
  size_t invitesTo(const sip::Peer& to) {
    size_t n = 0;
    for (const auto& sent : h.tp.sent)
      if (sent.to.remote == to.remote && sent.bytes.rfind("INVITE ", 0) == 0) ++n;
    return n;
  }
  std::string lastInviteTo(const sip::Peer& to) {
    std::string out;
    for (const auto& sent : h.tp.sent)
      if (sent.to.remote == to.remote && sent.bytes.rfind("INVITE ", 0) == 0) out = sent.bytes;
    return out;
  }
  std::vector<int> finalToPhone() {
    std::vector<int> out;
    for (const auto& sent : h.tp.sent)
      if (sent.to.remote == kPhone.remote && sent.bytes.rfind("SIP/2.0 ", 0) == 0)
        out.push_back(std::stoi(sent.bytes.substr(8, 3)));
    return out;
  }
  // Ends a ringing call: the device `at` answers its INVITE busy.
  void busy(const sip::Peer& at) {
    auto invites = sentTo(at, "INVITE");
    ASSERT_FALSE(invites.empty());
    h.inject(reply(*invites.back(), 486, "busy1"), at);
  }
  CallRecord onlyRecord() {
    h.advance(Duration(100));
    auto recs = log->find({});
    EXPECT_TRUE(recs && recs->size() == 1u);
    return recs && !recs->empty() ? (*recs)[0] : CallRecord{};
  }
  std::string fwd(const std::string& ext, ForwardWhen when) {
    auto it = features.forwards.find({ext, when});
    return it == features.forwards.end() ? std::string() : it->second;
  }
  // Points into `r`: a temporary record would leave it dangling.
  const CallParty* forwardedParty(CallRecord&& r, const std::string& ext) = delete;
  const CallParty* forwardedParty(const CallRecord& r, const std::string& ext) {
    for (const auto& p : r.parties)
      if (p.extension == ext && !p.forwardReason.empty()) return &p;
    return nullptr;
  }
};

TEST_F(Forwarding, DoNotDisturbTakesTheNoAnswerForwardingAtOnce) {
  features.dnd.insert("100");
  features.forwards[{"100", ForwardWhen::NoAnswer}] = "101";
  h.inject(invite("100", "w1", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 0u);
  EXPECT_EQ(invitesTo(kBobDev), 1u);
  busy(kBobDev);
  auto record = onlyRecord();
  EXPECT_EQ(record.dialled, "100"); // what the caller dialled, not the forwarding target
  auto* p = forwardedParty(record, "101");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->forwardedFrom, "100");
  EXPECT_EQ(p->forwardReason, "dnd");
}

TEST_F(Forwarding, DoNotDisturbWithoutNoAnswerTargetTakesTheBusyOne) {
  features.dnd.insert("100");
  features.forwards[{"100", ForwardWhen::Busy}] = "101";
  h.inject(invite("100", "w2"), kPhone);
  EXPECT_EQ(invitesTo(kBobDev), 1u);
}

TEST_F(Forwarding, NoDeviceTakesTheNoAnswerForwardingAtOnce) {
  features.forwards[{"300", ForwardWhen::NoAnswer}] = "100"; // carol has no device
  h.inject(invite("300", "w3"), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 1u);
  busy(kAliceDev);
  auto record = onlyRecord();
  auto* p = forwardedParty(record, "100");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->forwardReason, "unregistered");
}

TEST_F(Forwarding, NoAnswerAfterTheUsersOwnTime) {
  features.forwards[{"100", ForwardWhen::NoAnswer}] = "101";
  features.noAnswer["100"] = Duration(5000);
  h.inject(invite("100", "w4"), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 1u);
  h.advance(Duration(4900));
  EXPECT_EQ(invitesTo(kBobDev), 0u);
  h.advance(Duration(200));
  EXPECT_EQ(invitesTo(kBobDev), 1u);
}

TEST_F(Forwarding, FeatureCodesSetAndClearForwardingAndDnd) {
  // caller: carol (300), a local user
  h.inject(invite("*21101", "w5", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(fwd("300", ForwardWhen::Always), "101");
  EXPECT_EQ(finalToPhone().back(), 200);
  h.inject(invite("*021", "w6", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(fwd("300", ForwardWhen::Always), "");
  h.inject(invite("*67+4930123", "w7", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(fwd("300", ForwardWhen::Busy), "+4930123");
  h.inject(invite("*61600", "w8", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(fwd("300", ForwardWhen::NoAnswer), "600");
  h.inject(invite("*62201", "w9", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(fwd("300", ForwardWhen::Unregistered), "201");
  h.inject(invite("*76", "w10", {}, "v=0\r\n"), kPhone);
  EXPECT_TRUE(features.dnd.count("300"));
  h.inject(invite("*076", "w11", {}, "v=0\r\n"), kPhone);
  EXPECT_FALSE(features.dnd.count("300"));
  h.inject(invite("*21", "w12"), kPhone);
  EXPECT_EQ(finalToPhone().back(), 484);
  h.inject(invite("*761", "w13"), kPhone); // not a code: DND takes no argument
  EXPECT_EQ(finalToPhone().back(), 404);
  EXPECT_FALSE(features.dnd.count("300"));
}

// The store does not take the write in time (database locked by another process): nothing
// changes and the phone gets 503 with Retry-After, so it can dial the code again later.
TEST_F(Forwarding, FeatureCodeWhileTheStoreIsBusyGets503WithRetryAfter) {
  features.busy = true;
  h.inject(invite("*76", "w30", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(finalToPhone().back(), 503);
  std::string last;
  for (const auto& sent : h.tp.sent)
    if (sent.to.remote == kPhone.remote && sent.bytes.rfind("SIP/2.0 503", 0) == 0)
      last = sent.bytes;
  EXPECT_NE(last.find("\r\nRetry-After: 5\r\n"), std::string::npos) << last;
  EXPECT_TRUE(features.dnd.empty());
  h.inject(invite("*21101", "w31", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(finalToPhone().back(), 503);
  features.busy = false;
  h.inject(invite("*76", "w32", {}, "v=0\r\n"), kPhone);
  EXPECT_EQ(finalToPhone().back(), 200);
  EXPECT_TRUE(features.dnd.count("300"));
}

TEST_F(Forwarding, FeatureCodesRefusedForOtherNodesAndTheLine) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "205", "Ben", "", ""};
  h.inject(invite("*76", "w14"), kPhone);
  EXPECT_EQ(finalToPhone().back(), 403);
  EXPECT_TRUE(features.dnd.empty());
}

// A caller of another node: the callee's home node (here) forwards, also to a third place (node
// B's user) — and tells the next node which users the call has left (Diversion).
TEST_F(Forwarding, CallerOfAnotherNodeIsForwardedOnWithDiversion) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "205", "Ben", "", ""};
  caller.correlationId = "corr-B-7";
  features.forwards[{"100", ForwardWhen::Always}] = "201";
  h.inject(invite("100", "w15"), kPhone);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].requestUser, "201");
  EXPECT_EQ(remote.invites[0].call.correlationId, "corr-B-7");
  std::string inv = lastInviteTo(kNodeB);
  EXPECT_NE(inv.find("Diversion: <sip:100@nodeA.example>;reason=unconditional;counter=1"),
            std::string::npos)
      << inv;
}

TEST_F(Forwarding, DiversionFromAnotherNodeStopsALoopAcrossNodes) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "205", "Ben", "", ""};
  features.forwards[{"100", ForwardWhen::Always}] = "201"; // 201 forwarded to 100 on node B
  h.inject(invite("100", "w16", "Diversion: <sip:201@nodeB.example>;reason=unconditional\r\n"),
           kPhone);
  EXPECT_TRUE(remote.invites.empty());
  EXPECT_EQ(finalToPhone().back(), 482);
  auto r = onlyRecord();
  EXPECT_EQ(r.parties.back().forwardReason, "loop");
  EXPECT_EQ(r.parties.back().forwardedFrom, "100");
}

TEST_F(Forwarding, HopsAreBoundedAcrossNodes) {
  features.forwards[{"100", ForwardWhen::Always}] = "101";
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "205", "Ben", "", ""};
  std::string five;
  for (int i = 0; i < 5; ++i)
    five += "Diversion: <sip:2" + std::to_string(10 + i) + "@b>;reason=no-answer\r\n";
  h.inject(invite("100", "w17", five), kPhone);
  EXPECT_EQ(invitesTo(kBobDev), 0u);
  EXPECT_EQ(finalToPhone().back(), 482);
}

// A caller from the external line forwarded to an external number: the carrier sees the original
// caller and, in Diversion, the forwarding user's number.
TEST_F(Forwarding, ExternalTargetCarriesTheOriginalCaller) {
  caller = Caller{};
  caller.kind = Caller::Kind::Trunk;
  caller.number = "+4932555201";
  features.forwards[{"100", ForwardWhen::Always}] = "+4930999";
  h.inject(invite("100", "w18"), kPhone);
  ASSERT_EQ(line.calls.size(), 1u);
  EXPECT_EQ(line.calls[0], "+4930999 from +4932555201");
  std::string inv = lastInviteTo(kCarrier);
  EXPECT_NE(inv.find("Diversion: <sip:+49301alice@nodeA.example>;reason=unconditional"),
            std::string::npos)
      << inv;
  busy(kCarrier);
  auto record = onlyRecord();
  auto* p = forwardedParty(record, "+4930999");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->forwardedFrom, "100");
}

TEST_F(Forwarding, BusyOnAnotherNodesUserIsDecidedThere) {
  // A local caller rings node B's user; B answers busy: B's node forwarded already if it wanted
  // to, so nothing forwards here.
  features.forwards[{"201", ForwardWhen::Busy}] = "101";
  h.inject(invite("201", "w19"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 486, "b1"), kNodeB);
  EXPECT_EQ(invitesTo(kBobDev), 0u);
  EXPECT_EQ(finalToPhone().back(), 486);
}

TEST_F(Forwarding, GroupTargetRingsTheGroup) {
  features.forwards[{"101", ForwardWhen::Always}] = "600";
  h.inject(invite("101", "w20"), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 1u); // 600's local member
  EXPECT_EQ(invitesTo(kBobDev), 0u);
}

TEST(DiversionCodec, ParsesAndFormats) {
  auto d = parseDiversion("\"Alice\" <sip:+4930123456@c.example;user=phone>;reason=\"user-busy\";"
                          "counter=2;privacy=off");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->user, "+4930123456");
  EXPECT_EQ(d->reason, DiversionReason::UserBusy);
  EXPECT_EQ(d->counter, 2u);
  EXPECT_EQ(formatDiversion(*d, "a.example"),
            "<sip:+4930123456@a.example>;reason=user-busy;counter=2");
  auto plain = parseDiversion("<sip:201@b>");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->reason, DiversionReason::Unknown);
  EXPECT_EQ(plain->counter, 1u);
  for (const char* bad :
       {"", "<sip:@b>", "<sip:201@b>;counter=0", "<sip:201@b>;counter=101", "<sip:201@b>;counter=x",
        "<sip:2%3B01@b>", "<sip:123456789012345678901234567890123@b>", "<sip:201@b>, <sip:202@b>"})
    EXPECT_FALSE(parseDiversion(bad)) << bad;
}

} // namespace
} // namespace verbund::pbx::test

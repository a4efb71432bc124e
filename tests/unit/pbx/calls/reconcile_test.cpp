// Cross-site calls after a relink (reconcile.cpp) in simulated time over the real dialog and
// transaction layers: each node lists the calls it holds with the other ("calls-held"); a call
// connected here since before the relink that the other node no longer holds is ended — BYE to
// both legs, the record's end, BLF terminated — and nothing else is.
#include "unit/pbx/calls/call_fixture.h"

namespace verbund::pbx {
namespace {

using namespace test;

const std::string kSdp = "v=0\r\no=phone 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                         "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

struct Lines final : LineObserver {
  void lineEvent(const LineEvent& e) override { events.push_back(e); }
  bool terminated(const std::string& extension) const {
    for (const auto& e : events)
      if (e.extension == extension && e.state == LineEvent::State::Terminated) return true;
    return false;
  }
  std::vector<LineEvent> events;
};

struct Reconcile : Fixture {
  Reconcile() { calls->setLineObserver(&lines); }
  // Local user 300 (the phone kPhone) calls 201 of node B; node B answers.
  std::string callNodeB(std::string_view callId) {
    h.inject(invite("201", callId, {}, kSdp), kPhone);
    auto toB = sentTo(kNodeB, "INVITE");
    EXPECT_EQ(toB.size(), 1u);
    if (toB.empty()) return {};
    h.inject(reply(*toB[0], 200, std::string("b-") + std::string(callId),
                   "Contact: <sip:verbund@192.0.2.50:5061;transport=tls>", kSdp),
             kNodeB);
    ackPhone(std::string(callId));
    h.take();
    return remote.invites.back().call.correlationId;
  }
  // A caller of node B (correlation id `corr`) calls local user 100 (alice); alice answers.
  void callFromNodeB(const std::string& corr, std::string_view callId) {
    caller = Caller{};
    caller.kind = Caller::Kind::Federation;
    caller.party = Party{"nodeB", "201", "Bea", "", ""};
    caller.correlationId = corr;
    caller.mode = CallMode::Route;
    h.inject(invite("100", callId, {}, kSdp), kPhone); // kPhone stands for node B here
    auto toAlice = sentTo(kAliceDev, "INVITE");
    ASSERT_EQ(toAlice.size(), 1u);
    h.inject(reply(*toAlice[0], 200, "al-" + corr, "Contact: <sip:alice@192.0.2.2:5060>", kSdp),
             kAliceDev);
    ackPhone(std::string(callId));
    h.take();
  }
  // The phone's ACK for the node's 2xx (the node sends a BYE on that leg only after it).
  void ackPhone(const std::string& callId) {
    std::string toTag;
    for (size_t i = 0; i < h.tp.sent.size(); ++i) {
      auto m = sip::test::parse(h.tp.sent[i].bytes);
      if (m && m->isResponse() && m->statusCode() == 200 && m->callId() == callId)
        toTag = std::string(m->toTag());
    }
    ASSERT_FALSE(toTag.empty());
    std::string ack = "ACK sip:pbx@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP "
                      "192.0.2.9:5060;branch=z9hG4bK-ack-" +
                      callId + "\r\nMax-Forwards: 70\r\nFrom: <sip:caller@192.0.2.9>;tag=ph1\r\n" +
                      "To: <sip:x@192.0.2.1>;tag=" + toTag + "\r\nCall-ID: " + callId +
                      "\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
    h.inject(ack, kPhone);
  }
  size_t connected() {
    size_t n = 0;
    for (const auto& c : calls->activeCalls()) n += c.state == "connected";
    return n;
  }
  Lines lines;
};

TEST_F(Reconcile, CallToAnotherNodeItNoLongerHoldsEndsHere) {
  std::string corr = callNodeB("r1");
  ASSERT_FALSE(corr.empty());
  ASSERT_EQ(connected(), 1u);
  // Link up: the call is listed for node B (and for nobody else).
  EXPECT_EQ(calls->linkUp("nodeB"), std::vector<std::string>{corr});
  EXPECT_TRUE(calls->callsHeldWith("nodeC").empty());
  // Node B ended it during the cut (its BYE was lost): BYE to our phone and to node B.
  EXPECT_EQ(calls->peerHolds("nodeB", {}), 1u);
  auto all = h.take();
  size_t byePhone = 0, byeB = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!all[i] || !all[i]->isRequest() || all[i]->methodName() != "BYE") continue;
    byePhone += h.last[i].to.remote == kPhone.remote;
    byeB += h.last[i].to.remote == kNodeB.remote;
  }
  EXPECT_EQ(byePhone, 1u);
  EXPECT_EQ(byeB, 1u);
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  EXPECT_TRUE(lines.terminated("300"));
  auto rec = log->byCorrelation(corr);
  ASSERT_TRUE(rec);
  EXPECT_GT(rec->endMs, 0);
  EXPECT_EQ(calls->stats().endedByPeer, 1u);
}

TEST_F(Reconcile, CallsTheOtherNodeStillHoldsStayUp) {
  std::string a = callNodeB("r2");
  std::string b = callNodeB("r3");
  auto held = calls->linkUp("nodeB");
  EXPECT_EQ(held.size(), 2u);
  // Node B holds `a` (and calls we do not know): only `b` ends.
  EXPECT_EQ(calls->peerHolds("nodeB", {"unknown@nodeB", a}), 1u);
  h.advance(Duration(1));
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].correlationId, a);
  // The same list again changes nothing.
  EXPECT_EQ(calls->peerHolds("nodeB", {a}), 0u);
  EXPECT_EQ(connected(), 1u);
}

TEST_F(Reconcile, CallFromAnotherNodeItNoLongerHoldsEndsHere) {
  callFromNodeB("corr-B-7", "r4");
  ASSERT_EQ(connected(), 1u);
  EXPECT_EQ(calls->linkUp("nodeB"), std::vector<std::string>{"corr-B-7"});
  // A list from another node does not touch node B's calls.
  calls->linkUp("nodeC");
  EXPECT_EQ(calls->peerHolds("nodeC", {}), 0u);
  EXPECT_EQ(connected(), 1u);
  EXPECT_EQ(calls->peerHolds("nodeB", {"corr-B-8"}), 1u);
  auto all = h.take();
  size_t byeAlice = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] && all[i]->isRequest() && all[i]->methodName() == "BYE")
      byeAlice += h.last[i].to.remote == kAliceDev.remote;
  EXPECT_EQ(byeAlice, 1u);
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  EXPECT_TRUE(lines.terminated("100"));
  auto rec = log->byCorrelation("corr-B-7");
  ASSERT_TRUE(rec);
  EXPECT_GT(rec->endMs, 0);
}

// A list only ends calls connected when the link came up: the other node may have written it
// before a newer call reached it.
TEST_F(Reconcile, CallsConnectedAfterTheRelinkAreNotEnded) {
  calls->linkUp("nodeB");
  std::string corr = callNodeB("r5");
  EXPECT_EQ(calls->peerHolds("nodeB", {}), 0u);
  EXPECT_EQ(connected(), 1u);
  EXPECT_EQ(calls->callsHeldWith("nodeB"), std::vector<std::string>{corr});
}

TEST_F(Reconcile, NoListIsComparedWithoutALinkUpOrAfterTheLinkWentDown) {
  callNodeB("r6");
  EXPECT_EQ(calls->peerHolds("nodeB", {}), 0u); // no link-up seen
  calls->linkUp("nodeB");
  calls->linkDown("nodeB");
  EXPECT_EQ(calls->peerHolds("nodeB", {}), 0u);
  EXPECT_EQ(connected(), 1u);
}

// Unanswered calls are listed (the other node must not end its side of a call still being set
// up), and never ended by a list.
TEST_F(Reconcile, RingingCallsAreListedAndLeftAlone) {
  h.inject(invite("201", "r7", {}, kSdp), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 180, "b7", "Contact: <sip:verbund@192.0.2.50:5061;transport=tls>"),
           kNodeB);
  auto held = calls->linkUp("nodeB");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0], remote.invites.back().call.correlationId);
  EXPECT_EQ(calls->peerHolds("nodeB", {}), 0u);
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].state, "ringing");
}

// Without a relink the session timer between nodes is the bound: the calling node asks for the
// federation's 90 s, refreshes at 45 s, and a refresh that gets no answer (the link is cut)
// fails after Timer F (32 s): the call ends 77 s after the last refresh, with a BYE to the phone
// and the record's end.
TEST_F(Reconcile, UnreachableNodeEndsTheCallBySessionTimer) {
  remote.sessionTimer = sip::SessionTimerConfig{90, 90};
  h.inject(invite("201", "r8", {}, kSdp), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  EXPECT_EQ(toB[0]->header(sip::HeaderId::SessionExpires), "90");
  h.inject(reply(*toB[0], 200, "b8",
                 "Contact: <sip:verbund@192.0.2.50:5061;transport=tls>\r\n"
                 "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\nAllow: INVITE, ACK, "
                 "BYE, CANCEL, UPDATE",
                 kSdp),
           kNodeB);
  ackPhone("r8");
  h.take();
  std::string corr = remote.invites.back().call.correlationId;
  // The cut starts now: nothing from node B any more.
  h.advance(Duration(44999));
  EXPECT_TRUE(sentTo(kNodeB, "UPDATE").empty());
  h.advance(Duration(1));
  EXPECT_EQ(sentTo(kNodeB, "UPDATE").size(), 1u); // the refresh, lost in the cut
  EXPECT_EQ(connected(), 1u);
  h.advance(Duration(31000));
  EXPECT_EQ(connected(), 1u);
  h.advance(Duration(1000)); // Timer F: 64 * T1 = 32 s
  size_t byePhone = 0;
  for (size_t i = 0; i < h.tp.sent.size(); ++i)
    if (h.tp.sent[i].to.remote == kPhone.remote && h.tp.sent[i].bytes.rfind("BYE ", 0) == 0)
      ++byePhone;
  EXPECT_EQ(byePhone, 1u);
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  EXPECT_TRUE(lines.terminated("300"));
  auto rec = log->byCorrelation(corr);
  ASSERT_TRUE(rec);
  EXPECT_GT(rec->endMs, 0);
}

} // namespace
} // namespace verbund::pbx

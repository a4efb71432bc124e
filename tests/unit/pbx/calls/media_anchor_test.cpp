// Media anchoring in the call engine (media_anchor.h) with a fake relay whose replies the tests
// release: every SDP crossing the B2BUA goes through the relay first, the engine waits in its
// Anchoring states, the call's first relay reply decides anchored or direct, and the relay
// session is released on every way a call ends.
#include "unit/pbx/calls/call_fixture.h"

#include <deque>
#include <set>

namespace verbund::pbx {
namespace {

using namespace test;

struct FakeAnchor final : MediaAnchor {
  struct Req {
    bool offer;
    AnchorRef ref;
    std::string sdp;
    SdpDone done;
  };
  bool available() override { return up; }
  void offer(const AnchorRef& ref, const std::string& sdp, SdpDone done) override {
    keys.insert(ref.key);
    reqs.push_back({true, ref, sdp, std::move(done)});
    log.push_back(reqs.back());
  }
  void answer(const AnchorRef& ref, const std::string& sdp, SdpDone done) override {
    reqs.push_back({false, ref, sdp, std::move(done)});
    log.push_back(reqs.back());
  }
  void release(const AnchorRef& ref) override { released.push_back(ref); }
  void playHold(const AnchorRef& ref) override { holds.push_back("play " + ref.fromTag); }
  void stopHold(const AnchorRef& ref) override { holds.push_back("stop " + ref.fromTag); }
  // The relay's SDP for request n: its own address and a port of its own.
  static std::string relaySdp(int port) {
    return "v=0\r\no=relay 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\n"
           "m=audio " +
           std::to_string(port) + " RTP/AVP 0\r\n";
  }
  // Answers every request in flight (also those the answers start), ok or failed.
  void flush(bool ok = true) {
    while (!reqs.empty()) {
      Req r = std::move(reqs.front());
      reqs.pop_front();
      if (ok)
        r.done(relaySdp(30000 + int(++n)));
      else
        r.done(Error{1, "timeout"});
    }
  }
  // The relay goes away with every session it was asked for, or answers again.
  void lose() { relayLost(std::vector<std::string>(keys.begin(), keys.end())); }
  void back() { relayBack(); }
  bool up = true;
  size_t n = 0;
  std::set<std::string> keys; // sessions offered so far
  std::deque<Req> reqs;
  std::vector<Req> log;
  std::vector<AnchorRef> released;
  std::vector<std::string> holds; // music on hold: "play <tag>", "stop <tag>"
};

bool relayed(std::string_view body) {
  return body.find("203.0.113.7") != std::string_view::npos;
}

struct Anchor : Fixture {
  Anchor() { calls->setMediaAnchor(&relay, AnchorMode::Always); }
  FakeAnchor relay;
};

TEST_F(Anchor, SimpleCallGoesThroughTheRelayBothWaysAndIsReleasedAtTheEnd) {
  h.inject(invite("100", "a1", {}, kSdpPhone), kPhone);
  // The fork waits for the relay: nothing sent to alice yet.
  EXPECT_TRUE(sentTo(kAliceDev, "INVITE").empty());
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_TRUE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "caller");
  EXPECT_EQ(relay.reqs[0].ref.branch, "b1");
  EXPECT_EQ(relay.reqs[0].sdp, kSdpPhone);
  relay.flush();
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_TRUE(relayed(forks[0]->body())) << forks[0]->body();
  EXPECT_EQ(calls->stats().anchoredLive, 1u);

  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  // The caller's 200 waits for the relay's answer.
  EXPECT_FALSE(has(responses(), 200));
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_FALSE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "caller");
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  EXPECT_EQ(relay.reqs[0].sdp, kSdpAlice);
  relay.flush();
  std::string toTag;
  bool okRelayed = false;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200) {
      okRelayed = relayed(m->body());
      toTag = std::string(m->toTag());
    }
  EXPECT_TRUE(okRelayed);
  ASSERT_FALSE(toTag.empty());
  EXPECT_EQ(calls->activeCalls().size(), 1u);
  EXPECT_TRUE(relay.released.empty());

  h.inject(inDialog("BYE", "<sip:caller@192.0.2.9>;tag=ph1", "<sip:100@192.0.2.1>;tag=" + toTag,
                    "a1", 2, "192.0.2.9:5060"),
           kPhone);
  ASSERT_EQ(relay.released.size(), 1u);
  EXPECT_EQ(relay.released[0].key, relay.log[0].ref.key);
  EXPECT_TRUE(relay.released[0].toTag.empty());
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Anchor, RelayUnavailableMeansDirectMediaWithAWarningCount) {
  relay.up = false;
  h.inject(invite("100", "a2", {}, kSdpPhone), kPhone);
  EXPECT_TRUE(relay.reqs.empty());
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_EQ(forks[0]->body(), kSdpPhone);
  EXPECT_EQ(calls->stats().anchorFallbacks, 1u);
  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  bool direct = false;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200) direct = m->body() == kSdpAlice;
  EXPECT_TRUE(direct);
  EXPECT_TRUE(relay.reqs.empty());
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Anchor, RelayTimeoutOnTheFirstOfferMeansDirectMedia) {
  h.inject(invite("100", "a3", {}, kSdpPhone), kPhone);
  relay.flush(false);
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_EQ(forks[0]->body(), kSdpPhone);
  EXPECT_EQ(calls->stats().anchorFallbacks, 1u);
  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  EXPECT_TRUE(relay.reqs.empty()); // the answer passes through: no half-anchored call
  EXPECT_TRUE(has(responses(), 200));
}

TEST_F(Anchor, CancelWhileTheRelayPreparesTheForkSendsNoInviteAndReleases) {
  h.inject(invite("100", "a4", {}, kSdpPhone), kPhone);
  ASSERT_EQ(relay.reqs.size(), 1u);
  h.inject(cancel("100", "a4"), kPhone);
  EXPECT_TRUE(has(responses(), 487));
  ASSERT_EQ(relay.released.size(), 1u);
  relay.flush(); // the late reply finds the call ended
  EXPECT_TRUE(sentTo(kAliceDev, "INVITE").empty());
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Anchor, FailedForksReleaseTheSession) {
  h.inject(invite("100", "a5", {}, kSdpPhone), kPhone);
  relay.flush();
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  h.inject(reply(*forks[0], 486, "al1"), kAliceDev);
  EXPECT_TRUE(has(responses(), 486));
  ASSERT_EQ(relay.released.size(), 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Anchor, NoAnswerTimeoutReleasesTheSession) {
  h.inject(invite("100", "a6", {}, kSdpPhone), kPhone);
  relay.flush();
  h.advance(Duration(31000));
  EXPECT_TRUE(has(responses(), 480));
  EXPECT_EQ(relay.released.size(), 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Anchor, EachForkHasItsOwnBranchAndTheLosersAreDeleted) {
  // Group 600: alice here and bea on node B; both forks get their own relay branch.
  h.inject(invite("600", "a7", {}, kSdpPhone), kPhone);
  ASSERT_EQ(relay.reqs.size(), 2u);
  EXPECT_NE(relay.reqs[0].ref.branch, relay.reqs[1].ref.branch);
  relay.flush();
  auto alice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(alice.size(), 1u);
  h.inject(reply(*alice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  relay.flush();
  EXPECT_TRUE(has(responses(), 200));
  // The fork to node B was cancelled and its branch deleted; the session lives on.
  ASSERT_EQ(relay.released.size(), 1u);
  EXPECT_FALSE(relay.released[0].branch.empty());
  EXPECT_EQ(calls->stats().anchoredLive, 1u);
}

TEST_F(Anchor, EarlyMediaGoesThroughTheRelay) {
  h.inject(invite("100", "a8", {}, kSdpPhone), kPhone);
  relay.flush();
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  h.inject(reply(*forks[0], 183, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_FALSE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  relay.flush();
  bool early = false;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 183) early = relayed(m->body());
  EXPECT_TRUE(early);
}

TEST_F(Anchor, ModeOffAndRemotePassLocalCallsThrough) {
  calls->setMediaAnchor(&relay, AnchorMode::Off);
  h.inject(invite("100", "a9", {}, kSdpPhone), kPhone);
  EXPECT_TRUE(relay.reqs.empty());
  EXPECT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
  // "remote": a local user calling a local user talks directly; a call to node B is anchored.
  calls->setMediaAnchor(&relay, AnchorMode::Remote);
  h.inject(invite("101", "a10", {}, kSdpPhone), kPhone);
  EXPECT_TRUE(relay.reqs.empty());
  EXPECT_EQ(sentTo(kBobDev, "INVITE").size(), 1u);
  h.inject(invite("201", "a11", {}, kSdpPhone), kPhone);
  EXPECT_EQ(relay.reqs.size(), 1u);
  EXPECT_EQ(calls->stats().anchorFallbacks, 0u);
}

// A connected anchored call (the phone called alice); returns the to-tag the phone got.
struct AnchoredCall : Anchor {
  void connect(std::string_view callId) {
    call = std::string(callId);
    h.inject(invite("100", callId, {}, kSdpPhone), kPhone);
    relay.flush();
    auto forks = sentTo(kAliceDev, "INVITE");
    ASSERT_EQ(forks.size(), 1u);
    fork = std::move(forks[0]);
    h.inject(reply(*fork, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
    relay.flush();
    for (auto& m : h.take())
      if (m->isResponse() && m->statusCode() == 200) phoneTag = std::string(m->toTag());
    ASSERT_FALSE(phoneTag.empty());
    h.inject(inDialog("ACK", "<sip:caller@192.0.2.9>;tag=ph1",
                      "<sip:100@192.0.2.1>;tag=" + phoneTag, call, 1, "192.0.2.9:5060"),
             kPhone);
    h.take();
    relay.log.clear();
  }
  void fromPhone(std::string_view method, uint32_t cseq, std::string_view body = {}) {
    h.inject(inDialog(method, "<sip:caller@192.0.2.9>;tag=ph1",
                      "<sip:100@192.0.2.1>;tag=" + phoneTag, call, cseq, "192.0.2.9:5060", body),
             kPhone);
  }
  std::string call, phoneTag;
  MessagePtr fork;
};

TEST_F(AnchoredCall, ReinviteOfferAndAnswerGoThroughTheRelay) {
  connect("r1");
  const std::string hold = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                           "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
  fromPhone("INVITE", 2, hold);
  EXPECT_TRUE(sentTo(kAliceDev, "INVITE").empty()); // waits for the relay
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_TRUE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "caller");
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  EXPECT_EQ(relay.reqs[0].sdp, hold);
  // A second offer meanwhile: 491.
  h.inject(inDialog("UPDATE", "<sip:100@nodeA.example>;tag=al1",
                    "<sip:300@nodeA.example>;tag=" + std::string(fork->fromTag()), fork->callId(),
                    1, "192.0.2.2:5060", kSdpAlice),
           kAliceDev);
  EXPECT_TRUE(has(responses(), 491));
  relay.flush();
  auto re = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(re.size(), 1u);
  EXPECT_TRUE(relayed(re[0]->body()));
  h.inject(reply(*re[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_FALSE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "caller");
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  relay.flush();
  bool ok = false;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200 && m->cseq().seq == 2) ok = relayed(m->body());
  EXPECT_TRUE(ok);
}

// Music on hold (issue 13 point 5): the caller's re-INVITE with sendonly holds the answering
// fork's party, which hears music once the offer is answered; sendrecv again stops it.
TEST_F(AnchoredCall, HoldPlaysMusicToTheHeldPartyAndResumeStopsIt) {
  connect("moh");
  const std::string hold = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                           "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
  auto offerAndAnswer = [&](uint32_t cseq, const std::string& body) {
    size_t before = relay.holds.size();
    fromPhone("INVITE", cseq, body);
    relay.flush();
    auto re = sentTo(kAliceDev, "INVITE");
    ASSERT_EQ(re.size(), 1u);
    EXPECT_EQ(relay.holds.size(), before) << "music before the offer was answered";
    h.inject(reply(*re[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
             kAliceDev);
    relay.flush();
    h.take();
    fromPhone("ACK", cseq);
  };
  offerAndAnswer(2, hold);
  EXPECT_EQ(relay.holds, (std::vector<std::string>{"play fork1"}));
  offerAndAnswer(3, hold); // still held (a refresh): no second player
  EXPECT_EQ(relay.holds.size(), 1u);
  offerAndAnswer(4, kSdpPhone); // sendrecv again
  EXPECT_EQ(relay.holds, (std::vector<std::string>{"play fork1", "stop fork1"}));
}

TEST_F(AnchoredCall, RefusedHoldOfferPlaysNoMusic) {
  connect("moh2");
  const std::string hold = "v=0\r\no=phone 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 "
                           "0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
  fromPhone("INVITE", 2, hold);
  relay.flush();
  auto re = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(re.size(), 1u);
  h.inject(reply(*re[0], 488, "al1"), kAliceDev);
  relay.flush();
  EXPECT_TRUE(has(responses(), 488));
  EXPECT_TRUE(relay.holds.empty());
}

TEST_F(AnchoredCall, RelayFailureOnAReinviteAnswers500AndTheCallGoesOn) {
  connect("r2");
  fromPhone("INVITE", 2, kSdpPhone);
  relay.flush(false);
  EXPECT_TRUE(has(responses(), 500));
  EXPECT_TRUE(sentTo(kAliceDev, "INVITE").empty());
  EXPECT_EQ(calls->stats().anchorFailures, 1u);
  EXPECT_EQ(calls->activeCalls().size(), 1u);
  fromPhone("ACK", 2);
  fromPhone("INVITE", 3, kSdpPhone); // the next offer is relayed again
  ASSERT_EQ(relay.reqs.size(), 1u);
}

TEST_F(Anchor, DelayedOfferGoesThroughTheRelay) {
  h.inject(invite("100", "d1"), kPhone); // no SDP
  EXPECT_TRUE(relay.reqs.empty());
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_TRUE(forks[0]->body().empty());
  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  // Alice's offer (in her 2xx) goes to the relay as an offer from her tag.
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_TRUE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "fork1");
  relay.flush();
  std::string tag;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200) {
      EXPECT_TRUE(relayed(m->body()));
      tag = std::string(m->toTag());
    }
  ASSERT_FALSE(tag.empty());
  // The phone's answer in its ACK: an answer to the relay, then into alice's held ACK.
  h.inject(inDialog("ACK", "<sip:caller@192.0.2.9>;tag=ph1", "<sip:100@192.0.2.1>;tag=" + tag, "d1",
                    1, "192.0.2.9:5060", kSdpPhone),
           kPhone);
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_FALSE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "fork1");
  EXPECT_EQ(relay.reqs[0].ref.toTag, "caller");
  EXPECT_TRUE(sentTo(kAliceDev, "ACK").empty());
  relay.flush();
  auto acks = sentTo(kAliceDev, "ACK");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_TRUE(relayed(acks[0]->body()));
}

TEST_F(Anchor, PickupJoinsThePickerAsABranchOfTheRelaySession) {
  h.inject(invite("100", "p1", {}, kSdpPhone), kPhone);
  relay.flush();
  ASSERT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
  std::string key = relay.log[0].ref.key;
  // *8100 from another phone of user 300 picks the ringing call up.
  h.inject(invite("*8100", "p2", {}, kSdpAlice), kPhone);
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_TRUE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.branch, "picker");
  EXPECT_EQ(relay.reqs[0].ref.key, key);
  relay.flush(); // the offer, then the answer with the picker's media it starts
  ASSERT_GE(relay.log.size(), 3u);
  EXPECT_FALSE(relay.log.back().offer);
  EXPECT_EQ(relay.log.back().ref.toTag, "picker");
  int relayed200 = 0;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200 && m->cseq().method == sip::Method::Invite &&
        relayed(m->body()))
      ++relayed200;
  EXPECT_EQ(relayed200, 2); // the caller and the picker each got the relay's media
  EXPECT_EQ(calls->stats().pickedUp, 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 1u);
}

TEST(AnchorMode, Names) {
  for (auto m : {AnchorMode::Always, AnchorMode::Off, AnchorMode::Remote})
    EXPECT_EQ(parseAnchorMode(anchorModeName(m)), m);
  EXPECT_FALSE(parseAnchorMode("sometimes"));
}

// ---- Re-anchoring after a relay loss (reanchor.cpp) ----

// The phone's fresh offer in the 2xx to the node's offerless re-INVITE.
const std::string kSdpPhone2 = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                               "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n";

struct Reanchor : AnchoredCall {
  // The node's offerless re-INVITE to the caller's phone, answered 200 with `offer`.
  void phoneOffers(const std::string& offer = kSdpPhone2) {
    auto asks = sentTo(kPhone, "INVITE");
    ASSERT_EQ(asks.size(), 1u) << "no offerless re-INVITE to the inbound leg";
    EXPECT_TRUE(asks[0]->body().empty());
    h.inject(reply(*asks[0], 200, {}, "Contact: <sip:caller@192.0.2.9:5060>", offer), kPhone);
  }
  // The re-INVITE to alice (its body), answered with `status` (and alice's SDP on 200).
  std::string aliceAnswers(int status = 200) {
    auto re = sentTo(kAliceDev, "INVITE");
    EXPECT_EQ(re.size(), 1u) << "no re-INVITE to the answering leg";
    if (re.empty()) return {};
    std::string body(re[0]->body());
    h.inject(reply(*re[0], status, "al1", "Contact: <sip:alice@192.0.2.2:5060>",
                   status == 200 ? kSdpAlice : std::string()),
             kAliceDev);
    return body;
  }
  // The ACK the phone got for its 2xx (its body: the answer to its offer).
  std::optional<std::string> ackToPhone() {
    auto acks = sentTo(kPhone, "ACK");
    if (acks.empty()) return std::nullopt;
    return std::string(acks.back()->body());
  }
};

TEST_F(Reanchor, RelayLossReanchorsTheCallInANewSessionWithReinvitesToBothLegs) {
  connect("ra1");
  std::string oldKey = *relay.keys.begin();
  relay.lose();
  EXPECT_EQ(calls->stats().relayLostCalls, 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
  h.advance(Duration(0));
  phoneOffers();
  // The fresh offer goes to the relay under a new session, caller -> fork1.
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_TRUE(relay.reqs[0].offer);
  EXPECT_NE(relay.reqs[0].ref.key, oldKey);
  EXPECT_EQ(relay.reqs[0].ref.fromTag, "caller");
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  EXPECT_EQ(relay.reqs[0].sdp, kSdpPhone2);
  std::string newKey = relay.reqs[0].ref.key;
  relay.flush();
  EXPECT_TRUE(relayed(aliceAnswers()));
  // Alice's answer goes through the relay, and the relay's answer in the phone's ACK.
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_FALSE(relay.reqs[0].offer);
  EXPECT_EQ(relay.reqs[0].ref.key, newKey);
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  EXPECT_EQ(relay.reqs[0].sdp, kSdpAlice);
  EXPECT_FALSE(ackToPhone().has_value()); // held until the relay answered
  relay.flush();
  auto ack = ackToPhone();
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(relayed(*ack)) << *ack;
  EXPECT_EQ(calls->stats().reanchored, 1u);
  EXPECT_EQ(calls->stats().reanchorDirect, 0u);
  EXPECT_EQ(calls->stats().anchoredLive, 1u);
  // The next offer of a phone goes through the new session; the end releases it.
  fromPhone("INVITE", 3, kSdpPhone);
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_EQ(relay.reqs[0].ref.key, newKey);
  relay.flush(false);
  h.take();
  fromPhone("BYE", 4);
  ASSERT_FALSE(relay.released.empty());
  EXPECT_EQ(relay.released.back().key, newKey);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
}

TEST_F(Reanchor, PhoneOffersDuringTheExchangeGet491) {
  connect("ra2");
  relay.lose();
  h.advance(Duration(0));
  h.take();
  fromPhone("INVITE", 2, kSdpPhone);
  EXPECT_TRUE(has(responses(), 491));
}

TEST_F(Reanchor, RelayStillDownFallsBackToDirectMediaAfterTheWait) {
  connect("ra3");
  relay.up = false;
  relay.lose();
  h.advance(Duration(4000));
  EXPECT_TRUE(sentTo(kPhone, "INVITE").empty()); // waits for the relay
  h.advance(Duration(1000));
  phoneOffers();
  EXPECT_TRUE(relay.reqs.empty());
  // Direct: alice gets the phone's own offer, the phone alice's own answer.
  EXPECT_EQ(aliceAnswers(), kSdpPhone2);
  auto ack = ackToPhone();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(*ack, kSdpAlice);
  EXPECT_EQ(calls->stats().reanchorDirect, 1u);
  EXPECT_EQ(calls->stats().reanchored, 0u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
  EXPECT_EQ(calls->activeCalls().size(), 1u); // never torn down
  // Direct from now on: the next offer passes through.
  fromPhone("INVITE", 3, kSdpPhone);
  EXPECT_TRUE(relay.reqs.empty());
  EXPECT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
}

TEST_F(Reanchor, RelayBackBeforeTheWaitReanchorsAtOnce) {
  connect("ra4");
  relay.up = false;
  relay.lose();
  h.advance(Duration(1500));
  EXPECT_TRUE(sentTo(kPhone, "INVITE").empty());
  relay.up = true;
  relay.back();
  h.advance(Duration(0));
  phoneOffers();
  ASSERT_EQ(relay.reqs.size(), 1u);
  relay.flush();
  aliceAnswers();
  relay.flush();
  ASSERT_TRUE(ackToPhone().has_value());
  EXPECT_EQ(calls->stats().reanchored, 1u);
}

TEST_F(Reanchor, RelayFailingTheNewOfferFallsBackToDirect) {
  connect("ra5");
  relay.lose();
  h.advance(Duration(0));
  phoneOffers();
  relay.flush(false); // "available", but the offer times out
  EXPECT_EQ(aliceAnswers(), kSdpPhone2);
  EXPECT_EQ(ackToPhone().value_or(""), kSdpAlice);
  EXPECT_EQ(calls->stats().reanchorDirect, 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
  EXPECT_EQ(calls->activeCalls().size(), 1u);
}

TEST_F(Reanchor, OtherLegRefusingTheRelayThenTheDirectOfferLeavesTheCallUp) {
  connect("ra6");
  relay.lose();
  h.advance(Duration(0));
  phoneOffers();
  relay.flush();
  EXPECT_TRUE(relayed(aliceAnswers(488)));
  // Direct fallback: the raw offer; refused again: the call stays as it is.
  EXPECT_EQ(aliceAnswers(488), kSdpPhone2);
  auto ack = ackToPhone();
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(ack->empty());
  EXPECT_EQ(calls->stats().reanchorDirect, 1u);
  EXPECT_EQ(calls->stats().reanchorFailed, 1u);
  EXPECT_EQ(calls->stats().anchoredLive, 0u);
  EXPECT_EQ(calls->activeCalls().size(), 1u);
  // The relay session made for the refused offer was deleted.
  ASSERT_FALSE(relay.released.empty());
}

TEST_F(Reanchor, RingingCallLostIsAnsweredDirectlyThenReanchored) {
  h.inject(invite("100", "ra7", {}, kSdpPhone), kPhone);
  relay.flush();
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  relay.lose();
  EXPECT_EQ(calls->stats().relayLostCalls, 1u);
  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  // The answer does not wait for the lost relay: it passes through at once.
  EXPECT_TRUE(relay.reqs.empty());
  std::string toTag, answer;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200) {
      toTag = std::string(m->toTag());
      answer = std::string(m->body());
    }
  EXPECT_EQ(answer, kSdpAlice);
  ASSERT_FALSE(toTag.empty());
  call = "ra7";
  phoneTag = toTag;
  fromPhone("ACK", 1);
  h.advance(Duration(0));
  phoneOffers();
  ASSERT_EQ(relay.reqs.size(), 1u);
  EXPECT_EQ(relay.reqs[0].ref.toTag, "fork1");
  relay.flush();
  EXPECT_TRUE(relayed(aliceAnswers()));
  relay.flush();
  EXPECT_TRUE(relayed(ackToPhone().value_or("")));
  EXPECT_EQ(calls->stats().reanchored, 1u);
}

TEST_F(Reanchor, ManyCallsAreReanchoredInBatchesNotInOneTurn) {
  // 51 calls: the default batch (50) starts in the first turn, the 51st one pace later.
  for (int i = 0; i < 51; ++i) connect("rb" + std::to_string(i));
  relay.lose();
  EXPECT_EQ(calls->stats().relayLostCalls, 51u);
  h.advance(Duration(0));
  EXPECT_EQ(sentTo(kPhone, "INVITE").size(), 50u);
  h.advance(Duration(20));
  EXPECT_EQ(sentTo(kPhone, "INVITE").size(), 1u);
}

TEST_F(Reanchor, MusicOnHoldIsPlayedAgainInTheNewSession) {
  connect("ra8");
  const std::string hold = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                           "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
  fromPhone("INVITE", 2, hold);
  relay.flush();
  auto re = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(re.size(), 1u);
  h.inject(reply(*re[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
  relay.flush();
  h.take();
  fromPhone("ACK", 2);
  ASSERT_EQ(relay.holds, (std::vector<std::string>{"play fork1"}));
  relay.lose();
  h.advance(Duration(0));
  phoneOffers(hold);
  relay.flush();
  aliceAnswers();
  relay.flush();
  EXPECT_EQ(relay.holds, (std::vector<std::string>{"play fork1", "play fork1"}));
}

} // namespace
} // namespace verbund::pbx

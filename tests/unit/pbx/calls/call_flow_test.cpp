// The call engine's state machines in simulated time over the real dialog and transaction
// layers: offer/answer relay (re-INVITE and UPDATE both ways, glare, rejected offers, delayed
// offer, offerless re-INVITE, early media), races (CANCEL/200, BYE crossing a re-INVITE, answer
// after the caller gave up), dead legs, forwarding and do-not-disturb, and the transition tables.
#include "unit/pbx/calls/call_fixture.h"

namespace verbund::pbx {
namespace {

using namespace test;

const std::string kSdpHold = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                             "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
const std::string kSdpAliceHold = "v=0\r\no=alice 1 2 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 "
                                  "192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n";

struct Flow : Fixture {
  using Fixture::Fixture;
  // The caller's phone (kPhone, user 300) calls 100 (alice); alice answers.
  void connect(std::string_view callId, std::string_view offer = kSdpPhone,
               std::string_view answer = kSdpAlice) {
    call = std::string(callId);
    h.inject(invite("100", callId, {}, offer), kPhone);
    auto forks = sentTo(kAliceDev, "INVITE");
    ASSERT_EQ(forks.size(), 1u);
    fork = std::move(forks[0]);
    h.inject(reply(*fork, 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
    h.inject(reply(*fork, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", answer), kAliceDev);
    answerSeen = seen();
    for (auto& m : answerSeen.toPhone)
      if (m->isResponse() && m->statusCode() == 200) phoneTag = std::string(m->toTag());
    ASSERT_FALSE(phoneTag.empty());
    if (!offer.empty()) phoneAck(); // a delayed offer: the test sends the ACK with the answer
  }
  void phoneAck(std::string_view body = {}, uint32_t cseq = 1) {
    h.inject(inDialog("ACK", "<sip:caller@192.0.2.9>;tag=ph1", toPhoneSide(), call, cseq,
                      "192.0.2.9:5060", body),
             kPhone);
  }
  std::string toPhoneSide() const { return "<sip:100@192.0.2.1>;tag=" + phoneTag; }
  // A request from the phone inside the call.
  void fromPhone(std::string_view method, uint32_t cseq, std::string_view body = {}) {
    h.inject(inDialog(method, "<sip:caller@192.0.2.9>;tag=ph1", toPhoneSide(), call, cseq,
                      "192.0.2.9:5060", body),
             kPhone);
  }
  // A request from alice inside her dialog with the node.
  void fromAlice(std::string_view method, uint32_t cseq, std::string_view body = {}) {
    std::string to = "<sip:300@nodeA.example>;tag=" + std::string(fork->fromTag());
    h.inject(inDialog(method, "<sip:100@nodeA.example>;tag=al1", to, fork->callId(), cseq,
                      "192.0.2.2:5060", body),
             kAliceDev);
  }
  struct Seen {
    std::vector<MessagePtr> toPhone, toAlice;
  };
  Seen seen() {
    Seen s;
    auto all = h.take();
    for (size_t i = 0; i < all.size(); ++i) {
      if (h.last[i].to.remote == kPhone.remote) s.toPhone.push_back(std::move(all[i]));
      if (h.last[i].to.remote == kAliceDev.remote) s.toAlice.push_back(std::move(all[i]));
    }
    return s;
  }
  static const Message* find(const std::vector<MessagePtr>& v, std::string_view method,
                             int status = 0) {
    for (const auto& m : v) {
      if (status && m->isResponse() && m->statusCode() == status &&
          m->cseq().method == sip::methodFromName(method))
        return m.get();
      if (!status && m->isRequest() && m->methodName() == method) return m.get();
    }
    return nullptr;
  }
  size_t invitesTo(const sip::Peer& to) {
    size_t n = 0;
    for (const auto& sent : h.tp.sent)
      if (sent.to.remote == to.remote && sent.bytes.rfind("INVITE ", 0) == 0) ++n;
    return n;
  }
  std::string call, phoneTag;
  MessagePtr fork;
  Seen answerSeen; // what the node sent when alice answered
};

TEST_F(Flow, ReinviteRelayedFromCallerAndBack) {
  connect("f1");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  auto s = seen();
  const Message* reinvite = find(s.toAlice, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_EQ(reinvite->body(), kSdpHold);
  h.inject(reply(*reinvite, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAliceHold),
           kAliceDev);
  s = seen();
  const Message* ok = find(s.toPhone, "INVITE", 200);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), kSdpAliceHold);
  EXPECT_TRUE(find(s.toAlice, "ACK"));
  EXPECT_EQ(calls->stats().offersRelayed, 1u);
}

TEST_F(Flow, ReinviteRelayedFromCallee) {
  connect("f2");
  h.take();
  fromAlice("INVITE", 1, kSdpAliceHold);
  auto s = seen();
  const Message* reinvite = find(s.toPhone, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_EQ(reinvite->body(), kSdpAliceHold);
  h.inject(reply(*reinvite, 200, "ph1", "Contact: <sip:caller@192.0.2.9:5060>", kSdpHold), kPhone);
  s = seen();
  const Message* ok = find(s.toAlice, "INVITE", 200);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), kSdpHold);
}

TEST_F(Flow, UpdateRelayedBothWays) {
  connect("f3");
  h.take();
  fromPhone("UPDATE", 2, kSdpHold);
  auto s = seen();
  const Message* update = find(s.toAlice, "UPDATE");
  ASSERT_TRUE(update);
  h.inject(reply(*update, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAliceHold),
           kAliceDev);
  s = seen();
  ASSERT_TRUE(find(s.toPhone, "UPDATE", 200));
  EXPECT_EQ(find(s.toPhone, "UPDATE", 200)->body(), kSdpAliceHold);

  fromAlice("UPDATE", 1, kSdpAlice);
  s = seen();
  update = find(s.toPhone, "UPDATE");
  ASSERT_TRUE(update);
  h.inject(reply(*update, 200, "ph1", "Contact: <sip:caller@192.0.2.9:5060>", kSdpPhone), kPhone);
  s = seen();
  ASSERT_TRUE(find(s.toAlice, "UPDATE", 200));
}

// Both phones re-INVITE at the same moment: each glare answer travels back as 491, the offer
// state clears, and hold/resume works for the rest of the call.
TEST_F(Flow, GlarePassesBack491AndLaterOffersWork) {
  connect("f4");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  auto relayed = seen(); // keeps the relayed re-INVITE alive for alice's answer below
  const Message* toAlice = find(relayed.toAlice, "INVITE");
  ASSERT_TRUE(toAlice);
  // Alice's own re-INVITE crosses ours: the node is in the middle of an INVITE on her leg.
  fromAlice("INVITE", 1, kSdpAliceHold);
  auto s = seen();
  EXPECT_TRUE(find(s.toAlice, "INVITE", 491));
  EXPECT_FALSE(find(s.toPhone, "INVITE"));
  // Alice answers ours with 491 too: the phone gets it and will retry itself.
  h.inject(reply(*toAlice, 491, "al1"), kAliceDev);
  s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 491));
  h.advance(Duration(5000)); // no retry by the node for a relayed offer
  s = seen();
  EXPECT_FALSE(find(s.toAlice, "INVITE"));

  // The phone retries: relayed and answered as usual.
  fromPhone("ACK", 2);
  fromPhone("INVITE", 3, kSdpHold);
  s = seen();
  toAlice = find(s.toAlice, "INVITE");
  ASSERT_TRUE(toAlice);
  h.inject(reply(*toAlice, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAliceHold),
           kAliceDev);
  s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 200));
}

TEST_F(Flow, SecondOfferWhileOneIsRelayedGets491) {
  connect("f5");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  auto s = seen();
  ASSERT_TRUE(find(s.toAlice, "INVITE"));
  fromAlice("UPDATE", 1, kSdpAliceHold);
  s = seen();
  EXPECT_TRUE(find(s.toAlice, "UPDATE", 491));
  EXPECT_EQ(calls->stats().offersRefused, 1u);
}

TEST_F(Flow, RejectedOfferIsPassedBackWithItsStatus) {
  connect("f6");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  auto s = seen();
  const Message* toAlice = find(s.toAlice, "INVITE");
  ASSERT_TRUE(toAlice);
  h.inject(reply(*toAlice, 488, "al1"), kAliceDev);
  s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 488));
  // The call goes on and the next offer is relayed.
  fromPhone("ACK", 2);
  fromPhone("INVITE", 3, kSdpPhone);
  s = seen();
  EXPECT_TRUE(find(s.toAlice, "INVITE"));
  ASSERT_EQ(calls->activeCalls().size(), 1u);
  EXPECT_EQ(calls->activeCalls()[0].state, "connected");
}

// INVITE without SDP: the callee's 200 carries the offer, the caller's ACK the answer, which
// reaches the callee in the node's ACK.
TEST_F(Flow, DelayedOfferAnswerInAckReachesTheCallee) {
  connect("f7", "", kSdpAlice);
  EXPECT_FALSE(find(answerSeen.toAlice, "ACK")); // held until the caller answers
  const Message* ok = find(answerSeen.toPhone, "INVITE", 200);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), kSdpAlice); // alice's offer goes to the caller
  phoneAck(kSdpPhone);
  auto s = seen();
  const Message* ack = find(s.toAlice, "ACK");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->body(), kSdpPhone);
  EXPECT_EQ(calls->activeCalls().size(), 1u);
}

TEST_F(Flow, DelayedOfferCallerNeverAcksEndsBothLegs) {
  connect("f8", "", kSdpAlice);
  h.take();
  h.advance(Duration(64 * 500 + 100));
  auto s = seen();
  EXPECT_TRUE(find(s.toAlice, "ACK"));
  EXPECT_TRUE(find(s.toAlice, "BYE"));
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
}

TEST_F(Flow, OfferlessReinviteGetsItsAnswerFromTheAck) {
  connect("f9");
  h.take();
  fromPhone("INVITE", 2);
  auto s = seen();
  const Message* toAlice = find(s.toAlice, "INVITE");
  ASSERT_TRUE(toAlice);
  EXPECT_TRUE(toAlice->body().empty());
  h.inject(reply(*toAlice, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAliceHold),
           kAliceDev);
  s = seen();
  const Message* ok = find(s.toPhone, "INVITE", 200);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), kSdpAliceHold);
  EXPECT_FALSE(find(s.toAlice, "ACK"));
  phoneAck(kSdpHold, 2);
  s = seen();
  const Message* ack = find(s.toAlice, "ACK");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->body(), kSdpHold);
}

TEST_F(Flow, EarlyMediaThenChangedSdpIn200) {
  call = "f10";
  h.inject(invite("100", call, {}, kSdpPhone), kPhone);
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  fork = std::move(forks[0]);
  h.inject(reply(*fork, 183, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
  auto s = seen();
  const Message* early = find(s.toPhone, "INVITE", 183);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->body(), kSdpAlice);
  h.inject(reply(*fork, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAliceHold),
           kAliceDev);
  s = seen();
  const Message* ok = find(s.toPhone, "INVITE", 200);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), kSdpAliceHold);
}

// A device registered through an edge proxy: its INVITE carries the Path as Route headers and
// goes to the proxy, with the device's Contact as Request-URI.
TEST_F(Flow, ForkToADeviceFollowsItsPath) {
  h.inject(invite("102", "f-path", {}, kSdpPhone), kPhone);
  auto forks = sentTo(kEdge, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  EXPECT_EQ(forks[0]->requestUri().text, "sip:dave@10.0.0.4:40000");
  std::vector<std::string> routes;
  for (const auto& hd : forks[0]->headers())
    if (hd.id == sip::HeaderId::Route) routes.emplace_back(hd.value);
  ASSERT_FALSE(routes.empty());
  std::string all;
  for (const auto& r : routes) all += (all.empty() ? "" : ", ") + r;
  EXPECT_EQ(all, "<sip:192.0.2.9:5070;lr>, <sip:p2.example;lr>");
}

// The caller's CANCEL arrives after the callee's 200 went to the caller: the call stays up.
TEST_F(Flow, CancelAfterTheAnswerLeavesTheCallUp) {
  connect("f11", kSdpPhone, kSdpAlice);
  h.take();
  h.inject(cancel("100", "f11"), kPhone);
  auto s = seen();
  EXPECT_FALSE(find(s.toPhone, "INVITE", 487));
  EXPECT_FALSE(find(s.toAlice, "BYE"));
  EXPECT_FALSE(find(s.toAlice, "CANCEL"));
  ASSERT_EQ(calls->activeCalls().size(), 1u);
  EXPECT_EQ(calls->activeCalls()[0].state, "connected");
}

// The callee answers after the caller gave up: the node ACKs and hangs up that answer.
TEST_F(Flow, AnswerAfterTheCallerGaveUpIsHungUp) {
  h.inject(invite("100", "f12", {}, kSdpPhone), kPhone);
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  h.inject(reply(*forks[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  h.inject(cancel("100", "f12"), kPhone);
  auto s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 487));
  ASSERT_TRUE(find(s.toAlice, "CANCEL"));
  h.inject(reply(*forks[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
           kAliceDev);
  s = seen();
  EXPECT_TRUE(find(s.toAlice, "ACK"));
  EXPECT_TRUE(find(s.toAlice, "BYE"));
  EXPECT_TRUE(s.toPhone.empty());
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  auto recs = log->find({});
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_EQ((*recs)[0].disposition, Disposition::Missed);
  EXPECT_TRUE((*recs)[0].answeredBy.empty());
}

// Alice hangs up while the phone's re-INVITE is being relayed to her.
TEST_F(Flow, ByeCrossingAReinviteEndsBothLegs) {
  connect("f13");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  auto s = seen();
  ASSERT_TRUE(find(s.toAlice, "INVITE"));
  fromAlice("BYE", 1);
  s = seen();
  EXPECT_TRUE(find(s.toAlice, "BYE", 200));
  EXPECT_TRUE(find(s.toPhone, "INVITE", 487));
  EXPECT_TRUE(find(s.toPhone, "BYE"));
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  auto recs = log->find({});
  ASSERT_TRUE(recs && recs->size() == 1u);
  EXPECT_GT((*recs)[0].endMs, 0);
  EXPECT_EQ((*recs)[0].answeredBy, "100");
}

// A relayed re-INVITE that alice never answers (her phone is gone): the dialog times out, the
// call ends and the phone gets a BYE.
TEST_F(Flow, DeadLegEndsTheCall) {
  connect("f14");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  ASSERT_TRUE(find(seen().toAlice, "INVITE"));
  h.advance(Duration(64 * 500 + 100)); // Timer B
  auto s = seen();
  EXPECT_TRUE(find(s.toPhone, "BYE"));
  EXPECT_TRUE(find(s.toPhone, "INVITE", 487));
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
}

// RFC 4028 on the caller's leg: the phone was to refresh and did not; the node ends the call on
// both legs, writes its end and terminates the line state.
struct TimedFlow : Flow {
  static sip::DialogConfig config() {
    sip::DialogConfig c = Harness::defaultConfig();
    c.sessionTimer.sessionExpires = 90;
    c.sessionTimer.minSE = 90;
    return c;
  }
  TimedFlow() : Flow(config()) {}
};

TEST_F(TimedFlow, SessionTimerExpiryEndsBothLegs) {
  call = "t1";
  h.inject(invite("100", call, "Supported: timer\r\nSession-Expires: 90\r\n", kSdpPhone), kPhone);
  auto forks = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(forks.size(), 1u);
  fork = std::move(forks[0]);
  EXPECT_TRUE(fork->header("Session-Expires")); // the node asks for a timer on alice's leg too
  h.inject(reply(*fork, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
  auto s = seen();
  const Message* ok = find(s.toPhone, "INVITE", 200);
  ASSERT_TRUE(ok);
  auto se = ok->header("Session-Expires");
  ASSERT_TRUE(se);
  EXPECT_NE(se->find("refresher=uac"), std::string_view::npos) << *se;
  phoneTag = std::string(ok->toTag());
  phoneAck();
  h.advance(Duration(59000));
  s = seen();
  EXPECT_FALSE(find(s.toPhone, "BYE"));
  EXPECT_EQ(calls->activeCalls().size(), 1u);
  // RFC 4028 §10: no refresh by SE - min(32, SE/3) = 60 s: BYE to both phones.
  h.advance(Duration(1500));
  s = seen();
  EXPECT_TRUE(find(s.toPhone, "BYE"));
  EXPECT_TRUE(find(s.toAlice, "BYE"));
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  auto recs = log->find({});
  ASSERT_TRUE(recs && recs->size() == 1u);
  EXPECT_GT((*recs)[0].endMs, 0);
}

// The connection to alice's phone breaks while a re-INVITE is relayed to it (transport error,
// e.g. a TCP/TLS connection reset): her leg ends, and with it the call on both sides.
TEST_F(Flow, TransportErrorOnOneLegEndsTheCall) {
  connect("f15");
  h.take();
  fromPhone("INVITE", 2, kSdpHold);
  ASSERT_TRUE(find(seen().toAlice, "INVITE"));
  h.txl.onTransportError(kAliceDev);
  auto s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 487));
  EXPECT_TRUE(find(s.toPhone, "BYE"));
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
  auto recs = log->find({});
  ASSERT_TRUE(recs && recs->size() == 1u);
  EXPECT_GT((*recs)[0].endMs, 0);
}

// ---- Do-not-disturb and forwarding (the routing stages' hooks) ----

TEST_F(Flow, DoNotDisturbIsBusy) {
  features.dnd.insert("100");
  h.inject(invite("100", "d1", {}, kSdpPhone), kPhone);
  auto s = seen();
  EXPECT_TRUE(find(s.toPhone, "INVITE", 486));
  EXPECT_TRUE(s.toAlice.empty());
}

TEST_F(Flow, ForwardAlwaysRingsTheTarget) {
  features.forwards[{"100", ForwardWhen::Always}] = "101";
  h.inject(invite("100", "d2", {}, kSdpPhone), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 0u);
  EXPECT_EQ(invitesTo(kBobDev), 1u);
  EXPECT_EQ(calls->stats().forwarded, 1u);
}

TEST_F(Flow, ForwardOnBusy) {
  features.forwards[{"100", ForwardWhen::Busy}] = "101";
  h.inject(invite("100", "d3", {}, kSdpPhone), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 486, "al1"), kAliceDev);
  EXPECT_EQ(invitesTo(kBobDev), 1u);
  EXPECT_FALSE(find(seen().toPhone, "INVITE", 486));
  EXPECT_EQ(calls->stats().forwarded, 1u);
}

TEST_F(Flow, ForwardOnNoAnswer) {
  features.forwards[{"100", ForwardWhen::NoAnswer}] = "101";
  h.inject(invite("100", "d4", {}, kSdpPhone), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al2", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.advance(Duration(30000));
  EXPECT_EQ(invitesTo(kBobDev), 1u);
  auto s = seen();
  EXPECT_TRUE(find(s.toAlice, "CANCEL"));
  EXPECT_FALSE(find(s.toPhone, "INVITE", 480));
  EXPECT_EQ(calls->stats().forwarded, 1u);
}

TEST_F(Flow, ForwardWhenUnregistered) {
  features.forwards[{"300", ForwardWhen::Unregistered}] = "100"; // carol has no device
  h.inject(invite("300", "d6", {}, kSdpPhone), kPhone);
  EXPECT_EQ(invitesTo(kAliceDev), 1u);
  EXPECT_FALSE(find(seen().toPhone, "INVITE", 480));
}

TEST_F(Flow, ForwardingLoopEndsWithLoopDetectedAndARecord) {
  features.forwards[{"100", ForwardWhen::Always}] = "101";
  features.forwards[{"101", ForwardWhen::Always}] = "100";
  h.inject(invite("100", "d5", {}, kSdpPhone), kPhone);
  // 100 -> 101 is one hop; 101 -> 100 goes back to a user the call has left: 482, nobody rung.
  EXPECT_EQ(calls->stats().forwarded, 1u);
  EXPECT_TRUE(find(seen().toPhone, "INVITE", 482));
  EXPECT_EQ(invitesTo(kBobDev), 0u);
  EXPECT_EQ(invitesTo(kAliceDev), 0u);
  h.advance(Duration(100));
  auto recs = log->find({});
  ASSERT_TRUE(recs && recs->size() == 1u);
  const CallRecord& r = (*recs)[0];
  EXPECT_EQ(r.disposition, Disposition::Missed);
  ASSERT_GE(r.parties.size(), 4u); // caller, 100, 101 (forwarded), 100 (loop)
  EXPECT_EQ(r.parties[2].extension, "101");
  EXPECT_EQ(r.parties[2].forwardedFrom, "100");
  EXPECT_EQ(r.parties[2].forwardReason, "always");
  EXPECT_EQ(r.parties.back().extension, "100");
  EXPECT_EQ(r.parties.back().forwardedFrom, "101");
  EXPECT_EQ(r.parties.back().forwardReason, "loop");
}

// ---- Transition tables ----

TEST(CallStates, Tables) {
  EXPECT_TRUE(allowed(CallState::Routing, CallState::Ringing));
  EXPECT_TRUE(allowed(CallState::Ringing, CallState::Connected));
  EXPECT_TRUE(allowed(CallState::Ringing, CallState::Routing)); // forwarding
  EXPECT_TRUE(allowed(CallState::Connected, CallState::Ended));
  EXPECT_FALSE(allowed(CallState::Connected, CallState::Ringing));
  EXPECT_FALSE(allowed(CallState::Ended, CallState::Connected));
  EXPECT_TRUE(allowed(ForkState::Calling, ForkState::FellBack));
  EXPECT_TRUE(allowed(ForkState::Ringing, ForkState::Answered));
  EXPECT_FALSE(allowed(ForkState::Cancelled, ForkState::Answered));
  EXPECT_FALSE(allowed(ForkState::Answered, ForkState::Cancelled));
  EXPECT_TRUE(allowed(OfferState::Idle, OfferState::AwaitingAnswer));
  EXPECT_FALSE(allowed(OfferState::Idle, OfferState::AwaitingAck));
  EXPECT_EQ(parseCallMode("user"), CallMode::User);
  EXPECT_EQ(parseCallMode("route"), CallMode::Route);
  EXPECT_FALSE(parseCallMode("ring"));
}

} // namespace
} // namespace verbund::pbx

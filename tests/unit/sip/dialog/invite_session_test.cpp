// INVITE usage scripts (RFC 3261 §13-§15): forking, 2xx retransmission, glare, target refresh,
// CANCEL and BYE, all in simulated time over the real transaction layer.
#include "sip/dialog/invite_session.h"
#include "unit/sip/dialog/invite_harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

TEST(InviteSession, UasRetransmits2xxUntilAck) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  // RFC 3261 §13.3.1.4: T1, 2T1, 4T1, ... capped at T2.
  for (int ms : {500, 1000, 2000, 4000, 4000}) {
    h.advance(Duration(ms - 1));
    EXPECT_TRUE(h.take().empty()) << ms;
    h.advance(Duration(1));
    auto again = h.takeOne();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->statusCode(), 200);
  }
  call.ack();
  h.advance(Duration(60000));
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state(), InviteSession::State::Confirmed);
}

TEST(InviteSession, UasSendsByeWhenNoAckWithin64T1) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  h.advance(Duration(31999));
  auto sent = h.take();
  EXPECT_FALSE(findSent(sent, "BYE"));
  h.advance(Duration(1));
  sent = h.take();
  auto bye = findSent(sent, "BYE");
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->requestUri().text, "sip:alice@192.0.2.2:5060");
  EXPECT_EQ(bye->fromTag(), call.tag);
  EXPECT_EQ(bye->toTag(), "alice1");
  EXPECT_EQ(h.last.back().to.remote.toString(), "192.0.2.2:5060");
  EXPECT_EQ(r.events.back(), "terminated no ACK alice1");
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.dialogCount(), 0u);
}

TEST(InviteSession, UacForkingAcksEvery2xxAndByesTheSecond) {
  Harness h;
  Recorder r;
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:bob@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:bob@192.0.2.2>";
  p.contentType = "application/sdp";
  p.body = "v=0 offer\r\n";
  auto id = h.dm.invite(p);
  ASSERT_TRUE(id.ok());
  auto inv = h.takeOne();
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->method(), Method::Invite);
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.2:5060");

  h.inject(reply(*inv, 180, "forkA", "Contact: <sip:bob@192.0.2.3>"), kAlice);
  h.inject(reply(*inv, 180, "forkB", "Contact: <sip:bob@192.0.2.4>"), kAlice);
  EXPECT_EQ(h.dm.dialogCount(), 2u);
  EXPECT_TRUE(h.take().empty());

  h.inject(
      reply(*inv, 200, "forkA", "Contact: <sip:bob@192.0.2.3>\r\nRecord-Route: <sip:192.0.2.2;lr>"),
      kAlice);
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  std::string firstAck = h.last[0].bytes;
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_EQ(ack->cseq().seq, inv->cseq().seq); // RFC 3261 §13.2.2.4
  EXPECT_EQ(ack->requestUri().text, "sip:bob@192.0.2.3");
  ASSERT_EQ(ack->routes().size(), 1u);
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.2:5060"); // via the record-routed proxy
  EXPECT_NE(ack->branch(), inv->branch());

  h.inject(reply(*inv, 200, "forkB", "Contact: <sip:bob@192.0.2.4>"), kAlice);
  auto sent = h.take();
  ASSERT_EQ(sent.size(), 2u);
  auto ackB = findSent(sent, "ACK");
  auto byeB = findSent(sent, "BYE");
  ASSERT_TRUE(ackB && byeB);
  EXPECT_EQ(ackB->toTag(), "forkB");
  EXPECT_EQ(byeB->toTag(), "forkB");
  EXPECT_EQ(byeB->requestUri().text, "sip:bob@192.0.2.4");
  EXPECT_EQ(byeB->cseq().seq, inv->cseq().seq + 1);

  // A retransmitted 2xx gets the very same ACK.
  h.inject(reply(*inv, 200, "forkA", "Contact: <sip:bob@192.0.2.3>"), kAlice);
  h.take();
  ASSERT_EQ(h.last.size(), 1u);
  EXPECT_EQ(h.last[0].bytes, firstAck);

  EXPECT_EQ(r.events, (std::vector<std::string>{"provisional 180 forkA", "provisional 180 forkB",
                                                "connected", "terminated fork lost forkB"}));
  h.advance(Duration(64 * 500 + 1));
  EXPECT_FALSE(h.dm.clientInvite(*id));
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dialog().id().remoteTag, "forkA");
  EXPECT_EQ(s->state(), InviteSession::State::Confirmed);
}

TEST(InviteSession, UacEarlyForkEndsWhenOtherAnswerIsOld) {
  Harness h;
  Recorder r;
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:bob@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:bob@192.0.2.2>";
  ASSERT_TRUE(h.dm.invite(p).ok());
  auto inv = h.takeOne();
  h.inject(reply(*inv, 180, "forkA", "Contact: <sip:bob@192.0.2.3>"), kAlice);
  h.inject(reply(*inv, 180, "forkB", "Contact: <sip:bob@192.0.2.4>"), kAlice);
  h.inject(reply(*inv, 200, "forkA", "Contact: <sip:bob@192.0.2.3>"), kAlice);
  h.take();
  // RFC 3261 §13.2.2.4: early dialogs not confirmed within 64*T1 end.
  h.advance(Duration(64 * 500));
  EXPECT_EQ(r.events.back(), "terminated fork lost forkB");
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.dialogCount(), 1u);
}

TEST(InviteSession, UacCancelAfterProvisional) {
  Harness h;
  Recorder r;
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:bob@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:bob@192.0.2.2>";
  auto id = h.dm.invite(p);
  auto inv = h.takeOne();
  ASSERT_TRUE(h.dm.clientInvite(*id)->cancel().ok());
  EXPECT_TRUE(h.take().empty()); // RFC 3261 §9.1: held until a provisional arrives
  h.inject(reply(*inv, 180, "forkA", "Contact: <sip:bob@192.0.2.3>"), kAlice);
  auto cancel = h.takeOne();
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->method(), Method::Cancel);
  h.inject(reply(*cancel, 200), kAlice);
  h.inject(reply(*inv, 487, "forkA"), kAlice);
  auto ack = h.takeOne(); // the transaction layer ACKs the 487
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_EQ(r.events, (std::vector<std::string>{"provisional 180 forkA",
                                                "terminated cancelled forkA", "failure 487"}));
}

TEST(InviteSession, UasCancelGets487) {
  Harness h;
  Recorder r;
  h.dm.setInviteHandler(&r);
  r.onNew = [](InviteSession& s, const Message&) { ASSERT_TRUE(s.provisional(180)); };
  h.inject(aliceRequest("INVITE", 1, {}, "inv1", kAliceContact));
  auto sent = h.take();
  auto ringing = findSent(sent, "180");
  ASSERT_TRUE(ringing);
  EXPECT_FALSE(ringing->toTag().empty());
  EXPECT_EQ(ringing->contacts().size(), 1u);
  h.inject(aliceRequest("CANCEL", 1, {}, "inv1"));
  sent = h.take();
  ASSERT_TRUE(findSent(sent, "200"));
  auto terminated = findSent(sent, "487");
  ASSERT_TRUE(terminated);
  EXPECT_EQ(terminated->toTag(), ringing->toTag());
  EXPECT_EQ(r.events.back(), "terminated cancelled alice1");
}

TEST(InviteSession, ByeFromPeerAndUnknownDialogAndCSeqOrder) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  call.ack();
  h.take();
  // RFC 3261 §12.2.2: unknown dialog -> 481.
  h.inject(aliceRequest("BYE", 5, "nosuchtag", "bye0"));
  auto resp = h.takeOne();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->statusCode(), 481);
  // Out-of-order CSeq -> 500.
  h.inject(aliceRequest("INFO", 1, call.tag, "info1"));
  resp = h.takeOne();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->statusCode(), 500);
  // In-order INFO without a handler for it -> 501, but the dialog stays.
  h.inject(aliceRequest("INFO", 2, call.tag, "info2"));
  resp = h.takeOne();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->statusCode(), 501);
  h.inject(aliceRequest("BYE", 3, call.tag, "bye1"));
  resp = h.takeOne();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->statusCode(), 200);
  EXPECT_EQ(r.events.back(), "terminated remote BYE alice1");
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.usageCount(), 0u);
}

TEST(InviteSession, ReinviteTargetRefresh) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  call.ack();
  h.take();
  h.inject(
      aliceRequest("INVITE", 2, call.tag, "reinv1", "Contact: <sip:alice@192.0.2.7:5062>\r\n"));
  auto sent = h.take();
  auto ok = findSent(sent, "200");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), "v=0 answer\r\n");
  EXPECT_EQ(ok->contacts().size(), 1u);
  h.inject(aliceRequest("ACK", 2, call.tag, "reack1"));
  h.advance(Duration(600));
  EXPECT_TRUE(h.take().empty()); // ACKed: no retransmission
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dialog().remoteTarget(), "sip:alice@192.0.2.7:5062");
  ASSERT_TRUE(s->end());
  auto bye = h.takeOne();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->requestUri().text, "sip:alice@192.0.2.7:5062");
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.7:5062");
  EXPECT_EQ(bye->cseq().seq, 1u); // the UAS's first request in the dialog
}

TEST(InviteSession, GlareGets491AndRetriesAfterRandomTime) {
  DialogConfig c = Harness::defaultConfig();
  c.random = [](uint32_t, uint32_t hi) { return hi; };
  Harness h(c);
  Recorder r;
  UasCall call(h, r);
  call.ack();
  h.take();
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->reinvite("application/sdp", "v=0 ours\r\n"));
  auto ours = h.takeOne();
  ASSERT_TRUE(ours);
  EXPECT_EQ(ours->method(), Method::Invite);
  EXPECT_EQ(ours->cseq().seq, 1u);
  EXPECT_FALSE(s->reinvite().ok()); // RFC 3261 §14.1: one INVITE at a time

  // The peer's re-INVITE crosses ours: 491.
  h.inject(aliceRequest("INVITE", 2, call.tag, "glare1", kAliceContact));
  auto sent = h.take();
  EXPECT_TRUE(findSent(sent, "491"));
  h.inject(aliceRequest("ACK", 2, call.tag, "glare1")); // absorbed by the transaction layer

  // Ours gets 491 too: retried after the §14.1 timer (0-2 s for the non-owner of the Call-ID).
  h.inject(reply(*ours, 491), kAlice);
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  h.advance(Duration(1999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto retry = h.takeOne();
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->method(), Method::Invite);
  EXPECT_EQ(retry->cseq().seq, 2u);
  EXPECT_EQ(retry->body(), "v=0 ours\r\n");
  h.inject(reply(*retry, 200, {}, "Contact: <sip:alice@192.0.2.2:5060>"), kAlice);
  ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_EQ(ack->cseq().seq, 2u);
  EXPECT_EQ(r.events.back(), "answered 200");
}

TEST(InviteSession, SecondReinviteBeforeAnswerGets500WithRetryAfter) {
  Harness h;
  Recorder r;
  r.offerStatus = 0; // leave the re-INVITE unanswered
  UasCall call(h, r);
  call.ack();
  h.take();
  h.inject(aliceRequest("INVITE", 2, call.tag, "re1", kAliceContact));
  h.take();
  h.inject(aliceRequest("INVITE", 3, call.tag, "re2", kAliceContact));
  auto sent = h.take();
  auto resp = findSent(sent, "500"); // RFC 3261 §14.2
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->header(HeaderId::RetryAfter));
}

TEST(InviteSession, UpdatePassesThroughAndRefreshesTarget) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  call.ack();
  h.take();
  h.inject(
      withBody(aliceRequest("UPDATE", 2, call.tag, "upd1", "Contact: <sip:alice@192.0.2.8>\r\n"),
               "v=0 update\r\n"));
  auto ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(r.events.back(), "offer UPDATE");
  EXPECT_EQ(h.dm.inviteSession(r.session)->dialog().remoteTarget(), "sip:alice@192.0.2.8");
}

TEST(InviteSession, UasEndBeforeAckWaitsForAck) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s->end());
  auto sent = h.take();
  EXPECT_FALSE(findSent(sent, "BYE")); // RFC 3261 §15
  call.ack();
  sent = h.take();
  EXPECT_TRUE(findSent(sent, "BYE"));
  EXPECT_EQ(r.events.back(), "terminated local BYE alice1");
}

} // namespace
} // namespace verbund::sip::test

namespace verbund::sip::test {
namespace {

// A phone behind NAT: its Contact names its private address, its messages come from the NAT's
// public one. Requests in the dialog follow the address the messages come from.
TEST(InviteSession, PrivateContactBehindNatFollowsTheSourceAddress) {
  Harness h;
  Recorder r;
  h.dm.setInviteHandler(&r);
  r.onNew = [](InviteSession& s, const Message&) {
    ASSERT_TRUE(s.accept("application/sdp", "v=0 offer-answer\r\n"));
  };
  const Peer nat = udpPeer("198.51.100.9:40123");
  h.inject(
      withBody(aliceRequest("INVITE", 1, {}, "nat1", "Contact: <sip:alice@192.168.1.20:5060>\r\n"),
               "v=0 alice-offer\r\n"),
      nat);
  auto sent = h.take();
  auto ok = findSent(sent, "200");
  ASSERT_TRUE(ok);
  h.inject(aliceRequest("ACK", 1, std::string(ok->toTag()), "natack"), nat);
  h.take();
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->end());
  auto bye = h.takeOne();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->requestUri().text, "sip:alice@192.168.1.20:5060"); // R-URI stays the Contact
  EXPECT_EQ(h.last[0].to.remote.toString(), "198.51.100.9:40123");
}

// The same private Contact reached directly (a phone on the node's own LAN) is used as it is.
TEST(InviteSession, PrivateContactSentFromItsOwnAddressIsUsed) {
  DialogTarget t;
  EXPECT_FALSE(
      DialogUsage::behindNat(t, udpPeer("192.168.1.20:5060"), udpPeer("192.168.1.20:5060")));
  EXPECT_FALSE(DialogUsage::behindNat(t, udpPeer("192.0.2.20:5060"), udpPeer("198.51.100.9:1")));
  EXPECT_TRUE(DialogUsage::behindNat(t, udpPeer("10.1.2.3:5060"), udpPeer("198.51.100.9:1")));
  t.routes.push_back("<sip:proxy.example;lr>"); // a proxy in between knows the way
  EXPECT_FALSE(DialogUsage::behindNat(t, udpPeer("10.1.2.3:5060"), udpPeer("198.51.100.9:1")));
}

} // namespace
} // namespace verbund::sip::test

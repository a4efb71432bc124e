// Offer/answer through the INVITE usage (RFC 3261 §13-§14, RFC 3264, RFC 3311): every outcome of
// the application's re-INVITE/UPDATE reported, relay mode for a B2BUA (491 passed on), and the
// delayed offer, where the ACK carries our answer and is held until the application has it.
#include "unit/sip/dialog/invite_harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

const char* kContact200 = "Contact: <sip:alice@192.0.2.2:5060>";

// UAC: an INVITE to alice, with `body` (empty: a delayed offer).
MessagePtr startUac(Harness& h, Recorder& r, std::string_view body) {
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:alice@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:alice@192.0.2.2>";
  if (!body.empty()) p.contentType = "application/sdp";
  p.body = std::string(body);
  EXPECT_TRUE(h.dm.invite(p).ok());
  return h.takeOne();
}

// A confirmed UAS session (alice called us); returns it.
InviteSession* confirmedUas(Harness& h, Recorder& r, UasCall& call) {
  call.ack();
  h.take();
  return h.dm.inviteSession(r.session);
}

TEST(OfferAnswer, RelayModePasses491ToTheApplication) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  auto* s = confirmedUas(h, r, call);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->reinvite("application/sdp", "v=0 relayed\r\n", {}, {.retryGlare = false}));
  auto re = h.takeOne();
  ASSERT_TRUE(re);
  h.inject(reply(*re, 491), kAlice);
  ASSERT_TRUE(h.takeOne()); // ACK of the 491 (transaction layer)
  EXPECT_EQ(r.events.back(), "answered 491");
  EXPECT_EQ(r.answeredMethod, Method::Invite);
  h.advance(Duration(5000));
  EXPECT_TRUE(h.take().empty()); // no §14.1 retry of our own
  // The next offer can go at once: nothing is pending.
  EXPECT_TRUE(s->reinvite("application/sdp", "v=0 relayed again\r\n", {}, {.retryGlare = false}));
}

TEST(OfferAnswer, EveryNon2xxReachesOnOfferAnswered) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  auto* s = confirmedUas(h, r, call);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->reinvite("application/sdp", "v=0 video\r\n"));
  auto re = h.takeOne();
  h.inject(reply(*re, 488), kAlice);
  h.take();
  EXPECT_EQ(r.events.back(), "answered 488");
  EXPECT_EQ(r.answeredMethod, Method::Invite);
  ASSERT_TRUE(s->update("application/sdp", "v=0 hold\r\n"));
  auto upd = h.takeOne();
  h.inject(reply(*upd, 500, {}, "Retry-After: 3"), kAlice);
  EXPECT_EQ(r.events.back(), "answered 500");
  EXPECT_EQ(r.answeredMethod, Method::Update);
  ASSERT_TRUE(s->update("application/sdp", "v=0 hold\r\n"));
  upd = h.takeOne();
  h.inject(reply(*upd, 200, {}, kContact200, "v=0 held\r\n"), kAlice);
  EXPECT_EQ(r.events.back(), "answered 200");
  EXPECT_EQ(r.answeredBody, "v=0 held\r\n");
  EXPECT_EQ(s->state(), InviteSession::State::Confirmed);
}

TEST(OfferAnswer, ReinviteAnswered481EndsTheDialogWithoutBye) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  auto* s = confirmedUas(h, r, call);
  ASSERT_TRUE(s->reinvite("application/sdp", "v=0 x\r\n"));
  auto re = h.takeOne();
  h.inject(reply(*re, 481), kAlice);
  auto sent = h.take();
  EXPECT_FALSE(findSent(sent, "BYE"));
  EXPECT_EQ(r.events.back(), "terminated dialog error alice1");
}

TEST(OfferAnswer, ReinviteWhileAnotherInviteIsPendingFailsWith491) {
  Harness h;
  Recorder r;
  r.offerStatus = 0; // leave alice's re-INVITE unanswered
  UasCall call(h, r);
  auto* s = confirmedUas(h, r, call);
  h.inject(withBody(aliceRequest("INVITE", 2, call.tag, "re1", kAliceContact), "v=0 a\r\n"));
  auto busy = s->reinvite("application/sdp", "v=0 b\r\n", {}, {.retryGlare = false});
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, 491); // a relaying B2BUA answers its own leg 491 with this
}

TEST(OfferAnswer, UacDelayedOfferHoldsTheAckForTheAnswer) {
  Harness h;
  Recorder r;
  auto inv = startUac(h, r, {});
  ASSERT_TRUE(inv);
  std::string ok = reply(*inv, 200, "alice1", kContact200, "v=0 alice-offer\r\n");
  h.inject(ok, kAlice);
  EXPECT_TRUE(h.take().empty()); // RFC 3264 §5: the ACK must carry our answer
  EXPECT_EQ(r.events, (std::vector<std::string>{"connected"}));
  EXPECT_EQ(r.connectedBody, "v=0 alice-offer\r\n");
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->ackPending());
  EXPECT_EQ(s->state(), InviteSession::State::Confirmed);
  EXPECT_EQ(s->reinvite().error().code, 491);
  h.advance(Duration(500));
  h.inject(ok, kAlice); // retransmission while held: nothing to send
  EXPECT_TRUE(h.take().empty());
  ASSERT_TRUE(s->ack("application/sdp", "v=0 pbx-answer\r\n"));
  EXPECT_FALSE(s->ackPending());
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_EQ(ack->cseq().seq, inv->cseq().seq);
  EXPECT_EQ(ack->body(), "v=0 pbx-answer\r\n");
  std::string first = h.last[0].bytes;
  h.inject(ok, kAlice); // now the same ACK again
  h.take();
  ASSERT_EQ(h.last.size(), 1u);
  EXPECT_EQ(h.last[0].bytes, first);
  EXPECT_FALSE(s->ack("application/sdp", "v=0 again\r\n"));
}

TEST(OfferAnswer, EndWhileTheAckIsHeldSendsThePlainAckThenBye) {
  Harness h;
  Recorder r;
  auto inv = startUac(h, r, {});
  h.inject(reply(*inv, 200, "alice1", kContact200, "v=0 alice-offer\r\n"), kAlice);
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s && s->ackPending());
  ASSERT_TRUE(s->end());
  auto sent = h.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]->method(), Method::Ack);
  EXPECT_TRUE(sent[0]->body().empty());
  EXPECT_EQ(sent[1]->method(), Method::Bye);
  EXPECT_EQ(r.events.back(), "terminated local BYE alice1");
}

TEST(OfferAnswer, HeldAckIsSentPlainAndTheSessionEndedAfter64T1) {
  Harness h;
  Recorder r;
  auto inv = startUac(h, r, {});
  h.inject(reply(*inv, 200, "alice1", kContact200, "v=0 alice-offer\r\n"), kAlice);
  h.advance(Duration(64 * 500 - 1));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto sent = h.take();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]->method(), Method::Ack);
  EXPECT_TRUE(sent[0]->body().empty());
  EXPECT_EQ(sent[1]->method(), Method::Bye);
  EXPECT_EQ(r.events.back(), "terminated dialog error alice1");
}

TEST(OfferAnswer, ReinviteWithoutOfferHoldsTheAck) {
  Harness h;
  Recorder r;
  UasCall call(h, r);
  auto* s = confirmedUas(h, r, call);
  ASSERT_TRUE(s->reinvite());
  auto re = h.takeOne();
  ASSERT_TRUE(re);
  EXPECT_TRUE(re->body().empty());
  std::string ok = reply(*re, 200, {}, kContact200, "v=0 alice-new-offer\r\n");
  h.inject(ok, kAlice);
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(r.events.back(), "answered 200");
  EXPECT_EQ(r.answeredMethod, Method::Invite);
  EXPECT_EQ(r.answeredBody, "v=0 alice-new-offer\r\n");
  EXPECT_TRUE(s->ackPending());
  h.inject(ok, kAlice);
  EXPECT_TRUE(h.take().empty());
  ASSERT_TRUE(s->ack("application/sdp", "v=0 our-answer\r\n"));
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_EQ(ack->cseq().seq, re->cseq().seq);
  EXPECT_EQ(ack->body(), "v=0 our-answer\r\n");
}

TEST(OfferAnswer, UasOfferIn2xxGetsTheAnswerInTheAck) {
  Harness h;
  Recorder r;
  UasCall call(h, r, {}, {}); // alice's INVITE has no offer; our 200 carries one
  ASSERT_TRUE(call.answer);
  EXPECT_EQ(call.answer->body(), "v=0 offer-answer\r\n");
  call.ack("v=0 alice-answer\r\n");
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
  EXPECT_EQ(r.connectedBody, "v=0 alice-answer\r\n");
  h.take();
  // The same for an offerless re-INVITE: the application offers in the 200 (the Recorder answers
  // "v=0 answer"), the ACK's body reaches onOfferAnswered as Method::Ack.
  h.inject(aliceRequest("INVITE", 2, call.tag, "re1", kAliceContact));
  auto sent = h.take();
  auto ok = findSent(sent, "200");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body(), "v=0 answer\r\n");
  h.inject(withBody(aliceRequest("ACK", 2, call.tag, "reack1"), "v=0 alice-answer-2\r\n"));
  EXPECT_EQ(r.events.back(), "answered 0");
  EXPECT_EQ(r.answeredMethod, Method::Ack);
  EXPECT_EQ(r.answeredBody, "v=0 alice-answer-2\r\n");
}

} // namespace
} // namespace verbund::sip::test

// RFC 4028 session timers of the INVITE usage, both sides: negotiation, 422, refresh by UPDATE and
// by re-INVITE, expiry, refresh failures and glare, in simulated time over the real transaction
// layer. Intervals of a few seconds (below the RFC's 90 s floor, which the config allows).
#include "unit/sip/dialog/invite_harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

DialogConfig timerConfig(uint32_t sessionExpires = 4, uint32_t minSE = 2) {
  DialogConfig c = Harness::defaultConfig();
  c.sessionTimer.sessionExpires = sessionExpires;
  c.sessionTimer.minSE = minSE;
  return c;
}

size_t countHeaders(const Message& m, HeaderId id) {
  size_t n = 0;
  for (const Header& h : m.headers()) n += h.id == id;
  return n;
}

// UAC: sends an INVITE with an SDP offer to alice and returns it.
MessagePtr startUac(Harness& h, Recorder& r) {
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:alice@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:alice@192.0.2.2>";
  p.contentType = "application/sdp";
  p.body = "v=0 pbx-offer\r\n";
  EXPECT_TRUE(h.dm.invite(p).ok());
  return h.takeOne();
}

const char* kContact200 = "Contact: <sip:alice@192.0.2.2:5060>\r\n";

TEST(SessionTimer, UacWatchesWhenUasRefreshesAndEndsTheSessionWhenRefreshesStop) {
  Harness h(timerConfig());
  Recorder r;
  auto inv = startUac(h, r);
  ASSERT_TRUE(inv);
  // RFC 4028 §7.1: we support and ask for a timer; "100rel" is never offered (no PRACK).
  EXPECT_EQ(inv->header(HeaderId::Supported), "timer");
  EXPECT_EQ(countHeaders(*inv, HeaderId::Supported), 1u);
  EXPECT_EQ(inv->header(HeaderId::SessionExpires), "4");
  EXPECT_EQ(inv->header("Min-SE"), "2");
  h.inject(reply(*inv, 200, "alice1",
                 std::string(kContact200) + "Session-Expires: 4;refresher=uas\r\nRequire: timer",
                 "v=0 alice-answer\r\n"),
           kAlice);
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sessionInterval(), 4u);
  EXPECT_FALSE(s->isRefresher());

  h.advance(Duration(2000));
  EXPECT_TRUE(h.take().empty()); // alice refreshes, not we
  // Her refresh: a bodyless UPDATE, answered by the dialog layer; the timer starts again.
  h.inject(aliceRequest("UPDATE", 1, inv->fromTag(), "upd1",
                        "Supported: timer\r\nSession-Expires: 4;refresher=uac\r\n", inv->callId()));
  auto ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(ok->header(HeaderId::SessionExpires), "4;refresher=uac");
  EXPECT_EQ(ok->header(HeaderId::Require), "timer");
  EXPECT_EQ(r.events, (std::vector<std::string>{"connected"}));

  // RFC 4028 §10: no refresh within 4 - min(32, 4/3) s after the last one.
  h.advance(Duration(2666));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto bye = h.takeOne();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->method(), Method::Bye);
  EXPECT_EQ(r.events.back(), "terminated session expired alice1");
}

TEST(SessionTimer, UasLetsATimerCapableUacRefreshAndEndsTheSessionWithoutRefresh) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Supported: timer\r\nSession-Expires: 3\r\nMin-SE: 2\r\n");
  ASSERT_TRUE(call.answer);
  // RFC 4028 §9: the UAC's interval (>= our Min-SE), and it refreshes since it supports timers.
  EXPECT_EQ(call.answer->header(HeaderId::SessionExpires), "3;refresher=uac");
  EXPECT_EQ(call.answer->header(HeaderId::Require), "timer");
  call.ack();
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->isRefresher());

  // A refresh by re-INVITE (same SDP) goes to the application like any re-INVITE.
  h.advance(Duration(1999));
  EXPECT_TRUE(h.take().empty());
  h.inject(withBody(aliceRequest("INVITE", 2, call.tag, "re1",
                                 std::string(kAliceContact) +
                                     "Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n"),
                    "v=0 alice-offer\r\n"));
  auto sent = h.take();
  auto ok = findSent(sent, "200");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->header(HeaderId::SessionExpires), "3;refresher=uac");
  EXPECT_EQ(ok->header(HeaderId::Require), "timer");
  h.inject(aliceRequest("ACK", 2, call.tag, "reack1"));
  h.advance(Duration(1999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto bye = h.takeOne();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->method(), Method::Bye);
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected", "offer INVITE",
                                                "terminated session expired alice1"}));
}

TEST(SessionTimer, UasRefreshesByUpdateForAPeerWithoutTimerSupport) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Allow: INVITE, ACK, CANCEL, BYE, UPDATE\r\n");
  ASSERT_TRUE(call.answer);
  EXPECT_EQ(call.answer->header(HeaderId::SessionExpires), "4;refresher=uas");
  EXPECT_FALSE(call.answer->header(HeaderId::Require)); // RFC 4028 §9: the UAC did not say timer
  call.ack();
  h.advance(Duration(1999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto upd = h.takeOne();
  ASSERT_TRUE(upd);
  EXPECT_EQ(upd->method(), Method::Update);
  EXPECT_TRUE(upd->body().empty());
  EXPECT_EQ(upd->header(HeaderId::SessionExpires), "4;refresher=uac");
  EXPECT_EQ(upd->header(HeaderId::Supported), "timer");
  h.inject(reply(*upd, 200, {}, kContact200), kAlice);
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(2000));
  auto again = h.takeOne();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->method(), Method::Update);
  EXPECT_EQ(again->cseq().seq, upd->cseq().seq + 1);
  // Our own refreshes never reach the application.
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
}

TEST(SessionTimer, UasRefreshesByReinviteWithTheUnchangedSdpItSent) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Supported: timer\r\nSession-Expires: 4;refresher=uas\r\n");
  ASSERT_TRUE(call.answer);
  EXPECT_EQ(call.answer->header(HeaderId::SessionExpires), "4;refresher=uas");
  call.ack();
  h.advance(Duration(2000));
  auto re = h.takeOne();
  ASSERT_TRUE(re);
  EXPECT_EQ(re->method(), Method::Invite); // no Allow: UPDATE from alice
  EXPECT_EQ(re->body(), "v=0 offer-answer\r\n");
  EXPECT_EQ(re->header(HeaderId::ContentType), "application/sdp");
  EXPECT_EQ(re->header(HeaderId::SessionExpires), "4;refresher=uac");
  h.inject(reply(*re, 200, {}, std::string(kContact200) + "Session-Expires: 4;refresher=uac",
                 "v=0 alice-offer\r\n"),
           kAlice);
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  EXPECT_TRUE(ack->body().empty());
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
  h.advance(Duration(2000));
  auto again = h.takeOne();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->method(), Method::Invite);
  EXPECT_EQ(again->cseq().seq, re->cseq().seq + 1);
  EXPECT_EQ(again->body(), "v=0 offer-answer\r\n");
}

TEST(SessionTimer, UasAnswers422BelowMinSEOnlyToTimerCapableUacs) {
  Harness h(timerConfig(4, 3));
  Recorder r;
  h.dm.setInviteHandler(&r);
  r.onNew = [](InviteSession& s, const Message&) { ASSERT_TRUE(s.accept()); };
  h.inject(aliceRequest("INVITE", 1, {}, "small1",
                        std::string(kAliceContact) + "Supported: timer\r\nSession-Expires: 2\r\n",
                        "small-1"));
  auto sent = h.take();
  auto tooSmall = findSent(sent, "422");
  ASSERT_TRUE(tooSmall);
  EXPECT_EQ(tooSmall->header("Min-SE"), "3");
  EXPECT_TRUE(r.events.empty()); // never reached the application
  // A UAC without timer support would not understand 422: its interval is raised instead.
  h.inject(aliceRequest("INVITE", 1, {}, "small2",
                        std::string(kAliceContact) + "Session-Expires: 2\r\n", "small-2"));
  sent = h.take();
  auto ok = findSent(sent, "200");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->header(HeaderId::SessionExpires), "3;refresher=uas");
  EXPECT_EQ(r.events, (std::vector<std::string>{"new"}));
}

TEST(SessionTimer, UacRetries422OnceAndRefreshesAloneWhenThe2xxHasNoSessionExpires) {
  Harness h(timerConfig());
  Recorder r;
  auto inv = startUac(h, r);
  ASSERT_TRUE(inv);
  h.inject(reply(*inv, 422, "alice1", "Min-SE: 10"), kAlice);
  auto sent = h.take();
  ASSERT_TRUE(findSent(sent, "ACK")); // the transaction layer ACKs the 422
  auto retry = findSent(sent, "INVITE");
  ASSERT_TRUE(retry);
  // RFC 4028 §7.4: a new CSeq, Session-Expires raised to the 422's Min-SE.
  EXPECT_EQ(retry->cseq().seq, inv->cseq().seq + 1);
  EXPECT_EQ(retry->callId(), inv->callId());
  EXPECT_EQ(retry->header(HeaderId::SessionExpires), "10");
  EXPECT_EQ(retry->header("Min-SE"), "10");
  EXPECT_EQ(retry->body(), "v=0 pbx-offer\r\n");
  // A second 422 is not retried.
  h.inject(reply(*retry, 200, "alice1", kContact200, "v=0 alice-answer\r\n"), kAlice);
  ASSERT_TRUE(h.takeOne());
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sessionInterval(), 10u);
  EXPECT_TRUE(s->isRefresher());
  h.advance(Duration(4999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto re = h.takeOne();
  ASSERT_TRUE(re);
  EXPECT_EQ(re->method(), Method::Invite);
  EXPECT_EQ(re->body(), "v=0 pbx-offer\r\n");
  EXPECT_EQ(re->header(HeaderId::SessionExpires), "10;refresher=uac");
  EXPECT_EQ(r.events, (std::vector<std::string>{"connected"}));
}

TEST(SessionTimer, Second422IsAFailure) {
  Harness h(timerConfig());
  Recorder r;
  auto inv = startUac(h, r);
  ASSERT_TRUE(inv);
  h.inject(reply(*inv, 422, "alice1", "Min-SE: 10"), kAlice);
  auto sent = h.take();
  auto retry = findSent(sent, "INVITE");
  ASSERT_TRUE(retry);
  h.inject(reply(*retry, 422, "alice1", "Min-SE: 20"), kAlice);
  sent = h.take();
  EXPECT_FALSE(findSent(sent, "INVITE"));
  EXPECT_EQ(r.events, (std::vector<std::string>{"failure 422"}));
}

TEST(SessionTimer, RefreshAnswered408EndsTheSessionWithBye) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Allow: INVITE, ACK, BYE, UPDATE\r\n");
  call.ack();
  h.advance(Duration(2000));
  auto upd = h.takeOne();
  ASSERT_TRUE(upd);
  h.inject(reply(*upd, 408), kAlice);
  auto bye = h.takeOne();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->method(), Method::Bye);
  EXPECT_EQ(r.events.back(), "terminated dialog error alice1");
}

TEST(SessionTimer, RefreshTimeoutEndsTheSessionWithBye) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Allow: INVITE, ACK, BYE, UPDATE\r\n");
  call.ack();
  h.advance(Duration(2000));
  auto upd = h.takeOne();
  ASSERT_TRUE(upd);
  h.advance(Duration(64 * 500)); // RFC 3261 §17.1.2.2: Timer F
  auto sent = h.take();
  ASSERT_TRUE(findSent(sent, "BYE"));
  EXPECT_EQ(r.events.back(), "terminated dialog error alice1");
}

TEST(SessionTimer, GlareOnARefreshIsRetriedAndStaysHidden) {
  Harness h(timerConfig());
  Recorder r;
  UasCall call(h, r, "Supported: timer\r\nSession-Expires: 4;refresher=uas\r\n");
  call.ack();
  h.advance(Duration(2000));
  auto re = h.takeOne();
  ASSERT_TRUE(re);
  h.inject(reply(*re, 491), kAlice);
  auto ack = h.takeOne();
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->method(), Method::Ack);
  h.advance(Duration(1)); // RFC 3261 §14.1: 0-2 s for the non-owner of the Call-ID (0 here)
  auto retry = h.takeOne();
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->method(), Method::Invite);
  EXPECT_EQ(retry->cseq().seq, re->cseq().seq + 1);
  EXPECT_EQ(retry->body(), "v=0 offer-answer\r\n");
  h.inject(reply(*retry, 200, {}, std::string(kContact200) + "Session-Expires: 4;refresher=uac",
                 "v=0 alice-offer\r\n"),
           kAlice);
  ASSERT_TRUE(h.takeOne()); // ACK
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
  h.advance(Duration(2000));
  auto next = h.takeOne();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->cseq().seq, retry->cseq().seq + 1);
}

TEST(SessionTimer, BodylessUpdateIsAnsweredByTheDialogLayer) {
  Harness h; // default config: 1800 s
  Recorder r;
  UasCall call(h, r);
  call.ack();
  h.take();
  h.inject(aliceRequest("UPDATE", 2, call.tag, "upd1", "Contact: <sip:alice@192.0.2.8>\r\n"));
  auto ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(ok->header(HeaderId::SessionExpires), "1800;refresher=uas");
  EXPECT_EQ(ok->contacts().size(), 1u);
  EXPECT_EQ(r.events, (std::vector<std::string>{"new", "connected"}));
  EXPECT_EQ(h.dm.inviteSession(r.session)->dialog().remoteTarget(), "sip:alice@192.0.2.8");
}

TEST(SessionTimer, DisabledSendsNoTimerHeaders) {
  Harness h(timerConfig(0, 2));
  Recorder r;
  auto inv = startUac(h, r);
  ASSERT_TRUE(inv);
  EXPECT_FALSE(inv->header(HeaderId::Supported));
  EXPECT_FALSE(inv->header(HeaderId::SessionExpires));
  EXPECT_FALSE(inv->header("Min-SE"));
  h.inject(reply(*inv, 200, "alice1", kContact200, "v=0 alice-answer\r\n"), kAlice);
  h.take();
  EXPECT_EQ(h.dm.inviteSession(r.session)->sessionInterval(), 0u);
  h.advance(Duration(3600 * 1000));
  EXPECT_TRUE(h.take().empty());
}

// Per-dialog intervals (calls between nodes of a federation run a shorter one than phones): the
// UAC's INVITE asks for InviteParams::sessionTimer, and the dialogs it creates keep it.
TEST(SessionTimer, InviteParamsChooseTheIntervalOfTheirDialogs) {
  Harness h(timerConfig(0, 2)); // off for everything else
  Recorder r;
  h.dm.setInviteHandler(&r);
  DialogManager::InviteParams p;
  p.requestUri = "sip:alice@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:alice@192.0.2.2>";
  p.contentType = "application/sdp";
  p.body = "v=0 pbx-offer\r\n";
  p.sessionTimer = SessionTimerConfig{6, 6};
  ASSERT_TRUE(h.dm.invite(p).ok());
  auto inv = h.takeOne();
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->header(HeaderId::SessionExpires), "6");
  EXPECT_EQ(inv->header("Min-SE"), "6");
  // RFC 3311 §5.1: the peer may refresh by UPDATE (answered here, never relayed).
  EXPECT_EQ(inv->header(HeaderId::Allow), "INVITE, ACK, CANCEL, BYE, UPDATE");
  h.inject(reply(*inv, 200, "alice1",
                 std::string(kContact200) + "Session-Expires: 6;refresher=uac\r\nRequire: timer",
                 "v=0 alice-answer\r\n"),
           kAlice);
  h.take(); // ACK
  auto* s = h.dm.inviteSession(r.session);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sessionInterval(), 6u);
  EXPECT_TRUE(s->isRefresher());
  // RFC 4028 §10: we refresh at half the interval.
  h.advance(Duration(2999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto refresh = h.takeOne();
  ASSERT_TRUE(refresh);
  EXPECT_TRUE(refresh->method() == Method::Update || refresh->method() == Method::Invite);
  EXPECT_EQ(refresh->header("Min-SE"), "6");
}

// The UAS side: DialogConfig::sessionTimerFor picks the interval by the request (by its source,
// on the node); requests it returns nothing for keep the configured one.
TEST(SessionTimer, SessionTimerForChoosesTheUasInterval) {
  DialogConfig c = timerConfig(1800, 90);
  c.sessionTimerFor = [](const Message& request) -> std::optional<SessionTimerConfig> {
    if (request.header("X-Node")) return SessionTimerConfig{4, 4};
    return std::nullopt;
  };
  {
    Harness h(c);
    Recorder r;
    UasCall call(h, r, "X-Node: b\r\nSupported: timer\r\nSession-Expires: 1800\r\n");
    ASSERT_TRUE(call.answer);
    // Our largest interval for it is 4 s: the UAC's 1800 is lowered (RFC 4028 §9).
    EXPECT_EQ(call.answer->header(HeaderId::SessionExpires), "4;refresher=uac");
    EXPECT_EQ(call.answer->header(HeaderId::Allow), "INVITE, ACK, CANCEL, BYE, UPDATE");
    call.ack();
    h.advance(Duration(2666));
    EXPECT_TRUE(h.take().empty());
    h.advance(Duration(1));
    auto bye = h.takeOne();
    ASSERT_TRUE(bye);
    EXPECT_EQ(bye->method(), Method::Bye);
  }
  {
    Harness h(c);
    Recorder r;
    UasCall call(h, r, "Supported: timer\r\nSession-Expires: 1800\r\n");
    ASSERT_TRUE(call.answer);
    EXPECT_EQ(call.answer->header(HeaderId::SessionExpires), "1800;refresher=uac");
  }
  {
    // Below the chosen Min-SE: 422 with it.
    Harness h(c);
    Recorder r;
    h.dm.setInviteHandler(&r);
    h.inject(aliceRequest("INVITE", 1, {}, "inv2",
                          std::string(kAliceContact) +
                              "X-Node: b\r\nSupported: timer\r\nSession-Expires: 3\r\n"));
    auto sent = h.take();
    auto tooSmall = findSent(sent, "422");
    ASSERT_TRUE(tooSmall);
    EXPECT_EQ(tooSmall->header("Min-SE"), "4");
  }
}

} // namespace
} // namespace verbund::sip::test

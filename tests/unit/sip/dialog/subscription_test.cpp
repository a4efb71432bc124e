// RFC 6665 subscription scripts: notifier and subscriber sides in simulated time.
#include "sip/dialog/subscription.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

const Peer kPhone = udpPeer("192.0.2.2:5060");

MessagePtr pick(std::vector<MessagePtr>& all, std::string_view what) {
  for (auto& m : all) {
    if (!m) continue;
    if (m->isRequest() && m->methodName() == what) return std::move(m);
    if (m->isResponse() && std::to_string(m->statusCode()) == what) return std::move(m);
  }
  return nullptr;
}

std::string phoneSubscribe(uint32_t cseq, std::string_view toTag, std::string_view expires,
                           std::string_view event = "dialog") {
  std::string s = "SUBSCRIBE sip:201@192.0.2.1 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKsub" +
                  std::to_string(cseq) +
                  "\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sip:200@192.0.2.1>;tag=phone1\r\n"
                  "To: <sip:201@192.0.2.1>";
  if (!toTag.empty()) s.append(";tag=").append(toTag);
  s.append("\r\nCall-ID: blf-1\r\nCSeq: ").append(std::to_string(cseq)).append(" SUBSCRIBE\r\n");
  s.append("Contact: <sip:200@192.0.2.2:5060>\r\n");
  if (!event.empty()) s.append("Event: ").append(event).append("\r\n");
  if (!expires.empty()) s.append("Expires: ").append(expires).append("\r\n");
  s.append("Accept: application/dialog-info+xml\r\nContent-Length: 0\r\n\r\n");
  return s;
}

struct Notifier final : ServerSubscriptionHandler {
  void onNewSubscription(ServerSubscription& s, const Message&) override {
    id = s.id();
    ASSERT_TRUE(s.accept(SubState::Active, "application/dialog-info+xml", "<idle/>"));
  }
  void onRefresh(ServerSubscription&, const Message&) override { events.push_back("refresh"); }
  void onTerminated(ServerSubscription&, std::string_view reason) override {
    events.push_back("terminated " + std::string(reason));
  }
  UsageId id = 0;
  std::vector<std::string> events;
};

TEST(ServerSubscription, LifecycleInitialNotifyRefreshStateChangeAndExpiry) {
  Harness h;
  Notifier n;
  h.dm.setServerSubscriptionHandler(&n);
  h.inject(phoneSubscribe(1, {}, "600"), kPhone);
  auto sent = h.take();
  ASSERT_EQ(sent.size(), 2u);
  auto ok = pick(sent, "200");
  auto notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  EXPECT_EQ(ok->header(HeaderId::Expires), "600");
  std::string tag(ok->toTag());
  EXPECT_FALSE(tag.empty());
  // RFC 6665 §4.2.1.1: the first NOTIFY right after the 2xx.
  EXPECT_EQ(notify->requestUri().text, "sip:200@192.0.2.2:5060");
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "active;expires=600");
  EXPECT_EQ(notify->header(HeaderId::Event), "dialog");
  EXPECT_EQ(notify->body(), "<idle/>");
  EXPECT_EQ(notify->fromTag(), tag);
  EXPECT_EQ(notify->toTag(), "phone1");
  uint32_t firstCSeq = notify->cseq().seq;
  auto* sub = h.dm.serverSubscription(n.id);
  ASSERT_TRUE(sub);

  // A state change while the first NOTIFY is unanswered is queued, newest content wins.
  ASSERT_TRUE(sub->notify(SubState::Active, "application/dialog-info+xml", "<ringing/>"));
  ASSERT_TRUE(sub->notify(SubState::Active, "application/dialog-info+xml", "<busy/>"));
  EXPECT_TRUE(h.take().empty());
  h.inject(reply(*notify, 200), kPhone);
  auto next = h.takeOne();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body(), "<busy/>");
  EXPECT_EQ(next->cseq().seq, firstCSeq + 1);
  h.inject(reply(*next, 200), kPhone);

  // Refresh after 300 s: 200 + NOTIFY with the current state.
  h.advance(Duration(300000));
  EXPECT_TRUE(h.take().empty());
  h.inject(phoneSubscribe(2, tag, "600"), kPhone);
  sent = h.take();
  ok = pick(sent, "200");
  notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  EXPECT_EQ(notify->body(), "<busy/>");
  EXPECT_EQ(notify->cseq().seq, firstCSeq + 2);
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "active;expires=600");
  h.inject(reply(*notify, 200), kPhone);
  EXPECT_EQ(n.events, (std::vector<std::string>{"refresh"}));

  // No further refresh: at expiry a terminated NOTIFY (RFC 6665 §4.2.2).
  h.advance(Duration(599999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  notify = h.takeOne();
  ASSERT_TRUE(notify);
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "terminated;reason=timeout");
  h.inject(reply(*notify, 200), kPhone);
  EXPECT_EQ(n.events.back(), "terminated timeout");
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.dialogCount(), 0u);
}

TEST(ServerSubscription, UnsubscribeSendsTerminatedNotify) {
  Harness h;
  Notifier n;
  h.dm.setServerSubscriptionHandler(&n);
  h.inject(phoneSubscribe(1, {}, "600"), kPhone);
  auto sent = h.take();
  auto ok = pick(sent, "200");
  auto notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  h.inject(reply(*notify, 200), kPhone);
  h.inject(phoneSubscribe(2, ok->toTag(), "0"), kPhone);
  sent = h.take();
  ok = pick(sent, "200");
  notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  EXPECT_EQ(ok->header(HeaderId::Expires), "0");
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "terminated;reason=timeout");
  h.inject(reply(*notify, 200), kPhone);
  EXPECT_EQ(n.events.back(), "terminated timeout");
}

TEST(ServerSubscription, RejectsShortExpiresAndMissingEvent) {
  Harness h;
  Notifier n;
  h.dm.setServerSubscriptionHandler(&n);
  h.inject(phoneSubscribe(1, {}, "10"), kPhone);
  auto r = h.takeOne();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 423);
  EXPECT_EQ(r->header(HeaderId::MinExpires), "60");
  h.inject(phoneSubscribe(2, {}, "600", ""), kPhone);
  r = h.takeOne();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 489);
  EXPECT_EQ(h.dm.usageCount(), 0u);
}

TEST(ServerSubscription, NotifyFailureEndsSubscription) {
  Harness h;
  Notifier n;
  h.dm.setServerSubscriptionHandler(&n);
  h.inject(phoneSubscribe(1, {}, "600"), kPhone);
  auto sent = h.take();
  auto notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(notify);
  h.inject(reply(*notify, 481), kPhone);
  EXPECT_EQ(n.events.back(), "terminated notify failed");
}

struct Subscriber final : ClientSubscriptionHandler {
  void onNotify(ClientSubscription&, const SubscriptionStateValue& v, const Message& m) override {
    events.push_back("notify " + std::string(subStateName(v.state)) + " " + std::string(m.body()));
  }
  void onAccepted(ClientSubscription& s, const Message&) override {
    events.push_back("accepted " + std::to_string(s.expires()));
  }
  void onTerminated(ClientSubscription&, std::string_view reason, int status,
                    std::optional<uint32_t>) override {
    events.push_back("terminated " + std::string(reason) + " " + std::to_string(status));
  }
  std::vector<std::string> events;
};

std::string notifierNotify(const Message& subscribe, std::string_view toTagOfNotifier,
                           uint32_t cseq, std::string_view state, std::string_view body) {
  std::string s = "NOTIFY sip:pbx@192.0.2.1:5060 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKnot" +
                  std::to_string(cseq) + "\r\nMax-Forwards: 70\r\n";
  s.append("From: <sip:200@192.0.2.2>;tag=").append(toTagOfNotifier).append("\r\n");
  s.append("To: ").append(subscribe.from().text).append("\r\n");
  s.append("Call-ID: ").append(subscribe.callId()).append("\r\n");
  s.append("CSeq: ").append(std::to_string(cseq)).append(" NOTIFY\r\n");
  s.append("Contact: <sip:200@192.0.2.2:5060>\r\nEvent: dialog\r\n");
  s.append("Subscription-State: ").append(state).append("\r\n");
  s.append("Content-Type: application/dialog-info+xml\r\n");
  s.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  s.append(body);
  return s;
}

DialogManager::SubscribeParams blfParams() {
  DialogManager::SubscribeParams p;
  p.requestUri = "sip:200@192.0.2.2";
  p.from = "<sip:pbx@192.0.2.1>";
  p.to = "<sip:200@192.0.2.2>";
  p.event = "dialog";
  p.accept = "application/dialog-info+xml";
  p.expires = 600;
  return p;
}

TEST(ClientSubscription, SubscribeNotifyRefreshUnsubscribe) {
  Harness h;
  Subscriber sh;
  auto id = h.dm.subscribe(blfParams(), sh);
  ASSERT_TRUE(id.ok());
  auto sub = h.takeOne();
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->method(), Method::Subscribe);
  EXPECT_EQ(sub->header(HeaderId::Event), "dialog");
  EXPECT_EQ(sub->header(HeaderId::Expires), "600");
  h.inject(reply(*sub, 200, "n1", "Expires: 600\r\nContact: <sip:200@192.0.2.2:5060>"), kPhone);
  h.inject(notifierNotify(*sub, "n1", 1, "active;expires=600", "<idle/>"), kPhone);
  auto ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(sh.events, (std::vector<std::string>{"accepted 600", "notify active <idle/>"}));
  auto* cs = h.dm.clientSubscription(*id);
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->state(), ClientSubscription::State::Active);

  // Refresh 30 s (the margin) before expiry.
  h.advance(Duration(569999));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  auto refresh = h.takeOne();
  ASSERT_TRUE(refresh);
  EXPECT_EQ(refresh->method(), Method::Subscribe);
  EXPECT_EQ(refresh->callId(), sub->callId());
  EXPECT_EQ(refresh->toTag(), "n1");
  EXPECT_EQ(refresh->cseq().seq, sub->cseq().seq + 1);
  EXPECT_EQ(refresh->requestUri().text, "sip:200@192.0.2.2:5060");
  h.inject(reply(*refresh, 200, {}, "Expires: 600"), kPhone);
  EXPECT_EQ(sh.events.back(), "accepted 600");

  // NOTIFY out of CSeq order -> 500 (RFC 3261 §12.2.2).
  h.inject(notifierNotify(*sub, "n1", 1, "active;expires=600", "<old/>"), kPhone);
  auto r = h.takeOne();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 500);

  ASSERT_TRUE(cs->unsubscribe());
  auto unsub = h.takeOne();
  ASSERT_TRUE(unsub);
  EXPECT_EQ(unsub->header(HeaderId::Expires), "0");
  h.inject(reply(*unsub, 200, {}, "Expires: 0"), kPhone);
  h.inject(notifierNotify(*sub, "n1", 2, "terminated;reason=timeout", ""), kPhone);
  ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(sh.events.back(), "terminated timeout 0");
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.usageCount(), 0u);
}

TEST(ClientSubscription, NotifyBeforeOkCreatesDialogAndUnknownGets481) {
  Harness h;
  Subscriber sh;
  auto id = h.dm.subscribe(blfParams(), sh);
  ASSERT_TRUE(id.ok());
  auto sub = h.takeOne();
  ASSERT_TRUE(sub);
  // RFC 6665 §4.1.2.4: the NOTIFY may overtake the 2xx.
  h.inject(notifierNotify(*sub, "n1", 1, "pending;expires=600", ""), kPhone);
  auto ok = h.takeOne();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(h.dm.dialogCount(), 1u);
  h.inject(reply(*sub, 200, "n1", "Expires: 300"), kPhone);
  EXPECT_EQ(sh.events, (std::vector<std::string>{"notify pending ", "accepted 300"}));
  // A NOTIFY for a subscription we do not have.
  std::string stray = notifierNotify(*sub, "other", 5, "active", "");
  stray.replace(stray.find(sub->callId()), sub->callId().size(), "nosuchcall");
  h.inject(stray, kPhone);
  auto r = h.takeOne();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 481);
}

TEST(ClientSubscription, MissingSubscriptionStateIs400) {
  Harness h;
  Subscriber sh;
  ASSERT_TRUE(h.dm.subscribe(blfParams(), sh).ok());
  auto sub = h.takeOne();
  h.inject(reply(*sub, 200, "n1", "Expires: 600\r\nContact: <sip:200@192.0.2.2:5060>"), kPhone);
  std::string n = notifierNotify(*sub, "n1", 1, "active", "");
  n.erase(n.find("Subscription-State"), std::string("Subscription-State: active\r\n").size());
  h.inject(n, kPhone);
  auto r = h.takeOne();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->statusCode(), 400);
}

TEST(SubscriptionState, Parses) {
  auto v = parseSubscriptionState("terminated;reason=probation;retry-after=30");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->state, SubState::Terminated);
  EXPECT_EQ(v->reason, "probation");
  EXPECT_EQ(v->retryAfter, 30u);
  EXPECT_FALSE(parseSubscriptionState("bogus").ok());
  auto e = parseEvent("Dialog;id=7");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(sameEvent(*e, EventValue{"dialog", "7"}));
  EXPECT_FALSE(sameEvent(*e, EventValue{"dialog", ""}));
}

} // namespace
} // namespace verbund::sip::test

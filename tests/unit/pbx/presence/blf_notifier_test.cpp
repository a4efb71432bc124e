// BLF notifier (RFC 4235 over RFC 6665): SUBSCRIBE scripts against the real transaction and
// dialog layers over a fake transport, in simulated time.
#include "pbx/presence/blf_notifier.h"

#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

using sip::HeaderId;
using sip::Message;
using sip::MessagePtr;
using sip::test::Harness;
using sip::test::reply;

const sip::Peer kPhone = sip::test::udpPeer("192.0.2.2:5060");
const UserKey kBob{"node-a", "201"};
const UserKey kRemote{"node-b", "301"};

MessagePtr pick(std::vector<MessagePtr>& all, std::string_view what) {
  for (auto& m : all) {
    if (!m) continue;
    if (m->isRequest() && m->methodName() == what) return std::move(m);
    if (m->isResponse() && std::to_string(m->statusCode()) == what) return std::move(m);
  }
  return nullptr;
}

struct Sub {
  std::string user = "201";
  std::string callId = "blf-1";
  uint32_t cseq = 1;
  std::string toTag;
  std::string expires = "600";
  std::string event = "dialog";
  std::string accept = "application/dialog-info+xml";
  std::string from = "200";
};

std::string subscribe(const Sub& s) {
  std::string m = "SUBSCRIBE sip:" + s.user + "@192.0.2.1 SIP/2.0\r\n" +
                  "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK" + s.callId + "-" +
                  std::to_string(s.cseq) + "\r\nMax-Forwards: 70\r\n" + "From: <sip:" + s.from +
                  "@192.0.2.1>;tag=ph-" + s.callId + "\r\nTo: <sip:" + s.user + "@192.0.2.1>";
  if (!s.toTag.empty()) m += ";tag=" + s.toTag;
  m += "\r\nCall-ID: " + s.callId + "\r\nCSeq: " + std::to_string(s.cseq) + " SUBSCRIBE\r\n";
  m += "Contact: <sip:" + s.from + "@192.0.2.2:5060>\r\n";
  if (!s.event.empty()) m += "Event: " + s.event + "\r\n";
  if (!s.expires.empty()) m += "Expires: " + s.expires + "\r\n";
  if (!s.accept.empty()) m += "Accept: " + s.accept + "\r\n";
  return m + "Content-Length: 0\r\n\r\n";
}

DialogInfoDocument body(const Message& notify) {
  EXPECT_EQ(notify.header(HeaderId::ContentType), kDialogInfoContentType);
  EXPECT_EQ(notify.header(HeaderId::Event), "dialog");
  auto doc = parseDialogInfo(notify.body());
  EXPECT_TRUE(doc) << (doc ? "" : doc.error().message) << "\n" << notify.body();
  return doc ? std::move(*doc) : DialogInfoDocument{};
}

DialogInfo incoming(std::string id, std::string caller, std::string display) {
  DialogInfo d;
  d.id = std::move(id);
  d.callId = "call-" + d.id + "@192.0.2.1";
  d.localTag = "pbx-" + d.id;
  d.remoteTag = "bob-" + d.id;
  d.direction = DialogDirection::Recipient;
  d.remote.identity = "sip:" + caller + "@192.0.2.1";
  d.remote.display = std::move(display);
  d.remote.target = "sip:" + caller + "@192.0.2.10:5060";
  return d;
}

struct BlfNotifierTest : ::testing::Test {
  BlfNotifierTest() {
    BlfNotifierConfig c;
    c.authorize = [this](const Message& m) {
      ++authorizeCalls;
      return m.from().uri.user != "intruder";
    };
    c.resolve = [](std::string_view ext) -> std::optional<UserKey> {
      if (ext == "201") return kBob;
      if (ext == "301") return kRemote;
      return std::nullopt;
    };
    blf = std::make_unique<BlfNotifier>(h.dm, hub, std::move(c));
    h.dm.setServerSubscriptionHandler(blf.get());
  }
  ~BlfNotifierTest() override { h.dm.setServerSubscriptionHandler(nullptr); }

  // Subscribes and answers the first NOTIFY; returns the dialog's To tag and the first document.
  std::pair<std::string, DialogInfoDocument> watch(Sub s = {}) {
    h.inject(subscribe(s), kPhone);
    auto sent = h.take();
    auto ok = pick(sent, "200");
    auto notify = pick(sent, "NOTIFY");
    EXPECT_TRUE(ok && notify);
    if (!ok || !notify) return {};
    EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "active;expires=" + s.expires);
    h.inject(reply(*notify, 200), kPhone);
    return {std::string(ok->toTag()), body(*notify)};
  }
  // The one NOTIFY sent since the last look, answered 200.
  DialogInfoDocument nextNotify() {
    auto n = h.takeOne();
    EXPECT_TRUE(n);
    if (!n) return {};
    EXPECT_EQ(n->methodName(), "NOTIFY");
    h.inject(reply(*n, 200), kPhone);
    return body(*n);
  }
  int rejectStatus(Sub s) {
    h.inject(subscribe(s), kPhone);
    auto r = h.takeOne();
    return r && r->isResponse() ? r->statusCode() : 0;
  }

  Harness h;
  PresenceHub hub;
  std::unique_ptr<BlfNotifier> blf;
  int authorizeCalls = 0;
};

TEST_F(BlfNotifierTest, InitialNotifyHasFullIdleState) {
  auto [tag, doc] = watch();
  EXPECT_FALSE(tag.empty());
  EXPECT_EQ(doc.version, 0u);
  EXPECT_TRUE(doc.full);
  EXPECT_EQ(doc.entity, "sip:201@192.0.2.1");
  EXPECT_EQ(doc.line, LineState::Idle);
  EXPECT_TRUE(doc.dialogs.empty());
  EXPECT_EQ(blf->watcherCount(), 1u);
  EXPECT_EQ(hub.listenerCount(), 1u);
}

TEST_F(BlfNotifierTest, InitialNotifyShowsACallAlreadyRinging) {
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  auto [tag, doc] = watch();
  EXPECT_EQ(doc.line, LineState::Ringing);
  ASSERT_EQ(doc.dialogs.size(), 1u);
  EXPECT_EQ(doc.dialogs[0].remote.display, "Alice");
}

TEST_F(BlfNotifierTest, EarlyConfirmedTerminatedImmediatelyWithCallerAndReplacesIds) {
  auto [tag, first] = watch();
  auto t0 = h.timers.now();

  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  // Sent synchronously, no simulated time passed: the NOTIFY is on the wire in the same loop
  // iteration as the call event.
  EXPECT_EQ(h.tp.sent.size(), 1u);
  EXPECT_EQ(h.timers.now(), t0);
  DialogInfoDocument early = nextNotify();
  EXPECT_EQ(early.version, 1u);
  EXPECT_EQ(early.line, LineState::Ringing);
  ASSERT_EQ(early.dialogs.size(), 1u);
  const DialogInfo& d = early.dialogs[0];
  EXPECT_EQ(d.state, DialogState::Early);
  EXPECT_EQ(d.direction, DialogDirection::Recipient);
  EXPECT_EQ(d.remote.identity, "sip:100@192.0.2.1");
  EXPECT_EQ(d.remote.display, "Alice");
  EXPECT_EQ(d.remote.target, "sip:100@192.0.2.10:5060");
  EXPECT_EQ(d.local.identity, "sip:201@192.0.2.1"); // filled with the entity
  // RFC 4235 §4.1 / RFC 3891: what a phone needs for INVITE with Replaces.
  EXPECT_EQ(d.callId, "call-c1@192.0.2.1");
  EXPECT_EQ(d.localTag, "pbx-c1");
  EXPECT_EQ(d.remoteTag, "bob-c1");

  hub.callEvent(kBob, CallEventKind::Answered, incoming("c1", "100", "Alice"));
  EXPECT_EQ(h.timers.now(), t0);
  DialogInfoDocument confirmed = nextNotify();
  EXPECT_EQ(confirmed.version, 2u);
  EXPECT_EQ(confirmed.line, LineState::Busy);
  ASSERT_EQ(confirmed.dialogs.size(), 1u);
  EXPECT_EQ(confirmed.dialogs[0].state, DialogState::Confirmed);

  DialogInfo bye = incoming("c1", "100", "Alice");
  bye.stateEvent = "remote-bye";
  hub.callEvent(kBob, CallEventKind::Ended, bye);
  DialogInfoDocument ended = nextNotify();
  EXPECT_EQ(ended.version, 3u);
  EXPECT_EQ(ended.line, LineState::Idle);
  ASSERT_EQ(ended.dialogs.size(), 1u);
  EXPECT_EQ(ended.dialogs[0].state, DialogState::Terminated);
  EXPECT_EQ(ended.dialogs[0].stateEvent, "remote-bye");
  EXPECT_EQ(h.timers.now(), t0);
}

TEST_F(BlfNotifierTest, ChangesWhileANotifyIsInFlightSendTheNewestState) {
  watch();
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  auto inFlight = h.takeOne();
  ASSERT_TRUE(inFlight);
  hub.callEvent(kBob, CallEventKind::Answered, incoming("c1", "100", "Alice"));
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c2", "102", "Carol"));
  EXPECT_TRUE(h.take().empty()); // RFC 6665 §4.2.2: one NOTIFY at a time
  h.inject(reply(*inFlight, 200), kPhone);
  DialogInfoDocument doc = nextNotify();
  EXPECT_GT(doc.version, 1u); // full state: versions may skip a superseded document
  EXPECT_EQ(doc.line, LineState::Busy);
  EXPECT_EQ(doc.dialogs.size(), 2u);
}

TEST_F(BlfNotifierTest, TwoCallsToOneUser) {
  watch();
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  EXPECT_EQ(nextNotify().line, LineState::Ringing);
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c2", "102", "Carol"));
  DialogInfoDocument two = nextNotify();
  EXPECT_EQ(two.line, LineState::Ringing);
  ASSERT_EQ(two.dialogs.size(), 2u);
  EXPECT_EQ(two.dialogs[1].remote.display, "Carol");
  hub.callEvent(kBob, CallEventKind::Answered, incoming("c2", "102", "Carol"));
  DialogInfoDocument busy = nextNotify();
  EXPECT_EQ(busy.line, LineState::Busy);
  hub.callEvent(kBob, CallEventKind::Ended, incoming("c1", "100", "Alice"));
  DialogInfoDocument oneLeft = nextNotify();
  EXPECT_EQ(oneLeft.line, LineState::Busy);
  ASSERT_EQ(oneLeft.dialogs.size(), 2u); // c2 confirmed, c1 terminated
  hub.callEvent(kBob, CallEventKind::Ended, incoming("c2", "102", "Carol"));
  EXPECT_EQ(nextNotify().line, LineState::Idle);
  EXPECT_EQ(hub.lineState(kBob), LineState::Idle);
}

TEST_F(BlfNotifierTest, RefreshKeepsTheSubscriptionAndVersionsGoOn) {
  auto [tag, first] = watch();
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  EXPECT_EQ(nextNotify().version, 1u);
  h.advance(Duration(300000));
  Sub refresh;
  refresh.cseq = 2;
  refresh.toTag = tag;
  h.inject(subscribe(refresh), kPhone);
  auto sent = h.take();
  auto ok = pick(sent, "200");
  auto notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  EXPECT_EQ(ok->header(HeaderId::Expires), "600");
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "active;expires=600");
  // RFC 6665 §4.2.1.2: the current state again (the dialog layer resends the last document).
  DialogInfoDocument again = body(*notify);
  EXPECT_EQ(again.line, LineState::Ringing);
  h.inject(reply(*notify, 200), kPhone);
  // Not expired at the old expiry time.
  h.advance(Duration(300000));
  EXPECT_TRUE(h.take().empty());
  hub.callEvent(kBob, CallEventKind::Answered, incoming("c1", "100", "Alice"));
  DialogInfoDocument next = nextNotify();
  EXPECT_EQ(next.version, 2u);
  EXPECT_EQ(next.line, LineState::Busy);
  EXPECT_EQ(blf->watcherCount(), 1u);
}

TEST_F(BlfNotifierTest, ExpirySendsTerminatedNotifyAndForgetsTheWatcher) {
  watch();
  h.advance(Duration(600000));
  auto n = h.takeOne();
  ASSERT_TRUE(n);
  EXPECT_EQ(n->header(HeaderId::SubscriptionState), "terminated;reason=timeout");
  h.inject(reply(*n, 200), kPhone);
  EXPECT_EQ(blf->watcherCount(), 0u);
  EXPECT_EQ(hub.listenerCount(), 0u);
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", "Alice"));
  EXPECT_TRUE(h.take().empty());
  h.advance(Duration(1));
  EXPECT_EQ(h.dm.dialogCount(), 0u);
}

TEST_F(BlfNotifierTest, UnsubscribeSendsTerminatedNotify) {
  auto [tag, first] = watch();
  Sub un;
  un.cseq = 2;
  un.toTag = tag;
  un.expires = "0";
  h.inject(subscribe(un), kPhone);
  auto sent = h.take();
  auto ok = pick(sent, "200");
  auto notify = pick(sent, "NOTIFY");
  ASSERT_TRUE(ok && notify);
  EXPECT_EQ(notify->header(HeaderId::SubscriptionState), "terminated;reason=timeout");
  EXPECT_EQ(body(*notify).line, LineState::Idle);
  h.inject(reply(*notify, 200), kPhone);
  EXPECT_EQ(blf->watcherCount(), 0u);
  EXPECT_EQ(hub.listenerCount(), 0u);
}

TEST_F(BlfNotifierTest, RefusesOtherPackagesUnknownUsersStrangersAndWrongAccept) {
  Sub presence;
  presence.event = "presence";
  EXPECT_EQ(rejectStatus(presence), 489);
  EXPECT_EQ(authorizeCalls, 0);
  Sub text;
  text.callId = "blf-2";
  text.accept = "application/pidf+xml";
  EXPECT_EQ(rejectStatus(text), 406);
  Sub intruder;
  intruder.callId = "blf-3";
  intruder.from = "intruder";
  EXPECT_EQ(rejectStatus(intruder), 403);
  Sub nobody;
  nobody.callId = "blf-4";
  nobody.user = "999";
  EXPECT_EQ(rejectStatus(nobody), 404);
  Sub anyType;
  anyType.callId = "blf-5";
  anyType.accept = "application/*;q=0.5, text/plain";
  watch(anyType);
  EXPECT_EQ(blf->watcherCount(), 1u);
}

TEST_F(BlfNotifierTest, LinkLossShowsUnknownThenCorrectStateAfterResync) {
  DialogInfo talking = incoming("r1", "100", "Alice");
  talking.state = DialogState::Confirmed;
  hub.publish(kRemote, {talking});
  Sub s;
  s.user = "301";
  auto [tag, first] = watch(s);
  EXPECT_EQ(first.line, LineState::Busy);
  ASSERT_EQ(first.dialogs.size(), 1u);

  hub.markUnknown("node-b");
  DialogInfoDocument unknown = nextNotify();
  EXPECT_EQ(unknown.line, LineState::Unknown);
  EXPECT_TRUE(unknown.full);
  EXPECT_TRUE(unknown.dialogs.empty()); // no stale "confirmed" left on the phone
  EXPECT_EQ(lineStateOf(unknown), LineState::Unknown);

  hub.resync("node-b", {UserDialogs{"301", {incoming("r2", "105", "Dave")}}});
  DialogInfoDocument back = nextNotify();
  EXPECT_EQ(back.line, LineState::Ringing);
  ASSERT_EQ(back.dialogs.size(), 1u);
  EXPECT_EQ(back.dialogs[0].remote.display, "Dave");
  EXPECT_EQ(back.version, 2u);
}

TEST_F(BlfNotifierTest, HostileDisplayNameArrivesEscaped) {
  watch();
  std::string evil = "</identity></remote></dialog><dialog id=\"x\"><state>confirmed</state>"
                     "</dialog><!--\x01 & \"";
  hub.callEvent(kBob, CallEventKind::Ringing, incoming("c1", "100", evil));
  auto n = h.takeOne();
  ASSERT_TRUE(n);
  DialogInfoDocument doc = body(*n);
  ASSERT_EQ(doc.dialogs.size(), 1u);
  EXPECT_EQ(doc.dialogs[0].remote.display, cleanXmlText(evil));
  EXPECT_EQ(doc.line, LineState::Ringing);
}

TEST_F(BlfNotifierTest, EndAllTerminatesEverySubscription) {
  watch();
  Sub other;
  other.callId = "blf-2";
  watch(other);
  EXPECT_EQ(blf->watcherCount(), 2u);
  blf->endAll();
  auto sent = h.take();
  ASSERT_EQ(sent.size(), 2u);
  for (auto& n : sent) {
    EXPECT_EQ(n->header(HeaderId::SubscriptionState), "terminated;reason=deactivated");
    h.inject(reply(*n, 200), kPhone);
  }
  EXPECT_EQ(blf->watcherCount(), 0u);
}

} // namespace
} // namespace verbund::pbx

// PresenceHub: line state from call events and from the federation feed, listeners.
#include "pbx/presence/presence_hub.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

const UserKey kBob{"node-a", "201"};
const UserKey kRemote{"node-b", "301"};

DialogInfo call(std::string id, std::string caller,
                DialogDirection dir = DialogDirection::Recipient) {
  DialogInfo d;
  d.id = std::move(id);
  d.callId = "cid-" + d.id;
  d.localTag = "lt-" + d.id;
  d.direction = dir;
  d.remote.identity = "sip:" + caller + "@pbx.example";
  d.remote.display = "Caller " + caller;
  return d;
}

struct Recorder {
  std::vector<UserPresence> seen;
  PresenceHub::Listener fn() {
    return [this](const UserPresence& p) { seen.push_back(p); };
  }
  std::vector<LineState> states() const {
    std::vector<LineState> s;
    for (const auto& p : seen) s.push_back(p.state);
    return s;
  }
};

TEST(PresenceHub, OneCallRingingAnsweredEnded) {
  PresenceHub hub;
  Recorder r;
  hub.subscribe(kBob, r.fn());
  EXPECT_EQ(hub.lineState(kBob), LineState::Idle);
  hub.callEvent(kBob, CallEventKind::Ringing, call("c1", "100"));
  EXPECT_EQ(hub.lineState(kBob), LineState::Ringing);
  DialogInfo answered; // less information later: what was known stays
  answered.id = "c1";
  answered.remoteTag = "rt-c1";
  hub.callEvent(kBob, CallEventKind::Answered, answered);
  UserPresence now = hub.get(kBob);
  EXPECT_EQ(now.state, LineState::Busy);
  ASSERT_EQ(now.dialogs.size(), 1u);
  EXPECT_EQ(now.dialogs[0].state, DialogState::Confirmed);
  EXPECT_EQ(now.dialogs[0].remote.display, "Caller 100");
  EXPECT_EQ(now.dialogs[0].callId, "cid-c1");
  EXPECT_EQ(now.dialogs[0].remoteTag, "rt-c1");
  DialogInfo bye;
  bye.id = "c1";
  bye.stateEvent = "remote-bye";
  hub.callEvent(kBob, CallEventKind::Ended, bye);
  EXPECT_EQ(hub.lineState(kBob), LineState::Idle);
  EXPECT_TRUE(hub.snapshot().empty());

  ASSERT_EQ(r.seen.size(), 3u);
  EXPECT_EQ(r.states(), (std::vector{LineState::Ringing, LineState::Busy, LineState::Idle}));
  // The end is reported once, explicitly, with the reason and everything known of the dialog.
  ASSERT_EQ(r.seen[2].dialogs.size(), 1u);
  EXPECT_EQ(r.seen[2].dialogs[0].state, DialogState::Terminated);
  EXPECT_EQ(r.seen[2].dialogs[0].stateEvent, "remote-bye");
  EXPECT_EQ(r.seen[2].dialogs[0].remote.identity, "sip:100@pbx.example");
  // Ending an unknown dialog changes nothing.
  hub.callEvent(kBob, CallEventKind::Ended, bye);
  EXPECT_EQ(r.seen.size(), 3u);
}

TEST(PresenceHub, TwoCallsBusyWinsIdleOnlyWhenAllEnded) {
  PresenceHub hub;
  Recorder r;
  hub.subscribe(kBob, r.fn());
  hub.callEvent(kBob, CallEventKind::Ringing, call("c1", "100"));
  hub.callEvent(kBob, CallEventKind::Answered, call("c1", "100"));
  hub.callEvent(kBob, CallEventKind::Ringing, call("c2", "102")); // call waiting
  EXPECT_EQ(hub.lineState(kBob), LineState::Busy);
  EXPECT_EQ(hub.get(kBob).dialogs.size(), 2u);
  hub.callEvent(kBob, CallEventKind::Ended, call("c1", "100"));
  EXPECT_EQ(hub.lineState(kBob), LineState::Ringing); // the second call still rings
  hub.callEvent(kBob, CallEventKind::Answered, call("c2", "102"));
  EXPECT_EQ(hub.lineState(kBob), LineState::Busy);
  hub.callEvent(kBob, CallEventKind::Ended, call("c2", "102"));
  EXPECT_EQ(hub.lineState(kBob), LineState::Idle);
  EXPECT_EQ(r.states(), (std::vector{LineState::Ringing, LineState::Busy, LineState::Busy,
                                     LineState::Ringing, LineState::Busy, LineState::Idle}));
}

TEST(PresenceHub, PlacingACallIsBusyNotRinging) {
  PresenceHub hub;
  hub.callEvent(kBob, CallEventKind::Ringing, call("out", "100", DialogDirection::Initiator));
  EXPECT_EQ(hub.lineState(kBob), LineState::Busy);
}

TEST(PresenceHub, LinkLossMakesRemoteUsersUnknownThenResyncRestores) {
  PresenceHub hub;
  Recorder busy, idle, all;
  const UserKey kIdleRemote{"node-b", "302"};
  hub.subscribe(kRemote, busy.fn());
  hub.subscribe(kIdleRemote, idle.fn());
  hub.subscribeAll(all.fn());
  DialogInfo talking = call("r1", "100");
  talking.state = DialogState::Confirmed;
  hub.publish(kRemote, {talking});
  EXPECT_EQ(hub.lineState(kRemote), LineState::Busy);

  hub.markUnknown("node-b");
  EXPECT_EQ(hub.lineState(kRemote), LineState::Unknown);           // never a stale busy
  EXPECT_EQ(hub.lineState(kIdleRemote), LineState::Unknown);       // watched but never published
  EXPECT_EQ(hub.lineState({"node-b", "399"}), LineState::Unknown); // nobody watched
  EXPECT_EQ(hub.lineState(kBob), LineState::Idle);                 // other nodes unaffected
  EXPECT_TRUE(hub.ownerUnknown("node-b"));
  ASSERT_EQ(busy.seen.size(), 2u);
  EXPECT_EQ(busy.seen[1].state, LineState::Unknown);
  EXPECT_TRUE(busy.seen[1].dialogs.empty()); // not claimed to have ended either
  ASSERT_EQ(idle.seen.size(), 1u);
  EXPECT_EQ(idle.seen[0].state, LineState::Unknown);
  hub.markUnknown("node-b"); // again: no news
  EXPECT_EQ(busy.seen.size(), 2u);

  // Back: node-b says 301 is ringing now; everyone else of node-b is idle.
  hub.resync("node-b", {UserDialogs{"301", {call("r2", "105")}}});
  EXPECT_FALSE(hub.ownerUnknown("node-b"));
  EXPECT_EQ(hub.lineState(kRemote), LineState::Ringing);
  EXPECT_EQ(hub.lineState(kIdleRemote), LineState::Idle);
  ASSERT_EQ(busy.seen.size(), 3u);
  EXPECT_EQ(busy.seen[2].state, LineState::Ringing);
  ASSERT_EQ(idle.seen.size(), 2u);
  EXPECT_EQ(idle.seen[1].state, LineState::Idle);
  EXPECT_EQ(all.seen.size(), 5u);
  EXPECT_EQ(hub.snapshot("node-b").size(), 1u);
}

TEST(PresenceHub, PublishWhileOwnerUnknownIsKnownForThatUserOnly) {
  PresenceHub hub;
  hub.markUnknown("node-b");
  hub.publish(kRemote, {});
  EXPECT_EQ(hub.lineState(kRemote), LineState::Idle);
  EXPECT_EQ(hub.lineState({"node-b", "302"}), LineState::Unknown);
}

TEST(PresenceHub, PublishReplacesAndReportsVanishedDialogsAsEnded) {
  PresenceHub hub;
  Recorder r;
  hub.subscribe(kRemote, r.fn());
  hub.publish(kRemote, {call("a", "1"), call("b", "2")});
  DialogInfo gone = call("b", "2");
  gone.state = DialogState::Terminated;
  gone.stateEvent = "cancelled";
  hub.publish(kRemote, {call("a", "1"), gone});
  ASSERT_EQ(r.seen.size(), 2u);
  ASSERT_EQ(r.seen[1].dialogs.size(), 2u);
  EXPECT_EQ(r.seen[1].dialogs[1].state, DialogState::Terminated);
  EXPECT_EQ(r.seen[1].dialogs[1].stateEvent, "cancelled");
  EXPECT_EQ(hub.get(kRemote).dialogs.size(), 1u);
  hub.publish(kRemote, {call("a", "1")}); // same again: no change, no notification
  EXPECT_EQ(r.seen.size(), 2u);
  hub.publish(kRemote, {});
  EXPECT_EQ(r.seen.back().state, LineState::Idle);
  EXPECT_EQ(r.seen.back().dialogs.size(), 1u); // "a" ended
}

TEST(PresenceHub, ListenersMayUnsubscribeAndFeedFromCallbacks) {
  PresenceHub hub;
  int first = 0, second = 0;
  PresenceHub::ListenerId a = 0, b = 0;
  a = hub.subscribe(kBob, [&](const UserPresence&) {
    ++first;
    hub.unsubscribe(a); // itself
    hub.unsubscribe(b); // the next one
  });
  b = hub.subscribe(kBob, [&](const UserPresence&) { ++second; });
  hub.subscribe(kBob, [&](const UserPresence& p) {
    if (p.state == LineState::Ringing) hub.callEvent(kBob, CallEventKind::Answered, call("c", "1"));
  });
  hub.callEvent(kBob, CallEventKind::Ringing, call("c", "1"));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  EXPECT_EQ(hub.lineState(kBob), LineState::Busy);
  EXPECT_EQ(hub.listenerCount(), 1u);
}

// A user with many calls at once (a queue, a load test): events edit the user's entry in place.
// Ending a dialog in the middle keeps the others in order, reports just that one as ended, and
// an event that changes nothing visible is not reported. Watched or not, the state is the same.
TEST(PresenceHub, ManyDialogsOfOneUserEditedInPlace) {
  PresenceHub hub;
  Recorder r;
  const UserKey kQueue{"node-a", "500"};
  for (int i = 0; i < 300; ++i)
    hub.callEvent(kQueue, CallEventKind::Ringing, call("q" + std::to_string(i), "100"));
  for (int i = 0; i < 300; ++i)
    hub.callEvent(kBob, CallEventKind::Ringing, call("b" + std::to_string(i), "100"));
  hub.subscribe(kBob, r.fn());
  hub.callEvent(kBob, CallEventKind::Ringing, call("b7", "100")); // same again: nothing new
  EXPECT_TRUE(r.seen.empty());
  DialogInfo bye;
  bye.id = "b150";
  bye.stateEvent = "cancelled";
  bye.remoteTag = "rt-late";
  hub.callEvent(kBob, CallEventKind::Ended, bye);
  ASSERT_EQ(r.seen.size(), 1u);
  const auto& d = r.seen[0].dialogs;
  ASSERT_EQ(d.size(), 300u); // 299 live, then the one that ended
  EXPECT_EQ(d[149].id, "b149");
  EXPECT_EQ(d[150].id, "b151");
  EXPECT_EQ(d.back().id, "b150");
  EXPECT_EQ(d.back().state, DialogState::Terminated);
  EXPECT_EQ(d.back().stateEvent, "cancelled");
  EXPECT_EQ(d.back().remoteTag, "rt-late");
  EXPECT_EQ(d.back().callId, "cid-b150");
  EXPECT_EQ(r.seen[0].state, LineState::Ringing);
  hub.callEvent(kQueue, CallEventKind::Ended, bye); // not a dialog of that user
  hub.callEvent(kQueue, CallEventKind::Answered, call("q3", "100"));
  EXPECT_EQ(r.seen.size(), 1u); // kQueue has no watcher
  EXPECT_EQ(hub.lineState(kQueue), LineState::Busy);
  EXPECT_EQ(hub.get(kQueue).dialogs.size(), 300u);
  EXPECT_EQ(hub.get(kBob).dialogs.size(), 299u);
  for (int i = 0; i < 300; ++i) {
    DialogInfo end;
    end.id = "q" + std::to_string(i);
    hub.callEvent(kQueue, CallEventKind::Ended, end);
  }
  EXPECT_EQ(hub.lineState(kQueue), LineState::Idle);
  EXPECT_EQ(hub.snapshot().size(), 1u); // only kBob is left
}

} // namespace
} // namespace verbund::pbx

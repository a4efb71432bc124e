// The call engine's federation stage in simulated time over the real dialog and transaction
// layers: forks to other nodes, fallback to the external line, federation callers, completed
// elsewhere, cross-site pickup forwarding, remote group login, outcomes.
#include "pbx/calls/call_manager.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

using sip::Message;
using sip::MessagePtr;
using sip::test::Harness;
using sip::test::reply;
using sip::test::udpPeer;

const sip::Peer kPhone = udpPeer("192.0.2.9:5060");    // the caller's phone
const sip::Peer kAliceDev = udpPeer("192.0.2.2:5060"); // device of local user 100
const sip::Peer kNodeB = udpPeer("192.0.2.50:5061");   // node B's SIP address
const sip::Peer kCarrier = udpPeer("192.0.2.60:5060"); // the external line

Party localUser(const std::string& ext, const std::string& sipUser, const std::string& name) {
  return Party{"", ext, name, sipUser, "+49301" + sipUser};
}

struct FakeDirectory final : CallDirectory {
  std::optional<Party> userByExtension(const std::string& e) override {
    if (e == "100") return localUser("100", "alice", "Alice");
    if (e == "300") return localUser("300", "carol", "Carol");
    return std::nullopt;
  }
  std::optional<Party> userBySipUser(const std::string&) override { return std::nullopt; }
  std::optional<GroupTarget> groupByNumber(const std::string& n) override {
    if (n != "600") return std::nullopt;
    GroupTarget g{"600", "Sales", {localUser("100", "alice", "Alice")}};
    g.loggedInMembers.push_back(Party{"nodeB", "201", "Bea", "bea", "+4930201"});
    return g;
  }
  std::vector<DeviceTarget> devices(const std::string& sipUser) override {
    if (sipUser == "alice") return {{"sip:alice@192.0.2.2:5060", kAliceDev}};
    return {};
  }
  std::vector<std::string> groupsOf(const std::string&) override { return {}; }
  bool setGroupLogin(const std::string&, const std::string&, bool) override { return false; }
};

struct FakeRemote final : RemoteNodes {
  std::optional<Party> userByExtension(const std::string& e) override {
    if (e == "201") return Party{"nodeB", "201", "Bea", "bea", "+4930201"};
    return std::nullopt;
  }
  std::optional<std::string> groupOwner(const std::string& n) override {
    if (n == "700") return "nodeB";
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> remoteGroupsOf(const std::string&) override {
    return {};
  }
  bool reachable(const std::string&) override { return up; }
  bool prepareInvite(const std::string& owner, const std::string& requestUser,
                     const RemoteCall& call, sip::DialogManager::InviteParams& p) override {
    invites.push_back({owner, requestUser, call});
    p.requestUri = "sip:" + requestUser + "@192.0.2.50:5061";
    p.from = "<sip:" + call.caller.extension + "@nodeA.example>";
    p.to = "<sip:" + requestUser + "@192.0.2.50>";
    p.target = kNodeB;
    p.headers.emplace_back("X-Verbund-Call", call.correlationId + ";mode=" + call.mode);
    return true;
  }
  bool setGroupLogin(const std::string& owner, const std::string& group,
                     const std::string& extension, bool loggedIn) override {
    logins.push_back(owner + " " + group + " " + extension + (loggedIn ? " in" : " out"));
    return true;
  }
  void countFallback(const std::string& owner) override { fallbacks.push_back(owner); }
  void shareOutcome(const std::vector<std::string>& nodes, const CallOutcome& o) override {
    outcomes.push_back({nodes, o});
  }
  struct Invite {
    std::string owner, requestUser;
    RemoteCall call;
  };
  bool up = true;
  std::vector<Invite> invites;
  std::vector<std::string> logins, fallbacks;
  std::vector<std::pair<std::vector<std::string>, CallOutcome>> outcomes;
};

struct FakeLine final : ExternalLine {
  bool isExternalNumber(const std::string&) override { return false; }
  bool prepareOutbound(const std::string& number, const Party& from,
                       sip::DialogManager::InviteParams& p) override {
    calls.push_back(number + " from " + from.externalNumber);
    p.requestUri = "sip:" + number + "@192.0.2.60";
    p.from = "<sip:" + from.externalNumber + "@192.0.2.60>";
    p.to = "<sip:" + number + "@192.0.2.60>";
    p.target = kCarrier;
    return true;
  }
  std::optional<std::string> inboundTarget(const Message&) override { return std::nullopt; }
  std::vector<std::string> calls;
};

std::string invite(std::string_view user, std::string_view callId, std::string_view extra = {}) {
  std::string s = "INVITE sip:";
  s.append(user).append("@192.0.2.1 SIP/2.0\r\n");
  s.append("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-").append(callId).append("\r\n");
  s.append("Max-Forwards: 70\r\nFrom: <sip:caller@192.0.2.9>;tag=ph1\r\n");
  s.append("To: <sip:").append(user).append("@192.0.2.1>\r\nCall-ID: ").append(callId);
  s.append("\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@192.0.2.9:5060>\r\n");
  s.append(extra).append("Content-Length: 0\r\n\r\n");
  return s;
}

std::string cancel(std::string_view user, std::string_view callId, std::string_view extra = {}) {
  std::string s = "CANCEL sip:";
  s.append(user).append("@192.0.2.1 SIP/2.0\r\n");
  s.append("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-").append(callId).append("\r\n");
  s.append("Max-Forwards: 70\r\nFrom: <sip:caller@192.0.2.9>;tag=ph1\r\n");
  s.append("To: <sip:").append(user).append("@192.0.2.1>\r\nCall-ID: ").append(callId);
  s.append("\r\nCSeq: 1 CANCEL\r\n").append(extra).append("Content-Length: 0\r\n\r\n");
  return s;
}

struct Fixture : ::testing::Test {
  Fixture() {
    auto opened = store::Database::open(":memory:", CallLog::migrations());
    EXPECT_TRUE(opened.ok());
    db = std::move(*opened);
    log = std::make_unique<CallLog>(*db);
    CallManagerConfig cfg;
    cfg.domain = "nodeA.example";
    cfg.nodeId = "nodeA";
    calls = std::make_unique<CallManager>(h.dm, h.timers, dir, *log, cfg);
    calls->setRemoteNodes(&remote);
    calls->setExternalLine(&line);
    calls->setCallerCheck([this](sip::InviteSession&, const Message&) { return caller; });
    h.dm.setInviteHandler(calls.get());
    caller.kind = Caller::Kind::LocalUser;
    caller.party = localUser("300", "carol", "Carol");
  }
  ~Fixture() override { h.dm.setInviteHandler(nullptr); }

  // Requests sent since the last call whose destination is `to`.
  std::vector<MessagePtr> sentTo(const sip::Peer& to, std::string_view method) {
    auto all = h.take();
    std::vector<MessagePtr> out;
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i] && all[i]->isRequest() && all[i]->methodName() == method &&
          h.last[i].to.remote == to.remote)
        out.push_back(std::move(all[i]));
    return out;
  }
  std::vector<int> responses() {
    std::vector<int> out;
    for (auto& m : h.take())
      if (m && m->isResponse()) out.push_back(m->statusCode());
    return out;
  }
  static bool has(const std::vector<int>& v, int x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  }

  Harness h;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<CallLog> log;
  FakeDirectory dir;
  FakeRemote remote;
  FakeLine line;
  Caller caller;
  std::unique_ptr<CallManager> calls;
};

TEST(FederationFallback, Decision) {
  EXPECT_TRUE(shouldFallBack(408, false));
  EXPECT_TRUE(shouldFallBack(503, false));
  EXPECT_FALSE(shouldFallBack(503, true));
  EXPECT_FALSE(shouldFallBack(408, true));
  for (int s : {404, 480, 486, 487, 500, 600, 603}) EXPECT_FALSE(shouldFallBack(s, false)) << s;
}

TEST(FederationFallback, CompletedElsewhereReason) {
  EXPECT_TRUE(isCompletedElsewhere("SIP;cause=200;text=\"Call completed elsewhere\""));
  EXPECT_TRUE(isCompletedElsewhere("sip ; cause = 200"));
  EXPECT_TRUE(isCompletedElsewhere("Q.850;cause=16, SIP;cause=200"));
  EXPECT_FALSE(isCompletedElsewhere("SIP;cause=487"));
  EXPECT_FALSE(isCompletedElsewhere("Q.850;cause=200"));
  EXPECT_FALSE(isCompletedElsewhere("SIP;text=\"cause=200\""));
  EXPECT_FALSE(isCompletedElsewhere(""));
}

TEST_F(Fixture, UnreachableNodeGoesOverTheExternalLine) {
  remote.up = false;
  h.inject(invite("201", "c1"), kPhone);
  auto viaTrunk = sentTo(kCarrier, "INVITE");
  ASSERT_EQ(viaTrunk.size(), 1u);
  EXPECT_EQ(viaTrunk[0]->requestUri().user, "+4930201");
  EXPECT_EQ(line.calls, std::vector<std::string>{"+4930201 from +49301carol"});
  EXPECT_EQ(remote.fallbacks, std::vector<std::string>{"nodeB"});
  EXPECT_TRUE(remote.invites.empty());
  EXPECT_EQ(calls->stats().fallbacks, 1u);
  EXPECT_EQ(calls->stats().remoteForks, 0u);
}

TEST_F(Fixture, DirectCallToAnotherNodeFallsBackWithoutProvisionalInTime) {
  h.inject(invite("201", "c2"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].owner, "nodeB");
  EXPECT_EQ(remote.invites[0].requestUser, "201");
  EXPECT_EQ(remote.invites[0].call.mode, "route");
  EXPECT_EQ(remote.invites[0].call.caller.extension, "300");
  EXPECT_FALSE(remote.invites[0].call.correlationId.empty());
  EXPECT_EQ(calls->stats().remoteForks, 1u);

  h.advance(Duration(999));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  h.advance(Duration(1));
  EXPECT_EQ(sentTo(kCarrier, "INVITE").size(), 1u);
  EXPECT_EQ(remote.fallbacks, std::vector<std::string>{"nodeB"});
  // The CANCEL waits for a provisional answer of node B (RFC 3261 §9.1).
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  EXPECT_EQ(sentTo(kNodeB, "CANCEL").size(), 1u);
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].state, "ringing");
}

TEST_F(Fixture, RingingNodeIsNotFallenBackFrom) {
  h.inject(invite("201", "c3"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.advance(Duration(200));
  h.inject(reply(*toB[0], 180, "b1", "Contact: <sip:201@192.0.2.50:5061>"), kNodeB);
  EXPECT_TRUE(has(responses(), 180)); // ringing passed on to the caller
  h.advance(Duration(5000));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  EXPECT_TRUE(remote.fallbacks.empty());
}

TEST_F(Fixture, BusyIsPassedOnNotFallenBack) {
  h.inject(invite("201", "c4"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 486, "b1"), kNodeB);
  EXPECT_TRUE(has(responses(), 486));
  h.advance(Duration(2000));
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
  EXPECT_TRUE(remote.fallbacks.empty());
  h.advance(Duration(1));
  EXPECT_TRUE(calls->activeCalls().empty());
}

TEST_F(Fixture, UnavailableNodeBeforeProvisionalFallsBack) {
  h.inject(invite("201", "c5"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  h.inject(reply(*toB[0], 503, "b1"), kNodeB);
  EXPECT_EQ(sentTo(kCarrier, "INVITE").size(), 1u);
  EXPECT_EQ(calls->stats().fallbacks, 1u);
}

TEST_F(Fixture, GroupMemberOfAnotherNodeIsAUserModeFork) {
  h.inject(invite("600", "c6"), kPhone);
  EXPECT_EQ(sentTo(kAliceDev, "INVITE").size(), 1u);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].requestUser, "201");
  EXPECT_EQ(remote.invites[0].call.mode, "user");
}

TEST_F(Fixture, FederationCallerInUserModeRingsExactlyTheLocalUser) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-1";
  caller.mode = "user";
  h.inject(invite("100", "c7"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  EXPECT_EQ(toAlice[0]->from().uri.user, "201");
  EXPECT_TRUE(remote.invites.empty());
  auto active = calls->activeCalls();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].correlationId, "corr-B-1");

  // The local user answers: node B hears who answered.
  h.inject(reply(*toAlice[0], 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  ASSERT_EQ(remote.outcomes.size(), 1u);
  EXPECT_EQ(remote.outcomes[0].first, std::vector<std::string>{"nodeB"});
  const CallOutcome& o = remote.outcomes[0].second;
  EXPECT_EQ(o.correlationId, "corr-B-1");
  EXPECT_EQ(o.caller, "201");
  EXPECT_EQ(o.callerOwner, "nodeB");
  EXPECT_EQ(o.callee, "100");
  EXPECT_EQ(o.answeredBy, "100");
  EXPECT_EQ(o.answeredByOwner, "nodeA");
  EXPECT_EQ(o.disposition, Disposition::Answered);
  auto rec = log->byCorrelation("corr-B-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->caller, "201");
  EXPECT_EQ(rec->direction, "internal");
  EXPECT_FALSE(rec->viaTrunk);
}

TEST_F(Fixture, FederationCallerIsNeverRoutedOnward) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeC", "401", "Cem", "", ""};
  caller.correlationId = "corr-C-1";
  caller.mode = "user";
  h.inject(invite("201", "c8"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  caller.mode = "route";
  h.inject(invite("201", "c9"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  EXPECT_TRUE(remote.invites.empty());
  EXPECT_TRUE(line.calls.empty());
}

TEST_F(Fixture, CompletedElsewhereCancelIsPassedOn) {
  caller = Caller{};
  caller.kind = Caller::Kind::Federation;
  caller.party = Party{"nodeB", "201", "Bea", "", ""};
  caller.correlationId = "corr-B-2";
  caller.mode = "user";
  h.inject(invite("100", "c10"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  h.inject(cancel("100", "c10", "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"),
           kPhone);
  auto cancels = sentTo(kAliceDev, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  auto reason = cancels[0]->header("Reason");
  ASSERT_TRUE(reason);
  EXPECT_TRUE(isCompletedElsewhere(*reason));
  auto rec = log->byCorrelation("corr-B-2");
  ASSERT_TRUE(rec);
  for (const auto& p : rec->parties)
    EXPECT_EQ(p.disposition, Disposition::CompletedElsewhere) << p.extension;
}

TEST_F(Fixture, PlainCancelIsMissed) {
  h.inject(invite("100", "c11"), kPhone);
  auto toAlice = sentTo(kAliceDev, "INVITE");
  ASSERT_EQ(toAlice.size(), 1u);
  h.inject(reply(*toAlice[0], 180, "al1", "Contact: <sip:alice@192.0.2.2:5060>"), kAliceDev);
  h.take();
  h.inject(cancel("100", "c11"), kPhone);
  auto cancels = sentTo(kAliceDev, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_FALSE(cancels[0]->header("Reason"));
}

TEST_F(Fixture, PickupOfAnotherNodesUserIsForwardedThere) {
  h.inject(invite("*8201", "c12"), kPhone);
  ASSERT_EQ(remote.invites.size(), 1u);
  EXPECT_EQ(remote.invites[0].requestUser, "*8201");
  EXPECT_EQ(remote.invites[0].call.mode, "route");
  EXPECT_EQ(sentTo(kNodeB, "INVITE").size(), 1u);
  h.advance(Duration(5000)); // no fallback for a pickup
  EXPECT_TRUE(sentTo(kCarrier, "INVITE").empty());
}

TEST_F(Fixture, ReplacesForAnotherNodesUserKeepsTheHeader) {
  h.inject(invite("201", "c13", "Replaces: other-call@b;to-tag=x;from-tag=y\r\n"), kPhone);
  auto toB = sentTo(kNodeB, "INVITE");
  ASSERT_EQ(toB.size(), 1u);
  auto rep = toB[0]->header("Replaces");
  ASSERT_TRUE(rep);
  EXPECT_EQ(*rep, "other-call@b;to-tag=x;from-tag=y");
  EXPECT_EQ(remote.invites[0].call.mode, "route");
}

TEST_F(Fixture, GroupLoginAtAnotherNode) {
  h.inject(invite("*41700", "c14"), kPhone);
  EXPECT_EQ(remote.logins, std::vector<std::string>{"nodeB 700 300 in"});
  EXPECT_TRUE(has(responses(), 200));
  h.inject(invite("*42799", "c15"), kPhone);
  EXPECT_TRUE(has(responses(), 404));
  EXPECT_EQ(remote.logins.size(), 1u);
}

} // namespace
} // namespace verbund::pbx

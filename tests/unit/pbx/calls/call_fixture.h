#pragma once
// Shared fixture of the call engine's unit tests: the real dialog and transaction layers over a
// fake transport in simulated time, a fake directory (users 100 alice and 300 carol, group 600),
// a fake federation (node B with user 201 and group 700) and a fake external line.
#include "pbx/calls/call_manager.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace verbund::pbx::test {

using sip::Message;
using sip::MessagePtr;
using sip::test::Harness;
using sip::test::reply;
using sip::test::udpPeer;

const sip::Peer kPhone = udpPeer("192.0.2.9:5060");    // the caller's phone
const sip::Peer kAliceDev = udpPeer("192.0.2.2:5060"); // device of local user 100
const sip::Peer kBobDev = udpPeer("192.0.2.3:5060");   // device of local user 101
const sip::Peer kEdge = udpPeer("192.0.2.9:5070");   // edge proxy in the Path of user 102's device
const sip::Peer kNodeB = udpPeer("192.0.2.50:5061"); // node B's SIP address
const sip::Peer kCarrier = udpPeer("192.0.2.60:5060"); // the external line

inline Party localUser(const std::string& ext, const std::string& sipUser,
                       const std::string& name) {
  return Party{"", ext, name, sipUser, "+49301" + sipUser};
}

struct FakeDirectory final : CallDirectory {
  std::optional<Party> userByExtension(const std::string& e) override {
    if (e == "100") return localUser("100", "alice", "Alice");
    if (e == "300") return localUser("300", "carol", "Carol");
    if (e == "101") return localUser("101", "bob", "Bob");
    if (e == "102") return localUser("102", "dave", "Dave");
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
    if (sipUser == "bob") return {{"sip:bob@192.0.2.3:5060", kBobDev}};
    if (sipUser == "dave") // registered through an edge proxy (RFC 3327 Path)
      return {
          {"sip:dave@10.0.0.4:40000", kEdge, {"<sip:192.0.2.9:5070;lr>", "<sip:p2.example;lr>"}}};
    return {};
  }
  std::vector<std::string> groupsOf(const std::string&) override { return {}; }
  FeatureWrite setGroupLogin(const std::string&, const std::string&, bool) override {
    return FeatureWrite::Refused;
  }
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
    p.sessionTimer = sessionTimer;
    p.headers.emplace_back("X-Verbund-Call",
                           call.correlationId + ";mode=" + std::string(callModeName(call.mode)));
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
  std::optional<sip::SessionTimerConfig> sessionTimer; // what the federation asks for
  std::vector<Invite> invites;
  std::vector<std::string> logins, fallbacks;
  std::vector<std::pair<std::vector<std::string>, CallOutcome>> outcomes;
};

struct FakeLine final : ExternalLine {
  // National ("0...") and E.164 ("+...") numbers go out.
  bool isExternalNumber(const std::string& n) override {
    return !n.empty() && (n[0] == '0' || n[0] == '+');
  }
  bool prepareOutbound(const std::string& number, const Party& from,
                       sip::DialogManager::InviteParams& p) override {
    calls.push_back(number + " from " + from.externalNumber);
    if (refuse) return false;
    p.requestUri = "sip:" + number + "@192.0.2.60";
    p.from = "<sip:" + from.externalNumber + "@192.0.2.60>";
    p.to = "<sip:" + number + "@192.0.2.60>";
    p.target = kCarrier;
    return true;
  }
  std::optional<std::string> inboundTarget(const Message&) override { return std::nullopt; }
  std::vector<std::string> calls;
  bool refuse = false;
};

struct FakeFeatures final : CallFeatures {
  bool doNotDisturb(const Party& user) override { return dnd.count(user.extension) > 0; }
  std::optional<std::string> forwardTarget(const Party& user, ForwardWhen when) override {
    auto it = forwards.find({user.extension, when});
    if (it == forwards.end()) return std::nullopt;
    return it->second;
  }
  std::optional<Duration> noAnswerAfter(const Party& user) override {
    auto it = noAnswer.find(user.extension);
    if (it == noAnswer.end()) return std::nullopt;
    return it->second;
  }
  FeatureWrite setDoNotDisturb(const Party& user, bool on) override {
    if (busy) return FeatureWrite::Busy;
    if (on)
      dnd.insert(user.extension);
    else
      dnd.erase(user.extension);
    return FeatureWrite::Done;
  }
  FeatureWrite setForward(const Party& user, ForwardWhen when, const std::string& target) override {
    if (busy) return FeatureWrite::Busy;
    if (target.empty())
      forwards.erase({user.extension, when});
    else
      forwards[{user.extension, when}] = target;
    return FeatureWrite::Done;
  }
  bool busy = false; // the store does not take writes (database locked)
  std::set<std::string> dnd;
  std::map<std::pair<std::string, ForwardWhen>, std::string> forwards;
  std::map<std::string, Duration> noAnswer;
};

// An INVITE from the caller's phone (kPhone) for `user`, with an SDP offer when `sdp` is set.
inline const std::string kSdpPhone = "v=0\r\no=phone 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                                     "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
inline const std::string kSdpAlice = "v=0\r\no=alice 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 "
                                     "192.0.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

// A request inside a dialog, written by hand as the peer would send it, with extra header lines.
inline std::string inDialog(std::string_view method, std::string_view from, std::string_view to,
                            std::string_view callId, uint32_t cseq, std::string_view via,
                            std::string_view body = {}, std::string_view extra = {}) {
  static int branch = 0;
  std::string s(method);
  s.append(" sip:pbx@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP ").append(via);
  s.append(";branch=z9hG4bK-").append(method).append(std::to_string(++branch));
  s.append("\r\nMax-Forwards: 70\r\nFrom: ").append(from).append("\r\nTo: ").append(to);
  s.append("\r\nCall-ID: ").append(callId).append("\r\nCSeq: ").append(std::to_string(cseq));
  s.append(" ").append(method).append("\r\n");
  if (method != "ACK" && method != "BYE")
    s.append("Contact: <sip:peer@").append(via).append(">\r\n");
  s.append(extra);
  if (body.empty()) return s.append("Content-Length: 0\r\n\r\n");
  s.append("Content-Type: application/sdp\r\nContent-Length: ").append(std::to_string(body.size()));
  return s.append("\r\n\r\n").append(body);
}

inline std::string invite(std::string_view user, std::string_view callId,
                          std::string_view extra = {}, std::string_view sdp = {}) {
  std::string s = "INVITE sip:";
  s.append(user).append("@192.0.2.1 SIP/2.0\r\n");
  s.append("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-").append(callId).append("\r\n");
  s.append("Max-Forwards: 70\r\nFrom: <sip:caller@192.0.2.9>;tag=ph1\r\n");
  s.append("To: <sip:").append(user).append("@192.0.2.1>\r\nCall-ID: ").append(callId);
  s.append("\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@192.0.2.9:5060>\r\n");
  s.append(extra);
  if (sdp.empty()) return s.append("Content-Length: 0\r\n\r\n");
  s.append("Content-Type: application/sdp\r\nContent-Length: ").append(std::to_string(sdp.size()));
  return s.append("\r\n\r\n").append(sdp);
}

inline std::string cancel(std::string_view user, std::string_view callId,
                          std::string_view extra = {}) {
  std::string s = "CANCEL sip:";
  s.append(user).append("@192.0.2.1 SIP/2.0\r\n");
  s.append("Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-").append(callId).append("\r\n");
  s.append("Max-Forwards: 70\r\nFrom: <sip:caller@192.0.2.9>;tag=ph1\r\n");
  s.append("To: <sip:").append(user).append("@192.0.2.1>\r\nCall-ID: ").append(callId);
  s.append("\r\nCSeq: 1 CANCEL\r\n").append(extra).append("Content-Length: 0\r\n\r\n");
  return s;
}

struct Fixture : ::testing::Test {
  explicit Fixture(sip::DialogConfig dc = Harness::defaultConfig()) : h(std::move(dc)) {
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
    calls->setCallFeatures(&features);
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
  FakeFeatures features;
  Caller caller;
  std::unique_ptr<CallManager> calls;
};

} // namespace verbund::pbx::test

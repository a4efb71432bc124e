// TrunkManager in simulated time: the real TransactionLayer and DialogManager over a fake
// transport (the dialog layer's harness), a fake RFC 3263 locator, a real DigestServer playing
// the carrier's registrar.
#include "pbx/trunk/trunk_manager.h"
#include "sip/dialog/invite_session.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>

namespace verbund::pbx {
namespace {

using sip::test::Harness;
using sip::test::reply;
using sip::test::udpPeer;

// Answers from a table, later (from a zero-delay timer), like the real locator.
class FakeLocator final : public sip::SipLocator {
public:
  explicit FakeLocator(Timers& timers) : timers_(timers) {}
  void locate(std::string_view uri, sip::LocateCallback cb) override {
    asked.emplace_back(uri);
    auto it = answers.find(std::string(uri));
    Result<std::vector<sip::SipTarget>> r =
        it == answers.end()
            ? Result<std::vector<sip::SipTarget>>(makeError(503, "no SIP server found"))
            : it->second;
    timers_.after(Duration(0), [cb, r]() mutable { cb(std::move(r)); });
  }
  static sip::SipTarget udp(const std::string& addr) {
    return {sip::TransportType::Udp, *SockAddr::parse(addr), "carrier.test"};
  }
  std::map<std::string, Result<std::vector<sip::SipTarget>>> answers;
  std::vector<std::string> asked;

private:
  Timers& timers_;
};

struct NullInviteHandler final : sip::InviteHandler {
  void onNewSession(sip::InviteSession&, const sip::Message&) override {}
  void onProvisional(sip::ClientInvite&, sip::InviteSession*, const sip::Message&) override {}
};

TrunkConfig registerConfig() {
  TrunkConfig c;
  c.enabled = true;
  c.registrar = "carrier.test";
  c.username = "4930123456";
  c.authUser = "acct-77";
  c.password = "s3cret!";
  c.expiry = 300;
  c.dids = {{"+4930123456", "100"}, {"+4930123457", "200"}};
  c.dialPrefix = "0";
  return c;
}

struct TrunkFixture : ::testing::Test {
  TrunkFixture() : locator(h.timers) {
    locator.answers.emplace("sip:carrier.test;transport=udp",
                            std::vector<sip::SipTarget>{FakeLocator::udp("192.0.2.5:5060"),
                                                        FakeLocator::udp("192.0.2.6:5060")});
    TrunkManagerOptions o;
    o.retryMin = Duration(10000);
    o.retryMax = Duration(40000);
    o.isInternalNumber = [](const std::string& n) { return n == "100" || n == "0100"; };
    o.wallClockMs = [this] { return int64_t(h.timers.now().time_since_epoch().count() / 1000000); };
    trunk = std::make_unique<TrunkManager>(h.dm, h.tp, h.timers, &locator, o);
    trunk->addListener([this](const TrunkStatus& s) {
      changes.push_back(std::string(trunkStateName(s.state)) + " " + s.reason);
    });
  }
  // Runs zero-delay timers (locator answers).
  void settle() { h.advance(Duration(0)); }

  // Answers a REGISTER like a digest-checking registrar: 401 without (valid) credentials.
  void answerAsRegistrar(const sip::Message& reg, const sip::Peer& from) {
    auto creds = reg.header(sip::HeaderId::Authorization);
    if (!creds) {
      h.inject(reply(reg, 401, "r1", "WWW-Authenticate: " + registrar.challenges()[0]), from);
      return;
    }
    auto p = sip::parseAuthParams(*creds);
    ASSERT_TRUE(p);
    auto verdict = registrar.verify(
        *p, "REGISTER", "", [](std::string_view user, std::string_view, sip::DigestAlgorithm) {
          return user == "acct-77" ? std::optional<sip::DigestSecret>(sip::DigestSecret{
                                         sip::DigestSecret::Kind::Password, "s3cret!"})
                                   : std::nullopt;
        });
    ASSERT_TRUE(verdict.ok()) << sip::digestStatusName(verdict.status);
    EXPECT_EQ(verdict.uri, "sip:carrier.test");
    h.inject(reply(reg, 200, "r1", "Contact: <sip:4930123456@192.0.2.1:5060>;expires=300"), from);
  }

  Harness h;
  sip::DigestServer registrar{{.realm = "carrier.test", .algorithms = {sip::DigestAlgorithm::Md5}},
                              h.timers};
  FakeLocator locator;
  std::unique_ptr<TrunkManager> trunk;
  std::vector<std::string> changes;
};

TEST_F(TrunkFixture, RegistersWithDigestAuthAndRefreshes) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  EXPECT_EQ(trunk->status().state, TrunkState::Registering);
  EXPECT_TRUE(h.take().empty()); // resolving first
  settle();
  auto reg = h.takeOne();
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->method(), sip::Method::Register);
  EXPECT_EQ(reg->requestUri().text, "sip:carrier.test");
  EXPECT_EQ(reg->from().uri.text, "sip:4930123456@carrier.test");
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.5:5060");
  ASSERT_EQ(reg->contacts().size(), 1u);
  EXPECT_EQ(reg->contacts()[0].uri.text, "sip:4930123456@192.0.2.1:5060");
  EXPECT_EQ(reg->header(sip::HeaderId::UserAgent), "Verbund");
  answerAsRegistrar(*reg, udpPeer("192.0.2.5:5060"));
  auto authed = h.takeOne();
  ASSERT_TRUE(authed);
  EXPECT_NE(authed->header(sip::HeaderId::Authorization)->find("username=\"acct-77\""),
            std::string::npos);
  EXPECT_EQ(authed->raw().find("s3cret"), std::string::npos);
  answerAsRegistrar(*authed, udpPeer("192.0.2.5:5060"));
  EXPECT_EQ(trunk->status().state, TrunkState::Registered);
  EXPECT_EQ(trunk->status().grantedExpires, 300u);
  EXPECT_EQ(trunk->status().activeTarget, "UDP 192.0.2.5:5060");
  EXPECT_EQ(changes,
            (std::vector<std::string>{"registering resolving sip:carrier.test;transport=udp",
                                      "registering registering", "registered 200 OK"}));
  // Refresh 30 s before the granted 300 s.
  settle();
  h.take();
  h.advance(Duration(270000));
  auto refresh = h.takeOne();
  ASSERT_TRUE(refresh);
  EXPECT_EQ(refresh->callId(), reg->callId());
}

TEST_F(TrunkFixture, TimeoutsFailOverToTheNextAddressWithBackoff) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  settle();
  auto reg = h.takeOne();
  ASSERT_TRUE(reg);
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.5:5060");
  h.advance(Duration(32000)); // Timer F: retransmissions then 408
  h.take();
  EXPECT_EQ(trunk->status().state, TrunkState::Failing);
  EXPECT_EQ(trunk->status().reason, "408 Request Timeout");
  EXPECT_EQ(trunk->status().lastError, "408 Request Timeout");
  EXPECT_GT(trunk->status().lastErrorMs, 0);
  EXPECT_EQ(trunk->status().activeTarget, "UDP 192.0.2.6:5060");
  settle();
  h.advance(Duration(10000)); // retryMin
  auto again = h.take();
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.6:5060");
  answerAsRegistrar(*again[0], udpPeer("192.0.2.6:5060"));
  answerAsRegistrar(*h.takeOne(), udpPeer("192.0.2.6:5060"));
  EXPECT_EQ(trunk->status().state, TrunkState::Registered);
  EXPECT_EQ(trunk->status().lastError, "408 Request Timeout"); // kept after recovery
}

TEST_F(TrunkFixture, WrongPasswordFailsWithReason) {
  auto c = registerConfig();
  c.password = "wrong";
  ASSERT_TRUE(trunk->configure(c));
  settle();
  auto reg = h.takeOne();
  h.inject(reply(*reg, 401, "r1", "WWW-Authenticate: " + registrar.challenges()[0]),
           udpPeer("192.0.2.5:5060"));
  auto authed = h.takeOne();
  ASSERT_TRUE(authed);
  h.inject(reply(*authed, 401, "r1", "WWW-Authenticate: " + registrar.challenges()[0]),
           udpPeer("192.0.2.5:5060"));
  auto third = h.takeOne();
  ASSERT_TRUE(third); // one more try with the fresh nonce
  h.inject(reply(*third, 403, "r1"), udpPeer("192.0.2.5:5060"));
  EXPECT_EQ(trunk->status().state, TrunkState::Failing);
  EXPECT_EQ(trunk->status().lastError, "403 Forbidden");
  EXPECT_EQ(trunk->status().activeTarget, "UDP 192.0.2.5:5060"); // an answer: no failover
}

TEST_F(TrunkFixture, DnsFailureRetriesWithBackoff) {
  auto c = registerConfig();
  c.registrar = "nowhere.test";
  ASSERT_TRUE(trunk->configure(c));
  settle();
  EXPECT_EQ(trunk->status().state, TrunkState::Failing);
  EXPECT_EQ(trunk->status().lastError, "no SIP server found");
  EXPECT_EQ(locator.asked.size(), 1u);
  h.advance(Duration(9999));
  EXPECT_EQ(locator.asked.size(), 1u);
  h.advance(Duration(1));
  EXPECT_EQ(locator.asked.size(), 2u);
  settle();
  h.advance(Duration(19999)); // doubled
  EXPECT_EQ(locator.asked.size(), 2u);
  h.advance(Duration(1));
  EXPECT_EQ(locator.asked.size(), 3u);
  EXPECT_TRUE(h.take().empty());
}

TEST_F(TrunkFixture, ReconfiguringUnregistersAndDisablingStops) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  settle();
  auto reg = h.takeOne();
  answerAsRegistrar(*reg, udpPeer("192.0.2.5:5060"));
  answerAsRegistrar(*h.takeOne(), udpPeer("192.0.2.5:5060"));
  ASSERT_EQ(trunk->status().state, TrunkState::Registered);
  settle();
  h.take();

  auto off = registerConfig();
  off.enabled = false;
  ASSERT_TRUE(trunk->configure(off));
  EXPECT_EQ(trunk->status().state, TrunkState::Disabled);
  auto unreg = h.takeOne();
  ASSERT_TRUE(unreg);
  EXPECT_EQ(unreg->header(sip::HeaderId::Expires), "0");
  h.inject(reply(*unreg, 200, "r1"), udpPeer("192.0.2.5:5060"));
  settle();
  EXPECT_TRUE(h.take().empty());
  EXPECT_FALSE(trunk->isTrunkPeer(udpPeer("192.0.2.5:5060")));
  EXPECT_FALSE(trunk->targetFor("0301234", {}));

  // Invalid settings change nothing.
  auto bad = registerConfig();
  bad.expiry = 1;
  EXPECT_FALSE(trunk->configure(bad));
  EXPECT_EQ(trunk->status().state, TrunkState::Disabled);
}

TEST_F(TrunkFixture, IpTrunkTrustsCarrierAddressesOnly) {
  TrunkConfig c;
  c.enabled = true;
  c.mode = TrunkMode::Ip;
  c.registrar = "192.0.2.7:5070";
  c.trustedAddresses = {"198.51.100.9"};
  c.defaultCallerId = "4930999";
  ASSERT_TRUE(trunk->configure(c));
  EXPECT_EQ(trunk->status().state, TrunkState::Registered); // numeric: no DNS, no REGISTER
  EXPECT_TRUE(h.take().empty());
  EXPECT_TRUE(locator.asked.empty());
  EXPECT_TRUE(trunk->isTrunkPeer(udpPeer("192.0.2.7:41234")));
  EXPECT_TRUE(trunk->isTrunkPeer(udpPeer("198.51.100.9:5060")));
  EXPECT_FALSE(trunk->isTrunkPeer(udpPeer("192.0.2.8:5070")));
  auto t = trunk->targetFor("0301234", {"", "Alice"});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->requestUri, "sip:0301234@192.0.2.7");
  EXPECT_EQ(t->from, "\"Alice\" <sip:4930999@192.0.2.7>");
  EXPECT_EQ(t->peer.remote.toString(), "192.0.2.7:5070");
}

TEST_F(TrunkFixture, OutboundIdentityFollowsCallerIdMode) {
  TrunkConfig c = registerConfig();
  c.mode = TrunkMode::Ip;
  c.registrar = "192.0.2.7";
  c.domain = "carrier.test";
  c.outboundProxy = "sip:192.0.2.8;lr";
  ASSERT_TRUE(trunk->configure(c));
  CallerIdentity alice{"+49 30 123457", "Alice \"A\""};
  auto t = trunk->targetFor("0030555", alice);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->number, "030555");
  EXPECT_EQ(t->requestUri, "sip:030555@carrier.test");
  EXPECT_EQ(t->to, "<sip:030555@carrier.test>");
  EXPECT_EQ(t->from, "\"Alice \\\"A\\\"\" <sip:+4930123457@carrier.test>");
  EXPECT_EQ(t->pAssertedIdentity, t->from);
  EXPECT_EQ(t->routes, std::vector<std::string>{"<sip:192.0.2.8;lr>"});
  EXPECT_EQ(t->peer.remote.toString(), "192.0.2.8:5060");

  c.callerIdMode = CallerIdMode::PaiOnly;
  ASSERT_TRUE(trunk->configure(c));
  t = trunk->targetFor("0030555", alice);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, "<sip:4930123456@carrier.test>");
  EXPECT_EQ(t->pAssertedIdentity, "\"Alice \\\"A\\\"\" <sip:+4930123457@carrier.test>");

  c.callerIdMode = CallerIdMode::TrunkNumber;
  ASSERT_TRUE(trunk->configure(c));
  t = trunk->targetFor("0030555", alice);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, "<sip:4930123456@carrier.test>");
  EXPECT_FALSE(t->pAssertedIdentity);

  // Internal numbers and strings outside the rule never go out; '#' is escaped.
  EXPECT_FALSE(trunk->isExternalNumber("0100"));
  EXPECT_FALSE(trunk->isExternalNumber("12345"));
  EXPECT_FALSE(trunk->isExternalNumber("0*31#030")); // the default pattern: digits only
  c.outboundPattern = "[0-9*#+]+";
  ASSERT_TRUE(trunk->configure(c));
  EXPECT_TRUE(trunk->isExternalNumber("0*31#030"));
  t = trunk->targetFor("0*31#030", alice);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->requestUri, "sip:*31%23030@carrier.test");
}

TEST_F(TrunkFixture, RegisterModeRefusesCallsUntilRegistered) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  settle();
  auto t = trunk->targetFor("0301234", {});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, 503);
  EXPECT_NE(t.error().message.find("not registered"), std::string::npos);
}

TEST_F(TrunkFixture, OutboundInviteAnswersProxyChallenge) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  settle();
  auto reg = h.takeOne();
  answerAsRegistrar(*reg, udpPeer("192.0.2.5:5060"));
  answerAsRegistrar(*h.takeOne(), udpPeer("192.0.2.5:5060"));
  settle();
  h.take();
  NullInviteHandler handler;
  h.dm.setInviteHandler(&handler);
  sip::DialogManager::InviteParams p;
  p.contentType = "application/sdp";
  p.body = "v=0\r\n";
  ASSERT_TRUE(trunk->prepareInvite("00301234", {"+4930123457", "Alice"}, p));
  auto id = h.dm.invite(std::move(p));
  ASSERT_TRUE(id);
  auto inv = h.takeOne();
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->requestUri().text, "sip:0301234@carrier.test");
  EXPECT_EQ(inv->header(sip::HeaderId::PAssertedIdentity),
            "\"Alice\" <sip:+4930123457@carrier.test>");
  EXPECT_EQ(h.last[0].to.remote.toString(), "192.0.2.5:5060");
  sip::DigestServer proxy({.realm = "carrier.test", .algorithms = {sip::DigestAlgorithm::Sha256}},
                          h.timers);
  h.inject(reply(*inv, 407, "p1", "Proxy-Authenticate: " + proxy.challenges()[0]),
           udpPeer("192.0.2.5:5060"));
  auto msgs = h.take(); // ACK for the 407, then the authorised INVITE
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0]->method(), sip::Method::Ack);
  auto creds = msgs[1]->header(sip::HeaderId::ProxyAuthorization);
  ASSERT_TRUE(creds);
  auto params = sip::parseAuthParams(*creds);
  ASSERT_TRUE(params);
  auto verdict = proxy.verify(
      *params, "INVITE", "", [](std::string_view, std::string_view, sip::DigestAlgorithm) {
        return std::optional<sip::DigestSecret>(
            sip::DigestSecret{sip::DigestSecret::Kind::Password, "s3cret!"});
      });
  EXPECT_TRUE(verdict.ok()) << sip::digestStatusName(verdict.status);
  EXPECT_EQ(verdict.uri, "sip:0301234@carrier.test");
}

TEST_F(TrunkFixture, InboundDidFromRequestUriOrTo) {
  auto c = registerConfig();
  c.mode = TrunkMode::Ip;
  c.registrar = "192.0.2.7";
  ASSERT_TRUE(trunk->configure(c));
  auto invite = [](std::string ruri, std::string to) {
    return sip::test::parse("INVITE " + ruri +
                            " SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n"
                            "From: <sip:+4989111@192.0.2.7>;tag=a\r\n"
                            "To: <" +
                            to +
                            ">\r\n"
                            "Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                            "Content-Length: 0\r\n\r\n");
  };
  auto byRuri = trunk->inboundDid(*invite("sip:+4930123457@192.0.2.1", "sip:x@carrier.test"));
  ASSERT_TRUE(byRuri);
  EXPECT_EQ(byRuri->did, "+4930123457");
  EXPECT_EQ(byRuri->target, "200");
  // The carrier replaced the Request-URI by our Contact: the DID is in To.
  auto byTo = trunk->inboundDid(
      *invite("sip:4930123456@192.0.2.1:5060", "sip:%2B4930123456;phone-context=x@carrier.test"));
  ASSERT_TRUE(byTo);
  EXPECT_EQ(byTo->did, "+4930123456");
  EXPECT_EQ(byTo->target, "100");
  EXPECT_FALSE(trunk->inboundDid(*invite("sip:999@192.0.2.1", "sip:998@carrier.test")));
  c.defaultTarget = "500";
  ASSERT_TRUE(trunk->configure(c));
  auto fallback = trunk->inboundDid(*invite("sip:999@192.0.2.1", "sip:998@carrier.test"));
  ASSERT_TRUE(fallback);
  EXPECT_EQ(fallback->did, "998");
  EXPECT_EQ(fallback->target, "500");
}

TEST_F(TrunkFixture, StopIsFinalAndDestructionIsSafe) {
  ASSERT_TRUE(trunk->configure(registerConfig()));
  settle();
  h.take();
  trunk->stop();
  EXPECT_EQ(trunk->status().state, TrunkState::Disabled);
  auto cb = trunk->authCallback("sip:x");
  trunk.reset();
  h.advance(Duration(64000)); // timers of the retired client run without the manager
  auto msg =
      sip::test::parse("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2\r\n"
                       "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
                       "CSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n"
                       "Content-Length: 0\r\n\r\n");
  EXPECT_FALSE(cb(*msg));
}

} // namespace
} // namespace verbund::pbx

// Registration client scripts (RFC 3261 §10.2): refresh timing, Retry-After, backoff, digest
// challenge round trip through a fake auth callback, unregister.
#include "sip/dialog/registration.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

const Peer kRegistrar = udpPeer("192.0.2.5:5060");

struct RegFixture {
  RegFixture() {
    cfg.registrarUri = "sip:192.0.2.5";
    cfg.aor = "<sip:trunk@192.0.2.5>";
    cfg.contact = "sip:trunk@192.0.2.1:5060";
    cfg.expires = 300;
    cfg.auth = [this](const Message& challenge) -> std::optional<std::string> {
      ++challenges;
      auto v = challenge.header(challenge.statusCode() == 407 ? HeaderId::ProxyAuthenticate
                                                              : HeaderId::WwwAuthenticate);
      if (!v) return std::nullopt;
      return std::string("Digest username=\"trunk\", response=\"fake\"");
    };
  }
  RegistrationClient& client() {
    if (!reg)
      reg = std::make_unique<RegistrationClient>(
          h.txl, h.timers, cfg, [this](RegistrationClient::State s, const std::string& why) {
            changes.push_back(std::string(registrationStateName(s)) + " " + why);
          });
    return *reg;
  }
  Harness h;
  RegistrationConfig cfg;
  int challenges = 0;
  std::vector<std::string> changes;
  std::unique_ptr<RegistrationClient> reg;
};

TEST(Registration, RefreshesBeforeGrantedExpiry) {
  RegFixture f;
  f.client().start();
  auto reg = f.h.takeOne();
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->method(), Method::Register);
  EXPECT_EQ(f.h.last[0].to.remote.toString(), "192.0.2.5:5060");
  EXPECT_EQ(reg->header(HeaderId::Expires), "300");
  EXPECT_EQ(reg->cseq().seq, 1u);
  // The registrar grants 120 s through the Contact's expires parameter (RFC 3261 §10.2.4).
  f.h.inject(reply(*reg, 200, "r1",
                   "Contact: <sip:other@192.0.2.9>;expires=3600\r\n"
                   "Contact: <sip:trunk@192.0.2.1:5060>;expires=120\r\nExpires: 300"),
             kRegistrar);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Registered);
  EXPECT_EQ(f.client().grantedExpires(), 120u);
  f.h.advance(Duration(89999));
  EXPECT_TRUE(f.h.take().empty());
  f.h.advance(Duration(1));
  auto again = f.h.takeOne();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->callId(), reg->callId());
  EXPECT_EQ(again->cseq().seq, 2u);
  EXPECT_EQ(f.changes, (std::vector<std::string>{"registering starting", "registered 200 OK"}));
}

TEST(Registration, RetriesAfter503WithRetryAfterThenBacksOff) {
  RegFixture f;
  f.cfg.retryMin = Duration(10000);
  f.client().start();
  auto reg = f.h.takeOne();
  f.h.inject(reply(*reg, 503, "r1", "Retry-After: 40"), kRegistrar);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Failing);
  EXPECT_EQ(f.client().lastReason(), "503 Service Unavailable");
  f.h.advance(Duration(39999));
  EXPECT_TRUE(f.h.take().empty());
  f.h.advance(Duration(1));
  reg = f.h.takeOne();
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->cseq().seq, 2u);
  // Without Retry-After: retryMin doubling per consecutive failure (this is the 2nd, 3rd).
  f.h.inject(reply(*reg, 500, "r1"), kRegistrar);
  f.h.advance(Duration(20000));
  reg = f.h.takeOne();
  ASSERT_TRUE(reg);
  f.h.inject(reply(*reg, 500, "r1"), kRegistrar);
  f.h.advance(Duration(39999));
  EXPECT_TRUE(f.h.take().empty());
  f.h.advance(Duration(1));
  reg = f.h.takeOne();
  ASSERT_TRUE(reg);
  f.h.inject(reply(*reg, 200, "r1", "Expires: 300"), kRegistrar);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Registered);
}

TEST(Registration, AnswersDigestChallengeAndUnregisters) {
  RegFixture f;
  f.client().start();
  auto reg = f.h.takeOne();
  f.h.inject(reply(*reg, 401, "r1", "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\""),
             kRegistrar);
  EXPECT_EQ(f.challenges, 1);
  auto authed = f.h.takeOne();
  ASSERT_TRUE(authed);
  EXPECT_EQ(authed->cseq().seq, 2u);
  EXPECT_EQ(authed->header(HeaderId::Authorization),
            "Digest username=\"trunk\", response=\"fake\"");
  f.h.inject(reply(*authed, 200, "r1", "Expires: 300"), kRegistrar);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Registered);

  f.client().stop();
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Unregistering);
  auto unreg = f.h.takeOne();
  ASSERT_TRUE(unreg);
  EXPECT_EQ(unreg->header(HeaderId::Expires), "0");
  // Credentials are kept for the same registrar.
  EXPECT_TRUE(unreg->header(HeaderId::Authorization));
  f.h.inject(reply(*unreg, 200, "r1"), kRegistrar);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Unregistered);
}

TEST(Registration, RepeatedChallengeFails) {
  RegFixture f;
  f.client().start();
  auto reg = f.h.takeOne();
  for (int i = 0; i < 3 && reg; ++i) {
    f.h.inject(reply(*reg, 407, "r1", "Proxy-Authenticate: Digest realm=\"x\", nonce=\"n\""),
               kRegistrar);
    auto sent = f.h.take();
    reg = sent.empty() ? nullptr : std::move(sent.back());
  }
  EXPECT_EQ(f.challenges, 2);
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Failing);
}

TEST(Registration, TimeoutIsFailure408) {
  RegFixture f;
  f.client().start();
  f.h.take();
  f.h.advance(Duration(64 * 500));
  f.h.take();
  EXPECT_EQ(f.client().state(), RegistrationClient::State::Failing);
  EXPECT_EQ(f.client().lastReason(), "408 Request Timeout");
}

} // namespace
} // namespace verbund::sip::test

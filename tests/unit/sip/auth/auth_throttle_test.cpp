// The digest brute-force policy (one per node, every method) and the digest-uri check, in
// simulated time.
#include "sip/auth/auth_throttle.h"

#include "base/manual_timers.h"
#include "base/metrics.h"

#include <gtest/gtest.h>
#include <string>

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;

uint64_t counterValue(std::string_view name) {
  for (const Counter* c : allCounters())
    if (name == c->name()) return c->value();
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

SockAddr addr(const char* text) {
  auto a = SockAddr::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(SockAddr{});
}

AuthThrottleConfig smallConfig() {
  AuthThrottleConfig c;
  c.maxFailures = 3;
  c.failureWindow = 60s;
  c.cooldown = 300s;
  return c;
}

TEST(AuthThrottle, BlocksAfterMaxFailuresForEveryMethodThenRecovers) {
  ManualTimers timers;
  AuthThrottle t(smallConfig(), timers);
  const SockAddr a = addr("192.0.2.7:5060");
  uint64_t failed = counterValue("verbund_sip_auth_failed_total");
  uint64_t blocks = counterValue("verbund_sip_auth_blocks_total");
  uint64_t refused = counterValue("verbund_sip_auth_refused_total");

  EXPECT_FALSE(t.refuse(a, "INVITE", "1001"));
  EXPECT_FALSE(t.failed(a, "REGISTER", "1001", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.failed(a, "INVITE", "1002", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.refuse(a, "SUBSCRIBE", "1001"));
  // The third failure, whatever its method, blocks the source.
  EXPECT_TRUE(t.failed(a, "SUBSCRIBE", "1003", AuthFailure::WrongResponse));
  EXPECT_EQ(counterValue("verbund_sip_auth_failed_total"), failed + 3);
  EXPECT_EQ(counterValue("verbund_sip_auth_blocks_total"), blocks + 1);

  // Blocked for every method, and from another port of the same address.
  auto left = t.refuse(a, "INVITE", "1001");
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 300u);
  EXPECT_TRUE(t.refuse(addr("192.0.2.7:40000"), "REGISTER", "x"));
  EXPECT_TRUE(t.refuse(a, "SUBSCRIBE", ""));
  EXPECT_EQ(counterValue("verbund_sip_auth_refused_total"), refused + 3);
  // Another address is not affected.
  EXPECT_FALSE(t.refuse(addr("192.0.2.8:5060"), "INVITE", "1001"));

  timers.advance(299'500ms);
  left = t.refuse(a, "INVITE", "1001");
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1u); // rounded up, never 0
  timers.advance(500ms);
  EXPECT_FALSE(t.refuse(a, "INVITE", "1001"));
  EXPECT_FALSE(t.blocked(a));
  // After the block the count starts from zero again.
  EXPECT_FALSE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.blocked(a));
}

TEST(AuthThrottle, FailuresOutsideTheWindowDoNotAddUp) {
  ManualTimers timers;
  AuthThrottle t(smallConfig(), timers);
  const SockAddr a = addr("192.0.2.9:5060");
  EXPECT_FALSE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  timers.advance(60s);
  EXPECT_FALSE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.blocked(a));
  EXPECT_TRUE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
}

TEST(AuthThrottle, UriMismatchIsAFailureWithItsOwnCounter) {
  ManualTimers timers;
  AuthThrottle t(smallConfig(), timers);
  const SockAddr a = addr("192.0.2.10:5060");
  uint64_t mismatch = counterValue("verbund_sip_auth_uri_mismatch_total");
  uint64_t failed = counterValue("verbund_sip_auth_failed_total");
  for (int i = 0; i < 2; ++i) t.failed(a, "INVITE", "1001", AuthFailure::UriMismatch);
  EXPECT_TRUE(t.failed(a, "INVITE", "1001", AuthFailure::WrongResponse));
  EXPECT_EQ(counterValue("verbund_sip_auth_uri_mismatch_total"), mismatch + 2);
  EXPECT_EQ(counterValue("verbund_sip_auth_failed_total"), failed + 1);
}

TEST(AuthThrottle, SuccessDoesNotClearFailures) {
  ManualTimers timers;
  AuthThrottle t(smallConfig(), timers);
  const SockAddr a = addr("192.0.2.11:5060");
  uint64_t accepted = counterValue("verbund_sip_auth_accepted_total");
  t.failed(a, "INVITE", "1002", AuthFailure::WrongResponse);
  t.failed(a, "INVITE", "1003", AuthFailure::WrongResponse);
  t.accepted(); // a valid account of the same source
  EXPECT_TRUE(t.failed(a, "INVITE", "1004", AuthFailure::WrongResponse));
  EXPECT_EQ(counterValue("verbund_sip_auth_accepted_total"), accepted + 1);
}

TEST(AuthThrottle, Ipv6SourcesCountPerSlash64) {
  ManualTimers timers;
  AuthThrottle t(smallConfig(), timers);
  t.failed(addr("[2001:db8:1:2::1]:5060"), "INVITE", "a", AuthFailure::WrongResponse);
  t.failed(addr("[2001:db8:1:2::2]:5060"), "INVITE", "a", AuthFailure::WrongResponse);
  EXPECT_TRUE(
      t.failed(addr("[2001:db8:1:2:ffff::3]:5060"), "INVITE", "a", AuthFailure::WrongResponse));
  EXPECT_TRUE(t.refuse(addr("[2001:db8:1:2::99]:5060"), "REGISTER", "a"));
  EXPECT_FALSE(t.refuse(addr("[2001:db8:1:3::1]:5060"), "REGISTER", "a"));
}

TEST(AuthThrottle, ZeroMaxFailuresNeverBlocks) {
  ManualTimers timers;
  AuthThrottleConfig c = smallConfig();
  c.maxFailures = 0;
  AuthThrottle t(c, timers);
  const SockAddr a = addr("192.0.2.12:5060");
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(t.failed(a, "INVITE", "1", AuthFailure::WrongResponse));
  EXPECT_FALSE(t.refuse(a, "INVITE", "1"));
}

TEST(AuthThrottle, TableIsBounded) {
  ManualTimers timers;
  AuthThrottleConfig c = smallConfig();
  c.maxTrackedSources = 4;
  AuthThrottle t(c, timers);
  for (int i = 0; i < 100; ++i) {
    std::string ip = "198.51.100." + std::to_string(i) + ":5060";
    t.failed(addr(ip.c_str()), "INVITE", "1", AuthFailure::WrongResponse);
  }
  EXPECT_EQ(t.entries(), 4u);
}

TEST(AuthThrottle, LogSafeKeepsLinesPrintableAndShort) {
  EXPECT_EQ(logSafe("1001"), "1001");
  EXPECT_EQ(logSafe("a\r\nb\x01"), "a??b?");
  EXPECT_EQ(logSafe(std::string(100, 'x')), std::string(64, 'x') + "...");
}

TEST(AuthThrottle, ClaimedUserFromCredentialsElseFrom) {
  auto parse = [](const std::string& extra) {
    std::string text = "INVITE sip:1002@pbx.example SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
                       "From: <sip:1001@pbx.example>;tag=a\r\n"
                       "To: <sip:1002@pbx.example>\r\n"
                       "Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
                       extra + "Content-Length: 0\r\n\r\n";
    auto r = parseMessage(text);
    EXPECT_TRUE(r.ok()) << r.error.reason;
    return std::move(r.message);
  };
  auto plain = parse("");
  ASSERT_TRUE(plain);
  EXPECT_EQ(claimedUser(*plain), "1001");
  auto withCreds = parse("Proxy-Authorization: Digest username=\"attacker\", realm=\"r\", "
                         "nonce=\"n\", uri=\"sip:1002@pbx.example\", response=\"00\"\r\n");
  ASSERT_TRUE(withCreds);
  EXPECT_EQ(claimedUser(*withCreds), "attacker");
}

// ---- digest uri vs Request-URI (RFC 3261 §22.4) -----------------------------------------------

bool matches(std::string_view digestUri, std::string_view requestUri) {
  auto r = parseUri(requestUri);
  EXPECT_TRUE(r.ok()) << requestUri;
  return r.ok() && digestUriMatches(digestUri, *r);
}

TEST(DigestUri, SameTargetInTheFormsPhonesSend) {
  EXPECT_TRUE(matches("sip:1002@pbx.example", "sip:1002@pbx.example"));
  EXPECT_TRUE(matches("sip:1002@PBX.Example", "sip:1002@pbx.example"));      // host case
  EXPECT_TRUE(matches("sip:%31002@pbx.example", "sip:1002@pbx.example"));    // escaped user
  EXPECT_TRUE(matches("sip:1002@pbx.example:5060", "sip:1002@pbx.example")); // default port
  EXPECT_TRUE(matches("sips:1002@pbx.example", "sips:1002@pbx.example:5061"));
  EXPECT_TRUE(matches("sip:1002@pbx.example", "sip:1002@pbx.example;transport=udp"));
  EXPECT_TRUE(matches("sip:+4930123@pbx.example;user=phone", "sip:+4930123@pbx.example"));
  EXPECT_TRUE(matches("sip:1002@[2001:db8::1]", "sip:1002@[2001:DB8::1]"));
  EXPECT_TRUE(matches("sip:pbx.example", "sip:pbx.example")); // REGISTER
  EXPECT_TRUE(matches("tel:+4930123", "tel:+4930123"));
}

TEST(DigestUri, AnotherTargetIsRefused) {
  // The finding: a response captured for one number replayed towards another.
  EXPECT_FALSE(matches("sip:1002@pbx.example", "sip:004930999@pbx.example"));
  EXPECT_FALSE(matches("sip:1002@pbx.example", "sip:1003@pbx.example"));
  EXPECT_FALSE(matches("sip:1002@pbx.example", "sip:1002@other.example"));
  EXPECT_FALSE(matches("sip:1002@pbx.example:5070", "sip:1002@pbx.example"));
  EXPECT_FALSE(matches("sip:1002@pbx.example", "sips:1002@pbx.example"));
  EXPECT_FALSE(matches("sip:1002@pbx.example", "sip:1002@pbx.example;maddr=203.0.113.9"));
  EXPECT_FALSE(matches("sip:pbx.example", "sip:1002@pbx.example"));
  EXPECT_FALSE(matches("", "sip:1002@pbx.example"));
  EXPECT_FALSE(matches("not a uri", "sip:1002@pbx.example"));
  EXPECT_FALSE(matches("tel:+4930123", "tel:+4930124"));
  EXPECT_FALSE(matches("sip:1002@pbx.example", "tel:1002"));
}

// The form SIPp 3.6 sends (uri="sip:host:port") only when the node allows it, and never for
// another host or port.
TEST(DigestUri, WithoutUserOnlyWhenAllowed) {
  auto r = parseUri("sip:1002@127.0.0.1:5080");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(digestUriMatches("sip:127.0.0.1:5080", *r));
  EXPECT_TRUE(digestUriMatches("sip:127.0.0.1:5080", *r, true));
  EXPECT_FALSE(digestUriMatches("sip:127.0.0.1:5081", *r, true));
  EXPECT_FALSE(digestUriMatches("sip:127.0.0.2:5080", *r, true));
  EXPECT_FALSE(digestUriMatches("sip:1003@127.0.0.1:5080", *r, true));
}

} // namespace
} // namespace verbund::sip

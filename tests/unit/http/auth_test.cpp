#include "http/admin_auth.h"
#include "http/crypto.h"

#include "base/manual_timers.h"

#include <gtest/gtest.h>

namespace verbund::http {
namespace {

using namespace std::chrono_literals;

TEST(Crypto, Base64UrlRoundTrip) {
  for (size_t n = 0; n < 40; ++n) {
    auto bytes = randomBytes(n);
    auto text = base64Url(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
    auto back = fromBase64Url(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_FALSE(fromBase64Url("a"));
  EXPECT_FALSE(fromBase64Url("ab*d"));
  EXPECT_EQ(randomToken(32).size(), 43u);
  EXPECT_NE(randomToken(32), randomToken(32));
}

TEST(Crypto, PasswordHash) {
  auto h = hashPassword("correct horse", 1000);
  EXPECT_TRUE(h.starts_with("$pbkdf2-sha256$i=1000$"));
  EXPECT_EQ(h.find("correct"), std::string::npos);
  EXPECT_TRUE(verifyPassword("correct horse", h));
  EXPECT_FALSE(verifyPassword("correct horsE", h));
  EXPECT_NE(hashPassword("correct horse", 1000), h); // salted
  // Stored hashes are untrusted rows: malformed ones never verify and never crash.
  for (const char* bad :
       {"", "$pbkdf2-sha256$i=", "$pbkdf2-sha256$i=1000$$", "$pbkdf2-sha256$i=10$a$b",
        "$pbkdf2-sha256$i=99999999999$AAAA$AAAA", "$pbkdf2-sha256$i=1000$*$*",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAA", "plain"})
    EXPECT_FALSE(verifyPassword("x", bad)) << bad;
  EXPECT_GE(kPbkdf2Iterations, 200000);
}

struct AuthFixture {
  ManualTimers timers;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<AdminAuth> auth;
  AuthFixture() {
    db = std::move(store::Database::open(":memory:", AdminAuth::migrations()).value());
    AuthConfig cfg;
    cfg.pbkdf2Iterations = 1000;
    auth = std::move(AdminAuth::open(*db, timers, cfg).value());
  }
};

TEST(AdminAuth, BootstrapGeneratesOnce) {
  AuthFixture f;
  EXPECT_FALSE(f.auth->hasPassword());
  auto first = f.auth->bootstrap(std::nullopt);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  EXPECT_GE((*first)->size(), 16u);
  EXPECT_TRUE(verifyPassword(**first, f.auth->passwordHash()));
  auto again = f.auth->bootstrap(std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  // Persisted (hash only) and reloaded.
  auto reopened = AdminAuth::open(*f.db, f.timers, f.auth->config());
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(verifyPassword(**first, (*reopened)->passwordHash()));
}

TEST(AdminAuth, BootstrapFromEnvironmentAndRules) {
  AuthFixture f;
  EXPECT_EQ(f.auth->bootstrap(std::string("short")).error().code, 400);
  auto r = f.auth->bootstrap(std::string("from-the-env"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(verifyPassword("from-the-env", f.auth->passwordHash()));
}

TEST(AdminAuth, SessionIdleAndAbsoluteExpiry) {
  AuthFixture f;
  auto s = f.auth->createSession();
  EXPECT_EQ(s.id.size(), 43u); // 256 bits
  std::string csrf;
  ASSERT_TRUE(f.auth->session(s.id, &csrf));
  EXPECT_EQ(csrf, s.csrfToken);
  EXPECT_FALSE(f.auth->session("not-a-session"));
  // Used every 29 minutes it survives up to the absolute limit of 12 h.
  for (int i = 0; i < 24; ++i) {
    f.timers.advance(29min);
    ASSERT_TRUE(f.auth->session(s.id)) << i;
  }
  f.timers.advance(29min); // 12h05 after creation
  EXPECT_FALSE(f.auth->session(s.id));

  auto idle = f.auth->createSession();
  f.timers.advance(30min);
  EXPECT_FALSE(f.auth->session(idle.id));

  auto out = f.auth->createSession();
  f.auth->endSession(out.principal.sessionKey);
  EXPECT_FALSE(f.auth->session(out.id));
}

TEST(AdminAuth, PasswordChangeEndsSessions) {
  AuthFixture f;
  ASSERT_TRUE(f.auth->setPassword("first-password").ok());
  auto s = f.auth->createSession();
  ASSERT_TRUE(f.auth->setPassword("second-password").ok());
  EXPECT_FALSE(f.auth->session(s.id));
  EXPECT_TRUE(verifyPassword("second-password", f.auth->passwordHash()));
}

TEST(AdminAuth, ThrottlePerAddress) {
  AuthFixture f;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(f.auth->checkThrottle("10.0.0.1").ok()) << i;
    f.auth->recordFailure("10.0.0.1");
    f.timers.advance(1s);
  }
  auto r = f.auth->checkThrottle("10.0.0.1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 429);
  EXPECT_TRUE(f.auth->checkThrottle("10.0.0.2").ok()); // other addresses unaffected
  f.timers.advance(55s); // the first failure leaves the one-minute window
  EXPECT_TRUE(f.auth->checkThrottle("10.0.0.1").ok());
  f.auth->recordFailure("10.0.0.1");
  EXPECT_FALSE(f.auth->checkThrottle("10.0.0.1").ok());
  f.auth->recordSuccess("10.0.0.1");
  EXPECT_TRUE(f.auth->checkThrottle("10.0.0.1").ok());
}

TEST(AdminAuth, Tokens) {
  AuthFixture f;
  auto t = f.auth->createToken("backup script");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->second.starts_with("vbt_"));
  auto p = f.auth->tokenPrincipal(t->second);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, Principal::Kind::Token);
  EXPECT_EQ(p->name, "backup script");
  EXPECT_FALSE(f.auth->tokenPrincipal(t->second + "x"));
  EXPECT_FALSE(f.auth->tokenPrincipal("vbt_"));
  EXPECT_EQ(f.auth->createToken("backup script").error().code, 409);
  EXPECT_EQ(f.auth->createToken("").error().code, 400);
  EXPECT_EQ(f.auth->createToken("bad/name").error().code, 400);
  // Only the hash is stored.
  auto rows = f.db->query("SELECT token_hash FROM api_tokens");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(store::asText(rows->at(0)[0]).value_or(""), sha256Hex(t->second));
  // Survives a restart; deletion revokes.
  auto reopened = std::move(AdminAuth::open(*f.db, f.timers, f.auth->config()).value());
  EXPECT_TRUE(reopened->tokenPrincipal(t->second));
  ASSERT_TRUE(reopened->deleteToken(t->first.id).ok());
  EXPECT_FALSE(reopened->tokenPrincipal(t->second));
  EXPECT_EQ(reopened->deleteToken(t->first.id).error().code, 404);
}

} // namespace
} // namespace verbund::http

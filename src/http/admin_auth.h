#pragma once
// Authentication of the admin API: the admin password (stored as a PBKDF2 hash), browser sessions
// with CSRF tokens, named bearer tokens for scripts, and a per-address throttle of failed logins.
//
// Lives on the node's event loop like all node state (not thread-safe). The one expensive step,
// checking a password against its hash, is a free function (verifyPassword in crypto.h) that the
// HTTP threads run off the loop with the hash they fetched from here.
//
// Secrets (passwords, session ids, CSRF and bearer tokens) are never logged; sessions are keyed
// by the SHA-256 of their id and tokens are stored as SHA-256 only (they are 256-bit random, so
// a slow hash adds nothing).
#include "base/clock.h"
#include "base/result.h"
#include "http/crypto.h"
#include "store/database.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::http {

struct AuthConfig {
  int pbkdf2Iterations = kPbkdf2Iterations;
  Duration sessionIdle = std::chrono::minutes(30);
  Duration sessionAbsolute = std::chrono::hours(12);
  size_t maxSessions = 1000; // the oldest session is dropped beyond this
  int maxFailures = 5;       // failed logins per address and window, then 429
  Duration failureWindow = std::chrono::minutes(1);
  size_t maxTrackedAddresses = 10000;
};

inline constexpr size_t kMinAdminPasswordLength = 8;
inline constexpr size_t kMaxAdminPasswordLength = 1024;
inline constexpr std::string_view kTokenPrefix = "vbt_";

// Who made a request.
struct Principal {
  enum class Kind { None, Session, Token, Loopback };
  Kind kind = Kind::None;
  std::string name;       // "admin" for sessions, the token's name for tokens
  std::string sessionKey; // SHA-256 of the session id (sessions only): to log out, to check CSRF
  bool authenticated() const { return kind == Kind::Session || kind == Kind::Token; }
};

struct TokenInfo {
  int64_t id = 0;
  std::string name;
  int64_t createdUnixMs = 0;
};

class AdminAuth {
public:
  static std::vector<store::Migration> migrations();
  static Result<std::unique_ptr<AdminAuth>> open(store::Database& db, const Timers& timers,
                                                 AuthConfig config = {});

  // First start: with no admin password stored, stores `initial` (e.g. from the environment
  // variable VERBUND_ADMIN_PASSWORD) or a generated one. Returns the generated password so that
  // the caller can show it once; nullopt when none was generated.
  Result<std::optional<std::string>> bootstrap(std::optional<std::string> initial);
  bool hasPassword() const { return !passwordHash_.empty(); }
  // Stores a new password hash (hashing costs as much as a verification: not on a busy loop; the
  // API hashes off the loop and calls setPasswordHash). Ends every session and revokes every
  // API token.
  Result<void> setPassword(std::string_view password);
  Result<void> setPasswordHash(std::string hash);
  const std::string& passwordHash() const { return passwordHash_; }
  static Result<void> checkPasswordRules(std::string_view password);
  const AuthConfig& config() const { return config_; }

  // Login throttle, per source address.
  Result<void> checkThrottle(const std::string& address); // 429 with the wait in the message
  void recordFailure(const std::string& address);
  void recordSuccess(const std::string& address);

  struct NewSession {
    std::string id;        // goes into the cookie; shown once
    std::string csrfToken; // goes into the response body
    Principal principal;
  };
  NewSession createSession();
  // Looks up the session of a cookie value, enforcing idle and absolute expiry, and refreshes
  // its idle timer. Returns the principal and, through csrf, the session's CSRF token.
  std::optional<Principal> session(std::string_view id, std::string* csrf = nullptr);
  void endSession(const std::string& sessionKey);
  void endAllSessions() { sessions_.clear(); }
  size_t sessionCount() const { return sessions_.size(); }

  // Tokens: name 1..64 of letters, digits, space and ".-_"; unique.
  Result<std::pair<TokenInfo, std::string>> createToken(std::string_view name);
  std::vector<TokenInfo> tokens() const;
  Result<void> deleteToken(int64_t id);
  std::optional<Principal> tokenPrincipal(std::string_view token) const;

private:
  struct Session {
    std::string csrf;
    TimePoint created, lastUsed;
  };
  AdminAuth(store::Database& db, const Timers& timers, AuthConfig config)
      : db_(db), timers_(timers), config_(config) {}
  Result<void> load();
  void expireSessions();

  store::Database& db_;
  const Timers& timers_;
  AuthConfig config_;
  std::string passwordHash_;
  std::unordered_map<std::string, Session> sessions_; // key: SHA-256 of the id
  std::unordered_map<std::string, std::deque<TimePoint>> failures_;
  std::unordered_map<std::string, TokenInfo> tokens_; // key: SHA-256 of the token
};

} // namespace verbund::http

#include "http/admin_auth.h"

#include "base/log.h"

#include <algorithm>
#include <chrono>

namespace verbund::http {

namespace {
constexpr size_t kSessionIdBytes = 32; // 256 bits
constexpr size_t kTokenBytes = 32;

bool validTokenName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
          c == '.' || c == '-' || c == '_'))
      return false;
  return true;
}
} // namespace

std::vector<store::Migration> AdminAuth::migrations() {
  return {{"admin", 1, "admin password and API tokens", R"SQL(
CREATE TABLE admin_settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE api_tokens(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL);
)SQL"}};
}

Result<std::unique_ptr<AdminAuth>> AdminAuth::open(store::Database& db, const Timers& timers,
                                                   AuthConfig config) {
  std::unique_ptr<AdminAuth> a(new AdminAuth(db, timers, config));
  if (auto r = a->load(); !r) return r.error();
  return a;
}

Result<void> AdminAuth::load() {
  auto pw = db_.query("SELECT value FROM admin_settings WHERE key = 'password_hash'");
  if (!pw) return pw.error();
  if (!pw->empty()) passwordHash_ = store::asText(pw->at(0)[0]).value_or("");
  auto rows = db_.query("SELECT id, name, token_hash, created_ms FROM api_tokens");
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (row.size() < 4) continue;
    auto hash = store::asText(row[2]);
    if (!hash || hash->size() != 64) continue;
    tokens_[*hash] = TokenInfo{store::asInt(row[0]).value_or(0), store::asText(row[1]).value_or(""),
                               store::asInt(row[3]).value_or(0)};
  }
  return {};
}

Result<void> AdminAuth::checkPasswordRules(std::string_view password) {
  if (password.size() < kMinAdminPasswordLength)
    return Error{400, "password: at least 8 characters"};
  if (password.size() > kMaxAdminPasswordLength)
    return Error{400, "password: at most 1024 characters"};
  return {};
}

Result<std::optional<std::string>> AdminAuth::bootstrap(std::optional<std::string> initial) {
  if (hasPassword()) return std::optional<std::string>();
  std::optional<std::string> generated;
  if (!initial) {
    generated = randomToken(15); // 120 bits, 20 characters
    initial = generated;
  }
  if (auto r = setPassword(*initial); !r) return r.error();
  logger("http")->info("admin password initialised{}",
                       generated ? " (generated)" : " (from the environment)");
  return generated;
}

Result<void> AdminAuth::setPassword(std::string_view password) {
  if (auto r = checkPasswordRules(password); !r) return r;
  return setPasswordHash(hashPassword(password, config_.pbkdf2Iterations));
}

Result<void> AdminAuth::setPasswordHash(std::string hash) {
  auto r = db_.exec("INSERT INTO admin_settings(key, value) VALUES ('password_hash', ?1) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    {hash});
  if (!r) return r;
  passwordHash_ = std::move(hash);
  endAllSessions();
  // Tokens were issued under the old password: whoever had it may have made some.
  if (auto t = db_.exec("DELETE FROM api_tokens"); !t) return t;
  tokens_.clear();
  return {};
}

Result<void> AdminAuth::checkThrottle(const std::string& address) {
  auto it = failures_.find(address);
  if (it == failures_.end()) return {};
  auto now = timers_.now();
  auto& q = it->second;
  while (!q.empty() && now - q.front() >= config_.failureWindow) q.pop_front();
  if (q.empty()) {
    failures_.erase(it);
    return {};
  }
  if (int(q.size()) < config_.maxFailures) return {};
  auto wait =
      std::chrono::duration_cast<std::chrono::seconds>(q.front() + config_.failureWindow - now)
          .count() +
      1;
  return Error{429,
               "password: too many failed logins, try again in " + std::to_string(wait) + " s"};
}

void AdminAuth::recordFailure(const std::string& address) {
  auto now = timers_.now();
  if (failures_.size() >= config_.maxTrackedAddresses && !failures_.contains(address)) {
    // Forget addresses whose failures have all left the window; if none, forget one at random
    // rather than grow without bound.
    std::erase_if(failures_, [&](const auto& kv) {
      return kv.second.empty() || now - kv.second.back() >= config_.failureWindow;
    });
    if (failures_.size() >= config_.maxTrackedAddresses) failures_.erase(failures_.begin());
  }
  auto& q = failures_[address];
  q.push_back(now);
  while (int(q.size()) > config_.maxFailures) q.pop_front();
  // No log line here: the API counts every attempt up front and clears it on success; it logs
  // the attempts that really failed.
}

void AdminAuth::recordSuccess(const std::string& address) {
  failures_.erase(address);
}

void AdminAuth::expireSessions() {
  auto now = timers_.now();
  std::erase_if(sessions_, [&](const auto& kv) {
    return now - kv.second.lastUsed >= config_.sessionIdle ||
           now - kv.second.created >= config_.sessionAbsolute;
  });
}

AdminAuth::NewSession AdminAuth::createSession() {
  expireSessions();
  if (sessions_.size() >= config_.maxSessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.lastUsed < b.second.lastUsed;
    });
    sessions_.erase(oldest);
  }
  NewSession s;
  s.id = randomToken(kSessionIdBytes);
  s.csrfToken = randomToken(kSessionIdBytes);
  auto key = sha256Hex(s.id);
  auto now = timers_.now();
  sessions_[key] = Session{s.csrfToken, now, now};
  s.principal = Principal{Principal::Kind::Session, "admin", key};
  return s;
}

std::optional<Principal> AdminAuth::session(std::string_view id, std::string* csrf) {
  if (id.empty() || id.size() > 128) return std::nullopt;
  auto key = sha256Hex(id);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return std::nullopt;
  auto now = timers_.now();
  if (now - it->second.lastUsed >= config_.sessionIdle ||
      now - it->second.created >= config_.sessionAbsolute) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.lastUsed = now;
  if (csrf) *csrf = it->second.csrf;
  return Principal{Principal::Kind::Session, "admin", key};
}

void AdminAuth::endSession(const std::string& sessionKey) {
  sessions_.erase(sessionKey);
}

Result<std::pair<TokenInfo, std::string>> AdminAuth::createToken(std::string_view name) {
  if (!validTokenName(name))
    return Error{400, "name: 1 to 64 letters, digits, spaces and .-_ only"};
  for (const auto& [h, t] : tokens_)
    if (t.name == name) return Error{409, "name: a token with this name exists"};
  std::string secret = std::string(kTokenPrefix) + randomToken(kTokenBytes);
  auto hash = sha256Hex(secret);
  TokenInfo info{0, std::string(name), timers_.wallMs()};
  auto r = db_.exec("INSERT INTO api_tokens(name, token_hash, created_ms) VALUES (?1, ?2, ?3)",
                    {info.name, hash, info.createdUnixMs});
  if (!r) return r.error();
  info.id = db_.lastInsertId();
  tokens_[hash] = info;
  return std::make_pair(info, secret);
}

std::vector<TokenInfo> AdminAuth::tokens() const {
  std::vector<TokenInfo> out;
  for (const auto& [h, t] : tokens_) out.push_back(t);
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
  return out;
}

Result<void> AdminAuth::deleteToken(int64_t id) {
  auto it = std::find_if(tokens_.begin(), tokens_.end(),
                         [&](const auto& kv) { return kv.second.id == id; });
  if (it == tokens_.end()) return Error{404, "token: not found"};
  if (auto r = db_.exec("DELETE FROM api_tokens WHERE id = ?1", {id}); !r) return r;
  tokens_.erase(it);
  return {};
}

std::optional<Principal> AdminAuth::tokenPrincipal(std::string_view token) const {
  if (!token.starts_with(kTokenPrefix) || token.size() > 128) return std::nullopt;
  auto it = tokens_.find(sha256Hex(token));
  if (it == tokens_.end()) return std::nullopt;
  return Principal{Principal::Kind::Token, it->second.name, {}};
}

} // namespace verbund::http

#pragma once
// SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): the server side that challenges
// and verifies requests, and the client side that answers challenges.
//
// Both run on one event loop and are not thread-safe. Secrets (passwords, HA1, the nonce key) are
// never logged and never appear in error messages.
#include "base/clock.h"
#include "base/result.h"
#include "sip/message/headers.h"

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct evp_mac_ctx_st; // OpenSSL EVP_MAC_CTX

namespace verbund::sip {

// RFC 7616 §6.1 registry, RFC 8760 §2.
enum class DigestAlgorithm : uint8_t {
  Md5,
  Md5Sess,
  Sha256,
  Sha256Sess,
  Sha512_256,
  Sha512_256Sess,
};

std::string_view digestAlgorithmName(DigestAlgorithm a); // "MD5", "SHA-512-256-sess", ...
// Case-insensitive (RFC 7616 §3.3). An empty name is not MD5 here; callers apply the default.
std::optional<DigestAlgorithm> digestAlgorithmFromName(std::string_view name);
bool isSessAlgorithm(DigestAlgorithm a);
// The hash an algorithm is built on: Md5Sess -> Md5 etc. Stored HA1 values are per base algorithm.
DigestAlgorithm baseAlgorithm(DigestAlgorithm a);
// Preference when several challenges are offered: SHA-512-256 > SHA-256 > MD5 (RFC 8760 §2.4).
int digestStrength(DigestAlgorithm a);

// Lower-case hex of H(parts[0] || parts[1] || ...) with the algorithm's hash; nullopt only when
// OpenSSL lacks the hash (e.g. MD5 under a FIPS-only provider).
std::optional<std::string> digestHex(DigestAlgorithm a,
                                     std::initializer_list<std::string_view> parts);

// HA1 = H(username ":" realm ":" password) with the base hash (RFC 7616 §3.4.2). This is what the
// PBX stores per user and algorithm instead of the password.
std::optional<std::string> digestHa1(DigestAlgorithm a, std::string_view username,
                                     std::string_view realm, std::string_view password);

// Everything that enters a response computation (RFC 7616 §3.4.1-3.4.3, RFC 2069 when qop is
// empty).
struct DigestInputs {
  DigestAlgorithm algorithm = DigestAlgorithm::Md5;
  std::string_view ha1; // H(username:realm:password), before the -sess transformation
  std::string_view nonce;
  std::string_view cnonce;
  std::string_view nc;  // 8 hex digits as sent
  std::string_view qop; // "auth", "auth-int" or empty (RFC 2069)
  std::string_view method;
  std::string_view uri;
  std::string_view body; // used for auth-int only
};
std::optional<std::string> digestResponse(const DigestInputs& in);

// What the user database knows about a user for one realm and base algorithm: the plaintext
// password, or HA1 computed with that algorithm's hash (hex, any case). A view: the lookup's owner
// keeps the text alive for the call that asked (DigestServer::verify uses it before returning),
// so a credential lookup copies nothing.
struct DigestSecret {
  enum class Kind : uint8_t { Password, Ha1 };
  Kind kind = Kind::Password;
  std::string_view value;
};
// (username, realm, base algorithm) -> secret, or nullopt for an unknown user.
using DigestLookup = std::function<std::optional<DigestSecret>(
    std::string_view username, std::string_view realm, DigestAlgorithm base)>;

enum class DigestStatus : uint8_t {
  Ok,
  Missing,            // no credentials at all (empty scheme)
  NotDigest,          // another scheme
  WrongRealm,         // credentials for another realm: the caller may look at other headers
  UnknownAlgorithm,   // an algorithm we did not offer
  Malformed,          // required parameter missing or invalid
  StaleNonce,         // response correct but nonce expired: challenge again with stale=true
  BadNonce,           // nonce not issued by us (MAC check failed) or undecodable
  ReplayedNonceCount, // response correct but nc already seen / too old: challenge again
  WrongResponse,      // wrong password or unknown user; deliberately indistinguishable
};
std::string_view digestStatusName(DigestStatus s);

struct DigestVerdict {
  DigestStatus status = DigestStatus::Missing;
  std::string username; // unquoted; set once the credentials parsed far enough
  std::string uri;      // digest-uri as sent (unquoted): compare with the Request-URI
  std::string_view qop; // "auth", "auth-int" or empty
  DigestAlgorithm algorithm = DigestAlgorithm::Md5;

  bool ok() const { return status == DigestStatus::Ok; }
  // RFC 7616 §3.3: stale=true tells the client its password was right and only the nonce needs
  // renewing, so it retries without asking the user.
  bool wantsStaleChallenge() const {
    return status == DigestStatus::StaleNonce || status == DigestStatus::ReplayedNonceCount;
  }
};

struct DigestServerConfig {
  std::string realm;
  // One challenge per algorithm, in this order (RFC 8760 §2.4: strongest first).
  std::vector<DigestAlgorithm> algorithms{DigestAlgorithm::Sha256, DigestAlgorithm::Md5};
  Duration nonceLifetime = std::chrono::seconds(300);
  bool offerAuthInt = true; // qop="auth,auth-int" rather than qop="auth"
  // RFC 3261 §22.4 keeps RFC 2069 clients working. Without qop there is no nc, so such a nonce
  // is accepted once only.
  bool allowNoQop = true;
  size_t maxTrackedNonces = 100000; // hard cap of the nonce-count replay table
};

// Stateless nonces (RFC 7616 §3.3 leaves the format to the server):
//   base64url(issue-ms[8] || random[16] || HMAC-SHA256(secret, issue-ms || random || realm))
// The nonce-count table is the only state; it is bounded by lifetime and by a hard cap.
class DigestServer {
public:
  // Throws std::runtime_error when the secret cannot be drawn or an algorithm is unavailable:
  // start-up only.
  DigestServer(DigestServerConfig config, const Timers& timers);
  ~DigestServer();
  DigestServer(const DigestServer&) = delete;
  DigestServer& operator=(const DigestServer&) = delete;

  // WWW-Authenticate / Proxy-Authenticate values, one per configured algorithm, sharing a nonce.
  std::vector<std::string> challenges(bool stale = false);

  // Verifies Authorization / Proxy-Authorization credentials of a request. body is the message
  // body (for qop=auth-int). Counts the outcome.
  DigestVerdict verify(const AuthParams& creds, std::string_view method, std::string_view body,
                       const DigestLookup& lookup);

  const DigestServerConfig& config() const { return config_; }
  size_t trackedNonces() const { return nonces_.size(); }

  // A fresh nonce; exposed for tests and the fuzzer.
  std::string makeNonce();

private:
  static constexpr size_t kRandomBytes = 16;
  static constexpr size_t kMacBytes = 32;
  static constexpr size_t kNonceBytes = 8 + kRandomBytes + kMacBytes;

  struct NonceKey {
    uint64_t a = 0, b = 0; // the nonce's random part: unique, and unforgeable behind the MAC
    friend bool operator==(const NonceKey&, const NonceKey&) = default;
  };
  struct NonceKeyHash {
    size_t operator()(const NonceKey& k) const noexcept { return size_t(k.a ^ (k.b * 31)); }
  };
  struct NcWindow {
    uint32_t highest = 0; // highest nc accepted
    uint64_t seen = 0;    // bit i: nc (highest - i) accepted
    uint64_t issueMs = 0;
  };
  struct Decoded {
    uint64_t issueMs = 0;
    NonceKey key;
  };
  enum class NonceCheck : uint8_t { Valid, Stale, Bad };

  uint64_t nowMs() const;
  std::array<uint8_t, kMacBytes> mac(const uint8_t* data, size_t size) const;
  NonceCheck checkNonce(std::string_view nonce, Decoded& out) const;
  bool acceptNc(const Decoded& nonce, uint32_t nc);
  void expireNonces();

  DigestServerConfig config_;
  const Timers& timers_;
  std::array<uint8_t, 32> secret_{};
  // HMAC-SHA256 keyed with secret_ once; each MAC re-initialises it with the same key, instead
  // of looking the algorithm up and keying it anew per nonce (two per authenticated request).
  evp_mac_ctx_st* hmac_ = nullptr;
  std::unordered_map<NonceKey, NcWindow, NonceKeyHash> nonces_;
  // First-use order, for expiry and the hard cap. A key is erased from nonces_ only when it
  // leaves the front of this queue, so both stay in step.
  std::deque<std::pair<NonceKey, uint64_t /*expiresMs*/>> order_;
  // Highest issue time of an entry dropped by the hard cap before it expired. A nonce issued no
  // later than this without an entry may have lost its history: treat it as stale, not fresh.
  uint64_t evictedWatermarkMs_ = 0;
  bool evictedAny_ = false;
};

// Answers challenges. Keeps the nonce counts of the nonces it has used.
class DigestClient {
public:
  // Index of the challenge to answer among several WWW-Authenticate / Proxy-Authenticate values
  // of one response: the strongest supported algorithm, first wins ties (RFC 8760 §2.4).
  static std::optional<size_t> pickChallenge(std::span<const AuthParams> challenges);

  // The Authorization / Proxy-Authorization value for a request answering `challenge`.
  Result<std::string> authorize(const AuthParams& challenge, std::string_view username,
                                std::string_view password, std::string_view method,
                                std::string_view uri, std::string_view body = {});

  // Same, with a stored HA1 (computed with the challenge's base hash) instead of the password.
  Result<std::string> authorizeHa1(const AuthParams& challenge, std::string_view username,
                                   std::string_view ha1, std::string_view method,
                                   std::string_view uri, std::string_view body = {});

private:
  static constexpr size_t kMaxNonces = 256;
  Result<std::string> answer(const AuthParams& challenge, std::string_view username,
                             const DigestSecret& secret, std::string_view method,
                             std::string_view uri, std::string_view body);
  std::unordered_map<std::string, uint32_t> nc_;
};

} // namespace verbund::sip

#pragma once
// One brute-force policy for every digest-authenticated request of a node (REGISTER, INVITE,
// SUBSCRIBE, ...): failed digest checks are counted per source, a source with too many failures
// is refused for a while whatever the method or user, failures and refusals are logged (rate
// limited) and counted. The node owns one instance and hands it to the registrar and to its
// request gate, so a source blocked for REGISTER guesses is blocked for INVITE too.
//
// Runs on the node's event loop: single-threaded, no locks. Time comes from the injected Timers.
// The digest response and the secrets never reach this class; it logs source, method and the
// claimed user name only.
#include "base/clock.h"
#include "base/net.h"
#include "sip/message/message.h"
#include "sip/message/uri.h"

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace verbund::sip {

struct AuthThrottleConfig {
  // maxFailures failed digest checks within failureWindow block the source for cooldown.
  // 0 turns blocking off (failures are still logged and counted).
  uint32_t maxFailures = 10;
  Duration failureWindow = std::chrono::seconds(60);
  Duration cooldown = std::chrono::seconds(300);
  size_t maxTrackedSources = 10000; // LRU cap of the source table (bounded memory)
  // Log lines about one source at most this often (the first failure, the block and the first
  // refusal of a block are always candidates); and at most logBurst lines per second node-wide,
  // so a flood from many addresses cannot flood the log either.
  Duration logInterval = std::chrono::seconds(10);
  uint32_t logBurst = 20;
};

// Why a digest check failed, for the log line and the counters.
enum class AuthFailure : uint8_t {
  WrongResponse, // wrong password, unknown user, credentials of another user's AoR
  UriMismatch,   // the digest uri does not name the Request-URI (RFC 3261 §22.4)
};

class AuthThrottle {
public:
  AuthThrottle(AuthThrottleConfig config, const Timers& timers);

  // The table key: the IP address (IPv6: its /64, since one host usually owns a whole /64 and
  // could otherwise rotate addresses freely), port 0.
  static SockAddr sourceKey(const SockAddr& remote);

  // Called before a request from `remote` is authenticated. nullopt: go on. Otherwise the source
  // is blocked: the caller refuses the request (403 with Retry-After) and the returned number of
  // seconds (at least 1) is how long the block lasts. Counts and logs (rate limited) the refusal.
  std::optional<uint32_t> refuse(const SockAddr& remote, std::string_view method,
                                 std::string_view user);
  // A failed digest check. Returns true when this failure blocked the source.
  bool failed(const SockAddr& remote, std::string_view method, std::string_view user,
              AuthFailure why);
  // A successful digest check (counted; does not clear earlier failures, so one valid account
  // cannot launder guesses at others).
  void accepted();

  bool blocked(const SockAddr& remote) const;
  size_t entries() const { return sources_.size(); }
  const AuthThrottleConfig& config() const { return config_; }
  // New limits (a configuration reload); sources already blocked stay blocked until their end.
  void setConfig(const AuthThrottleConfig& config) { config_ = config; }

private:
  struct SourceState {
    SockAddr key;
    uint32_t failures = 0;
    TimePoint windowStart{};
    TimePoint blockedUntil{};
    TimePoint lastLog{};
    bool logged = false;
    // Method of the last refusal logged in this block: the first refusal of each block, and of
    // each further method, is always a candidate for a line.
    std::string refusedMethod;
    uint64_t unlogged = 0; // failures and refusals since the last line about this source
  };

  SourceState& touch(const SockAddr& key);
  // Whether a line about `s` may be written now (per-source interval and node-wide budget).
  bool mayLog(SourceState& s, bool force);

  AuthThrottleConfig config_;
  const Timers& timers_;
  std::list<SourceState> lru_; // most recently used first
  std::unordered_map<SockAddr, std::list<SourceState>::iterator, SockAddrHash> sources_;
  TimePoint budgetStart_{};
  uint32_t budgetUsed_ = 0;
};

// RFC 3261 §22.4 / RFC 7616 §3.4: the digest uri must name the Request-URI, else a response
// captured for one request authorises another. Compared as URIs, tolerating what phones differ
// in: exact text, RFC 3261 §19.1.4 equality, and else the same scheme, user (escapes decoded),
// host (case-insensitive) and port (absent = the scheme's default port), whatever the URI
// parameters and headers (phones disagree on copying ;transport= or ;user=phone; the node routes
// by user and host only). With allowWithoutUser, a digest uri without a user part that names the
// Request-URI's host and port ("sip:host:port", what SIPp 3.6 sends) is accepted too: weaker, the
// response is then bound to the node but not to the number dialled.
bool digestUriMatches(std::string_view digestUri, const Uri& requestUri,
                      bool allowWithoutUser = false);

// Reason phrases of the refusals, the same for every method.
inline constexpr std::string_view kAuthBlockedReason = "Too Many Failed Authentications";
inline constexpr std::string_view kDigestUriMismatchReason = "Digest URI Mismatch";

// The user a request claims to be, for log lines: the username of its first Authorization or
// Proxy-Authorization header, else the user part of From. Unverified; pass it through logSafe.
std::string claimedUser(const Message& m);

// A user name from an untrusted request made fit for a log line: printable ASCII only (others as
// '?'), at most 64 bytes.
std::string logSafe(std::string_view s);

} // namespace verbund::sip

#pragma once
// Asynchronous DNS on c-ares, driven by the node's asio::io_context (single-threaded): c-ares
// sockets are watched with asio posix descriptors, its timeouts with one steady_timer. Answers
// are cached by TTL (negative answers for a fixed time), identical queries in flight share one
// c-ares query, and callbacks always run later from the io_context, never inside query().
//
// DNS answers are untrusted input: nothing here throws or asserts on them.
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace asio {
class io_context;
}

namespace verbund::sip {

enum class DnsType : uint16_t { A = 1, Aaaa = 28, Srv = 33, Naptr = 35 };
std::string_view dnsTypeName(DnsType t); // "A", "AAAA", "SRV", "NAPTR"

struct NaptrRecord {
  uint16_t order = 0;
  uint16_t preference = 0;
  std::string flags;       // e.g. "s" (RFC 3403 §4.1)
  std::string service;     // e.g. "SIP+D2U" (RFC 3263 §4.1)
  std::string regexp;      // unused by SIP (RFC 3263 requires an empty one)
  std::string replacement; // the next name to look up, without the trailing dot
};

struct SrvRecord {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target; // without the trailing dot; "." / "" means "service not available"
};

struct DnsAnswer {
  enum class Status : uint8_t {
    Ok,     // at least one record of the type asked for
    NoData, // NXDOMAIN, or the name exists without records of this type (cached negatively)
    Error,  // timeout, SERVFAIL, refused, malformed answer... (not cached)
  };
  Status status = Status::Error;
  std::string error;                // for Error (and NoData: "NXDOMAIN" / "no records")
  uint32_t ttl = 0;                 // seconds: lowest TTL of the answer records
  std::vector<IpAddress> addresses; // A / AAAA
  std::vector<SrvRecord> srv;
  std::vector<NaptrRecord> naptr;

  bool ok() const { return status == Status::Ok; }
};

struct DnsConfig {
  // Name servers ("127.0.0.1:5353", "[::1]:53"). Empty: the system's (/etc/resolv.conf).
  std::vector<SockAddr> servers;
  Duration timeout{1500}; // per try and server (c-ares doubles it on later rounds)
  int tries = 2;
  Duration negativeTtl{30000}; // how long NXDOMAIN / no-data answers are cached
  uint32_t maxTtl = 86400;     // TTLs above this are clamped (seconds)
  size_t maxCacheEntries = 4096;
  // Time source of the cache; default steady_clock (tests inject a fake clock).
  std::function<TimePoint()> now;
};

struct DnsStats {
  uint64_t queries = 0;   // asked by callers
  uint64_t cacheHits = 0; // answered from the cache
  uint64_t sent = 0;      // c-ares queries started
  uint64_t errors = 0;    // answers with Status::Error
};

class DnsResolver {
public:
  using Callback = std::function<void(const DnsAnswer&)>;

  // Errors: c-ares could not initialise, or a server address is unusable (start-up only).
  static Result<std::unique_ptr<DnsResolver>> create(asio::io_context& io, DnsConfig config = {});
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Looks `name` up (absolute; no search domains). The callback runs later on the io_context,
  // exactly once, unless the resolver is destroyed first (then never).
  void query(std::string_view name, DnsType type, Callback cb);

  // A cached, unexpired answer, without asking the network.
  std::optional<DnsAnswer> cached(std::string_view name, DnsType type) const;
  void clearCache() { cache_.clear(); }
  size_t cacheSize() const { return cache_.size(); }
  const DnsStats& stats() const { return stats_; }
  asio::io_context& ioContext() { return io_; }

private:
  struct Impl;
  struct Pending;
  struct CacheEntry {
    std::shared_ptr<const DnsAnswer> answer;
    TimePoint expires;
  };

  DnsResolver(asio::io_context& io, DnsConfig config);
  TimePoint now() const;
  void complete(const std::string& key, DnsAnswer answer);
  void store(const std::string& key, const std::shared_ptr<const DnsAnswer>& answer);
  void deliver(Callback cb, std::shared_ptr<const DnsAnswer> answer);

  asio::io_context& io_;
  DnsConfig config_;
  std::unique_ptr<Impl> impl_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, std::vector<Callback>> inflight_;
  DnsStats stats_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

// Parses the answer section of a DNS response far enough to return the lowest TTL of its
// records (c-ares' SRV and NAPTR parsers do not report TTLs). nullopt when malformed or empty.
std::optional<uint32_t> lowestAnswerTtl(const unsigned char* data, size_t size);

} // namespace verbund::sip

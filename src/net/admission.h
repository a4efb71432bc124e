#pragma once
// Admission of incoming stream connections: who may hold how many. Pure bookkeeping, no I/O and
// no clock, so the policy is tested without sockets.
//
// Two kinds of slot are counted, globally and per source:
// - open: every accepted connection until it closes;
// - pending: an accepted connection that has not delivered its first complete message yet (a
//   SIP message, a federation hello). These cost a TLS handshake and buy nothing yet, so they
//   have a tighter cap than open connections, and a deadline (StreamConnection).
// A source is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64).
//
// `reserved` slots of each global cap are kept for privileged sources (e.g. the known addresses
// of federation members): others are refused once only the reserve is left. Privileged sources
// are not held to the per-source caps either, so a flood from one address cannot lock a member
// out, and a member's reconnects are never mistaken for a flood.
#include "base/metrics.h"
#include "base/net.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace verbund::net {

struct AdmissionLimits {
  size_t maxConnections = 4096;    // open, all sources
  size_t maxPerSource = 256;       // open, one source (an office behind one NAT)
  size_t maxPending = 1024;        // before the first message, all sources
  size_t maxPendingPerSource = 32; // before the first message, one source
  size_t reserved = 0;             // of maxConnections and of maxPending, for privileged sources
  // The per-source caps: 0 means no cap. The global caps always apply.
};

// Counters and gauges of one listener family (SIP, federation), defined by the module that owns
// the names. Null members are skipped.
struct ConnectionMetrics {
  Counter* refusedGlobalCap = nullptr;    // at maxConnections / maxPending
  Counter* refusedPerSourceCap = nullptr; // at maxPerSource / maxPendingPerSource
  Counter* firstMessageTimeouts = nullptr;
  Counter* fdLimitErrors = nullptr; // accept() failed with EMFILE / ENFILE
  Gauge* open = nullptr;
  Gauge* pending = nullptr;
};

class Admission {
public:
  enum class Verdict { Admit, GlobalCap, PerSourceCap, PendingCap, PendingPerSourceCap };

  // Released slots of a connection: moves pending → open on the first message and frees both on
  // close (or destruction). Holds the Admission alive, so a connection may outlive its listener.
  class Ticket {
  public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept { *this = std::move(o); }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket() { release(); }
    void firstMessage(); // idempotent
    void release();      // idempotent
    bool pending() const { return admission_ && pending_; }
    explicit operator bool() const { return admission_ != nullptr; }

  private:
    friend class Admission;
    std::shared_ptr<Admission> admission_;
    uint64_t key_ = 0;
    bool pending_ = false;
  };

  explicit Admission(AdmissionLimits limits, ConnectionMetrics metrics = {});
  void setLimits(const AdmissionLimits& limits) { limits_ = limits; }
  const AdmissionLimits& limits() const { return limits_; }

  // Decides about a new connection from `source`; on Admit the ticket holds its slots.
  static Verdict admit(const std::shared_ptr<Admission>& self, const IpAddress& source,
                       bool privileged, Ticket& ticket);

  size_t open() const { return open_; }
  size_t pending() const { return pending_; }
  size_t openFrom(const IpAddress& source) const;
  size_t pendingFrom(const IpAddress& source) const;
  const ConnectionMetrics& metrics() const { return metrics_; }

  static uint64_t sourceKey(const IpAddress& ip); // v4 address or v6 /64
  static std::string_view verdictName(Verdict v);

private:
  struct Counts {
    size_t open = 0;
    size_t pending = 0;
  };
  void firstMessage(uint64_t key);
  void release(uint64_t key, bool pending);
  void publish();

  AdmissionLimits limits_;
  ConnectionMetrics metrics_;
  size_t open_ = 0;
  size_t pending_ = 0;
  std::unordered_map<uint64_t, Counts> bySource_;
};

} // namespace verbund::net

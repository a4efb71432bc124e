#pragma once
// RFC 3263 §4: locating SIP servers. Given a SIP or SIPS URI, yields the ordered list of
// (transport, address) targets to try:
//
//   numeric host               -> that address; port from the URI or 5060/5061 (no DNS)
//   port given                 -> A/AAAA of the host, that port (§4.2)
//   transport param, no port   -> SRV of that transport, else A/AAAA with the default port
//   otherwise                  -> NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T; only SIPS+D2T for sips:),
//                                 each usable record's SRV in NAPTR order (§4.1); without
//                                 usable NAPTR results: SRV _sips._tcp (sips:) or
//                                 _sip._udp/_sip._tcp/_sips._tcp (sip:) in the configured
//                                 transport order; without SRV: A/AAAA, port 5060 (UDP) or 5061
//                                 (TLS for sips:)
//
// SRV records are ordered by priority and, within a priority, by weighted random choice
// (RFC 2782); a lone target "." means the service is not offered. Every SRV target is resolved
// to A (and AAAA when enabled) records; the list is de-duplicated and keeps this order, so the
// caller tries the targets in turn (RFC 3263 §4.3).
#include "base/net.h"
#include "base/result.h"
#include "sip/dns/dns_resolver.h"
#include "sip/message/peer.h"
#include "sip/message/types.h"
#include "sip/message/uri.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::sip {

struct SipTarget {
  TransportType transport = TransportType::Udp;
  SockAddr addr;
  std::string host; // the name it was found under (for TLS identity checks), or the IP

  Peer peer() const {
    Peer p;
    p.transport = transport;
    p.remote = addr;
    return p;
  }
  std::string toString() const; // "UDP 192.0.2.1:5060"
  friend bool operator==(const SipTarget& a, const SipTarget& b) {
    return a.transport == b.transport && a.addr == b.addr;
  }
};

using LocateCallback = std::function<void(Result<std::vector<SipTarget>>)>;

// The seam the PBX uses (tests substitute a fake): RFC 3263 resolution of a URI.
class SipLocator {
public:
  virtual ~SipLocator() = default;
  // The callback runs later on the locator's loop, exactly once (unless the locator is destroyed
  // first). Errors: unparsable URI, tel: URI, nothing found (the message says why).
  virtual void locate(std::string_view uri, LocateCallback cb) = 0;
};

// ---- Pure steps of the procedure (exposed for tests) ----

// RFC 3263 §4.1: transport for a URI without DNS; nullopt when DNS decides.
// Also the shortcut for numeric hosts: all targets, or nullopt when the host is a name.
std::optional<std::vector<SipTarget>> locateNumeric(const Uri& uri);

// NAPTR records usable by us, best first (order, then preference; RFC 3403 §4.1), each with the
// transport its service names. Only flag "s" records with an empty regexp are kept.
struct UsableNaptr {
  TransportType transport;
  std::string srvName; // the replacement
};
std::vector<UsableNaptr> usableNaptr(std::vector<NaptrRecord> records, bool sipsOnly,
                                     const std::vector<TransportType>& supported);

// RFC 2782 ordering: ascending priority; within one priority repeatedly pick a record with
// probability proportional to its weight (zero-weight records first in the running list so
// they still get a small chance). `random(n)` returns a value in [0, n].
std::vector<SrvRecord> orderSrv(std::vector<SrvRecord> records,
                                const std::function<uint32_t(uint32_t)>& random);

// "_sip._udp", "_sip._tcp", "_sips._tcp" (RFC 3263 §4.1, RFC 5630 for TLS).
std::string_view srvPrefix(TransportType t);
uint16_t defaultPort(TransportType t); // 5060, 5061 for TLS

struct LocatorConfig {
  // Transports we can use, in our order of preference when DNS gives none (SRV fallback).
  std::vector<TransportType> transports{TransportType::Udp, TransportType::Tcp, TransportType::Tls};
  bool ipv6 = true;        // also ask AAAA
  bool preferIpv6 = false; // AAAA results before A results of the same host
  // Random source for SRV weights: a value in [0, n]. Default: a seeded mt19937.
  std::function<uint32_t(uint32_t n)> random;
};

class ServerLocator final : public SipLocator {
public:
  explicit ServerLocator(DnsResolver& dns, LocatorConfig config = {});
  ~ServerLocator() override;

  void locate(std::string_view uri, LocateCallback cb) override;

private:
  struct Op;
  uint32_t random(uint32_t n);

  DnsResolver& dns_;
  LocatorConfig config_;
  std::mt19937 rng_{std::random_device{}()};
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

} // namespace verbund::sip

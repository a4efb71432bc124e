#pragma once
// Socket addresses independent of Asio, so layers above the transport do not include it.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace verbund {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{}; // v4 uses the first 4

  static std::optional<IpAddress> parse(std::string_view text); // "1.2.3.4", "::1", "[::1]"
  std::string toString() const;                                 // v6 without brackets
  bool isLoopback() const;
  bool isAny() const;
  // Addresses behind NAT: RFC 1918, RFC 6598 shared (carrier-grade NAT), link-local, and for
  // IPv6 unique local (fc00::/7) and link-local (fe80::/10).
  bool isPrivate() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct SockAddr {
  IpAddress ip;
  uint16_t port = 0;

  // "1.2.3.4:5060", "[::1]:5060"; a missing port gives 0.
  static std::optional<SockAddr> parse(std::string_view text);
  std::string toString() const;   // "1.2.3.4:5060" / "[::1]:5060"
  std::string hostString() const; // "1.2.3.4" / "[::1]" for use in SIP URIs and Via
  friend bool operator==(const SockAddr&, const SockAddr&) = default;
};

struct SockAddrHash {
  size_t operator()(const SockAddr& a) const noexcept;
};

} // namespace verbund

#include "base/net.h"

#include <arpa/inet.h>
#include <cstring>
#include <functional>

namespace verbund {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[64];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  IpAddress a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.v6 = true;
    return a;
  }
  return std::nullopt;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

bool IpAddress::isLoopback() const {
  if (!v6) return bytes[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (bytes[i] != 0) return false;
  return bytes[15] == 1;
}

bool IpAddress::isPrivate() const {
  const auto& b = bytes;
  if (v6) return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
  return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
         (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254);
}

bool IpAddress::isAny() const {
  int n = v6 ? 16 : 4;
  for (int i = 0; i < n; ++i)
    if (bytes[i] != 0) return false;
  return true;
}

std::optional<SockAddr> SockAddr::parse(std::string_view text) {
  SockAddr out;
  std::string_view host = text, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(0, close + 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') == colon) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
  }
  auto ip = IpAddress::parse(host);
  if (!ip) return std::nullopt;
  out.ip = *ip;
  if (!port.empty()) {
    unsigned v = 0;
    if (port.size() > 5) return std::nullopt;
    for (char c : port) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + unsigned(c - '0');
    }
    if (v > 65535) return std::nullopt;
    out.port = uint16_t(v);
  }
  return out;
}

std::string SockAddr::hostString() const {
  return ip.v6 ? "[" + ip.toString() + "]" : ip.toString();
}

std::string SockAddr::toString() const {
  return hostString() + ":" + std::to_string(port);
}

size_t SockAddrHash::operator()(const SockAddr& a) const noexcept {
  uint64_t h = 1469598103934665603ull;
  for (auto b : a.ip.bytes) h = (h ^ b) * 1099511628211ull;
  h = (h ^ a.port) * 1099511628211ull;
  return size_t(h ^ (a.ip.v6 ? 0x9e3779b97f4a7c15ull : 0));
}

} // namespace verbund

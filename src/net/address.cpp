#include "net/address.h"

#include <cstring>

namespace verbund::net {

asio::ip::address toAsio(const IpAddress& ip) {
  if (ip.v6) {
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), ip.bytes.data(), 16);
    return asio::ip::address_v6(b);
  }
  asio::ip::address_v4::bytes_type b;
  std::memcpy(b.data(), ip.bytes.data(), 4);
  return asio::ip::address_v4(b);
}

SockAddr fromAsio(const asio::ip::address& a, uint16_t port) {
  SockAddr s;
  s.port = port;
  if (a.is_v6()) {
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
      auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes();
      std::memcpy(s.ip.bytes.data(), b.data(), 4);
    } else {
      auto b = v6.to_bytes();
      s.ip.v6 = true;
      std::memcpy(s.ip.bytes.data(), b.data(), 16);
    }
  } else {
    auto b = a.to_v4().to_bytes();
    std::memcpy(s.ip.bytes.data(), b.data(), 4);
  }
  return s;
}

} // namespace verbund::net

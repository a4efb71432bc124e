#pragma once
// Conversions between Asio endpoints and verbund::SockAddr. A v4-mapped IPv6 address
// (::ffff:a.b.c.d, what a dual-stack listener reports for IPv4 peers) becomes plain IPv4, so one
// peer has one spelling everywhere (per-source caps, logs, bindings).
#include "base/net.h"

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <string>

namespace verbund::net {

asio::ip::address toAsio(const IpAddress& ip);
SockAddr fromAsio(const asio::ip::address& a, uint16_t port);
template <typename Endpoint> SockAddr fromEndpoint(const Endpoint& e) {
  return fromAsio(e.address(), e.port());
}
template <typename Endpoint> Endpoint toEndpoint(const SockAddr& a) {
  return Endpoint(toAsio(a.ip), a.port);
}

} // namespace verbund::net

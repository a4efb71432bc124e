#pragma once
// A fake rtpengine for the ng client's tests: a UDP socket on loopback on the test's io_context
// that records what it receives and answers only when the test says so.
#include "base/net.h"
#include "media/ng_message.h"
#include "net/address.h"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <string>

namespace verbund::media::test {

class FakePeer {
public:
  struct Datagram {
    asio::ip::udp::endpoint from;
    std::string data;
    NgMessage message() const { return decodeNgMessage(data).value(); }
  };

  explicit FakePeer(asio::io_context& io) : sock_(io) {
    sock_.open(asio::ip::udp::v4());
    sock_.bind(asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    arm();
  }
  SockAddr address() const { return net::fromEndpoint(sock_.local_endpoint()); }
  std::deque<Datagram>& got() { return got_; }
  void send(const asio::ip::udp::endpoint& to, const std::string& data) {
    sock_.send_to(asio::buffer(data), to);
  }
  // Answers the datagram with `dict` under its cookie.
  void reply(const Datagram& d, const bencode::Dict& dict) {
    send(d.from, encodeNgMessage(d.message().cookie, dict));
  }

private:
  void arm() {
    sock_.async_receive_from(asio::buffer(buf_), from_, [this](std::error_code ec, size_t n) {
      if (ec) return;
      got_.push_back({from_, std::string(buf_, n)});
      arm();
    });
  }
  asio::ip::udp::socket sock_;
  char buf_[65536];
  asio::ip::udp::endpoint from_;
  std::deque<Datagram> got_;
};

// Runs the loop's I/O (not its timers: those are ManualTimers) until pred holds; false after 2 s.
inline bool pump(asio::io_context& io, const std::function<bool()>& pred) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    io.restart();
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Lets datagrams in flight on loopback arrive and be handled (for checks that nothing happened).
inline void settle(asio::io_context& io) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  while (std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_one_for(std::chrono::milliseconds(5));
  }
}

} // namespace verbund::media::test

#pragma once
// A tiny authoritative DNS server for tests: UDP on 127.0.0.1:<free port>, answers A, AAAA, SRV
// and NAPTR queries from a table (RFC 1035 wire format, no compression), NXDOMAIN for unknown
// names, no-data for known names without records of the type asked. Names in `silent` get no
// answer at all (to test timeouts). Runs on the test's io_context; loopback only.
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace verbund::sip::test {

class StubDnsServer {
public:
  explicit StubDnsServer(asio::io_context& io)
      : socket_(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    receive();
  }
  uint16_t port() const { return socket_.local_endpoint().port(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }

  void addA(const std::string& name, const std::string& ip, uint32_t ttl = 300) {
    auto a = asio::ip::make_address_v4(ip).to_bytes();
    add(name, 1, ttl, std::string(a.begin(), a.end()));
  }
  void addAaaa(const std::string& name, const std::string& ip, uint32_t ttl = 300) {
    auto a = asio::ip::make_address_v6(ip).to_bytes();
    add(name, 28, ttl, std::string(a.begin(), a.end()));
  }
  void addSrv(const std::string& name, uint16_t priority, uint16_t weight, uint16_t port,
              const std::string& target, uint32_t ttl = 300) {
    std::string rd;
    put16(rd, priority);
    put16(rd, weight);
    put16(rd, port);
    rd += encodeName(target);
    add(name, 33, ttl, rd);
  }
  void addNaptr(const std::string& name, uint16_t order, uint16_t pref, const std::string& flags,
                const std::string& service, const std::string& replacement, uint32_t ttl = 300,
                const std::string& regexp = "") {
    std::string rd;
    put16(rd, order);
    put16(rd, pref);
    for (const auto* s : {&flags, &service, &regexp}) {
      rd += char(s->size());
      rd += *s;
    }
    rd += encodeName(replacement);
    add(name, 35, ttl, rd);
  }

  std::set<std::string> silent;     // names that never get an answer
  std::vector<std::string> queries; // "name TYPE" in arrival order

  size_t count(const std::string& name, int type) const {
    return size_t(std::count(queries.begin(), queries.end(), name + " " + std::to_string(type)));
  }

private:
  struct Rr {
    uint16_t type;
    uint32_t ttl;
    std::string rdata;
  };

  static std::string lower(std::string s) {
    for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  static void put16(std::string& out, uint16_t v) {
    out += char(v >> 8);
    out += char(v & 0xff);
  }
  static void put32(std::string& out, uint32_t v) {
    put16(out, uint16_t(v >> 16));
    put16(out, uint16_t(v & 0xffff));
  }
  static std::string encodeName(const std::string& name) {
    std::string out;
    size_t start = 0;
    while (start < name.size()) {
      size_t dot = name.find('.', start);
      if (dot == std::string::npos) dot = name.size();
      out += char(dot - start);
      out += name.substr(start, dot - start);
      start = dot + 1;
    }
    out += '\0';
    return out;
  }
  void add(const std::string& name, uint16_t type, uint32_t ttl, std::string rdata) {
    records_[lower(name)].push_back({type, ttl, std::move(rdata)});
  }

  void receive() {
    socket_.async_receive_from(asio::buffer(buf_), from_, [this](asio::error_code ec, size_t n) {
      if (ec) return;
      answer(std::string(buf_.data(), n));
      receive();
    });
  }

  void answer(const std::string& q) {
    if (q.size() < 12) return;
    // Question name.
    std::string name;
    size_t pos = 12;
    while (pos < q.size() && q[pos] != 0) {
      size_t len = uint8_t(q[pos]);
      if (pos + 1 + len > q.size()) return;
      if (!name.empty()) name += '.';
      name += q.substr(pos + 1, len);
      pos += 1 + len;
    }
    if (pos + 5 > q.size()) return;
    size_t qend = pos + 5;
    uint16_t qtype = uint16_t((uint8_t(q[pos + 1]) << 8) | uint8_t(q[pos + 2]));
    name = lower(name);
    queries.push_back(name + " " + std::to_string(qtype));
    if (silent.count(name)) return;

    auto it = records_.find(name);
    std::vector<const Rr*> answers;
    if (it != records_.end())
      for (const auto& rr : it->second)
        if (rr.type == qtype) answers.push_back(&rr);
    std::string out;
    out += q.substr(0, 2);                              // id
    put16(out, it == records_.end() ? 0x8583 : 0x8580); // QR AA RD (RA), rcode 3 / 0
    put16(out, 1);                                      // qdcount
    put16(out, uint16_t(answers.size()));               // ancount
    put16(out, 0);
    put16(out, 0);
    out += q.substr(12, qend - 12);
    for (const Rr* rr : answers) {
      out += encodeName(name);
      put16(out, rr->type);
      put16(out, 1);
      put32(out, rr->ttl);
      put16(out, uint16_t(rr->rdata.size()));
      out += rr->rdata;
    }
    asio::error_code ec;
    socket_.send_to(asio::buffer(out), from_, 0, ec);
  }

  asio::ip::udp::socket socket_;
  asio::ip::udp::endpoint from_;
  std::array<char, 1500> buf_{};
  std::map<std::string, std::vector<Rr>> records_;
};

} // namespace verbund::sip::test

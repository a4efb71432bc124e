// RFC 3263 server location against a stub DNS server on 127.0.0.1 (no traffic leaves loopback),
// plus the pure steps (NAPTR filtering, RFC 2782 SRV ordering, numeric shortcut).
#include "sip/dns/server_locator.h"
#include "unit/sip/dns/stub_dns_server.h"

#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include <map>

namespace verbund::sip::test {
namespace {

std::vector<std::string> names(const std::vector<SipTarget>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t.toString());
  return out;
}

// ---- pure steps ----

TEST(LocateNumeric, ShortcutsNeedNoDns) {
  auto u = parseUri("sip:192.0.2.1");
  ASSERT_TRUE(u);
  auto t = locateNumeric(*u);
  ASSERT_TRUE(t);
  EXPECT_EQ(names(*t), std::vector<std::string>{"UDP 192.0.2.1:5060"});

  u = parseUri("sips:[2001:db8::1]");
  t = locateNumeric(*u);
  ASSERT_TRUE(t);
  EXPECT_EQ(names(*t), std::vector<std::string>{"TLS [2001:db8::1]:5061"});

  u = parseUri("sip:user@192.0.2.1:5070;transport=TCP");
  t = locateNumeric(*u);
  ASSERT_TRUE(t);
  EXPECT_EQ(names(*t), std::vector<std::string>{"TCP 192.0.2.1:5070"});

  u = parseUri("sips:192.0.2.1;transport=tcp"); // sips over TCP is TLS
  EXPECT_EQ(names(*locateNumeric(*u)), std::vector<std::string>{"TLS 192.0.2.1:5061"});

  u = parseUri("sip:192.0.2.1;transport=sctp");
  t = locateNumeric(*u);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->empty());

  u = parseUri("sip:carrier.example");
  EXPECT_FALSE(locateNumeric(*u));
}

TEST(UsableNaptr, SortsByOrderThenPreferenceAndFilters) {
  std::vector<NaptrRecord> rs{
      {20, 10, "s", "SIP+D2U", "", "_sip._udp.x"},
      {10, 20, "s", "SIP+D2T", "", "_sip._tcp.x"},
      {10, 10, "S", "SIPS+D2T", "", "_sips._tcp.x"},
      {5, 10, "s", "SIP+D2S", "", "_sip._sctp.x"},   // SCTP: unsupported
      {5, 10, "u", "SIP+D2U", "!^.*$!sip:a@b!", ""}, // not an "s" record
      {5, 10, "s", "E2U+sip", "", "_sip._udp.y"},    // ENUM service
  };
  std::vector<TransportType> all{TransportType::Udp, TransportType::Tcp, TransportType::Tls};
  auto u = usableNaptr(rs, false, all);
  ASSERT_EQ(u.size(), 3u);
  EXPECT_EQ(u[0].srvName, "_sips._tcp.x");
  EXPECT_EQ(u[0].transport, TransportType::Tls);
  EXPECT_EQ(u[1].srvName, "_sip._tcp.x");
  EXPECT_EQ(u[2].srvName, "_sip._udp.x");

  auto sipsOnly = usableNaptr(rs, true, all);
  ASSERT_EQ(sipsOnly.size(), 1u);
  EXPECT_EQ(sipsOnly[0].transport, TransportType::Tls);

  auto noTls = usableNaptr(rs, false, {TransportType::Udp, TransportType::Tcp});
  ASSERT_EQ(noTls.size(), 2u);
  EXPECT_EQ(noTls[0].transport, TransportType::Tcp);
}

TEST(OrderSrv, PriorityAscendingThenWeightedChoice) {
  std::vector<SrvRecord> rs{
      {20, 0, 5060, "c"}, {10, 60, 5060, "a"}, {10, 40, 5060, "b"}, {10, 0, 5060, "z"}};
  // random() always 0: the zero-weight record comes first, then the first of the rest.
  auto lowest = orderSrv(rs, [](uint32_t) { return 0u; });
  std::vector<std::string> got;
  for (auto& r : lowest) got.push_back(r.target);
  EXPECT_EQ(got, (std::vector<std::string>{"z", "a", "b", "c"}));
  // random() always the sum: the last record of the running list is picked each time.
  auto highest = orderSrv(rs, [](uint32_t n) { return n; });
  got.clear();
  for (auto& r : highest) got.push_back(r.target);
  EXPECT_EQ(got, (std::vector<std::string>{"b", "a", "z", "c"}));
}

TEST(OrderSrv, WeightsGiveProportionalShares) {
  std::mt19937 rng(7);
  auto random = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n)(rng); };
  std::map<std::string, int> first;
  for (int i = 0; i < 4000; ++i) {
    auto o = orderSrv({{1, 90, 1, "heavy"}, {1, 10, 1, "light"}}, random);
    ++first[o.front().target];
  }
  EXPECT_NEAR(first["heavy"] / 4000.0, 0.9, 0.03);
}

TEST(DnsWire, LowestAnswerTtlRejectsMalformed) {
  EXPECT_FALSE(lowestAnswerTtl(nullptr, 0));
  const unsigned char shortHeader[5] = {0, 1, 0, 0, 0};
  EXPECT_FALSE(lowestAnswerTtl(shortHeader, sizeof shortHeader));
  // Header with one question and one answer, answer name is a compression pointer to 12.
  const unsigned char msg[] = {0,    1,  0x81, 0x80, 0, 1, 0, 1, 0,    0,    0, 0, 1, 'a', 0, 0,
                               1,    0,  1, // a. A IN
                               0xc0, 12, 0,    1,    0, 1, 0, 0, 0x0e, 0x10, 0, 4, 1, 2,   3, 4};
  EXPECT_EQ(lowestAnswerTtl(msg, sizeof msg), 3600u);
  EXPECT_FALSE(lowestAnswerTtl(msg, sizeof msg - 1)); // rdata cut short
}

// ---- against the stub server ----

struct LocatorFixture : ::testing::Test {
  LocatorFixture() : stub(io) {
    DnsConfig c;
    c.servers.push_back(*SockAddr::parse(stub.address()));
    c.timeout = Duration(200);
    c.tries = 1;
    c.now = [this] { return fakeNow; };
    dns = std::move(DnsResolver::create(io, c).value());
    LocatorConfig lc;
    lc.random = [](uint32_t) { return 0u; };
    locator = std::make_unique<ServerLocator>(*dns, lc);
  }
  Result<std::vector<SipTarget>> locate(const std::string& uri) {
    std::optional<Result<std::vector<SipTarget>>> out;
    locator->locate(uri, [&](Result<std::vector<SipTarget>> r) { out.emplace(std::move(r)); });
    io.restart();
    while (!out && io.run_one_for(std::chrono::seconds(5))) {
    }
    if (!out) return makeError(0, "test: no answer");
    return std::move(*out);
  }

  asio::io_context io;
  StubDnsServer stub;
  TimePoint fakeNow{};
  std::unique_ptr<DnsResolver> dns;
  std::unique_ptr<ServerLocator> locator;
};

TEST_F(LocatorFixture, NumericHostSendsNoQuery) {
  auto r = locate("sip:127.0.0.1:5080;transport=tcp");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), std::vector<std::string>{"TCP 127.0.0.1:5080"});
  EXPECT_TRUE(stub.queries.empty());
}

TEST_F(LocatorFixture, NaptrThenSrvThenAddressesInOrder) {
  stub.addNaptr("carrier.test", 20, 10, "s", "SIP+D2U", "_sip._udp.carrier.test");
  stub.addNaptr("carrier.test", 10, 10, "s", "SIP+D2T", "_sip._tcp.carrier.test");
  stub.addSrv("_sip._tcp.carrier.test", 10, 0, 5070, "b.carrier.test");
  stub.addSrv("_sip._tcp.carrier.test", 5, 0, 5060, "a.carrier.test");
  stub.addSrv("_sip._udp.carrier.test", 10, 0, 5060, "a.carrier.test");
  stub.addA("a.carrier.test", "127.0.0.10");
  stub.addAaaa("a.carrier.test", "::1");
  stub.addA("b.carrier.test", "127.0.0.11");
  auto r = locate("sip:4930123@carrier.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"TCP 127.0.0.10:5060", "TCP [::1]:5060",
                                                 "TCP 127.0.0.11:5070", "UDP 127.0.0.10:5060",
                                                 "UDP [::1]:5060"}));
  EXPECT_EQ((*r)[0].host, "a.carrier.test");
  // §4.1: with NAPTR results there is no blind SRV query for other transports.
  EXPECT_EQ(stub.count("_sips._tcp.carrier.test", 33), 0u);
}

TEST_F(LocatorFixture, SipsUsesOnlySipsNaptrAndSrv) {
  stub.addNaptr("secure.test", 10, 10, "s", "SIP+D2U", "_sip._udp.secure.test");
  stub.addNaptr("secure.test", 20, 10, "s", "SIPS+D2T", "_sips._tcp.secure.test");
  stub.addSrv("_sip._udp.secure.test", 10, 0, 5060, "h.secure.test");
  stub.addSrv("_sips._tcp.secure.test", 10, 0, 5061, "h.secure.test");
  stub.addA("h.secure.test", "127.0.0.12");
  auto r = locate("sips:secure.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"TLS 127.0.0.12:5061"}));
  EXPECT_EQ(stub.count("_sip._udp.secure.test", 33), 0u);
}

TEST_F(LocatorFixture, NoNaptrFallsBackToSrvPerTransport) {
  stub.addSrv("_sip._tcp.plain.test", 10, 0, 5062, "t.plain.test");
  stub.addSrv("_sip._udp.plain.test", 10, 0, 5064, "u.plain.test");
  stub.addA("t.plain.test", "127.0.0.13");
  stub.addA("u.plain.test", "127.0.0.14");
  auto r = locate("sip:plain.test");
  ASSERT_TRUE(r) << r.error().message;
  // Configured transport order: UDP, TCP, TLS.
  EXPECT_EQ(names(*r), (std::vector<std::string>{"UDP 127.0.0.14:5064", "TCP 127.0.0.13:5062"}));
  EXPECT_EQ(stub.count("plain.test", 35), 1u);
  EXPECT_EQ(stub.count("_sips._tcp.plain.test", 33), 1u);
}

TEST_F(LocatorFixture, NoNaptrNoSrvFallsBackToAddressRecords) {
  stub.addA("bare.test", "127.0.0.15");
  stub.addAaaa("bare.test", "::1");
  auto r = locate("sip:bare.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"UDP 127.0.0.15:5060", "UDP [::1]:5060"}));
  auto s = locate("sips:bare.test");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(names(*s), (std::vector<std::string>{"TLS 127.0.0.15:5061", "TLS [::1]:5061"}));
}

TEST_F(LocatorFixture, NaptrWhoseSrvIsEmptyFallsBack) {
  stub.addNaptr("broken.test", 10, 10, "s", "SIP+D2U", "_sip._udp.missing.test");
  stub.addA("broken.test", "127.0.0.16");
  auto r = locate("sip:broken.test");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"UDP 127.0.0.16:5060"}));
}

TEST_F(LocatorFixture, PortGivenMeansAddressRecordsOnly) {
  stub.addNaptr("ported.test", 10, 10, "s", "SIP+D2T", "_sip._tcp.ported.test");
  stub.addA("ported.test", "127.0.0.17");
  auto r = locate("sip:ported.test:5099");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"UDP 127.0.0.17:5099"}));
  EXPECT_EQ(stub.count("ported.test", 35), 0u);
  EXPECT_EQ(stub.count("_sip._tcp.ported.test", 33), 0u);
}

TEST_F(LocatorFixture, TransportParamUsesItsSrvThenAddresses) {
  stub.addSrv("_sip._tcp.tp.test", 10, 0, 5090, "h.tp.test");
  stub.addA("h.tp.test", "127.0.0.18");
  stub.addA("tp.test", "127.0.0.19");
  auto r = locate("sip:tp.test;transport=tcp");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(names(*r), (std::vector<std::string>{"TCP 127.0.0.18:5090"}));
  EXPECT_EQ(stub.count("tp.test", 35), 0u);
  // No SRV for UDP: A record with the default port.
  auto u = locate("sip:tp.test;transport=udp");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(names(*u), (std::vector<std::string>{"UDP 127.0.0.19:5060"}));
}

TEST_F(LocatorFixture, AnswersAreCachedByTtl) {
  stub.addA("cached.test", "127.0.0.20", 60);
  ASSERT_TRUE(locate("sip:cached.test:5060"));
  ASSERT_TRUE(locate("sip:cached.test:5060"));
  EXPECT_EQ(stub.count("cached.test", 1), 1u);
  EXPECT_EQ(stub.count("cached.test", 28), 1u); // no-data: cached negatively
  fakeNow += std::chrono::seconds(31);          // past the negative TTL (30 s)
  ASSERT_TRUE(locate("sip:cached.test:5060"));
  EXPECT_EQ(stub.count("cached.test", 1), 1u);
  EXPECT_EQ(stub.count("cached.test", 28), 2u);
  fakeNow += std::chrono::seconds(30); // past the A record's TTL (60 s)
  ASSERT_TRUE(locate("sip:cached.test:5060"));
  EXPECT_EQ(stub.count("cached.test", 1), 2u);
  EXPECT_GE(dns->stats().cacheHits, 2u);
}

TEST_F(LocatorFixture, UnknownNameFailsWithReason) {
  auto r = locate("sip:nowhere.test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no SIP server found for nowhere.test"), std::string::npos);
}

TEST_F(LocatorFixture, SilentServerTimesOut) {
  stub.silent.insert("slow.test");
  auto r = locate("sip:slow.test:5060");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("DNS"), std::string::npos) << r.error().message;
  // Errors are not cached: the next look-up asks again.
  stub.silent.clear();
  stub.addA("slow.test", "127.0.0.21");
  auto again = locate("sip:slow.test:5060");
  ASSERT_TRUE(again) << again.error().message;
}

TEST_F(LocatorFixture, RejectsTelAndUnsupportedTransport) {
  EXPECT_FALSE(locate("tel:+4930123"));
  EXPECT_FALSE(locate("sip:x.test;transport=sctp"));
  EXPECT_FALSE(locate("not a uri"));
}

TEST_F(LocatorFixture, DestroyingTheResolverDropsPendingCallbacks) {
  stub.silent.insert("pending.test");
  bool called = false;
  locator->locate("sip:pending.test:5060", [&](auto) { called = true; });
  io.restart();
  io.run_for(std::chrono::milliseconds(20));
  locator.reset();
  dns.reset();
  io.restart();
  io.run_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(called);
}

} // namespace
} // namespace verbund::sip::test

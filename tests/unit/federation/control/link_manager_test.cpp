// LinkManager over real sockets on 127.0.0.1 (port 0), with certificates minted per test and
// short timing parameters. Every wait is bounded (runUntil) and polls a condition.
#include "federation/control/link_manager.h"

#include "base/asio_timers.h"
#include "base/log.h"
#include "base/metrics.h"
#include "federation/trust/cert_builder.h"
#include "federation/trust/errors.h"

#include <gtest/gtest.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <set>
#include <spdlog/sinks/base_sink.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace verbund::federation {
namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using nlohmann::json;

// ---- helpers -----------------------------------------------------------------------------------

bool runUntil(const std::vector<asio::io_context*>& ios, const std::function<bool()>& pred,
              std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    for (auto* io : ios) {
      io->restart();
      io->run_for(ios.size() == 1 ? 5ms : 2ms);
    }
  }
  return pred();
}

bool runUntil(asio::io_context& io, const std::function<bool()>& pred,
              std::chrono::milliseconds limit = 5000ms) {
  return runUntil(std::vector<asio::io_context*>{&io}, pred, limit);
}

void runFor(asio::io_context& io, std::chrono::milliseconds d) {
  runUntil(
      io, [] { return false; }, d);
}

uint64_t counter(std::string_view name) {
  for (const Counter* c : allCounters())
    if (name == c->name()) return c->value();
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
public:
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  bool contains(std::string_view a, std::string_view b = {}) {
    for (const auto& l : lines())
      if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
    return false;
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines_.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush_() override {}

private:
  std::vector<std::string> lines_;
};

// Collects the federation log of one test.
class LogCapture {
public:
  LogCapture() : sink_(std::make_shared<CaptureSink>()), log_(logger("federation")) {
    log_->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = log_->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  CaptureSink& operator*() { return *sink_; }
  CaptureSink* operator->() { return sink_.get(); }

private:
  std::shared_ptr<CaptureSink> sink_;
  std::shared_ptr<spdlog::logger> log_;
};

FederationCa copyCa(const FederationCa& ca) {
  return std::move(FederationCa::fromParts(shareCert(ca.cert()), sharePKey(ca.key()))).value();
}

struct Recorder : LinkManager::Handler {
  std::vector<LinkInfo> ups;
  std::vector<LinkInfo> downs;
  std::vector<std::pair<std::string, json>> messages;
  std::function<void()> onUp;
  void onLinkUp(const LinkInfo& l) override {
    ups.push_back(l);
    if (onUp) onUp();
  }
  void onLinkDown(const LinkInfo& l) override { downs.push_back(l); }
  void onMessage(const std::string& nodeId, const json& m) override {
    messages.emplace_back(nodeId, m);
  }
  size_t upsOf(const std::string& id) const {
    return std::count_if(ups.begin(), ups.end(), [&](const LinkInfo& l) { return l.nodeId == id; });
  }
  size_t downsOf(const std::string& id) const {
    return std::count_if(downs.begin(), downs.end(),
                         [&](const LinkInfo& l) { return l.nodeId == id; });
  }
};

LinkOptions fastOptions() {
  LinkOptions o;
  o.heartbeat = 50ms;
  o.deadAfter = 400ms;
  o.connectTimeout = 1000ms;
  o.retryMin = 50ms;
  o.retryMax = 400ms;
  o.incompatibleRetry = 30s;
  return o;
}

// AsioTimers whose wall clock is off by skewMs (another machine's clock).
struct SkewedTimers final : Timers {
  explicit SkewedTimers(asio::io_context& io) : inner(io) {}
  TimePoint now() const override { return inner.now(); }
  int64_t wallMs() const override { return inner.wallMs() + skewMs; }
  TimerId after(Duration delay, std::function<void()> fn) override {
    return inner.after(delay, std::move(fn));
  }
  void cancel(TimerId id) override { inner.cancel(id); }
  AsioTimers inner;
  int64_t skewMs = 0;
};

// One federation member: its trust store, a handler, a manager listening on 127.0.0.1.
struct Node {
  Node(asio::io_context& ioc, const FederationCa& ca, std::string nodeId,
       LinkOptions opts = fastOptions(), ProtocolVersion protocol = kProtocolVersion)
      : io(ioc), timers(ioc), id(std::move(nodeId)), trust(copyCa(ca)), options(opts) {
    auto creds = mintNodeCertificate(ca, id, "Node " + id, {"127.0.0.1"});
    EXPECT_TRUE(creds.ok());
    EXPECT_TRUE(trust.setNodeCredentials(std::move(*creds)).ok());
    hello.name = "Node " + id;
    hello.productVersion = "0.1.0";
    hello.protocol = protocol;
    hello.sipAddress = "127.0.0.1:5061";
    start();
  }

  void start() {
    links = std::make_unique<LinkManager>(io, timers, handler, options);
    auto bound = links->listen(SockAddr::parse("127.0.0.1:" + std::to_string(port)).value());
    ASSERT_TRUE(bound.ok()) << bound.error().message;
    port = bound->port;
    hello.controlAddresses = {address()};
    auto r = links->setCredentials(&trust, hello);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  PeerTarget target() const { return PeerTarget{id, {address()}}; }
  LinkState state(const std::string& peer) const {
    auto l = links->link(peer);
    return l ? l->state : LinkState::Connecting;
  }

  asio::io_context& io;
  SkewedTimers timers;
  std::string id;
  TrustStore trust;
  LinkOptions options;
  Hello hello;
  Recorder handler;
  uint16_t port = 0;
  std::unique_ptr<LinkManager> links;
};

class LinkManagerTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() { ca_ = new FederationCa(FederationCa::create("Nord").value()); }
  static void TearDownTestSuite() {
    delete ca_;
    ca_ = nullptr;
  }
  static const FederationCa& ca() { return *ca_; }

  asio::io_context io;
  static FederationCa* ca_;
};
FederationCa* LinkManagerTest::ca_ = nullptr;

// A TLS client that we drive by hand (odd certificates, raw frames).
struct RawClient {
  RawClient(asio::io_context& io, X509* cert, EVP_PKEY* key) : ctx(asio::ssl::context::tls) {
    if (cert) SSL_CTX_use_certificate(ctx.native_handle(), cert);
    if (key) SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
    // SSL_new copies the context's certificate: the stream comes after it is set.
    streamHolder.emplace(io, ctx);
    streamHolder->set_verify_mode(asio::ssl::verify_none);
  }
  void connect(uint16_t port) {
    streamHolder->lowest_layer().async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), [this](asio::error_code ec) {
          if (ec) {
            failed = true;
            return;
          }
          streamHolder->async_handshake(asio::ssl::stream_base::client,
                                        [this](asio::error_code hec) {
                                          if (hec) {
                                            failed = true;
                                            return;
                                          }
                                          handshaken = true;
                                          read();
                                        });
        });
  }
  void read() {
    streamHolder->async_read_some(asio::buffer(buf), [this](asio::error_code ec, size_t n) {
      if (ec) {
        closed = true;
        return;
      }
      received.append(buf.data(), n);
      read();
    });
  }
  void write(std::string bytes) {
    out = std::move(bytes);
    asio::async_write(*streamHolder, asio::buffer(out), [](asio::error_code, size_t) {});
  }
  std::vector<json> frames() {
    FrameDecoder d;
    std::vector<json> msgs;
    (void)d.feed(received, msgs);
    return msgs;
  }
  asio::ssl::context ctx;
  std::optional<asio::ssl::stream<tcp::socket>> streamHolder;
  std::array<char, 4096> buf{};
  std::string received;
  std::string out;
  bool handshaken = false;
  bool failed = false;
  bool closed = false;
};

// ---- tests -------------------------------------------------------------------------------------

TEST_F(LinkManagerTest, LinkComesUpBothWaysWithRtt) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  auto ab = a.links->link("node-b").value();
  auto ba = b.links->link("node-a").value();
  EXPECT_EQ(ab.state, LinkState::Up);
  EXPECT_EQ(ab.name, "Node node-b");
  EXPECT_EQ(ab.productVersion, "0.1.0");
  EXPECT_EQ(ab.protocolVersion, "1.0");
  EXPECT_EQ(ab.sipAddress, "127.0.0.1:5061");
  EXPECT_EQ(ab.controlAddresses, std::vector<std::string>{b.address()});
  EXPECT_EQ(ab.address, b.address());
  EXPECT_EQ(ab.fingerprint, *fingerprintOf(b.trust.nodeCredentials()->cert.get()));
  EXPECT_TRUE(ab.outgoing);
  EXPECT_FALSE(ba.outgoing);
  EXPECT_EQ(ba.name, "Node node-a");
  EXPECT_TRUE(ab.lastError.empty());
  EXPECT_EQ(linkStateName(ab.state), "up");
  ASSERT_TRUE(runUntil(io, [&] {
    return a.links->link("node-b")->rttMs.has_value() && b.links->link("node-a")->rttMs.has_value();
  }));
  EXPECT_GE(*a.links->link("node-b")->rttMs, 0.0);
  EXPECT_LT(*a.links->link("node-b")->rttMs, 1000.0);
  EXPECT_EQ(a.handler.upsOf("node-b"), 1u);
  EXPECT_EQ(b.handler.upsOf("node-a"), 1u);
  // Heartbeats keep it up well beyond deadAfter.
  runFor(io, 3 * a.options.deadAfter);
  EXPECT_TRUE(a.links->isUp("node-b"));
  EXPECT_TRUE(a.handler.downs.empty());
  EXPECT_TRUE(a.handler.messages.empty()); // ping/pong/hello stay inside
}

TEST_F(LinkManagerTest, HelloGivesThePeersClockOffset) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  b.timers.skewMs = 5000; // b's clock runs 5 s ahead
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  auto ab = a.links->link("node-b").value();
  auto ba = b.links->link("node-a").value();
  ASSERT_TRUE(ab.clockOffsetMs.has_value());
  ASSERT_TRUE(ba.clockOffsetMs.has_value());
  // One-way delay on loopback: well under a second.
  EXPECT_NEAR(double(*ab.clockOffsetMs), 5000.0, 1000.0);
  EXPECT_NEAR(double(*ba.clockOffsetMs), -5000.0, 1000.0);
}

TEST_F(LinkManagerTest, DeliversMessagesBothWays) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  EXPECT_FALSE(a.links->send("node-b", json{{"t", "early"}}));
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  EXPECT_TRUE(a.links->send("node-b", json{{"t", "dir-want"}, {"owner", "node-b"}, {"seq", 7}}));
  EXPECT_TRUE(b.links->send("node-a", json{{"t", "presence"}, {"extension", "201"}}));
  std::string big(100'000, 'x');
  EXPECT_TRUE(a.links->send("node-b", json{{"t", "dir-snapshot"}, {"blob", big}}));
  EXPECT_EQ(a.links->broadcast(json{{"t", "members"}, {"members", json::array()}}), 1u);
  EXPECT_FALSE(a.links->send("node-x", json{{"t", "x"}}));
  ASSERT_TRUE(runUntil(
      io, [&] { return b.handler.messages.size() == 3 && a.handler.messages.size() == 1; }));
  EXPECT_EQ(b.handler.messages[0].first, "node-a");
  EXPECT_EQ(b.handler.messages[0].second["seq"], 7);
  EXPECT_EQ(b.handler.messages[1].second["blob"], big);
  EXPECT_EQ(b.handler.messages[2].second["t"], "members");
  EXPECT_EQ(a.handler.messages[0].first, "node-b");
  EXPECT_EQ(a.handler.messages[0].second["extension"], "201");
}

TEST_F(LinkManagerTest, ThreeNodesFormAFullMesh) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  Node c(io, ca(), "node-c");
  std::vector<PeerTarget> all = {a.target(), b.target(), c.target()};
  a.links->setPeers(all); // our own entry is skipped
  b.links->setPeers(all);
  c.links->setPeers(all);
  auto meshUp = [&] {
    for (Node* n : {&a, &b, &c}) {
      size_t up = 0;
      for (const auto& l : n->links->links()) up += l.state == LinkState::Up ? 1 : 0;
      if (up != 2) return false;
    }
    return true;
  };
  ASSERT_TRUE(runUntil(io, meshUp));
  runFor(io, 300ms);
  EXPECT_TRUE(meshUp());
  for (Node* n : {&a, &b, &c}) {
    EXPECT_EQ(n->links->links().size(), 2u) << n->id;
    std::set<std::string> upIds; // a replaced duplicate connection reports its peer again
    for (const auto& u : n->handler.ups) upIds.insert(u.nodeId);
    EXPECT_EQ(upIds.size(), 2u) << n->id;
    EXPECT_TRUE(n->handler.downs.empty()) << n->id;
    EXPECT_FALSE(n->links->link(n->id)) << n->id;
    EXPECT_EQ(n->links->broadcast(json{{"t", "members"}}), 2u);
  }
  ASSERT_TRUE(runUntil(io, [&] {
    return a.handler.messages.size() == 2 && b.handler.messages.size() == 2 &&
           c.handler.messages.size() == 2;
  }));
}

TEST_F(LinkManagerTest, SimultaneousDialsKeepExactlyOneConnection) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    Node a(io, ca(), "node-a");
    Node b(io, ca(), "node-b");
    a.links->setPeers({b.target()});
    b.links->setPeers({a.target()});
    ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
    runFor(io, 300ms);
    auto ab = a.links->link("node-b").value();
    auto ba = b.links->link("node-a").value();
    EXPECT_EQ(ab.state, LinkState::Up);
    EXPECT_EQ(ba.state, LinkState::Up);
    // The connection dialled by the smaller node id (node-a) is the one kept, on both sides.
    EXPECT_TRUE(ab.outgoing);
    EXPECT_FALSE(ba.outgoing);
    // One link-up per connection that became live: 1, or 2 when the kept connection replaced
    // the other one after it had come up first on that side.
    EXPECT_GE(a.handler.ups.size(), 1u);
    EXPECT_LE(a.handler.ups.size(), 2u);
    EXPECT_GE(b.handler.ups.size(), 1u);
    EXPECT_LE(b.handler.ups.size(), 2u);
    EXPECT_TRUE(a.handler.downs.empty());
    EXPECT_TRUE(b.handler.downs.empty());
    EXPECT_TRUE(a.links->send("node-b", json{{"t", "x"}}));
    EXPECT_TRUE(b.links->send("node-a", json{{"t", "y"}}));
    ASSERT_TRUE(runUntil(
        io, [&] { return a.handler.messages.size() == 1 && b.handler.messages.size() == 1; }));
  }
}

TEST_F(LinkManagerTest, StoppedPeerGoesDownAndComesBackAfterRestart) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b"); }));
  b.links->stop();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil(
      io, [&] { return a.state("node-b") == LinkState::Down; }, a.options.deadAfter + 500ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, a.options.deadAfter + 500ms);
  EXPECT_EQ(a.handler.downsOf("node-b"), 1u);
  EXPECT_FALSE(a.links->link("node-b")->lastError.empty());
  EXPECT_FALSE(a.links->send("node-b", json{{"t", "x"}}));
  runFor(io, 200ms); // a few failed redials
  EXPECT_EQ(a.state("node-b"), LinkState::Down);
  b.links.reset();
  b.start(); // same port
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  EXPECT_EQ(a.handler.upsOf("node-b"), 2u);
}

TEST_F(LinkManagerTest, SilentPeerIsDownAfterDeadAfter) {
  asio::io_context ioB;
  Node a(io, ca(), "node-a");
  Node b(ioB, ca(), "node-b");
  a.links->setPeers({b.target()});
  ASSERT_TRUE(
      runUntil({&io, &ioB}, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  // node-b's loop stops running: its socket stays open but nothing answers.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil(
      io, [&] { return a.state("node-b") != LinkState::Up; }, 3000ms));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, a.options.deadAfter - 100ms);
  EXPECT_LT(took, a.options.deadAfter + 800ms);
  EXPECT_NE(a.links->link("node-b")->lastError.find("heartbeat"), std::string::npos);
  EXPECT_EQ(a.handler.downsOf("node-b"), 1u);
  // Once node-b runs again the link is redialled.
  ASSERT_TRUE(
      runUntil({&io, &ioB}, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
}

TEST_F(LinkManagerTest, ProbeReturnsThePeersLinkInfo) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  std::optional<Result<LinkInfo>> got;
  a.links->probe(b.address(), [&](Result<LinkInfo> r) { got = std::move(r); });
  ASSERT_TRUE(runUntil(io, [&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok()) << got->error().message;
  EXPECT_EQ((*got)->nodeId, "node-b");
  EXPECT_EQ((*got)->name, "Node node-b");
  EXPECT_EQ((*got)->state, LinkState::Up);
  // The probed connection stays as node-b's link.
  EXPECT_TRUE(a.links->isUp("node-b"));
  ASSERT_TRUE(runUntil(io, [&] { return b.links->isUp("node-a"); }));
  EXPECT_TRUE(a.links->send("node-b", json{{"t", "hi"}}));
  ASSERT_TRUE(runUntil(io, [&] { return b.handler.messages.size() == 1; }));
}

TEST_F(LinkManagerTest, ProbeOfClosedPortIsUnreachable) {
  Node a(io, ca(), "node-a");
  uint16_t closedPort = 0;
  {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closedPort = acc.local_endpoint().port();
  }
  std::optional<Result<LinkInfo>> got;
  a.links->probe("127.0.0.1:" + std::to_string(closedPort),
                 [&](Result<LinkInfo> r) { got = std::move(r); });
  ASSERT_TRUE(runUntil(io, [&] { return got.has_value(); }));
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, static_cast<int>(ControlErrc::kUnreachable));
  std::optional<Result<LinkInfo>> bad;
  a.links->probe("not an address", [&](Result<LinkInfo> r) { bad = std::move(r); });
  ASSERT_TRUE(runUntil(io, [&] { return bad.has_value(); }));
  EXPECT_EQ(bad->error().code, static_cast<int>(ControlErrc::kUnreachable));
}

TEST_F(LinkManagerTest, NodeOfAnotherFederationIsRefusedAndLogged) {
  LogCapture log;
  FederationCa other = FederationCa::create("Sud").value();
  Node a(io, ca(), "node-a");
  Node x(io, other, "node-x");
  uint64_t refusedBefore = counter("federation_control_connections_refused_total");
  x.links->setPeers({PeerTarget{"node-a", {a.address()}}});
  ASSERT_TRUE(runUntil(io, [&] { return log->contains("refused connection from 127.0.0.1:"); }));
  EXPECT_TRUE(log->contains("refused connection from 127.0.0.1:", "federation"));
  EXPECT_GT(counter("federation_control_connections_refused_total"), refusedBefore);
  EXPECT_FALSE(a.links->isUp("node-x"));
  EXPECT_FALSE(a.links->link("node-x"));
  ASSERT_TRUE(runUntil(io, [&] { return x.state("node-a") == LinkState::Down; }));
  EXPECT_FALSE(x.links->isUp("node-a"));
  // Dialling the other way: our side reports the other federation.
  std::optional<Result<LinkInfo>> got;
  a.links->probe(x.address(), [&](Result<LinkInfo> r) { got = std::move(r); });
  ASSERT_TRUE(runUntil(io, [&] { return got.has_value(); }));
  ASSERT_FALSE(got->ok());
  EXPECT_TRUE(isTrustError(got->error(), TrustErrc::kOtherFederation)) << got->error().message;
  EXPECT_NE(got->error().message.find(other.federationId()), std::string::npos);
  EXPECT_TRUE(a.handler.ups.empty());
  EXPECT_TRUE(x.handler.ups.empty());
}

TEST_F(LinkManagerTest, SelfSignedCertificateIsRefused) {
  LogCapture log;
  Node a(io, ca(), "node-a");
  auto key = detail::generateP256Key().value();
  detail::CertSpec spec;
  spec.subject = {{NID_commonName, "node-s"}};
  spec.subjectKey = key.get();
  spec.issuerKey = key.get();
  spec.notBefore = std::chrono::system_clock::now() - 1h;
  spec.notAfter = std::chrono::system_clock::now() + 24h;
  spec.basicConstraints = "critical,CA:FALSE";
  spec.extendedKeyUsage = "serverAuth,clientAuth";
  spec.subjectAltName = "URI:urn:verbund:node:node-s";
  auto cert = detail::buildCertificate(spec).value();
  RawClient client(io, cert.get(), key.get());
  client.connect(a.port);
  ASSERT_TRUE(runUntil(io, [&] { return client.closed || client.failed; }));
  EXPECT_TRUE(client.received.empty()); // not even a hello
  ASSERT_TRUE(runUntil(io, [&] { return log->contains("refused connection", "self-signed"); }));
  EXPECT_FALSE(a.links->link("node-s"));
}

TEST_F(LinkManagerTest, ClientWithoutCertificateIsRefused) {
  LogCapture log;
  Node a(io, ca(), "node-a");
  RawClient client(io, nullptr, nullptr);
  client.connect(a.port);
  ASSERT_TRUE(runUntil(io, [&] { return client.closed || client.failed; }));
  EXPECT_TRUE(client.received.empty());
  ASSERT_TRUE(runUntil(io, [&] { return log->contains("refused connection from 127.0.0.1:"); }));
}

TEST_F(LinkManagerTest, RevokedNodeIsRefusedBothWays) {
  LogCapture log;
  Node a(io, ca(), "node-a");
  Node r(io, ca(), "node-r");
  ASSERT_TRUE(a.trust.revoke("node-r", "", "stolen laptop", "node-a").ok());
  r.links->setPeers({a.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.state("node-r") == LinkState::Revoked; }));
  EXPECT_TRUE(log->contains("refused connection from 127.0.0.1:", "revoked"));
  EXPECT_NE(a.links->link("node-r")->lastError.find("stolen laptop"), std::string::npos);
  EXPECT_FALSE(a.links->isUp("node-r"));
  EXPECT_TRUE(a.handler.ups.empty());

  // Dialling the revoked node: its certificate is refused, the link shows Revoked, no redial.
  a.links->setPeers({r.target()});
  runFor(io, 300ms);
  EXPECT_EQ(a.state("node-r"), LinkState::Revoked);
  EXPECT_TRUE(a.handler.ups.empty());
  EXPECT_FALSE(r.links->isUp("node-a"));
}

TEST_F(LinkManagerTest, CloseRevokedDropsLiveLinks) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  Node c(io, ca(), "node-c");
  a.links->setPeers({b.target(), c.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && a.links->isUp("node-c"); }));
  ASSERT_TRUE(a.trust.revoke("node-b", "", "removed", "node-a").ok());
  a.links->closeRevoked();
  EXPECT_EQ(a.state("node-b"), LinkState::Revoked);
  EXPECT_EQ(a.handler.downsOf("node-b"), 1u);
  EXPECT_TRUE(a.links->isUp("node-c"));
  ASSERT_TRUE(runUntil(io, [&] { return !b.links->isUp("node-a"); }));
  runFor(io, 300ms);
  EXPECT_EQ(a.state("node-b"), LinkState::Revoked);
  EXPECT_TRUE(a.links->isUp("node-c"));
}

TEST_F(LinkManagerTest, IncompatibleProtocolShowsOnBothSides) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b", fastOptions(), ProtocolVersion{2, 0});
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] {
    return a.state("node-b") == LinkState::Incompatible &&
           b.state("node-a") == LinkState::Incompatible;
  }));
  std::string ea = a.links->link("node-b")->lastError;
  std::string eb = b.links->link("node-a")->lastError;
  EXPECT_EQ(ea, "protocol 2.0 of node Node node-b is incompatible with ours (1.0)");
  EXPECT_NE(eb.find("1.0"), std::string::npos) << eb;
  EXPECT_NE(eb.find("2.0"), std::string::npos) << eb;
  EXPECT_EQ(linkStateName(LinkState::Incompatible), "incompatible");
  EXPECT_EQ(a.links->link("node-b")->protocolVersion, "2.0");
  runFor(io, 300ms); // no redial storm: incompatibleRetry is 30 s
  EXPECT_EQ(a.state("node-b"), LinkState::Incompatible);
  EXPECT_TRUE(a.handler.ups.empty());
  EXPECT_TRUE(b.handler.ups.empty());

  std::optional<Result<LinkInfo>> got;
  b.links->probe(a.address(), [&](Result<LinkInfo> r) { got = std::move(r); });
  ASSERT_TRUE(runUntil(io, [&] { return got.has_value(); }));
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, static_cast<int>(ControlErrc::kIncompatible));
}

TEST_F(LinkManagerTest, IncompatibleHelloGetsARefusalFrame) {
  Node a(io, ca(), "node-a");
  auto creds = mintNodeCertificate(ca(), "node-z", "Node Z", {"127.0.0.1"}).value();
  RawClient client(io, creds.cert.get(), creds.key.get());
  client.connect(a.port);
  ASSERT_TRUE(runUntil(io, [&] { return client.handshaken || client.failed; }));
  ASSERT_TRUE(client.handshaken);
  Hello h;
  h.federationId = ca().federationId();
  h.nodeId = "node-z";
  h.name = "Node Z";
  h.productVersion = "9.0";
  h.protocol = {3, 1};
  client.write(encodeFrame(toJson(h)));
  ASSERT_TRUE(runUntil(io, [&] { return client.closed; }));
  auto frames = client.frames();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0]["t"], "hello");
  auto refusal = refusalFromJson(frames[1]);
  ASSERT_TRUE(refusal.ok());
  EXPECT_EQ(refusal->code, "incompatible");
  EXPECT_EQ(refusal->protocol, "1.0");
  EXPECT_NE(refusal->message.find("3.1"), std::string::npos);
  EXPECT_EQ(a.state("node-z"), LinkState::Incompatible);
}

TEST_F(LinkManagerTest, HelloMustMatchTheCertificate) {
  Node a(io, ca(), "node-a");
  auto creds = mintNodeCertificate(ca(), "node-z", "Node Z", {"127.0.0.1"}).value();
  RawClient client(io, creds.cert.get(), creds.key.get());
  client.connect(a.port);
  ASSERT_TRUE(runUntil(io, [&] { return client.handshaken || client.failed; }));
  Hello h;
  h.federationId = ca().federationId();
  h.nodeId = "node-b"; // impersonation attempt
  h.name = "Node B";
  h.productVersion = "0.1.0";
  client.write(encodeFrame(toJson(h)));
  ASSERT_TRUE(runUntil(io, [&] { return client.closed; }));
  EXPECT_FALSE(a.links->isUp("node-b"));
  EXPECT_FALSE(a.links->isUp("node-z"));
  EXPECT_TRUE(a.handler.ups.empty());
}

TEST_F(LinkManagerTest, MalformedFrameClosesTheLink) {
  Node a(io, ca(), "node-a");
  auto creds = mintNodeCertificate(ca(), "node-z", "Node Z", {"127.0.0.1"}).value();
  RawClient client(io, creds.cert.get(), creds.key.get());
  client.connect(a.port);
  ASSERT_TRUE(runUntil(io, [&] { return client.handshaken || client.failed; }));
  Hello h;
  h.federationId = ca().federationId();
  h.nodeId = "node-z";
  h.name = "Node Z";
  h.productVersion = "0.1.0";
  client.write(encodeFrame(toJson(h)));
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-z"); }));
  uint64_t before = counter("federation_control_bad_frames_total");
  client.write(std::string("\0\0\0\x05[1,2]", 9));
  ASSERT_TRUE(runUntil(io, [&] { return client.closed; }));
  EXPECT_EQ(a.state("node-z"), LinkState::Down);
  EXPECT_EQ(counter("federation_control_bad_frames_total"), before + 1);
  EXPECT_EQ(a.handler.downsOf("node-z"), 1u);
}

TEST_F(LinkManagerTest, PendingConnectionsAreLimitedAndTimedOut) {
  LinkOptions o = fastOptions();
  o.connectTimeout = 400ms;
  Node a(io, ca(), "node-a", o);
  std::vector<std::unique_ptr<tcp::socket>> idle;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<tcp::socket>(io));
    idle.back()->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), a.port));
  }
  runFor(io, 100ms); // all accepted
  tcp::socket extra(io);
  extra.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), a.port));
  bool extraClosed = false;
  char byte = 0;
  extra.async_read_some(asio::buffer(&byte, 1),
                        [&](asio::error_code ec, size_t) { extraClosed = static_cast<bool>(ec); });
  ASSERT_TRUE(runUntil(
      io, [&] { return extraClosed; }, 300ms)); // before the timeout
  size_t closed = 0;
  std::vector<char> bytes(idle.size());
  for (size_t i = 0; i < idle.size(); ++i)
    idle[i]->async_read_some(asio::buffer(&bytes[i], 1), [&](asio::error_code ec, size_t) {
      if (ec) ++closed;
    });
  ASSERT_TRUE(runUntil(
      io, [&] { return closed == idle.size(); }, 3000ms));
  // And a real peer gets in afterwards.
  Node b(io, ca(), "node-b");
  b.links->setPeers({a.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b"); }));
}

// Issue 10: idle connections from one address fill only that address's pre-hello slots; a
// member (another address) links at once, long before the idle ones time out.
TEST_F(LinkManagerTest, IdleConnectionsFromOneAddressDoNotKeepAPeerOut) {
  LinkOptions o = fastOptions();
  o.connectTimeout = 3000ms;
  Node a(io, ca(), "node-a", o);
  uint64_t refused = counter("federation_control_connections_refused_per_source_total");
  std::vector<std::unique_ptr<tcp::socket>> idle;
  for (int i = 0; i < 100; ++i) {
    idle.push_back(std::make_unique<tcp::socket>(io));
    idle.back()->open(tcp::v4());
    idle.back()->bind(tcp::endpoint(asio::ip::make_address("127.0.0.2"), 0));
    idle.back()->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), a.port));
  }
  ASSERT_TRUE(runUntil(io, [&] {
    return counter("federation_control_connections_refused_per_source_total") >=
           refused + 100 - o.admission.maxPendingPerSource;
  }));
  Node b(io, ca(), "node-b");
  b.links->setPeers({a.target()});
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil(
      io, [&] { return a.links->isUp("node-b"); }, 2000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(LinkManagerTest, StalledPeerOverflowsTheWriteQueue) {
  LinkOptions o = fastOptions();
  o.maxWriteQueueBytes = 64 * 1024;
  Node a(io, ca(), "node-a", o);
  Node b(io, ca(), "node-b");
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b"); }));
  EXPECT_FALSE(a.links->send("node-b", json{{"t", "big"}, {"blob", std::string(100'000, 'x')}}));
  EXPECT_EQ(a.state("node-b"), LinkState::Down);
  EXPECT_NE(a.links->link("node-b")->lastError.find("write queue"), std::string::npos);
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b"); })); // redialled
}

TEST_F(LinkManagerTest, ForgetClosesTheLinkAndStopsDialling) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && b.links->isUp("node-a"); }));
  a.links->forget("node-b");
  EXPECT_FALSE(a.links->link("node-b"));
  EXPECT_TRUE(a.links->links().empty());
  ASSERT_TRUE(runUntil(io, [&] { return b.state("node-a") == LinkState::Down; }));
  runFor(io, 300ms);
  EXPECT_FALSE(a.links->link("node-b"));
  // node-b never had node-a in setPeers: it does not redial an accepted link.
  EXPECT_EQ(b.state("node-a"), LinkState::Down);
  EXPECT_EQ(b.handler.upsOf("node-a"), 1u);
}

TEST_F(LinkManagerTest, SetPeersDropsRemovedPeersButKeepsIncomingLinks) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  Node c(io, ca(), "node-c");
  a.links->setPeers({b.target()});
  c.links->setPeers({a.target()});
  ASSERT_TRUE(runUntil(io, [&] { return a.links->isUp("node-b") && a.links->isUp("node-c"); }));
  a.links->setPeers({});
  EXPECT_FALSE(a.links->link("node-b"));
  EXPECT_TRUE(a.links->isUp("node-c")); // node-c dialled us; that link stays
}

TEST_F(LinkManagerTest, StopAndDestructionWithOpenLinksAreClean) {
  auto a = std::make_unique<Node>(io, ca(), "node-a");
  auto b = std::make_unique<Node>(io, ca(), "node-b");
  auto c = std::make_unique<Node>(io, ca(), "node-c");
  std::vector<PeerTarget> all = {a->target(), b->target(), c->target()};
  for (Node* n : {a.get(), b.get(), c.get()}) n->links->setPeers(all);
  ASSERT_TRUE(runUntil(io, [&] { return a->links->isUp("node-b") && a->links->isUp("node-c"); }));
  bool probeDone = false;
  a->links->probe(b->address(), [&](Result<LinkInfo>) { probeDone = true; });
  a->links->send("node-b", json{{"t", "x"}});
  a->links->stop();
  a->links->stop(); // idempotent
  EXPECT_TRUE(probeDone);
  EXPECT_FALSE(a->links->isUp("node-b"));
  EXPECT_FALSE(a->links->send("node-b", json{{"t", "x"}}));
  // Destroyed with handlers of b and c pending in the loop.
  b->links->send("node-c", json{{"t", "x"}});
  b.reset();
  ASSERT_TRUE(runUntil(io, [&] { return !c->links->isUp("node-a") && !c->links->isUp("node-b"); }));
  c.reset();
  a.reset();
  runFor(io, 100ms);
}

TEST_F(LinkManagerTest, HandlerMayDestroyTheManager) {
  Node a(io, ca(), "node-a");
  Node b(io, ca(), "node-b");
  a.handler.onUp = [&] { a.links.reset(); };
  a.links->setPeers({b.target()});
  ASSERT_TRUE(runUntil(io, [&] { return !a.links; }));
  ASSERT_TRUE(runUntil(io, [&] { return b.state("node-a") == LinkState::Down; }));
}

TEST_F(LinkManagerTest, RefusesWithoutCredentials) {
  Recorder h;
  AsioTimers timers(io);
  LinkManager links(io, timers, h, fastOptions());
  FederationCa other = FederationCa::create("Leer").value();
  TrustStore bare(copyCa(other));
  auto r = links.setCredentials(&bare, Hello{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, static_cast<int>(ControlErrc::kNotInFederation));
  std::optional<Result<LinkInfo>> got;
  links.probe("127.0.0.1:1", [&](Result<LinkInfo> res) { got = std::move(res); });
  ASSERT_TRUE(runUntil(io, [&] { return got.has_value(); }));
  EXPECT_EQ(got->error().code, static_cast<int>(ControlErrc::kNotInFederation));
}

} // namespace
} // namespace verbund::federation

// The shared connection layer over real loopback sockets; its deadlines run on ManualTimers, so
// the tests move time instead of sleeping. Sources other than 127.0.0.1 are other loopback
// addresses (127.0.0.0/8 is all loopback on Linux).
#include "net/listener.h"
#include "net/stream_connection.h"

#include "../sip/transport/test_pki.h"
#include "base/manual_timers.h"
#include "net/address.h"
#include "net/tls.h"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <filesystem>
#include <functional>
#include <gtest/gtest.h>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace verbund::net {
namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using R = StreamConnection::CloseReason;

Counter& firstMessageCounter() {
  static Counter c("test_net_first_message_timeouts_total", "test");
  return c;
}
Counter& perSourceCounter() {
  static Counter c("test_net_refused_per_source_total", "test");
  return c;
}
Counter& globalCounter() {
  static Counter c("test_net_refused_global_total", "test");
  return c;
}

class StreamConnectionTest : public ::testing::Test {
protected:
  // A listener on 127.0.0.1 whose accepted connections are recorded.
  void listen(AdmissionLimits limits = {}, std::function<bool(const IpAddress&)> privileged = {}) {
    ConnectionMetrics m;
    m.refusedPerSourceCap = &perSourceCounter();
    m.refusedGlobalCap = &globalCounter();
    admission_ = std::make_shared<Admission>(limits, m);
    StreamListener::Hooks hooks;
    hooks.privileged = std::move(privileged);
    hooks.onAccept = [this](tcp::socket s, const SockAddr&, Admission::Ticket t) {
      auto c = StreamConnection::accepted(std::move(s), nullptr, timers_, options_, std::move(t));
      std::weak_ptr<StreamConnection> w = c;
      StreamConnection::Handler h;
      h.onData = [this, w](std::string_view bytes) {
        received_ += bytes;
        if (auto cc = w.lock(); cc && received_.find('\n') != std::string::npos) cc->firstMessage();
      };
      h.onClosed = [this](R why, const std::string&) { closed_.push_back(why); };
      c->setHandler(std::move(h));
      c->start();
      accepted_.push_back(c);
    };
    auto l = StreamListener::open(io_, timers_, *SockAddr::parse("127.0.0.1:0"), admission_, "test",
                                  std::move(hooks));
    ASSERT_TRUE(l.ok()) << l.error().message;
    listener_ = std::move(l.value());
  }

  // A client socket bound to `source` (a loopback address), connected to the listener.
  std::unique_ptr<tcp::socket> client(const char* source = "127.0.0.1") {
    auto s = std::make_unique<tcp::socket>(io_);
    s->open(tcp::v4());
    s->bind(tcp::endpoint(asio::ip::make_address(source), 0));
    s->connect(toEndpoint<tcp::endpoint>(listener_->local()));
    return s;
  }

  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }
  void settle() {
    runUntil([] { return false; }, 50ms);
  }

  // True once the peer closed `s` (EOF or reset); reads and discards data.
  bool peerClosed(tcp::socket& s) {
    bool done = false;
    std::string sink;
    std::function<void()> readMore;
    char buf[256];
    readMore = [&] {
      s.async_read_some(asio::buffer(buf), [&](asio::error_code ec, size_t) {
        if (ec) {
          done = true;
        } else {
          readMore();
        }
      });
    };
    readMore();
    bool ok = runUntil([&] { return done; }, 1000ms);
    if (!ok) {
      asio::error_code ignored;
      s.cancel(ignored);
      settle();
    }
    return ok;
  }

  asio::io_context io_;
  ManualTimers timers_;
  StreamConnection::Options options_;
  std::shared_ptr<Admission> admission_;
  std::shared_ptr<StreamListener> listener_;
  std::vector<StreamConnection::Ptr> accepted_;
  std::vector<R> closed_;
  std::string received_;
};

TEST_F(StreamConnectionTest, SilentConnectionIsClosedAtTheFirstMessageDeadline) {
  options_.firstMessageTimeout = 10s;
  options_.firstMessageTimeouts = &firstMessageCounter();
  listen();
  uint64_t before = firstMessageCounter().value();
  auto c = client();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  EXPECT_EQ(admission_->pending(), 1u);
  timers_.advance(9999ms);
  EXPECT_TRUE(accepted_[0]->isOpen());
  timers_.advance(1ms);
  EXPECT_TRUE(accepted_[0]->isClosed());
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], R::FirstMessageTimeout);
  EXPECT_EQ(firstMessageCounter().value(), before + 1);
  EXPECT_EQ(admission_->open(), 0u);
  EXPECT_EQ(admission_->pending(), 0u);
  EXPECT_TRUE(peerClosed(*c));
}

TEST_F(StreamConnectionTest, FirstMessageLiftsTheDeadlineAndFreesThePendingSlot) {
  options_.firstMessageTimeout = 10s;
  listen();
  auto c = client();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  asio::write(*c, asio::buffer(std::string("half")));
  ASSERT_TRUE(runUntil([&] { return received_ == "half"; }));
  EXPECT_EQ(admission_->pending(), 1u); // bytes are not a message yet
  asio::write(*c, asio::buffer(std::string(" a message\n")));
  ASSERT_TRUE(runUntil([&] { return admission_->pending() == 0; }));
  timers_.advance(60s);
  EXPECT_TRUE(accepted_[0]->isOpen());
  EXPECT_EQ(admission_->open(), 1u);
}

TEST_F(StreamConnectionTest, IdleDeadlineCountsFromTheLastActivity) {
  options_.idleTimeout = 5s;
  listen();
  auto c = client();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  timers_.advance(4s);
  asio::write(*c, asio::buffer(std::string("x\n")));
  ASSERT_TRUE(runUntil([&] { return !received_.empty(); }));
  timers_.advance(4s); // 8 s after open, 4 s after the last byte
  EXPECT_TRUE(accepted_[0]->isOpen());
  timers_.advance(1s);
  EXPECT_TRUE(accepted_[0]->isClosed());
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], R::Idle);
}

TEST_F(StreamConnectionTest, PerSourcePendingCapRefusesOneAddressOnly) {
  AdmissionLimits l;
  l.maxPendingPerSource = 2;
  listen(l);
  uint64_t before = perSourceCounter().value();
  auto a1 = client("127.0.0.2");
  auto a2 = client("127.0.0.2");
  auto a3 = client("127.0.0.2");
  auto other = client("127.0.0.3");
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 3; }));
  EXPECT_TRUE(peerClosed(*a3)); // accepted and closed at once
  EXPECT_EQ(perSourceCounter().value(), before + 1);
  EXPECT_EQ(admission_->pendingFrom(*IpAddress::parse("127.0.0.2")), 2u);
  EXPECT_EQ(admission_->pendingFrom(*IpAddress::parse("127.0.0.3")), 1u);
  // Accepting goes on after a refusal.
  accepted_[0]->close();
  auto a4 = client("127.0.0.2");
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 4; }));
}

TEST_F(StreamConnectionTest, ReservedSlotsServeOnlyPrivilegedSources) {
  AdmissionLimits l;
  l.maxPending = 3;
  l.reserved = 1;
  auto member = *IpAddress::parse("127.0.0.9");
  listen(l, [member](const IpAddress& ip) { return ip == member; });
  uint64_t before = globalCounter().value();
  auto a = client("127.0.0.2");
  auto b = client("127.0.0.3");
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 2; }));
  auto stranger = client("127.0.0.4");
  EXPECT_TRUE(peerClosed(*stranger));
  EXPECT_EQ(globalCounter().value(), before + 1);
  auto m = client("127.0.0.9");
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 3; }));
}

TEST_F(StreamConnectionTest, WritesQueuedBeforeConnectGoOutOnceOpenAndTheQueueIsBounded) {
  tcp::acceptor server(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  StreamConnection::Options o;
  o.maxWriteQueueBytes = 10;
  o.connectTimeout = 5s;
  auto c = StreamConnection::outgoing(io_, nullptr, timers_, o);
  bool opened = false;
  StreamConnection::Handler h;
  h.onOpen = [&] { opened = true; };
  c->setHandler(h);
  EXPECT_EQ(c->write("hello"), StreamConnection::WriteResult::Queued);
  EXPECT_EQ(c->write("too long!"), StreamConnection::WriteResult::QueueFull);
  c->connect({server.local_endpoint()});
  tcp::socket peer(io_);
  server.accept(peer);
  ASSERT_TRUE(runUntil([&] { return opened; }));
  std::string got(5, '\0');
  asio::read(peer, asio::buffer(got));
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(c->remote(), fromEndpoint(server.local_endpoint()));
  timers_.advance(10s); // the connect deadline no longer applies
  EXPECT_TRUE(c->isOpen());
  c->close();
  EXPECT_EQ(c->write("x"), StreamConnection::WriteResult::Closed);
}

TEST_F(StreamConnectionTest, ConnectDeadline) {
  StreamConnection::Options o;
  o.connectTimeout = 2s;
  auto c = StreamConnection::outgoing(io_, nullptr, timers_, o);
  std::vector<R> why;
  StreamConnection::Handler h;
  h.onClosed = [&](R r, const std::string&) { why.push_back(r); };
  c->setHandler(h);
  // Never connected: the deadline fires while Connecting.
  timers_.advance(2s);
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], R::SetupTimeout);
  EXPECT_EQ(c->closedIn(), StreamConnection::State::Connecting);
}

TEST_F(StreamConnectionTest, CloseAfterFlushSendsThenCloses) {
  listen();
  auto c = client();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  accepted_[0]->write("bye\n");
  accepted_[0]->closeAfterFlush(1s);
  std::string got(4, '\0');
  asio::read(*c, asio::buffer(got));
  EXPECT_EQ(got, "bye\n");
  EXPECT_TRUE(peerClosed(*c));
  c->close();
  ASSERT_TRUE(runUntil([&] { return accepted_[0]->isClosed(); }));
  EXPECT_TRUE(closed_.empty()); // no callback after closeAfterFlush
  EXPECT_EQ(admission_->open(), 0u);
}

TEST_F(StreamConnectionTest, PeerCloseIsReported) {
  listen();
  auto c = client();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  c->close();
  ASSERT_TRUE(runUntil([&] { return !closed_.empty(); }));
  EXPECT_EQ(closed_[0], R::PeerClosed);
  EXPECT_EQ(admission_->open(), 0u);
}

// Closing (close, abort, or a failed read) while a TLS write is in flight must keep the queued
// bytes that write points at alive until its handler has run: the TLS stream copies the next
// buffer of the batch when the previous send completes, which may already be queued when the
// close happens. Seen as a use-after-free under load (a federation link reset right after a
// burst of messages); the sanitizer build catches a regression here.
TEST_F(StreamConnectionTest, CloseWhileATlsWriteIsInFlightKeepsItsBuffers) {
  using sip::testing::makeCa;
  using sip::testing::makeLeaf;
  static const auto ca = makeCa("Net Test CA");
  static const auto leaf = makeLeaf(ca, "net-test");
  auto server = makeTlsContext({});
  ASSERT_TRUE(server.ok());
  (*server)->use_certificate_chain(asio::buffer(leaf.certPem));
  (*server)->use_private_key(asio::buffer(leaf.keyPem), asio::ssl::context::pem);
  auto client = makeTlsContext({});
  ASSERT_TRUE(client.ok());
  (*client)->set_verify_mode(asio::ssl::verify_none);

  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  for (int round = 0; round < 24; ++round) {
    StreamConnection::Options o;
    o.connectTimeout = 5s;
    auto c = StreamConnection::outgoing(io_, *client, timers_, o);
    bool opened = false;
    StreamConnection::Handler h;
    h.onOpen = [&] { opened = true; };
    c->setHandler(h);
    c->connect({acceptor.local_endpoint()});
    tcp::socket raw(io_);
    acceptor.accept(raw);
    asio::ssl::stream<tcp::socket&> peer(raw, **server);
    bool handshaken = false;
    peer.async_handshake(asio::ssl::stream_base::server,
                         [&](const asio::error_code& ec) { handshaken = !ec; });
    ASSERT_TRUE(runUntil([&] { return opened && handshaken; }));
    // The peer reads everything, so sends complete as fast as the loop runs them.
    std::vector<char> sink(64 * 1024);
    std::function<void()> readMore = [&] {
      peer.async_read_some(asio::buffer(sink), [&](const asio::error_code& ec, size_t) {
        if (!ec) readMore();
      });
    };
    readMore();
    for (int i = 0; i < 32; ++i)
      ASSERT_EQ(c->write(std::string(32 * 1024, char('a' + i % 26))),
                StreamConnection::WriteResult::Queued);
    // Let a round-dependent number of handlers run, so the close lands at different points of
    // the batch; then close from inside a handler, as a failed read does.
    io_.restart();
    for (int i = 0; i < round % 8; ++i) io_.poll_one();
    asio::post(io_, [&] {
      if (round % 2) {
        c->abort();
      } else {
        c->close();
      }
    });
    ASSERT_TRUE(runUntil([&] { return c->isClosed(); }));
    settle();
    asio::error_code ignored;
    raw.close(ignored);
    settle();
  }
}

// accept() failing for want of descriptors backs off (a few attempts, counted) instead of
// spinning, and the waiting connections are accepted once descriptors are free again.
TEST_F(StreamConnectionTest, AcceptBacksOffWhileOutOfDescriptors) {
#ifdef VERBUND_SANITIZED
  GTEST_SKIP() << "needs every descriptor used up; the sanitizer runtime then reports false "
                  "vptr errors on valid objects (its type check needs descriptors of its own)";
#endif
  static Counter fdErrors("test_net_accept_fd_limit_total", "test");
  ConnectionMetrics m;
  m.fdLimitErrors = &fdErrors;
  admission_ = std::make_shared<Admission>(AdmissionLimits{}, m);
  StreamListener::Hooks hooks;
  hooks.onAccept = [this](tcp::socket s, const SockAddr&, Admission::Ticket t) {
    accepted_.push_back(
        StreamConnection::accepted(std::move(s), nullptr, timers_, options_, std::move(t)));
  };
  auto l = StreamListener::open(io_, timers_, *SockAddr::parse("127.0.0.1:0"), admission_, "test",
                                std::move(hooks));
  ASSERT_TRUE(l.ok());
  listener_ = std::move(l.value());
  // The clients connect first (the kernel completes them in the backlog); then no descriptor
  // is left for accept().
  auto c1 = client();
  auto c2 = client();
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int highest = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  rlimit tight = saved;
  tight.rlim_cur = rlim_t(highest + 1);
  uint64_t before = fdErrors.value();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers; // take the free numbers below the limit too
  for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
  // 300 ms of simulated and real time: a spinning loop would fail thousands of times.
  for (int i = 0; i < 30; ++i) {
    io_.restart();
    io_.run_for(10ms);
    timers_.advance(10ms);
  }
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  uint64_t failures = fdErrors.value() - before;
  EXPECT_GE(failures, 1u);
  EXPECT_LE(failures, 5u);
  EXPECT_TRUE(accepted_.empty());
  // Descriptors again: the next attempt (at most one back-off later) takes both.
  ASSERT_TRUE(runUntil([&] {
    timers_.advance(10ms);
    return accepted_.size() == 2;
  }));
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 2; }))
      << accepted_.size() << " accepted, " << failures << " failures, " << fillers.size()
      << " fillers";
}

} // namespace
} // namespace verbund::net

// The admin server's request limits and browser checks (issue 10), over raw loopback sockets
// where the client must misbehave.
#include "http/http_server.h"
#include "server_fixture.h"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace verbund::http {
namespace {

using Clock = std::chrono::steady_clock;

// A blocking loopback TCP client with a bounded receive.
class RawClient {
public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(size_t(n));
    }
    return true;
  }
  // Reads until the peer closes, the head and Content-Length worth of body are in, or timeout.
  std::string receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    std::string out;
    auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      int left =
          int(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
      if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, size_t(n));
      if (complete(out)) break;
    }
    return out;
  }
  static int status(const std::string& response) {
    if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) return 0;
    return std::stoi(response.substr(9, 3));
  }

private:
  static bool complete(const std::string& r) {
    auto end = r.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    auto cl = r.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) return true;
    return r.size() >= end + 4 + std::stoul(r.substr(cl + 16));
  }
  int fd_ = -1;
  bool connected_ = false;
};

class HttpLimitsTest : public AdminServerTest {
protected:
  void configure(AdminServerConfig& c) override {
    c.requestTimeout = std::chrono::milliseconds(800);
    c.maxConnectionsPerAddress = 40;
    c.maxHeaders = 20;
    c.secureCookie = true;
  }
  std::string request(const std::string& text) {
    RawClient c(port_);
    EXPECT_TRUE(c.connected());
    c.send(text);
    return c.receive();
  }
  static std::string loginRequest(std::string_view password, std::string_view extraHeaders,
                                  std::string_view contentType = "application/json") {
    std::string body = json{{"password", password}}.dump();
    return "POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " +
           std::string(contentType) + "\r\n" + std::string(extraHeaders) +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  uint64_t metric(const std::string& name) {
    auto r = client_->Get("/metrics");
    if (!r) return ~0ull;
    auto at = r->body.find("\n" + name + " ");
    if (at == std::string::npos) return ~0ull;
    return std::stoull(r->body.substr(at + name.size() + 2));
  }
};

TEST_F(HttpLimitsTest, ChunkedBodyOverTheLimitGets413BeforeItIsSent) {
  RawClient c(port_);
  ASSERT_TRUE(c.send("POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk(64 * 1024, 'x');
  std::string framed = "10000\r\n" + chunk + "\r\n";
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(c.send(framed)); // exactly 1 MiB: accepted so far
  c.send(framed);                                           // one chunk beyond the limit
  auto r = c.receive();
  EXPECT_EQ(RawClient::status(r), 413) << r;
  EXPECT_NE(r.find("\"too_large\""), std::string::npos) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
}

TEST_F(HttpLimitsTest, HeaderFloodGets431) {
  std::string text = "GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 30; ++i) text += "X-Flood-" + std::to_string(i) + ": 1\r\n";
  auto r = request(text + "\r\n");
  EXPECT_EQ(RawClient::status(r), 431) << r;
  auto big =
      request("GET /api/v1/status HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(RawClient::status(big), 431) << big;
}

TEST_F(HttpLimitsTest, SlowRequestGets408AtTheDeadline) {
  RawClient c(port_);
  auto start = Clock::now();
  ASSERT_TRUE(c.send("GET /api/v1/status HTTP/1.1\r\n"));
  std::string r;
  for (int i = 0; i < 20 && r.empty(); ++i) { // a header line every 100 ms, never the end
    c.send("X-Slow: " + std::to_string(i) + "\r\n");
    r = c.receive(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(RawClient::status(r), 408) << r;
  auto took = Clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(700));
  EXPECT_LT(took, std::chrono::milliseconds(1800));
}

TEST_F(HttpLimitsTest, SlowClientsDoNotBlockOthers) {
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 30; ++i) {
    slow.push_back(std::make_unique<RawClient>(port_));
    slow.back()->send("GET /api/v1/status HTTP/1.1\r\nX-Slow: 1\r\n");
  }
  auto start = Clock::now();
  auto r = request("GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: x\r\n\r\n");
  EXPECT_EQ(RawClient::status(r), 401) << r; // answered (no credentials), not blocked
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500));
}

TEST_F(HttpLimitsTest, ConnectionsPerAddressAreCapped) {
  std::vector<std::unique_ptr<RawClient>> open;
  for (int i = 0; i < 40; ++i) open.push_back(std::make_unique<RawClient>(port_));
  // The 41st connection from 127.0.0.1 gets 503 without sending anything.
  RawClient extra(port_);
  auto r = extra.receive();
  EXPECT_EQ(RawClient::status(r), 503) << r;
  open.clear(); // closed: the server sees EOF and frees the slots
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = request("GET /api/v1/session HTTP/1.1\r\n\r\n");
    if (RawClient::status(r) != 503) break;
  }
  EXPECT_EQ(RawClient::status(r), 401) << r;
}

TEST_F(HttpLimitsTest, LoginNeedsJson) {
  auto r = request(loginRequest(kPassword, "", "text/plain"));
  EXPECT_EQ(RawClient::status(r), 415) << r;
  r = request(loginRequest(kPassword, "", "application/json; charset=utf-8"));
  EXPECT_EQ(RawClient::status(r), 200) << r;
}

TEST_F(HttpLimitsTest, CrossOriginLoginsAreRefusedAndNotThrottled) {
  for (int i = 0; i < 10; ++i) {
    auto r =
        request(loginRequest("wrong-password", "Origin: http://evil.example\r\n", "text/plain"));
    ASSERT_EQ(RawClient::status(r), 403) << r;
    r = request(loginRequest("wrong-password", "Origin: http://evil.example\r\n"));
    ASSERT_EQ(RawClient::status(r), 403) << r;
    EXPECT_NE(r.find("\"field\":\"Origin\""), std::string::npos) << r;
  }
  // DNS rebinding: same-origin, but through a name that is not ours.
  auto r = request("POST /api/v1/session HTTP/1.1\r\nHost: evil.example:8080\r\n"
                   "Origin: http://evil.example:8080\r\nContent-Type: application/json\r\n"
                   "Content-Length: 2\r\n\r\n{}");
  EXPECT_EQ(RawClient::status(r), 403) << r;
  // Not throttled: the right password still works at once, from the UI's own origin too.
  std::string origin = "Origin: http://127.0.0.1\r\n";
  r = request(loginRequest(kPassword, origin));
  EXPECT_EQ(RawClient::status(r), 200) << r;
  EXPECT_NE(r.find("; Secure"), std::string::npos) << r;
}

TEST_F(HttpLimitsTest, SuccessfulLoginIsNoFailure) {
  auto before = metric("verbund_http_login_failures_total");
  login();
  login();
  EXPECT_EQ(metric("verbund_http_login_failures_total"), before);
}

TEST_F(HttpLimitsTest, CurrentPasswordCheckIsThrottled) {
  login();
  auto change = [&](const std::string& current) {
    return client_->Put("/api/v1/admin/password", session(),
                        json{{"password", "new-password-2"}, {"currentPassword", current}}.dump(),
                        "application/json");
  };
  for (int i = 0; i < 5; ++i) {
    auto r = change("wrong-" + std::to_string(i));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403) << r->body;
  }
  auto r = change(kPassword); // even the right one waits out the window now
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429) << r->body;
}

TEST_F(HttpLimitsTest, PasswordChangeRevokesTokens) {
  login();
  auto t = client_->Post("/api/v1/tokens", session(), R"({"name":"script"})", "application/json");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 201) << t->body;
  httplib::Headers bearer{{"Authorization", "Bearer " + body(t)["token"].get<std::string>()}};
  auto r = client_->Get("/api/v1/tokens", bearer);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = client_->Put("/api/v1/admin/password", session(),
                   json{{"password", "new-password-2"}, {"currentPassword", kPassword}}.dump(),
                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["tokensRevoked"], true);
  r = client_->Get("/api/v1/tokens", bearer);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

TEST_F(HttpLimitsTest, MetricsWithoutCredentialsNeedOurHost) {
  auto r = request("GET /metrics HTTP/1.1\r\nHost: evil.example:8080\r\n\r\n");
  EXPECT_EQ(RawClient::status(r), 403) << r;
  r = request("GET /metrics HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
  EXPECT_EQ(RawClient::status(r), 200) << r.substr(0, 200);
  login(); // with credentials any Host will do (a proxy may rename it)
  httplib::Headers h = session();
  h.emplace("Host", "pbx.example.com");
  auto m = client_->Get("/metrics", h);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
}

TEST(HttpServerSerialize, HeadAndNoContent) {
  HttpResponse r;
  r.body = "abc";
  r.headers.emplace_back("Content-Length", "99"); // ours wins
  auto s = serializeResponse(r, true, true);
  EXPECT_EQ(s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
  r.status = 204;
  EXPECT_EQ(serializeResponse(r, false, false),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
}

TEST(HttpServerSerialize, ChunkedStream) {
  HttpResponse r;
  r.stream = [](std::string&) -> Result<bool> { return false; };
  r.headers.emplace_back("Content-Type", "text/csv");
  EXPECT_EQ(serializeResponse(r, false, true, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n");
  // HTTP/1.0: no coding, no length; the end of the connection ends the body.
  EXPECT_EQ(serializeResponse(r, false, false, false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(chunk("hello, world"), "c\r\nhello, world\r\n");
  EXPECT_EQ(chunk(""), "0\r\n\r\n");
}

} // namespace
} // namespace verbund::http

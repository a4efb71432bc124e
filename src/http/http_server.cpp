#include "http/http_server.h"

#include "base/log.h"
#include "base/metrics.h"

#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <cstdio>

namespace verbund::http {

namespace {

Counter connectionsRefused("verbund_http_connections_refused_total",
                           "Admin API connections refused: per-address or total cap reached");
Counter requestsRefused("verbund_http_requests_refused_total",
                        "Admin API requests refused before a handler: malformed, over a size "
                        "limit (413/431), past the request deadline (408) or no free worker");
Counter requestTimeouts("verbund_http_request_timeouts_total",
                        "Admin API requests not complete within the request deadline");

// Refusals can come by the thousand: one log line a second at most, with the count in between.
void logRefusal(const std::string& what) {
  static std::atomic<int64_t> lastMs{0};
  static std::atomic<uint64_t> suppressed{0};
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  int64_t last = lastMs.load(std::memory_order_relaxed);
  if (now - last < 1000 || !lastMs.compare_exchange_strong(last, now)) {
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint64_t n = suppressed.exchange(0, std::memory_order_relaxed);
  if (n > 0)
    logger("http")->warn("admin API: {} (and {} more refusals in the last second)", what, n);
  else
    logger("http")->warn("admin API: {}", what);
}

std::string addressOf(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

} // namespace

std::string_view reasonPhrase(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 413:
    return "Content Too Large";
  case 415:
    return "Unsupported Media Type";
  case 417:
    return "Expectation Failed";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

std::string chunk(std::string_view piece) {
  char size[20];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
  std::string out(size, size_t(n));
  out += piece;
  out += "\r\n"; // the empty piece: "0\r\n\r\n", the last chunk without a trailer
  return out;
}

std::string serializeResponse(const HttpResponse& r, bool headRequest, bool keepAlive,
                              bool chunked) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " ";
  out += reasonPhrase(r.status);
  out += "\r\n";
  for (const auto& [k, v] : r.headers) {
    if (equalsIgnoreCase(k, "Content-Length") || equalsIgnoreCase(k, "Connection") ||
        equalsIgnoreCase(k, "Transfer-Encoding"))
      continue;
    out += k + ": " + v + "\r\n";
  }
  bool noBody = r.status == 204 || r.status == 304 || r.status < 200;
  if (chunked)
    out += "Transfer-Encoding: chunked\r\n";
  else if (!noBody && !r.stream)
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (!keepAlive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!noBody && !headRequest && !r.stream) out += r.body;
  return out;
}

struct HttpServer::Acceptor {
  explicit Acceptor(asio::io_context& io) : socket(io) {}
  asio::ip::tcp::acceptor socket;
};

// One client connection; lives on the I/O thread except while a worker runs its request.
class HttpServer::Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(HttpServer& server, asio::ip::tcp::socket socket, std::string address, bool counted)
      : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()),
        address_(std::move(address)), counted_(counted), parser_(server.config_.limits) {}

  void start() { waitForRequest(); }

  // Answers once with the error and closes (a refused connection's only answer).
  void refuse(int status, const std::string& message) {
    state_ = State::Reading;
    respondError(status, message, false);
  }

private:
  enum class State { Reading, Handling, Writing, Streaming, Lingering, Closed };

  void arm(Duration d, void (Connection::*onExpiry)()) {
    ++timerGeneration_;
    timer_.expires_after(d);
    timer_.async_wait(
        [self = shared_from_this(), gen = timerGeneration_, onExpiry](const asio::error_code& ec) {
          if (!ec && gen == self->timerGeneration_) (self.get()->*onExpiry)();
        });
  }
  void disarm() {
    ++timerGeneration_;
    timer_.cancel();
  }

  void waitForRequest() {
    state_ = State::Reading;
    parser_.reset();
    continueSent_ = false;
    arm(server_.config_.requestTimeout, &Connection::requestExpired);
    if (!pending_.empty()) {
      std::string data = std::move(pending_);
      pending_.clear();
      onData(data);
      return;
    }
    read();
  }

  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (self->state_ != State::Reading) return;
                              if (ec) return self->close();
                              self->onData(std::string_view(self->buffer_.data(), n));
                            });
  }

  void onData(std::string_view data) {
    size_t used = parser_.feed(data);
    if (parser_.failed()) {
      requestsRefused.inc();
      logRefusal("refused a request from " + address_ + ": " + parser_.errorMessage());
      return respondError(parser_.errorStatus(), parser_.errorMessage(), true);
    }
    if (parser_.done()) {
      pending_.assign(data.substr(used));
      return dispatch();
    }
    if (parser_.headComplete() && parser_.request().expectContinue && !continueSent_) {
      continueSent_ = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](const asio::error_code& ec, size_t) {
                          if (self->state_ != State::Reading) return;
                          if (ec) return self->close();
                          self->read();
                        });
      return;
    }
    read();
  }

  void requestExpired() {
    if (state_ != State::Reading) return;
    requestTimeouts.inc();
    if (!parser_.started()) return close(); // an idle keep-alive connection
    requestsRefused.inc();
    auto secs =
        std::chrono::duration_cast<std::chrono::seconds>(server_.config_.requestTimeout).count();
    logRefusal("request from " + address_ + " not complete within " + std::to_string(secs) + " s");
    respondError(408, "request: not complete within " + std::to_string(secs) + " s", false);
  }

  void dispatch() {
    state_ = State::Handling;
    disarm();
    bool queued = server_.submit([self = shared_from_this()] {
      HttpResponse r;
      try {
        r = self->server_.handler_(self->parser_.request(), self->address_);
      } catch (const std::exception& e) {
        logger("http")->error("admin API handler threw: {}", e.what());
        r = self->server_.errors_(500, "internal error");
      }
      asio::post(self->socket_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->respond(std::move(r)); });
    });
    if (!queued) {
      requestsRefused.inc();
      logRefusal("no free worker for a request from " + address_);
      respondError(503, "server: too busy, try again", false);
    }
  }

  void respond(HttpResponse r) {
    if (state_ != State::Handling) return;
    const HttpRequest& q = parser_.request();
    bool head = q.method == "HEAD";
    if (r.stream && !head) return startStream(std::move(r));
    bool keepAlive = q.keepAlive && !r.close;
    write(serializeResponse(r, head, keepAlive), keepAlive, false);
  }

  // A streamed body: the head, then piece after piece (each made on a worker while nothing else
  // of this response is in memory), then the last chunk. HTTP/1.0 has no chunked coding: the
  // pieces go as they are and closing the connection ends the body.
  void startStream(HttpResponse r) {
    const HttpRequest& q = parser_.request();
    chunked_ = q.minorVersion >= 1;
    streamKeepAlive_ = chunked_ && q.keepAlive && !r.close;
    stream_ = std::move(r.stream);
    std::string head = serializeResponse(r, false, streamKeepAlive_, chunked_);
    writeStream(std::move(head), false);
  }

  // Writes bytes of the streamed body; then asks the worker for the next piece, or ends.
  void writeStream(std::string bytes, bool last) {
    state_ = State::Streaming;
    out_ = std::move(bytes);
    arm(server_.config_.writeTimeout, &Connection::close);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), last](const asio::error_code& ec, size_t) {
                        if (self->state_ != State::Streaming) return;
                        self->out_.clear();
                        self->out_.shrink_to_fit();
                        if (ec) return self->close();
                        if (!last) return self->nextPiece();
                        self->stream_ = nullptr;
                        if (self->streamKeepAlive_) return self->waitForRequest();
                        self->close();
                      });
  }

  void nextPiece() {
    disarm();
    bool queued = server_.submit([self = shared_from_this()] {
      std::string piece;
      Result<bool> more = false;
      try {
        more = self->stream_(piece);
      } catch (const std::exception& e) {
        more = Error{500, e.what()};
      }
      asio::post(self->socket_.get_executor(),
                 [self, more = std::move(more), piece = std::move(piece)]() mutable {
                   self->streamed(std::move(more), std::move(piece));
                 });
    });
    if (!queued) close();
  }

  void streamed(Result<bool> more, std::string piece) {
    if (state_ != State::Streaming) return;
    if (!more) {
      // Too late for an error status: an incomplete body tells the client.
      logger("http")->warn("admin API: a streamed answer to {} ended early: {}", address_,
                           more.error().message);
      stream_ = nullptr;
      return close();
    }
    bool last = !*more;
    std::string bytes;
    if (chunked_) {
      if (!piece.empty()) bytes = chunk(piece);
      if (last) bytes += chunk({});
    } else {
      bytes = std::move(piece);
    }
    if (bytes.empty() && !last) return nextPiece();
    writeStream(std::move(bytes), last);
  }

  // The server's own refusal: the connection closes afterwards; with linger, what the client
  // still sends (the rest of a too large body) is read and dropped for a moment so that it sees
  // the answer rather than a reset.
  void respondError(int status, const std::string& message, bool linger) {
    if (state_ != State::Reading && state_ != State::Handling) return;
    HttpResponse r = server_.errors_(status, message);
    bool head = parser_.headComplete() && parser_.request().method == "HEAD";
    pending_.clear();
    write(serializeResponse(r, head, false), false, linger);
  }

  void write(std::string bytes, bool keepAlive, bool linger) {
    state_ = State::Writing;
    out_ = std::move(bytes);
    arm(server_.config_.writeTimeout, &Connection::close);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), keepAlive, linger](const asio::error_code& ec, size_t) {
          if (self->state_ != State::Writing) return;
          self->out_.clear();
          if (ec) return self->close();
          if (keepAlive) return self->waitForRequest();
          if (linger) return self->startLinger();
          self->close();
        });
  }

  void startLinger() {
    state_ = State::Lingering;
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    arm(server_.config_.lingerTimeout, &Connection::close);
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t) {
                              if (self->state_ != State::Lingering) return;
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  void close() {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    disarm();
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (counted_) server_.released(address_);
    counted_ = false;
  }

  HttpServer& server_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  uint64_t timerGeneration_ = 0;
  std::string address_;
  bool counted_;
  State state_ = State::Reading;
  RequestParser parser_;
  bool continueSent_ = false;
  std::array<char, 16 * 1024> buffer_{};
  std::string pending_; // bytes of the next pipelined request
  std::string out_;
  BodyStream stream_; // while a streamed body is sent
  bool chunked_ = false, streamKeepAlive_ = false;
};

HttpServer::HttpServer(HttpServerConfig config, HttpHandler handler, HttpErrorRenderer errors)
    : config_(std::move(config)), handler_(std::move(handler)), errors_(std::move(errors)) {}

HttpServer::~HttpServer() {
  stop();
}

Result<SockAddr> HttpServer::start() {
  if (io_) return Error{500, "admin server already started"};
  auto addr = SockAddr::parse(config_.listen);
  if (!addr) return Error{400, "listen: bad address '" + config_.listen + "'"};
  asio::error_code ec;
  auto ip = asio::ip::make_address(addr->ip.toString(), ec);
  if (ec) return Error{400, "listen: bad address '" + config_.listen + "'"};
  io_ = std::make_unique<asio::io_context>(1);
  acceptor_ = std::make_unique<Acceptor>(*io_);
  asio::ip::tcp::endpoint ep(ip, addr->port);
  auto& a = acceptor_->socket;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.reset();
    io_.reset();
    return Error{500, "listen: cannot bind " + config_.listen + ": " + ec.message()};
  }
  SockAddr bound = *addr;
  bound.port = a.local_endpoint().port();
  stopping_ = false;
  for (size_t i = 0; i < std::max<size_t>(1, config_.workers); ++i)
    workers_.emplace_back([this] { workerLoop(); });
  accept();
  ioThread_ = std::thread([this] { io_->run(); });
  return bound;
}

void HttpServer::stop() {
  if (!io_) return;
  io_->stop();
  if (ioThread_.joinable()) ioThread_.join();
  asio::error_code ignored;
  acceptor_->socket.close(ignored);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  jobs_.clear();
  acceptor_.reset();
  io_.reset(); // drops the pending handlers and with them the connections
  perAddress_.clear();
  connections_ = 0;
}

void HttpServer::accept() {
  acceptor_->socket.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->socket.is_open()) return;
    if (!ec) {
      asio::error_code e;
      auto remote = socket.remote_endpoint(e);
      if (!e) {
        socket.set_option(asio::ip::tcp::no_delay(true), e);
        std::string address = addressOf(remote);
        size_t& mine = perAddress_[address];
        if (mine >= config_.maxConnectionsPerAddress || connections_ >= config_.maxConnections) {
          if (mine == 0) perAddress_.erase(address);
          connectionsRefused.inc();
          logRefusal("refused a connection from " + address + ": " +
                     (connections_ >= config_.maxConnections ? "too many connections"
                                                             : "too many from this address"));
          std::make_shared<Connection>(*this, std::move(socket), address, false)
              ->refuse(503, "connection: too many connections from your address");
        } else {
          ++mine;
          ++connections_;
          std::make_shared<Connection>(*this, std::move(socket), address, true)->start();
        }
      }
    }
    accept();
  });
}

void HttpServer::released(const std::string& address) {
  --connections_;
  auto it = perAddress_.find(address);
  if (it != perAddress_.end() && --it->second == 0) perAddress_.erase(it);
}

bool HttpServer::submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.size() >= config_.maxQueuedRequests) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void HttpServer::workerLoop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

} // namespace verbund::http

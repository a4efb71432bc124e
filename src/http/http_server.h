#pragma once
// The admin API's HTTP/1.1 server: Asio on one I/O thread of its own plus a small worker pool.
//
// Why not cpp-httplib's server (Debian 12 ships 0.11.4): it gives every connection a pool thread
// for the whole of its life, so a few slow clients block everyone; its read timeout is per recv,
// not per request; it has no limit on the number of header fields and reads chunked bodies
// without its payload limit. Here:
// - the I/O thread reads every request with RequestParser, which enforces the head, header-count
//   and body limits while the bytes arrive (chunked included: 413 as soon as the chunk sizes add
//   up to more than the limit, nothing beyond it is buffered);
// - every request has one deadline for head and body together (requestTimeout, from the moment
//   the server waits for it); a client that misses it gets 408 (or, if it sent nothing, is
//   closed);
// - a slow client costs a socket and a buffer, never a thread: only complete requests go to the
//   workers (the handlers wait on the node loop and hash passwords);
// - connections per remote address and in total are capped (503 and close beyond).
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"
#include "http/request_parser.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace asio {
class io_context;
}

namespace verbund::http {

struct HttpServerConfig {
  std::string listen = "127.0.0.1:8080"; // port 0: any free port
  RequestLimits limits;
  Duration requestTimeout = std::chrono::seconds(10); // head + body of one request
  Duration writeTimeout = std::chrono::seconds(10);   // writing one response
  Duration lingerTimeout = std::chrono::seconds(2);   // reading and dropping after an error
  size_t maxConnections = 1024;
  size_t maxConnectionsPerAddress = 32;
  size_t workers = 8;
  size_t maxQueuedRequests = 256; // complete requests waiting for a worker; beyond: 503
};

// A body made piece by piece, for answers too large to hold (call-record exports): each call
// appends the next piece to `out` and returns true while more follows, false after the last
// piece; an error ends the response early (the connection is closed without the last chunk, so
// the client sees an incomplete transfer). Runs on a worker, one call at a time, and the next
// call only once the previous piece is written: memory stays at one piece per response.
using BodyStream = std::function<Result<bool>(std::string& out)>;

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false; // close the connection after this response
  // Set: the body is sent with chunked transfer coding from these pieces (`body` is ignored).
  // HTTP/1.0 clients get the pieces without coding and the end of the connection as the end.
  BodyStream stream;
};

// Answers a complete request on a worker thread.
using HttpHandler = std::function<HttpResponse(HttpRequest& request, const std::string& remote)>;
// Renders the server's own refusals (400, 408, 413, 431, 503, ...) as a response.
using HttpErrorRenderer = std::function<HttpResponse(int status, const std::string& message)>;

// Renders a response into bytes (status line, headers, Content-Length, body unless HEAD). With
// `chunked` the head announces chunked transfer coding instead and no body follows.
std::string serializeResponse(const HttpResponse& response, bool headRequest, bool keepAlive,
                              bool chunked = false);
// One chunk of chunked transfer coding (RFC 9112 §7.1); the empty piece is the last chunk.
std::string chunk(std::string_view piece);
std::string_view reasonPhrase(int status);

class HttpServer {
public:
  HttpServer(HttpServerConfig config, HttpHandler handler, HttpErrorRenderer errors);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, starts the I/O thread and the workers; returns the bound address.
  Result<SockAddr> start();
  // Closes the listener and every connection, joins all threads. Requests being handled finish
  // first (a handler waits on the node loop at most its timeout).
  void stop();

  const HttpServerConfig& config() const { return config_; }

private:
  class Connection;
  friend class Connection;

  void accept();
  // Runs on a worker; false when the queue is full.
  bool submit(std::function<void()> job);
  void workerLoop();
  void released(const std::string& address);

  HttpServerConfig config_;
  HttpHandler handler_;
  HttpErrorRenderer errors_;
  std::unique_ptr<asio::io_context> io_;
  struct Acceptor;
  std::unique_ptr<Acceptor> acceptor_;
  std::thread ioThread_;
  // Connections by remote address and in total; I/O thread only.
  std::unordered_map<std::string, size_t> perAddress_;
  size_t connections_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

} // namespace verbund::http

#pragma once
// The admin HTTP server (REST JSON under /api/v1, Prometheus text at /metrics) on cpp-httplib.
//
// Threads: cpp-httplib accepts and parses on its own thread pool; every handler's work runs on
// the node's io_context through LoopExecutor (503 when the loop does not get to it in time).
// Routes are added before start() and never after.
//
// Built-in routes:
//   POST   /api/v1/session          {password} -> cookie + {csrfToken}      (public, throttled)
//   GET    /api/v1/session          who am I
//   DELETE /api/v1/session          log out
//   GET    /api/v1/tokens           list bearer tokens (names, never the secrets)
//   POST   /api/v1/tokens           {name} -> {token} shown once (session only)
//   DELETE /api/v1/tokens/{id}
//   PUT    /api/v1/admin/password   {password, currentPassword}
//   GET    /api/v1/status           node name, version, counts of the status sources
//   GET    /metrics                 Prometheus text; without credentials from loopback only
//   GET    any other path           the admin web UI's files (web/, built into the binary)
#include "base/net.h"
#include "base/result.h"
#include "http/admin_auth.h"
#include "http/api.h"
#include "http/loop_executor.h"

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace verbund::http {

struct AdminServerConfig {
  std::string listen = "127.0.0.1:8080"; // port 0: any free port
  std::string nodeName = "verbund";
  std::string version;
  Duration loopTimeout = std::chrono::seconds(5);
  size_t maxBodyBytes = 1 << 20; // larger bodies get 413
  bool secureCookie = false;     // add "Secure" to the cookie (when served behind TLS)
};

inline constexpr std::string_view kSessionCookie = "verbund_session";
inline constexpr std::string_view kCsrfHeader = "X-CSRF-Token";

class AdminServer {
public:
  AdminServer(asio::io_context& io, AdminAuth& auth, AdminServerConfig config);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Adds a route; pattern segments "{name}" capture path parameters. Before start() only.
  void route(Method method, std::string_view pattern, Handler handler, RouteOptions options = {});
  // Extra Prometheus text (gauges) appended to /metrics; runs on the loop.
  void addMetrics(std::function<std::string()> render);
  // Contributions to GET /api/v1/status; run on the loop.
  void addStatus(std::function<void(nlohmann::json&)> fill);

  // Binds and starts serving on a thread of its own; returns the bound address.
  Result<SockAddr> start();
  // Stops accepting and joins the server thread. Handlers waiting on the loop give up after the
  // loop timeout, so stop the server before the loop stops running.
  void stop();
  uint16_t port() const { return bound_.port; }
  LoopExecutor& loop() { return loop_; }

private:
  struct Entry {
    Handler handler;
    RouteOptions options;
  };
  void addBuiltinRoutes();
  void serve(const httplib::Request& req, httplib::Response& res);
  void serveAsset(const httplib::Request& req, httplib::Response& res);
  Result<Response> dispatch(const httplib::Request& req, RequestContext& ctx);
  Result<Response> login(RequestContext& ctx);
  Result<Response> changePassword(RequestContext& ctx);

  AdminAuth& auth_;
  AdminServerConfig config_;
  LoopExecutor loop_;
  Router<Entry> router_;
  std::vector<std::function<std::string()>> metrics_;
  std::vector<std::function<void(nlohmann::json&)>> status_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  SockAddr bound_;
};

} // namespace verbund::http

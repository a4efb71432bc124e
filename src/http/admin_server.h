#pragma once
// The admin HTTP server (REST JSON under /api/v1, Prometheus text at /metrics) on HttpServer.
//
// Threads: HttpServer reads requests on its own I/O thread and hands complete ones to its
// workers; every handler's work runs on the node's io_context through LoopExecutor (503 when the
// loop does not get to it in time). Routes are added before start() and never after.
//
// Requests with a body must be application/json, or of a type in the route's textBodyTypes
// (415). Login and every other non-GET API request that carries an Origin must come from an
// allowed origin (origin_check.h; 403, not counted by the login throttle); login also needs an
// allowed Host.
//
// Built-in routes:
//   POST   /api/v1/session          {password} -> cookie + {csrfToken}      (public, throttled)
//   GET    /api/v1/session          who am I
//   DELETE /api/v1/session          log out
//   GET    /api/v1/tokens           list bearer tokens (names, never the secrets)
//   POST   /api/v1/tokens           {name} -> {token} shown once (session only)
//   DELETE /api/v1/tokens/{id}
//   PUT    /api/v1/admin/password   {password, currentPassword}: ends all sessions and revokes
//                                   all tokens; a wrong currentPassword counts as a failed login
//   GET    /api/v1/status           node name, version, counts of the status sources
//   GET    /metrics                 Prometheus text; without credentials from loopback only, and
//                                   then only with an allowed Host (no DNS rebinding)
//   GET    any other path           the admin web UI's files (web/, built into the binary)
#include "base/net.h"
#include "base/result.h"
#include "http/admin_auth.h"
#include "http/api.h"
#include "http/http_server.h"
#include "http/loop_executor.h"

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace verbund::http {

struct AdminServerConfig {
  std::string listen = "127.0.0.1:8080"; // port 0: any free port
  std::string nodeName = "verbund";
  std::string version;
  Duration loopTimeout = std::chrono::seconds(5);
  size_t maxBodyBytes = 1 << 20;                      // larger bodies get 413 (chunked ones too)
  size_t maxImportBodyBytes = 16 << 20;               // the same for kImportPaths
  size_t maxHeadBytes = 16 * 1024;                    // request line + header fields; beyond: 431
  size_t maxHeaders = 64;                             // header fields; beyond: 431
  Duration requestTimeout = std::chrono::seconds(10); // head + body; then 408
  size_t maxConnectionsPerAddress = 32;
  size_t maxConnections = 1024;
  size_t workers = 8;
  bool secureCookie = false; // add "Secure" to the cookie (admin.secure_cookie, behind TLS)
  // Origins of a reverse proxy in front ("https://pbx.example.com"), accepted besides the
  // same-origin requests to an IP address or localhost (admin.allowed_origins).
  std::vector<std::string> allowedOrigins;
};

// Bulk uploads, the only paths with the larger body limit.
inline const std::vector<std::string> kImportPaths = {"/api/v1/users/import"};

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
  HttpResponse serve(HttpRequest& req, const std::string& remote);
  HttpResponse serveAsset(const HttpRequest& req);
  Result<Response> dispatch(HttpRequest& req, RequestContext& ctx);
  Result<void> checkBrowserRequest(const HttpRequest& req, const RequestContext& ctx) const;
  Result<Response> login(RequestContext& ctx);
  Result<Response> changePassword(RequestContext& ctx);

  AdminAuth& auth_;
  AdminServerConfig config_;
  LoopExecutor loop_;
  Router<Entry> router_;
  std::vector<std::function<std::string()>> metrics_;
  std::vector<std::function<void(nlohmann::json&)>> status_;
  std::unique_ptr<HttpServer> server_;
  SockAddr bound_;
};

} // namespace verbund::http

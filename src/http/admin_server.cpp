#include "http/admin_server.h"

#include "base/log.h"
#include "base/metrics.h"
#include "http/static_assets.h"

#include <httplib.h>

namespace verbund::http {

namespace {

Counter requestsTotal("verbund_http_requests_total", "Admin API and /metrics requests");
Counter errorsTotal("verbund_http_errors_total", "Admin API requests answered with 4xx or 5xx");
Counter loginFailures("verbund_http_login_failures_total", "Failed admin logins");
Counter uiRequests("verbund_http_ui_requests_total", "Admin web UI file requests");

// Paths of the REST API and /metrics; every other GET is a file of the web UI.
bool isApiPath(std::string_view path) {
  return path == "/api" || path.starts_with("/api/") || path == "/metrics";
}

std::string cookieValue(const std::string& header, std::string_view name) {
  size_t i = 0;
  while (i < header.size()) {
    auto end = header.find(';', i);
    if (end == std::string::npos) end = header.size();
    std::string_view part(header.data() + i, end - i);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.starts_with(name) && part[name.size()] == '=')
      return std::string(part.substr(name.size() + 1));
    i = end + 1;
  }
  return {};
}

bool isLoopback(const std::string& address) {
  auto ip = IpAddress::parse(address);
  return ip && ip->isLoopback();
}

Result<std::string> stringField(const nlohmann::json& obj, const char* name, bool required) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    if (required) return Error{400, std::string(name) + ": required"};
    return std::string();
  }
  if (!it->is_string()) return Error{400, std::string(name) + ": string expected"};
  return it->get<std::string>();
}

nlohmann::json principalJson(const Principal& p) {
  const char* kind = p.kind == Principal::Kind::Session ? "session"
                     : p.kind == Principal::Kind::Token ? "token"
                                                        : "none";
  return {{"kind", kind}, {"name", p.name}};
}

} // namespace

AdminServer::AdminServer(asio::io_context& io, AdminAuth& auth, AdminServerConfig config)
    : auth_(auth), config_(std::move(config)), loop_(io, config_.loopTimeout) {
  addBuiltinRoutes();
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::route(Method method, std::string_view pattern, Handler handler,
                        RouteOptions options) {
  if (!router_.add(method, pattern, Entry{std::move(handler), options}))
    throw std::logic_error("admin API: bad or duplicate route " + std::string(pattern));
}

void AdminServer::addMetrics(std::function<std::string()> render) {
  metrics_.push_back(std::move(render));
}

void AdminServer::addStatus(std::function<void(nlohmann::json&)> fill) {
  status_.push_back(std::move(fill));
}

void AdminServer::addBuiltinRoutes() {
  route(Method::Post, "/api/v1/session", [this](RequestContext& c) { return login(c); },
        {Access::Public, false});
  route(Method::Get, "/api/v1/session", [](RequestContext& c) -> Result<Response> {
    return Response::json({{"principal", principalJson(c.principal)}});
  });
  route(Method::Delete, "/api/v1/session", [this](RequestContext& c) -> Result<Response> {
    if (c.principal.kind == Principal::Kind::Session) auth_.endSession(c.principal.sessionKey);
    auto r = Response::noContent();
    r.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) +
                                             "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    return r;
  });
  route(Method::Get, "/api/v1/tokens", [this](RequestContext&) -> Result<Response> {
    auto list = nlohmann::json::array();
    for (const auto& t : auth_.tokens())
      list.push_back({{"id", t.id}, {"name", t.name}, {"createdUnixMs", t.createdUnixMs}});
    return Response::json({{"tokens", list}});
  });
  route(Method::Post, "/api/v1/tokens", [this](RequestContext& c) -> Result<Response> {
    if (c.principal.kind != Principal::Kind::Session)
      return Error{403, "authorization: creating tokens needs a login session"};
    auto obj = c.object();
    if (!obj) return obj.error();
    auto name = stringField(**obj, "name", true);
    if (!name) return name.error();
    auto t = auth_.createToken(*name);
    if (!t) return t.error();
    logger("http")->info("API token '{}' created", t->first.name);
    return Response::json({{"id", t->first.id},
                           {"name", t->first.name},
                           {"createdUnixMs", t->first.createdUnixMs},
                           {"token", t->second}},
                          201);
  });
  route(Method::Delete, "/api/v1/tokens/{id}", [this](RequestContext& c) -> Result<Response> {
    auto id = c.idParam("id");
    if (!id) return id.error();
    if (auto r = auth_.deleteToken(*id); !r) return r.error();
    return Response::noContent();
  });
  route(Method::Put, "/api/v1/admin/password",
        [this](RequestContext& c) { return changePassword(c); }, {Access::Admin, false});
  route(Method::Get, "/api/v1/status", [this](RequestContext&) -> Result<Response> {
    nlohmann::json s = {{"node", config_.nodeName},
                        {"version", config_.version},
                        {"sessions", auth_.sessionCount()}};
    for (const auto& f : status_) f(s);
    return Response::json(s);
  });
  route(Method::Get, "/metrics",
        [this](RequestContext&) -> Result<Response> {
          Response r;
          std::string text = renderPrometheus();
          text += "# HELP verbund_admin_sessions Open admin sessions\n"
                  "# TYPE verbund_admin_sessions gauge\nverbund_admin_sessions " +
                  std::to_string(auth_.sessionCount()) + "\n";
          for (const auto& m : metrics_) text += m();
          r.text = std::move(text);
          r.contentType = "text/plain; version=0.0.4; charset=utf-8";
          return r;
        },
        {Access::LoopbackOrAdmin, true});
}

Result<Response> AdminServer::login(RequestContext& c) {
  auto obj = c.object();
  if (!obj) return obj.error();
  auto password = stringField(**obj, "password", true);
  if (!password) return password.error();
  const std::string& address = c.remoteAddress;
  // Counted as a failure up front so that parallel guesses cannot all pass the throttle; a
  // success clears the count.
  auto hash = loop_.run([&]() -> Result<std::string> {
    if (auto t = auth_.checkThrottle(address); !t) return t.error();
    auth_.recordFailure(address);
    return auth_.passwordHash();
  });
  if (!hash) return hash.error();
  bool ok = verifyPassword(*password, *hash); // slow on purpose: off the loop
  auto session = loop_.run([&]() -> Result<AdminAuth::NewSession> {
    if (!ok) return Error{401, "password: wrong password"};
    auth_.recordSuccess(address);
    return auth_.createSession();
  });
  if (!session) {
    if (session.error().code == 401) {
      loginFailures.inc();
      logger("http")->warn("failed admin login from {}", address);
    }
    return session.error();
  }
  auto seconds = [](Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
  };
  auto r = Response::json({{"csrfToken", session->csrfToken},
                           {"idleTimeoutSeconds", seconds(auth_.config().sessionIdle)},
                           {"expiresInSeconds", seconds(auth_.config().sessionAbsolute)}});
  std::string cookie = std::string(kSessionCookie) + "=" + session->id +
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string(seconds(auth_.config().sessionAbsolute));
  if (config_.secureCookie) cookie += "; Secure";
  r.headers.emplace_back("Set-Cookie", std::move(cookie));
  logger("http")->info("admin logged in from {}", address);
  return r;
}

Result<Response> AdminServer::changePassword(RequestContext& c) {
  auto obj = c.object();
  if (!obj) return obj.error();
  auto password = stringField(**obj, "password", true);
  if (!password) return password.error();
  if (auto r = AdminAuth::checkPasswordRules(*password); !r) return r.error();
  // A stolen session must not be enough to take the account over: sessions confirm the current
  // password; bearer tokens are already full credentials.
  if (c.principal.kind == Principal::Kind::Session) {
    auto current = stringField(**obj, "currentPassword", true);
    if (!current) return current.error();
    auto hash = loop_.run([&] { return auth_.passwordHash(); });
    if (!hash) return hash.error();
    if (!verifyPassword(*current, *hash)) return Error{403, "currentPassword: wrong password"};
  }
  std::string hash = hashPassword(*password, auth_.config().pbkdf2Iterations);
  auto stored = loop_.run([&] { return auth_.setPasswordHash(hash); });
  if (!stored) return stored.error();
  logger("http")->info("admin password changed; all sessions ended");
  return Response::json({{"changed", true}, {"sessionsEnded", true}});
}

Result<Response> AdminServer::dispatch(const httplib::Request& req, RequestContext& ctx) {
  auto m = router_.match(ctx.method, ctx.path);
  if (!m.entry) {
    if (m.pathKnown) return Error{405, "method: not allowed on " + ctx.path};
    return Error{404, "path: no such resource"};
  }
  ctx.params = std::move(m.params);
  const Entry& entry = *m.entry;

  std::string bearer;
  if (auto a = req.get_header_value("Authorization"); a.size() > 7 && a.starts_with("Bearer "))
    bearer = a.substr(7);
  std::string cookie = cookieValue(req.get_header_value("Cookie"), kSessionCookie);
  std::string csrfHeader = req.get_header_value(std::string(kCsrfHeader).c_str());

  auto authenticate = [&]() -> Result<void> {
    if (entry.options.access == Access::Public) return {};
    if (!bearer.empty()) {
      auto p = auth_.tokenPrincipal(bearer);
      if (!p) return Error{401, "authorization: unknown or revoked token"};
      ctx.principal = *p;
    } else if (!cookie.empty()) {
      std::string csrf;
      if (auto p = auth_.session(cookie, &csrf)) {
        ctx.principal = *p;
        // Changes with an ambient credential (the cookie) must prove they come from our UI.
        if (ctx.method != Method::Get && !constantTimeEquals(csrfHeader, csrf))
          return Error{403, "X-CSRF-Token: missing or wrong"};
      }
    }
    if (ctx.principal.authenticated()) return {};
    if (entry.options.access == Access::LoopbackOrAdmin && isLoopback(ctx.remoteAddress)) {
      ctx.principal.kind = Principal::Kind::Loopback;
      return {};
    }
    return Error{401, "session: log in or send a bearer token"};
  };

  if (entry.options.onLoop)
    return loop_.run([&]() -> Result<Response> {
      if (auto a = authenticate(); !a) return a.error();
      return entry.handler(ctx);
    });
  auto a = loop_.run(authenticate);
  if (!a) return a.error();
  try {
    return entry.handler(ctx);
  } catch (const std::exception& e) {
    return Error{500, std::string("internal error: ") + e.what()};
  }
}

// The web UI's files: no authentication (they hold no data; the UI logs in through the API).
// Revalidated on every load (ETag), so that an upgraded node never serves a stale UI.
void AdminServer::serveAsset(const httplib::Request& req, httplib::Response& res) {
  uiRequests.inc();
  for (const auto& [k, v] : uiSecurityHeaders()) res.set_header(std::string(k), std::string(v));
  auto asset = findAsset(req.path);
  if (!asset) {
    res.status = 404;
    res.set_header("Cache-Control", "no-store");
    res.set_content("not found\n", "text/plain; charset=utf-8");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("ETag", std::string(asset->etag));
  if (req.get_header_value("If-None-Match") == asset->etag) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(asset->data.data(), asset->data.size(), std::string(asset->contentType));
}

void AdminServer::serve(const httplib::Request& req, httplib::Response& res) {
  requestsTotal.inc();
  if ((req.method == "GET" || req.method == "HEAD") && !isApiPath(req.path)) {
    serveAsset(req, res);
    return;
  }
  RequestContext ctx;
  ctx.path = req.path;
  ctx.query = req.params;
  ctx.remoteAddress = req.remote_addr;
  ctx.loop = &loop_;
  Result<Response> out = Error{405, "method: not supported"};
  if (auto method = methodFromName(req.method)) {
    ctx.method = *method;
    bool bodyOk = true;
    if (!req.body.empty()) {
      auto body = parseJsonBody(req.body);
      if (body)
        ctx.body = std::move(*body);
      else
        out = body.error(), bodyOk = false;
    }
    if (bodyOk) out = dispatch(req, ctx);
  }
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  if (!out) {
    errorsTotal.inc();
    res.status = out.error().code >= 400 && out.error().code < 600 ? out.error().code : 500;
    if (res.status == 429) res.set_header("Retry-After", "60");
    res.set_content(dumpJson(errorBody(out.error())), "application/json");
    return;
  }
  Response& r = *out;
  if (r.status >= 400) errorsTotal.inc();
  res.status = r.status;
  for (const auto& [k, v] : r.headers) res.set_header(k.c_str(), v);
  if (r.text)
    res.set_content(*r.text, r.contentType.c_str());
  else if (r.status != 204)
    res.set_content(dumpJson(r.body), r.contentType.c_str());
}

Result<SockAddr> AdminServer::start() {
  if (server_) return Error{500, "admin server already started"};
  auto addr = SockAddr::parse(config_.listen);
  if (!addr) return Error{400, "listen: bad address '" + config_.listen + "'"};
  server_ = std::make_unique<httplib::Server>();
  server_->set_payload_max_length(config_.maxBodyBytes);
  auto handler = [this](const httplib::Request& q, httplib::Response& s) { serve(q, s); };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Patch(".*", handler);
  server_->Delete(".*", handler);
  // Errors cpp-httplib answers itself (413 for big bodies, 400 for broken requests) get our JSON.
  server_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        errorsTotal.inc();
        std::string message = res.status == 413   ? "body: larger than the 1 MiB limit"
                              : res.status == 404 ? "path: no such resource"
                                                  : "request: rejected";
        res.set_content(dumpJson(errorBody(Error{res.status, message})), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        errorsTotal.inc();
        res.status = 500;
        res.set_content(dumpJson(errorBody(Error{500, "internal error"})), "application/json");
      });
  std::string host = addr->ip.toString();
  int port = addr->port;
  if (port == 0)
    port = server_->bind_to_any_port(host);
  else if (!server_->bind_to_port(host, port))
    port = -1;
  if (port <= 0) {
    server_.reset();
    return Error{500, "listen: cannot bind " + config_.listen};
  }
  bound_ = *addr;
  bound_.port = uint16_t(port);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  logger("http")->info("admin API listening on http://{}", bound_.toString());
  return bound_;
}

void AdminServer::stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

} // namespace verbund::http

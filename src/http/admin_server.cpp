#include "http/admin_server.h"

#include "base/log.h"
#include "base/metrics.h"
#include "http/origin_check.h"
#include "http/static_assets.h"

namespace verbund::http {

namespace {

Counter requestsTotal("verbund_http_requests_total", "Admin API and /metrics requests");
Counter errorsTotal("verbund_http_errors_total", "Admin API requests answered with 4xx or 5xx");
Counter loginFailures("verbund_http_login_failures_total",
                      "Failed admin logins (and wrong current passwords on a password change)");
Counter foreignOrigins("verbund_http_foreign_origin_total",
                       "Admin API requests refused for their Origin or Host header");
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

// The media type of a Content-Type value without its parameters ("; charset=utf-8").
std::string_view mediaType(std::string_view v) {
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// What a cross-site page may send without a CORS preflight (Fetch standard, CORS-safelisted
// request headers).
bool isCorsSafelistedType(std::string_view type) {
  for (auto safe : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
    if (equalsIgnoreCase(mediaType(type), safe)) return true;
  return false;
}

// The request's body into ctx: JSON parsed (ctx.body), a type of the route's textBodyTypes as
// it is (ctx.text); any other type 415.
Result<void> readBody(HttpRequest& req, const RouteOptions& options, RequestContext& ctx) {
  if (req.body.empty()) return {};
  std::string contentType = req.headerValue("Content-Type");
  auto type = mediaType(contentType);
  if (equalsIgnoreCase(type, "application/json")) {
    auto body = parseJsonBody(req.body);
    if (!body) return body.error();
    ctx.body = std::move(*body);
    return {};
  }
  std::string expected = "application/json";
  for (const auto& t : options.textBodyTypes) {
    if (equalsIgnoreCase(type, t)) {
      ctx.text = std::move(req.body);
      return {};
    }
    expected += " or " + t;
  }
  return Error{415, "Content-Type: " + expected + " expected"};
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
  for (const auto& type : options.textBodyTypes)
    if (isCorsSafelistedType(type))
      throw std::logic_error("admin API: " + type + " bodies would skip the CORS preflight");
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
  // password; bearer tokens are already full credentials. The check is throttled like a login.
  if (c.principal.kind == Principal::Kind::Session) {
    auto current = stringField(**obj, "currentPassword", true);
    if (!current) return current.error();
    const std::string& address = c.remoteAddress;
    auto hash = loop_.run([&]() -> Result<std::string> {
      if (auto t = auth_.checkThrottle(address); !t) return t.error();
      auth_.recordFailure(address);
      return auth_.passwordHash();
    });
    if (!hash) return hash.error();
    if (!verifyPassword(*current, *hash)) {
      loginFailures.inc();
      logger("http")->warn("wrong current password on an admin password change from {}", address);
      return Error{403, "currentPassword: wrong password"};
    }
    (void)loop_.run([&] { auth_.recordSuccess(address); });
  }
  std::string hash = hashPassword(*password, auth_.config().pbkdf2Iterations);
  auto stored = loop_.run([&] { return auth_.setPasswordHash(hash); });
  if (!stored) return stored.error();
  logger("http")->info("admin password changed; all sessions ended, all API tokens revoked");
  return Response::json({{"changed", true}, {"sessionsEnded", true}, {"tokensRevoked", true}});
}

// Browsers send Origin on cross-origin requests and on every POST; a foreign one is refused
// before anything else (a cross-site page must not even feed the login throttle). Login also
// needs an allowed Host, against DNS rebinding.
Result<void> AdminServer::checkBrowserRequest(const HttpRequest& req,
                                              const RequestContext& ctx) const {
  const std::string host = req.headerValue("Host");
  bool isLogin = ctx.method == Method::Post && ctx.path == "/api/v1/session";
  if (isLogin && !hostAllowed(host, config_.allowedOrigins))
    return Error{403, "Host: not an address of this server (set admin.allowed_origins)"};
  if (ctx.method != Method::Get &&
      !originAllowed(req.headerValue("Origin"), host, config_.allowedOrigins))
    return Error{403, "Origin: cross-origin request refused (set admin.allowed_origins)"};
  return {};
}

Result<Response> AdminServer::dispatch(HttpRequest& req, RequestContext& ctx) {
  auto m = router_.match(ctx.method, ctx.path);
  if (!m.entry) {
    if (m.pathKnown) return Error{405, "method: not allowed on " + ctx.path};
    return Error{404, "path: no such resource"};
  }
  ctx.params = std::move(m.params);
  const Entry& entry = *m.entry;
  if (auto b = readBody(req, entry.options, ctx); !b) return b.error();

  std::string bearer;
  if (auto a = req.headerValue("Authorization"); a.size() > 7 && a.starts_with("Bearer "))
    bearer = a.substr(7);
  std::string cookie = cookieValue(req.headerValue("Cookie"), kSessionCookie);
  std::string csrfHeader = req.headerValue(kCsrfHeader);
  // Without credentials, /metrics answers loopback clients, but not through a foreign name.
  bool hostOk = hostAllowed(req.headerValue("Host"), config_.allowedOrigins);

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
      if (!hostOk) return Error{403, "Host: not an address of this server"};
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
HttpResponse AdminServer::serveAsset(const HttpRequest& req) {
  uiRequests.inc();
  HttpResponse res;
  for (const auto& [k, v] : uiSecurityHeaders()) res.headers.emplace_back(k, v);
  auto asset = findAsset(req.path);
  if (!asset) {
    res.status = 404;
    res.headers.emplace_back("Cache-Control", "no-store");
    res.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    res.body = "not found\n";
    return res;
  }
  res.headers.emplace_back("Cache-Control", "no-cache");
  res.headers.emplace_back("ETag", std::string(asset->etag));
  if (req.headerValue("If-None-Match") == asset->etag) {
    res.status = 304;
    return res;
  }
  res.headers.emplace_back("Content-Type", std::string(asset->contentType));
  res.body.assign(asset->data.data(), asset->data.size());
  return res;
}

namespace {

HttpResponse jsonError(const Error& e) {
  errorsTotal.inc();
  HttpResponse res;
  res.status = e.code >= 400 && e.code < 600 ? e.code : 500;
  if (res.status == 429) res.headers.emplace_back("Retry-After", "60");
  if (res.status == 503) res.headers.emplace_back("Retry-After", "1"); // e.g. database busy
  res.headers.emplace_back("Content-Type", "application/json");
  res.body = dumpJson(errorBody(Error{res.status, e.message}));
  return res;
}

} // namespace

HttpResponse AdminServer::serve(HttpRequest& req, const std::string& remote) {
  requestsTotal.inc();
  if ((req.method == "GET" || req.method == "HEAD") && !isApiPath(req.path)) return serveAsset(req);
  RequestContext ctx;
  ctx.path = req.path;
  ctx.query = std::move(req.query);
  ctx.remoteAddress = remote;
  ctx.loop = &loop_;
  auto method = methodFromName(req.method == "HEAD" ? "GET" : req.method);
  Result<Response> out = Error{405, "method: not supported"};
  if (method) {
    ctx.method = *method;
    out = [&]() -> Result<Response> {
      if (auto b = checkBrowserRequest(req, ctx); !b) {
        foreignOrigins.inc();
        logger("http")->info("refused a cross-origin admin API request from {} ({})", remote,
                             b.error().message);
        return b.error();
      }
      return dispatch(req, ctx);
    }();
  }
  HttpResponse res;
  if (!out) {
    res = jsonError(out.error());
  } else {
    Response& r = *out;
    if (r.status >= 400) errorsTotal.inc();
    res.status = r.status;
    res.headers = std::move(r.headers);
    if (r.stream) {
      res.headers.emplace_back("Content-Type", r.contentType);
      res.stream = std::move(r.stream);
    } else if (r.text) {
      res.headers.emplace_back("Content-Type", r.contentType);
      res.body = std::move(*r.text);
    } else if (r.status != 204) {
      res.headers.emplace_back("Content-Type", r.contentType);
      res.body = dumpJson(r.body);
    }
  }
  res.headers.emplace_back("Cache-Control", "no-store");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("X-Frame-Options", "DENY");
  return res;
}

Result<SockAddr> AdminServer::start() {
  if (server_) return Error{500, "admin server already started"};
  HttpServerConfig hc;
  hc.listen = config_.listen;
  hc.limits.maxBodyBytes = config_.maxBodyBytes;
  hc.limits.largeBodyPaths = kImportPaths;
  hc.limits.maxLargeBodyBytes = config_.maxImportBodyBytes;
  hc.limits.maxHeadBytes = config_.maxHeadBytes;
  hc.limits.maxHeaders = config_.maxHeaders;
  hc.requestTimeout = config_.requestTimeout;
  hc.maxConnectionsPerAddress = config_.maxConnectionsPerAddress;
  hc.maxConnections = config_.maxConnections;
  hc.workers = config_.workers;
  auto server = std::make_unique<HttpServer>(
      hc, [this](HttpRequest& q, const std::string& remote) { return serve(q, remote); },
      [](int status, const std::string& message) {
        HttpResponse r = jsonError(Error{status, message});
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
      });
  auto bound = server->start();
  if (!bound) return bound.error();
  server_ = std::move(server);
  bound_ = *bound;
  logger("http")->info("admin API listening on http://{}", bound_.toString());
  return bound_;
}

void AdminServer::stop() {
  if (!server_) return;
  server_->stop();
  server_.reset();
}

} // namespace verbund::http

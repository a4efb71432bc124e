#pragma once
// What route handlers of the admin API see and return. Handlers are plain functions of a parsed
// request; authentication, CSRF, JSON parsing, size limits and error rendering happen once, in
// AdminServer.
#include "base/result.h"
#include "http/admin_auth.h"
#include "http/router.h"

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace verbund::http {

class LoopExecutor;

struct RequestContext {
  Method method = Method::Get;
  std::string path;
  PathParams params; // from "{name}" segments of the pattern
  std::multimap<std::string, std::string> query;
  nlohmann::json body; // null when the request had no body or a text body
  // The body as sent when its media type is one of the route's textBodyTypes (e.g. a CSV file).
  std::optional<std::string> text;
  Principal principal;
  std::string remoteAddress;
  LoopExecutor* loop = nullptr; // for handlers that run off the loop

  // A path parameter that must be a positive integer: 400 naming it otherwise.
  Result<int64_t> idParam(const std::string& name) const;
  std::optional<std::string> queryValue(const std::string& name) const;
  // The body as an object (400 "body: JSON object expected" otherwise).
  Result<const nlohmann::json*> object() const;
};

struct Response {
  int status = 200;
  nlohmann::json body;             // rendered as JSON unless text is set
  std::optional<std::string> text; // raw body (e.g. Prometheus text)
  std::string contentType = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  // A body too large to hold (exports): made piece by piece on an HTTP worker and sent chunked
  // (HttpServer's BodyStream); when set, `body` and `text` are ignored. It runs off the loop
  // and after the handler returned: node state only through LoopExecutor::run.
  std::function<Result<bool>(std::string& out)> stream;

  static Response json(nlohmann::json body, int status = 200) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static Response noContent() {
    Response r;
    r.status = 204;
    return r;
  }
};

using Handler = std::function<Result<Response>(RequestContext&)>;

// Who may call a route.
enum class Access {
  Public,          // anyone (login)
  Admin,           // a session (plus CSRF on changes) or a bearer token
  LoopbackOrAdmin, // anyone from a loopback address, else as Admin (/metrics)
};

struct RouteOptions {
  Access access = Access::Admin;
  // Handlers run on the node's loop by default. Off-loop handlers (for slow work such as
  // password hashing) must use ctx.loop->run() for any node state.
  bool onLoop = true;
  // Media types besides JSON whose bodies reach the handler as they are, in ctx.text ("text/csv"
  // for the user import). Never a type a cross-site page can send without a CORS preflight
  // (text/plain, the form encodings): route() refuses those.
  std::vector<std::string> textBodyTypes;
};

// The error document: {"error":{"code":"invalid","field":"extension","message":"..."}}. The
// field is taken from an Error message of the form "field: reason".
nlohmann::json errorBody(const Error& e);
std::string_view errorCodeName(int status);
// Dumps JSON without ever throwing (invalid UTF-8 from stored rows is replaced).
std::string dumpJson(const nlohmann::json& j);
// Parses a request body: 400 naming "body" for malformed JSON or nesting deeper than 64.
Result<nlohmann::json> parseJsonBody(std::string_view text);

} // namespace verbund::http

#include "http/api.h"

#include <charconv>

namespace verbund::http {

std::string_view methodName(Method m) {
  switch (m) {
  case Method::Get:
    return "GET";
  case Method::Post:
    return "POST";
  case Method::Put:
    return "PUT";
  case Method::Patch:
    return "PATCH";
  case Method::Delete:
    return "DELETE";
  }
  return "GET";
}

std::optional<Method> methodFromName(std::string_view name) {
  for (auto m : {Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete})
    if (methodName(m) == name) return m;
  return std::nullopt;
}

Result<int64_t> RequestContext::idParam(const std::string& name) const {
  auto it = params.find(name);
  std::string_view v = it == params.end() ? std::string_view() : std::string_view(it->second);
  int64_t id = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || id <= 0)
    return Error{400, name + ": positive integer expected"};
  return id;
}

std::optional<std::string> RequestContext::queryValue(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Result<const nlohmann::json*> RequestContext::object() const {
  if (!body.is_object()) return Error{400, "body: JSON object expected"};
  return &body;
}

std::string_view errorCodeName(int status) {
  switch (status) {
  case 400:
    return "invalid";
  case 401:
    return "unauthorized";
  case 403:
    return "forbidden";
  case 404:
    return "not_found";
  case 405:
    return "method_not_allowed";
  case 408:
    return "timeout";
  case 409:
    return "conflict";
  case 413:
    return "too_large";
  case 415:
    return "unsupported_media_type";
  case 429:
    return "too_many_requests";
  case 431:
    return "headers_too_large";
  case 503:
    return "unavailable";
  default:
    return status >= 500 ? "internal" : "error";
  }
}

nlohmann::json errorBody(const Error& e) {
  nlohmann::json err = {{"code", errorCodeName(e.code)}, {"message", e.message}};
  // "field: reason" names the field; field names are identifiers with dots ("members.owner").
  auto colon = e.message.find(": ");
  if (colon != std::string::npos && colon > 0 && colon <= 40) {
    bool ident = true;
    for (size_t i = 0; i < colon; ++i) {
      char c = e.message[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-'))
        ident = false;
    }
    if (ident) err["field"] = e.message.substr(0, colon);
  }
  return {{"error", err}};
}

std::string dumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<nlohmann::json> parseJsonBody(std::string_view text) {
  // nlohmann's parser is iterative, but a bound on nesting keeps hostile bodies cheap for
  // everything that walks the value afterwards.
  constexpr int kMaxDepth = 64;
  int depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return Error{400, "body: JSON nested too deeply"};
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return Error{400, "body: malformed JSON"};
  return j;
}

} // namespace verbund::http

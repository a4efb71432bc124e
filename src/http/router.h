#pragma once
// Method + path pattern routing for the admin API, independent of the HTTP library so that it can
// be tested alone. Patterns are '/'-separated; a segment "{name}" captures one path segment.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::http {

enum class Method { Get, Post, Put, Patch, Delete };
std::string_view methodName(Method m);
std::optional<Method> methodFromName(std::string_view name);

using PathParams = std::map<std::string, std::string>;

template <typename Entry> class Router {
public:
  // False when the pattern is malformed ("{" without "}") or already routed for the method.
  bool add(Method m, std::string_view pattern, Entry entry) {
    auto segs = split(pattern);
    for (auto& r : routes_)
      if (r.method == m && r.segments == segs) return false;
    for (const auto& s : segs)
      if (s.starts_with('{') != s.ends_with('}')) return false;
    routes_.push_back(Route{m, std::move(segs), std::string(pattern), std::move(entry)});
    return true;
  }

  struct Match {
    const Entry* entry = nullptr; // nullptr: no route
    PathParams params;
    bool pathKnown = false; // some route has the path with another method (405)
    std::string pattern;
  };
  Match match(Method m, std::string_view path) const {
    Match out;
    auto segs = split(path);
    for (const auto& r : routes_) {
      PathParams params;
      if (!matches(r.segments, segs, params)) continue;
      if (r.method != m) {
        out.pathKnown = true;
        continue;
      }
      out.entry = &r.entry;
      out.params = std::move(params);
      out.pattern = r.pattern;
      return out;
    }
    return out;
  }

private:
  struct Route {
    Method method;
    std::vector<std::string> segments;
    std::string pattern;
    Entry entry;
  };
  static std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= path.size()) {
      auto j = path.find('/', i);
      if (j == std::string_view::npos) j = path.size();
      if (j > i) out.emplace_back(path.substr(i, j - i));
      i = j + 1;
    }
    return out;
  }
  static bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& segs,
                      PathParams& params) {
    if (pattern.size() != segs.size()) return false;
    for (size_t i = 0; i < pattern.size(); ++i) {
      const auto& p = pattern[i];
      if (p.size() >= 2 && p.front() == '{' && p.back() == '}')
        params[p.substr(1, p.size() - 2)] = segs[i];
      else if (p != segs[i])
        return false;
    }
    return true;
  }
  std::vector<Route> routes_;
};

} // namespace verbund::http

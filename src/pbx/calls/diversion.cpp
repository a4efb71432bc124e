#include "pbx/calls/diversion.h"

#include "sip/message/headers.h"

#include <array>
#include <charconv>
#include <strings.h>

namespace verbund::pbx {

namespace {
constexpr std::array<std::string_view, 6> kReasons{"unconditional", "user-busy",      "no-answer",
                                                   "unavailable",   "do-not-disturb", "unknown"};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool userChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
         c == '*' || c == '-' || c == '.' || c == '_';
}
} // namespace

std::string_view diversionReasonName(DiversionReason r) {
  return kReasons[size_t(r)];
}

std::string formatDiversion(const Diversion& d, std::string_view host) {
  std::string s = "<sip:" + d.user + "@" + std::string(host) + ">;reason=";
  s.append(diversionReasonName(d.reason));
  s.append(";counter=").append(std::to_string(d.counter));
  return s;
}

std::optional<Diversion> parseDiversion(std::string_view value) {
  auto na = sip::parseNameAddr(value);
  if (!na) return std::nullopt;
  Diversion d;
  std::string_view user = na->uri.user;
  if (user.empty() || user.size() > kMaxDiversionUser) return std::nullopt;
  for (char c : user)
    if (!userChar(c)) return std::nullopt;
  d.user = std::string(user);
  if (na->params.find(',') != std::string_view::npos) return std::nullopt;
  if (auto r = na->param("reason")) {
    std::string_view v = *r;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    for (size_t i = 0; i < kReasons.size(); ++i)
      if (iequals(v, kReasons[i])) d.reason = DiversionReason(i);
  }
  if (auto c = na->param("counter")) {
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(c->data(), c->data() + c->size(), n);
    if (ec != std::errc() || end != c->data() + c->size() || n == 0 || n > kMaxDiversionCounter)
      return std::nullopt;
    d.counter = n;
  }
  return d;
}

std::vector<Diversion> diversionsOf(const sip::Message& m) {
  std::vector<Diversion> out;
  for (const auto& h : m.headers()) {
    if (!iequals(h.name, "Diversion")) continue;
    if (out.size() == kMaxDiversions) break;
    if (auto d = parseDiversion(h.value)) out.push_back(std::move(*d));
  }
  return out;
}

} // namespace verbund::pbx

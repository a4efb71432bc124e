#include "sip/dialog/session_timer.h"

#include "sip/message/headers.h"

#include <algorithm>

namespace verbund::sip {

namespace {
std::optional<uint32_t> leadingSeconds(std::string_view value, std::string_view& params) {
  size_t semi = value.find(';');
  params = semi == std::string_view::npos ? std::string_view{} : value.substr(semi);
  auto n = parseUint(text::trim(value.substr(0, semi)));
  if (!n) return std::nullopt;
  return *n;
}
} // namespace

std::optional<SessionExpiresValue> sessionExpiresOf(const Message& m) {
  auto v = m.header(HeaderId::SessionExpires);
  if (!v) return std::nullopt;
  std::string_view params;
  auto seconds = leadingSeconds(*v, params);
  if (!seconds) return std::nullopt;
  SessionExpiresValue out{*seconds, RefresherParam::Unspecified};
  if (auto r = findParam(params, "refresher")) {
    if (text::iequals(text::trim(*r), "uac")) out.refresher = RefresherParam::Uac;
    if (text::iequals(text::trim(*r), "uas")) out.refresher = RefresherParam::Uas;
  }
  return out;
}

std::optional<uint32_t> minSEOf(const Message& m) {
  auto v = m.header("Min-SE");
  if (!v) return std::nullopt;
  std::string_view params;
  return leadingSeconds(*v, params);
}

std::string formatSessionExpires(uint32_t seconds, RefresherParam refresher) {
  std::string s = std::to_string(seconds);
  if (refresher == RefresherParam::Uac) s += ";refresher=uac";
  if (refresher == RefresherParam::Uas) s += ";refresher=uas";
  return s;
}

bool hasOptionTag(const Message& m, HeaderId list, std::string_view tag) {
  bool found = false;
  for (const Header& h : m.headers()) {
    if (h.id != list) continue;
    forEachListElement(h.value, [&](std::string_view e) {
      found = found || text::iequals(e, tag);
      return !found;
    });
    if (found) return true;
  }
  return false;
}

std::optional<bool> allowsMethod(const Message& m, std::string_view method) {
  bool present = false, found = false;
  for (const Header& h : m.headers()) {
    if (h.id != HeaderId::Allow) continue;
    present = true;
    forEachListElement(h.value, [&](std::string_view e) {
      found = found || e == method; // RFC 3261 §7.1: method names are case-sensitive
      return !found;
    });
  }
  if (!present) return std::nullopt;
  return found;
}

Duration sessionRefreshDelay(uint32_t seconds) {
  return Duration(uint64_t(seconds) * 500);
}

Duration sessionExpiryDelay(uint32_t seconds) {
  uint64_t ms = uint64_t(seconds) * 1000;
  return Duration(ms - std::min<uint64_t>(32000, ms / 3));
}

} // namespace verbund::sip

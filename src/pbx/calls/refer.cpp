#include "pbx/calls/refer.h"

#include "sip/message/builder.h"
#include "sip/message/headers.h"
#include "sip/message/uri.h"

#include <cctype>

namespace verbund::pbx {

namespace {
std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// RFC 3261 §25.1 word / token characters: printable, no separators that would break headers.
bool plainText(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ';' || c == ',' || c == '"' || c == '<' || c == '>')
      return false;
  }
  return true;
}
} // namespace

Result<ReplacesValue> parseReplaces(std::string_view value) {
  value = trim(value);
  size_t semi = value.find(';');
  std::string_view callId = trim(value.substr(0, semi));
  if (callId.empty() || callId.size() > kMaxReplacesPart || !plainText(callId))
    return makeError(400, "Replaces: bad Call-ID");
  ReplacesValue out;
  out.callId = std::string(callId);
  bool to = false, from = false;
  while (semi != std::string_view::npos) {
    value.remove_prefix(semi + 1);
    semi = value.find(';');
    std::string_view param = trim(value.substr(0, semi));
    size_t eq = param.find('=');
    std::string_view name = trim(param.substr(0, eq));
    std::string_view v =
        eq == std::string_view::npos ? std::string_view{} : trim(param.substr(eq + 1));
    if (iequals(name, "to-tag") || iequals(name, "from-tag")) {
      bool isTo = iequals(name, "to-tag");
      if ((isTo ? to : from) || v.empty() || v.size() > kMaxReplacesPart || !plainText(v))
        return makeError(400, "Replaces: bad or repeated tag");
      (isTo ? out.toTag : out.fromTag) = std::string(v);
      (isTo ? to : from) = true;
    } else if (iequals(name, "early-only") && eq == std::string_view::npos) {
      out.earlyOnly = true;
    } else if (name.empty()) {
      return makeError(400, "Replaces: empty parameter");
    }
    // Other generic parameters are ignored (RFC 3891 §6.1 allows extensions).
  }
  if (!to || !from) return makeError(400, "Replaces: to-tag and from-tag are required");
  return out;
}

Result<ReferTarget> parseReferTo(std::string_view value) {
  value = trim(value);
  if (value.empty()) return makeError(400, "Refer-To missing");
  auto na = sip::parseNameAddr(value);
  if (!na) return makeError(400, "Refer-To: " + na.error().message);
  const sip::Uri& uri = na->uri;
  if (uri.scheme != sip::UriScheme::Sip && uri.scheme != sip::UriScheme::Sips &&
      uri.scheme != sip::UriScheme::Tel)
    return makeError(416, "Refer-To: unsupported URI scheme");
  auto user = sip::unescape(uri.user);
  if (!user) return makeError(400, "Refer-To: bad escape in the user part");
  ReferTarget out;
  for (char c : *user)
    if (c != '-' && c != '.' && c != '(' && c != ')' && c != ' ') out.user += c;
  if (out.user.empty() || out.user.size() > kMaxReferUser || !plainText(out.user))
    return makeError(400, "Refer-To: no usable target");
  out.host = std::string(uri.host);
  // RFC 3261 §19.1.1 URI headers: hname=hvalue *("&" hname=hvalue), values %-escaped.
  std::string_view headers = uri.headers;
  while (!headers.empty()) {
    size_t amp = headers.find('&');
    std::string_view h = headers.substr(0, amp);
    headers = amp == std::string_view::npos ? std::string_view{} : headers.substr(amp + 1);
    size_t eq = h.find('=');
    if (eq == std::string_view::npos || !iequals(h.substr(0, eq), "Replaces")) continue;
    if (out.replaces) return makeError(400, "Refer-To: more than one Replaces");
    auto raw = sip::unescape(h.substr(eq + 1));
    if (!raw) return makeError(400, "Refer-To: bad escape in Replaces");
    auto rep = parseReplaces(*raw);
    if (!rep) return rep.error();
    out.replaces = std::move(*rep);
  }
  return out;
}

std::string sipfrag(int status, std::string_view reason) {
  if (status < 100 || status > 699) status = 500;
  std::string_view r = reason.empty() ? sip::defaultReason(status) : reason;
  std::string out = "SIP/2.0 " + std::to_string(status) + " ";
  for (char c : r)
    if (c != '\r' && c != '\n') out += c;
  out += "\r\n";
  return out;
}

std::optional<int> sipfragStatus(std::string_view body) {
  constexpr std::string_view kVersion = "SIP/2.0 ";
  if (body.substr(0, kVersion.size()) != kVersion) return std::nullopt;
  body.remove_prefix(kVersion.size());
  if (body.size() < 3) return std::nullopt;
  int status = 0;
  for (int i = 0; i < 3; ++i) {
    if (body[i] < '0' || body[i] > '9') return std::nullopt;
    status = status * 10 + (body[i] - '0');
  }
  if (status < 100 || status > 699) return std::nullopt;
  if (body.size() > 3 && body[3] != ' ' && body[3] != '\r' && body[3] != '\n') return std::nullopt;
  return status;
}

} // namespace verbund::pbx

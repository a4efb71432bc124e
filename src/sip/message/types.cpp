#include "sip/message/types.h"

#include "sip/message/text.h"

#include <array>

namespace verbund::sip {

namespace {
struct MethodName {
  std::string_view name;
  Method method;
};
constexpr std::array<MethodName, 14> kMethods{{
    {"INVITE", Method::Invite},
    {"ACK", Method::Ack},
    {"BYE", Method::Bye},
    {"CANCEL", Method::Cancel},
    {"OPTIONS", Method::Options},
    {"REGISTER", Method::Register},
    {"SUBSCRIBE", Method::Subscribe},
    {"NOTIFY", Method::Notify},
    {"REFER", Method::Refer},
    {"INFO", Method::Info},
    {"UPDATE", Method::Update},
    {"PRACK", Method::Prack},
    {"MESSAGE", Method::Message},
    {"PUBLISH", Method::Publish},
}};

struct HeaderName {
  std::string_view name;
  char compact;
  HeaderId id;
};
// Index = HeaderId value.
constexpr std::array<HeaderName, size_t(HeaderId::kCount)> kHeaders{{
    {"", 0, HeaderId::Other},
    {"Via", 'v', HeaderId::Via},
    {"From", 'f', HeaderId::From},
    {"To", 't', HeaderId::To},
    {"Call-ID", 'i', HeaderId::CallId},
    {"CSeq", 0, HeaderId::CSeq},
    {"Max-Forwards", 0, HeaderId::MaxForwards},
    {"Route", 0, HeaderId::Route},
    {"Record-Route", 0, HeaderId::RecordRoute},
    {"Contact", 'm', HeaderId::Contact},
    {"Content-Length", 'l', HeaderId::ContentLength},
    {"Content-Type", 'c', HeaderId::ContentType},
    {"Content-Encoding", 'e', HeaderId::ContentEncoding},
    {"Expires", 0, HeaderId::Expires},
    {"Min-Expires", 0, HeaderId::MinExpires},
    {"Authorization", 0, HeaderId::Authorization},
    {"Proxy-Authorization", 0, HeaderId::ProxyAuthorization},
    {"WWW-Authenticate", 0, HeaderId::WwwAuthenticate},
    {"Proxy-Authenticate", 0, HeaderId::ProxyAuthenticate},
    {"Authentication-Info", 0, HeaderId::AuthenticationInfo},
    {"Supported", 'k', HeaderId::Supported},
    {"Require", 0, HeaderId::Require},
    {"Proxy-Require", 0, HeaderId::ProxyRequire},
    {"Unsupported", 0, HeaderId::Unsupported},
    {"Allow", 0, HeaderId::Allow},
    {"Accept", 0, HeaderId::Accept},
    {"Event", 'o', HeaderId::Event},
    {"Allow-Events", 'u', HeaderId::AllowEvents},
    {"Subscription-State", 0, HeaderId::SubscriptionState},
    {"Replaces", 0, HeaderId::Replaces},
    {"Refer-To", 'r', HeaderId::ReferTo},
    {"Referred-By", 'b', HeaderId::ReferredBy},
    {"Reason", 0, HeaderId::Reason},
    {"User-Agent", 0, HeaderId::UserAgent},
    {"Server", 0, HeaderId::Server},
    {"Subject", 's', HeaderId::Subject},
    {"P-Asserted-Identity", 0, HeaderId::PAssertedIdentity},
    {"P-Preferred-Identity", 0, HeaderId::PPreferredIdentity},
    {"Session-Expires", 'x', HeaderId::SessionExpires},
    {"Date", 0, HeaderId::Date},
    {"Timestamp", 0, HeaderId::Timestamp},
    {"Warning", 0, HeaderId::Warning},
    {"Retry-After", 0, HeaderId::RetryAfter},
    {"Path", 0, HeaderId::Path},
}};

// Buckets by (length, lower-cased first char) would be faster still; a first-char switch keeps
// the comparisons to two or three per lookup, which profiles as negligible next to the scan.
struct Index {
  // For each lower-case letter, the ids whose full name starts with it.
  std::array<std::array<uint8_t, 12>, 26> byFirst{};
  std::array<uint8_t, 26> count{};
  std::array<uint8_t, 26> compact{};
  constexpr Index() {
    for (size_t i = 1; i < kHeaders.size(); ++i) {
      char f = text::lower(kHeaders[i].name[0]);
      int b = f - 'a';
      byFirst[b][count[b]++] = uint8_t(i);
      if (kHeaders[i].compact) compact[kHeaders[i].compact - 'a'] = uint8_t(i);
    }
  }
};
constexpr Index kIndex;
} // namespace

Method methodFromName(std::string_view name) {
  for (const auto& m : kMethods)
    if (m.name == name) return m.method;
  return Method::Unknown;
}

std::string_view methodName(Method m) {
  for (const auto& e : kMethods)
    if (e.method == m) return e.name;
  return {};
}

HeaderId headerIdFromName(std::string_view name) {
  if (name.empty()) return HeaderId::Other;
  char f = text::lower(name[0]);
  if (f < 'a' || f > 'z') return HeaderId::Other;
  int b = f - 'a';
  if (name.size() == 1) return HeaderId(kIndex.compact[b]);
  for (int i = 0; i < kIndex.count[b]; ++i) {
    const auto& h = kHeaders[kIndex.byFirst[b][i]];
    if (text::iequals(h.name, name)) return h.id;
  }
  return HeaderId::Other;
}

std::string_view headerCanonicalName(HeaderId id) { return kHeaders[size_t(id)].name; }

bool isListHeader(HeaderId id) {
  switch (id) {
  case HeaderId::Via:
  case HeaderId::Route:
  case HeaderId::RecordRoute:
  case HeaderId::Contact:
  case HeaderId::Path:
    return true;
  default:
    return false;
  }
}

bool isOtherListHeader(HeaderId id) {
  switch (id) {
  case HeaderId::Supported:
  case HeaderId::Require:
  case HeaderId::ProxyRequire:
  case HeaderId::Unsupported:
  case HeaderId::Allow:
  case HeaderId::AllowEvents:
    return true;
  default:
    return false;
  }
}

std::string_view transportName(TransportType t) {
  switch (t) {
  case TransportType::Udp: return "UDP";
  case TransportType::Tcp: return "TCP";
  case TransportType::Tls: return "TLS";
  }
  return "UDP";
}

bool isReliable(TransportType t) { return t != TransportType::Udp; }

} // namespace verbund::sip

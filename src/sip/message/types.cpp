#include "sip/message/types.h"

#include "sip/message/text.h"

#include <array>
#include <bit>
#include <cstring>
#include <type_traits>

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

// Header-name lookup runs once per header line of every message, so it is a perfect hash rather
// than a search: the slot is a function of the length and the lower-cased first and last
// characters, and the one candidate in that slot is compared in at most three 64-bit words. The
// hash constants were chosen so that no two known names share a slot; the static_assert below
// keeps it that way when a header is added (pick new constants if it fires).
constexpr size_t kMaxNameLen = 24; // longest known name is 20 ("P-Preferred-Identity")
constexpr unsigned kHashMask = 127;

// | 0x20 lower-cases letters; what it does to other bytes does not matter, as every known name
// starts and ends with a letter and the full compare rejects anything else.
constexpr unsigned nameHash(size_t len, char first, char last) {
  return (unsigned(len) + unsigned(uint8_t(first | 0x20)) * 31u +
          unsigned(uint8_t(last | 0x20)) * 50u) &
         kHashMask;
}

// Little-endian load of K bytes.
template <size_t K> constexpr uint64_t loadLE(const char* p) {
  if (std::is_constant_evaluated() || std::endian::native != std::endian::little) {
    uint64_t v = 0;
    for (size_t k = 0; k < K; ++k) v |= uint64_t(uint8_t(p[k])) << (8 * k);
    return v;
  }
  if constexpr (K == 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
  } else if constexpr (K == 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  } else {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
}

// The bytes of a 2..24 byte name as up to three words, using overlapping loads so that no byte
// outside the name is read (the overlapping bytes are simply compared twice).
struct NameKey {
  uint64_t w[3]{};
};
constexpr NameKey nameKey(const char* p, size_t n) {
  NameKey k;
  if (n <= 3) {
    k.w[0] = loadLE<2>(p) | loadLE<2>(p + n - 2) << 16;
  } else if (n <= 8) {
    k.w[0] = loadLE<4>(p) | loadLE<4>(p + n - 4) << 32;
  } else if (n <= 16) {
    k.w[0] = loadLE<8>(p);
    k.w[1] = loadLE<8>(p + n - 8);
  } else {
    k.w[0] = loadLE<8>(p);
    k.w[1] = loadLE<8>(p + 8);
    k.w[2] = loadLE<8>(p + n - 8);
  }
  return k;
}

struct HashSlot {
  // Key of the lower-cased name, and of a mask that has 0x20 in every letter position: then
  // (input | mask) folds ASCII case there and only there. A '-' must match exactly, and no other
  // byte folds onto a letter (x | 0x20 is a lower-case letter only when x is that letter).
  NameKey word, mask;
  uint8_t len = 0;
  uint8_t id = 0; // HeaderId; 0 (Other) marks an empty slot
};

struct Index {
  std::array<HashSlot, kHashMask + 1> slots{};
  std::array<uint8_t, 26> compact{};
  bool collision = false;
  constexpr Index() {
    for (size_t i = 1; i < kHeaders.size(); ++i) {
      std::string_view n = kHeaders[i].name;
      HashSlot& s = slots[nameHash(n.size(), n.front(), n.back())];
      if (s.id != 0 || n.size() < 2 || n.size() > kMaxNameLen) collision = true;
      char lowered[kMaxNameLen]{}, mask[kMaxNameLen]{};
      for (size_t k = 0; k < n.size() && k < kMaxNameLen; ++k) {
        lowered[k] = text::lower(n[k]);
        mask[k] = text::isAlpha(n[k]) ? char(0x20) : char(0);
      }
      s.word = nameKey(lowered, n.size());
      s.mask = nameKey(mask, n.size());
      s.id = uint8_t(i);
      s.len = uint8_t(n.size());
      if (kHeaders[i].compact) compact[size_t(kHeaders[i].compact - 'a')] = uint8_t(i);
    }
  }
};
constexpr Index kIndex;
static_assert(!kIndex.collision, "header name hash collision: choose other constants in nameHash");
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
  const size_t n = name.size();
  if (n == 0 || n > kMaxNameLen) return HeaderId::Other;
  if (n == 1) {
    char f = text::lower(name[0]);
    return f >= 'a' && f <= 'z' ? HeaderId(kIndex.compact[size_t(f - 'a')]) : HeaderId::Other;
  }
  const HashSlot& s = kIndex.slots[nameHash(n, name.front(), name.back())];
  if (s.len != n) return HeaderId::Other;
  const NameKey k = nameKey(name.data(), n);
  if (((k.w[0] | s.mask.w[0]) ^ s.word.w[0]) | ((k.w[1] | s.mask.w[1]) ^ s.word.w[1]) |
      ((k.w[2] | s.mask.w[2]) ^ s.word.w[2]))
    return HeaderId::Other;
  return HeaderId(s.id);
}

std::string_view headerCanonicalName(HeaderId id) {
  return kHeaders[size_t(id)].name;
}

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
  case TransportType::Udp:
    return "UDP";
  case TransportType::Tcp:
    return "TCP";
  case TransportType::Tls:
    return "TLS";
  }
  return "UDP";
}

bool isReliable(TransportType t) {
  return t != TransportType::Udp;
}

} // namespace verbund::sip

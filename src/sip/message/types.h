#pragma once
// Basic SIP vocabulary: methods, header ids, transports.
#include <cstdint>
#include <string_view>

namespace verbund::sip {

enum class Method : uint8_t {
  Unknown, // an extension method; see Message::methodName()
  Invite,
  Ack,
  Bye,
  Cancel,
  Options,
  Register,
  Subscribe,
  Notify,
  Refer,
  Info,
  Update,
  Prack,
  Message,
  Publish,
};

Method methodFromName(std::string_view name); // case-sensitive (RFC 3261 §7.1)
std::string_view methodName(Method m);        // "" for Unknown

// Headers the core knows by id. Everything else is HeaderId::Other and found by name.
enum class HeaderId : uint8_t {
  Other,
  Via,
  From,
  To,
  CallId,
  CSeq,
  MaxForwards,
  Route,
  RecordRoute,
  Contact,
  ContentLength,
  ContentType,
  ContentEncoding,
  Expires,
  MinExpires,
  Authorization,
  ProxyAuthorization,
  WwwAuthenticate,
  ProxyAuthenticate,
  AuthenticationInfo,
  Supported,
  Require,
  ProxyRequire,
  Unsupported,
  Allow,
  Accept,
  Event,
  AllowEvents,
  SubscriptionState,
  Replaces,
  ReferTo,
  ReferredBy,
  Reason,
  UserAgent,
  Server,
  Subject,
  PAssertedIdentity,
  PPreferredIdentity,
  SessionExpires,
  Date,
  Timestamp,
  Warning,
  RetryAfter,
  Path,
  kCount
};

// Maps a header name (full or compact form, any case) to its id.
HeaderId headerIdFromName(std::string_view name);
// Canonical full name of a known header ("Call-ID", "CSeq", ...).
std::string_view headerCanonicalName(HeaderId id);

// Routing headers whose values may be comma-separated lists (RFC 3261 §7.3.1). The parser
// splits these eagerly into one entry per element so each entry is one value.
bool isListHeader(HeaderId id);
// Other list headers (Supported, Require, Allow, ...): kept as written, one entry per line, and
// split on demand with forEachListElement (headers.h).
bool isOtherListHeader(HeaderId id);

enum class TransportType : uint8_t { Udp, Tcp, Tls };
std::string_view transportName(TransportType t); // "UDP", "TCP", "TLS"
bool isReliable(TransportType t);

inline constexpr std::string_view kMagicCookie = "z9hG4bK"; // RFC 3261 §8.1.1.7

} // namespace verbund::sip

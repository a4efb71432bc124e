#pragma once
// Pieces shared by everything that starts requests outside a dialog (INVITE, SUBSCRIBE, REGISTER):
// next-hop resolution, the auth hook, and the request text itself (RFC 3261 §8.1.1).
#include "sip/message/message.h"
#include "sip/message/peer.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace verbund::sip {

// RFC 3263: where a request for `uri` goes. The stack plugs in DNS (NAPTR/SRV/A); the default
// below only understands numeric hosts.
using Resolver = std::function<std::optional<Peer>(const Uri& uri)>;
// Numeric host, port or 5060 (5061 for sips / transport=tls), transport from the transport
// parameter (sips: TLS). nullopt for names.
std::optional<Peer> resolveNumeric(const Uri& uri);

// Digest client hook (implemented by src/sip/auth/): turns a 401/407 response into the value of
// the Authorization (401) or Proxy-Authorization (407) header for the retried request, or nullopt
// when it has no credentials for the challenge.
using AuthCallback = std::function<std::optional<std::string>(const Message& challengeResponse)>;
// The header an AuthCallback's answer goes into: Authorization for 401, Proxy-Authorization for
// 407 (RFC 3261 §22.2, §22.3).
std::string_view authHeaderFor(int challengeStatus);

using ExtraHeaders = std::vector<std::pair<std::string, std::string>>;

// A request outside any dialog (RFC 3261 §8.1.1).
struct OutOfDialogRequest {
  std::string_view method;
  std::string_view requestUri;
  std::string_view via;
  std::string_view from; // name-addr without tag
  std::string_view fromTag;
  std::string_view to; // name-addr
  std::string_view callId;
  uint32_t cseq = 1;
  std::string_view contact;                         // URI, written as <contact>; empty: none
  const std::vector<std::string>* routes = nullptr; // Route values (pre-loaded route set)
  const ExtraHeaders* headers = nullptr;
  std::string_view contentType;
  std::string_view body;
};
std::string buildOutOfDialogRequest(const OutOfDialogRequest& r);

// "Retry-After: 120 (comment);duration=60" -> 120.
std::optional<uint32_t> retryAfterSeconds(const Message& m);
// Expires header value, if present and numeric.
std::optional<uint32_t> expiresHeader(const Message& m);

} // namespace verbund::sip

#pragma once
// RFC 5806 Diversion: one header per forwarding hop, the most recent first. The node writes it on
// forwarded calls to other nodes (so that the next node knows the hops taken and the users
// already visited) and to the external line (so that the carrier sees whose forwarding placed the
// call, while From/P-Asserted-Identity keep the original caller). A pure codec: no I/O.
#include "sip/message/message.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx {

// RFC 5806 §4 diversion-reason values the node writes.
enum class DiversionReason : uint8_t {
  Unconditional, // forward always
  UserBusy,      // forward on busy
  NoAnswer,      // forward on no answer
  Unavailable,   // forward when no device is registered
  DoNotDisturb,  // do-not-disturb: the no-answer (or busy) forwarding at once
  Unknown,
};
std::string_view diversionReasonName(DiversionReason r);

struct Diversion {
  std::string user; // user part of the diverting party's URI (an extension or a number)
  DiversionReason reason = DiversionReason::Unknown;
  uint32_t counter = 1;
};

// "<sip:user@host>;reason=user-busy;counter=1"
std::string formatDiversion(const Diversion& d, std::string_view host);

// One Diversion header value from an untrusted message: a name-addr whose URI has a user part of
// at most kMaxDiversionUser characters, with optional reason and counter (1..kMaxDiversionCounter)
// parameters. nullopt when it does not parse (a list of several entries in one value included).
std::optional<Diversion> parseDiversion(std::string_view value);
inline constexpr size_t kMaxDiversionUser = 32;
inline constexpr uint32_t kMaxDiversionCounter = 100;

// Every Diversion header of `m` that parses, in message order (most recent first), at most
// kMaxDiversions of them; the rest is ignored.
std::vector<Diversion> diversionsOf(const sip::Message& m);
inline constexpr size_t kMaxDiversions = 16;

} // namespace verbund::pbx

#pragma once
// "calls-held" (docs/federation-protocol.md "Calls across a cut"): on every link up each node
// tells the other which calls it still holds with it, so that a call whose BYE was lost while
// the link was down ends on both nodes. Pure conversion (no I/O) so the fuzz target and the tests
// can drive it.
//
//   {"t":"calls-held","owner":"<sender's node id>","calls":["<correlation id>", ...]}
//
// Received strings are untrusted: ids are 1..kMaxHeldIdBytes bytes of printable ASCII, at most
// kMaxCallsHeld of them (error code 400, the message names the field); duplicates are dropped;
// unknown members are ignored.
#include "base/result.h"

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxCallsHeld = 20'000; // calls between one pair of nodes
inline constexpr size_t kMaxHeldIdBytes = 128;  // a correlation id ("<hex>@<node id>")

struct CallsHeld {
  std::string owner;              // the sender's node id
  std::vector<std::string> calls; // sorted, distinct
};

nlohmann::json callsHeldMessage(const std::string& owner, const std::vector<std::string>& calls);
Result<CallsHeld> callsHeldFromJson(const nlohmann::json& j);

} // namespace verbund::federation

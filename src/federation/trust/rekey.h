#pragma once
// The "rekey" control message: a member that replaced the federation's CA (after removing a
// member, or on learning that one left) hands the new CA to the other members over their
// mutual-TLS links, which are the only place it travels (docs/federation-protocol.md "Trust
// model"). Receivers adopt it when it supersedes theirs (TrustStore::supersededBy) and pass it on.
//
//   {"t":"rekey","generation":N,"ca":"<PEM certificate>","caKey":"<PEM PKCS#8 key>",
//    "revocations":"<revocation list JSON, signed with the new CA key>"}
#include "base/result.h"
#include "federation/trust/certificates.h"
#include "federation/trust/trust_store.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace verbund::federation {

inline constexpr size_t kMaxRekeyPemBytes = 8 * 1024;

struct Rekey {
  int64_t generation = 0;
  FederationCa ca;
  std::string revocations; // JSON text; parse against `ca` (RevocationList::parse)
};

nlohmann::json rekeyMessage(const TrustStore& trust);
// Checks the fields, that the CA is a Verbund federation CA of `federationId` and that the key
// belongs to it. Never throws. Errors: kCorrupt, kKeyMismatch, kOtherFederation, kTooLarge.
Result<Rekey> rekeyFromJson(const nlohmann::json& j, std::string_view federationId);

} // namespace verbund::federation

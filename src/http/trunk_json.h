#pragma once
// JSON form of the external line (SIP trunk) for the admin API: the redacted settings, the run
// time status, and the strict decoder of PUT bodies. Decoding never throws, whatever the bytes:
// unknown fields and wrong types are 400 errors naming the field ("dids.target: string
// expected"); the field rules themselves are pbx::validateTrunk's.
//
// Secrets: there is no encoder for pbx::TrunkConfig on purpose. Only the redacted TrunkView
// (passwordSet instead of the password) is ever rendered.
#include "base/result.h"
#include "pbx/trunk/trunk_config.h"
#include "pbx/trunk/trunk_manager.h"

#include <nlohmann/json.hpp>

namespace verbund::http {

// {"enabled", "mode", "registrar", "domain", "username", "authUser", "passwordSet",
//  "outboundProxy", "transport", "expiry", "dids": [{"did", "target"}], "defaultTarget",
//  "dialPrefix", "outboundPattern", "callerIdMode", "defaultCallerId", "trustedAddresses"}
nlohmann::json toJson(const pbx::TrunkView& v);
// {"state", "reason", "since" (ms since the epoch), "lastError", "lastErrorMs" (0: none),
//  "targets", "activeTarget", "grantedExpires"}
nlohmann::json toJson(const pbx::TrunkStatus& s);

// A PUT body: the complete settings (fields left out get TrunkConfig's defaults), except the
// password, which may be missing, null or "" to keep the stored one (the caller applies
// pbx::keepPasswordIfEmpty). "passwordSet" is accepted as a read-only echo of GET and ignored.
// Types and known fields only; call pbx::validateTrunk on the result.
Result<pbx::TrunkConfig> parseTrunkSettings(const nlohmann::json& body);

} // namespace verbund::http

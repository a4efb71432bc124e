#include "http/trunk_json.h"

#include <limits>
#include <string_view>

namespace verbund::http {

namespace {

// Field names in errors echo client input: cut them short.
std::string fieldName(std::string_view prefix, const std::string& key) {
  std::string k = key.size() > 40 ? key.substr(0, 40) + "..." : key;
  return std::string(prefix) + k;
}

Error typeError(std::string_view field, std::string_view expected) {
  return Error{400, std::string(field) + ": " + std::string(expected) + " expected"};
}

Result<void> takeString(const nlohmann::json& v, std::string_view field, std::string& out) {
  if (!v.is_string()) return typeError(field, "string");
  out = v.get<std::string>();
  return {};
}

Result<void> takeBool(const nlohmann::json& v, std::string_view field, bool& out) {
  if (!v.is_boolean()) return typeError(field, "true or false");
  out = v.get<bool>();
  return {};
}

Result<void> takeExpiry(const nlohmann::json& v, uint32_t& out) {
  // Integers only (600, not 600.0 or "600"); the range is validateTrunk's.
  if (v.is_number_unsigned()) {
    auto n = v.get<uint64_t>();
    out = n > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                   : uint32_t(n);
    return {};
  }
  if (v.is_number_integer()) { // negative
    out = 0;
    return {};
  }
  return typeError("expiry", "integer (seconds)");
}

template <typename E>
Result<void> takeEnum(const nlohmann::json& v, std::string_view field,
                      std::optional<E> (*fromName)(std::string_view), std::string_view choices,
                      E& out) {
  if (!v.is_string()) return typeError(field, "string");
  auto e = fromName(v.get_ref<const std::string&>());
  if (!e) return typeError(field, choices);
  out = *e;
  return {};
}

Result<void> takeDids(const nlohmann::json& v, std::vector<pbx::DidRoute>& out) {
  if (!v.is_array()) return typeError("dids", "array of {did, target}");
  // validateTrunk allows 10000; refuse clearly more before building anything big.
  if (v.size() > 10000) return Error{400, "dids: too many"};
  out.clear();
  out.reserve(v.size());
  for (const auto& d : v) {
    if (!d.is_object()) return typeError("dids", "array of {did, target}");
    pbx::DidRoute r;
    bool haveDid = false, haveTarget = false;
    for (auto it = d.begin(); it != d.end(); ++it) {
      const auto& key = it.key();
      if (key == "did") {
        if (auto t = takeString(*it, "dids.did", r.did); !t) return t.error();
        haveDid = true;
      } else if (key == "target") {
        if (auto t = takeString(*it, "dids.target", r.target); !t) return t.error();
        haveTarget = true;
      } else {
        return Error{400, fieldName("dids.", key) + ": unknown field"};
      }
    }
    if (!haveDid) return Error{400, "dids.did: required"};
    if (!haveTarget) return Error{400, "dids.target: required"};
    out.push_back(std::move(r));
  }
  return {};
}

Result<void> takeAddresses(const nlohmann::json& v, std::vector<std::string>& out) {
  if (!v.is_array()) return typeError("trustedAddresses", "array of strings");
  if (v.size() > 64) return Error{400, "trustedAddresses: too many"};
  out.clear();
  for (const auto& a : v) {
    if (!a.is_string()) return typeError("trustedAddresses", "array of strings");
    out.push_back(a.get<std::string>());
  }
  return {};
}

} // namespace

nlohmann::json toJson(const pbx::TrunkView& v) {
  auto dids = nlohmann::json::array();
  for (const auto& d : v.dids) dids.push_back({{"did", d.did}, {"target", d.target}});
  return {{"enabled", v.enabled},
          {"mode", pbx::trunkModeName(v.mode)},
          {"registrar", v.registrar},
          {"domain", v.domain},
          {"username", v.username},
          {"authUser", v.authUser},
          {"passwordSet", v.passwordSet},
          {"outboundProxy", v.outboundProxy},
          {"transport", pbx::trunkTransportName(v.transport)},
          {"expiry", v.expiry},
          {"dids", dids},
          {"defaultTarget", v.defaultTarget},
          {"dialPrefix", v.dialPrefix},
          {"outboundPattern", v.outboundPattern},
          {"callerIdMode", pbx::callerIdModeName(v.callerIdMode)},
          {"defaultCallerId", v.defaultCallerId},
          {"trustedAddresses", v.trustedAddresses}};
}

nlohmann::json toJson(const pbx::TrunkStatus& s) {
  return {{"state", pbx::trunkStateName(s.state)},
          {"reason", s.reason},
          {"since", s.sinceMs},
          {"lastError", s.lastError},
          {"lastErrorMs", s.lastErrorMs},
          {"targets", s.targets},
          {"activeTarget", s.activeTarget},
          {"grantedExpires", s.grantedExpires}};
}

Result<pbx::TrunkConfig> parseTrunkSettings(const nlohmann::json& body) {
  if (!body.is_object()) return Error{400, "body: JSON object expected"};
  pbx::TrunkConfig c;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const auto& key = it.key();
    const auto& v = *it;
    Result<void> r;
    if (key == "enabled")
      r = takeBool(v, "enabled", c.enabled);
    else if (key == "mode")
      r = takeEnum(v, "mode", &pbx::trunkModeFromName, "\"register\" or \"ip\"", c.mode);
    else if (key == "registrar")
      r = takeString(v, "registrar", c.registrar);
    else if (key == "domain")
      r = takeString(v, "domain", c.domain);
    else if (key == "username")
      r = takeString(v, "username", c.username);
    else if (key == "authUser")
      r = takeString(v, "authUser", c.authUser);
    else if (key == "password")
      r = v.is_null() ? Result<void>{} : takeString(v, "password", c.password); // null: keep
    else if (key == "outboundProxy")
      r = takeString(v, "outboundProxy", c.outboundProxy);
    else if (key == "transport")
      r = takeEnum(v, "transport", &pbx::trunkTransportFromName,
                   "\"auto\", \"udp\", \"tcp\" or \"tls\"", c.transport);
    else if (key == "expiry")
      r = takeExpiry(v, c.expiry);
    else if (key == "dids")
      r = takeDids(v, c.dids);
    else if (key == "defaultTarget")
      r = takeString(v, "defaultTarget", c.defaultTarget);
    else if (key == "dialPrefix")
      r = takeString(v, "dialPrefix", c.dialPrefix);
    else if (key == "outboundPattern")
      r = takeString(v, "outboundPattern", c.outboundPattern);
    else if (key == "callerIdMode")
      r = takeEnum(v, "callerIdMode", &pbx::callerIdModeFromName,
                   "\"from-and-pai\", \"pai-only\" or \"trunk-number\"", c.callerIdMode);
    else if (key == "defaultCallerId")
      r = takeString(v, "defaultCallerId", c.defaultCallerId);
    else if (key == "trustedAddresses")
      r = takeAddresses(v, c.trustedAddresses);
    else if (key == "passwordSet")
      continue; // read-only echo of GET
    else
      r = Error{400, fieldName("", key) + ": unknown field"};
    if (!r) return r.error();
  }
  return c;
}

} // namespace verbund::http

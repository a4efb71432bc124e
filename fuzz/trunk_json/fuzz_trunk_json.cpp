// Fuzzes the trunk settings of the admin API: bytes -> parseJsonBody -> parseTrunkSettings ->
// keepPasswordIfEmpty -> validateTrunk -> the derived addresses, dial plan and DID map of valid
// settings -> the redacted JSON. None of it may throw or crash, and the password never shows in
// the rendered settings or in an error.
#include "http/api.h"
#include "http/trunk_json.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = http::parseJsonBody(text);
  if (!body) {
    (void)http::dumpJson(http::errorBody(body.error()));
    return 0;
  }
  auto config = http::parseTrunkSettings(*body);
  if (!config) {
    (void)http::dumpJson(http::errorBody(config.error()));
    return 0;
  }
  pbx::TrunkConfig current;
  current.password = "stored-Secret-77";
  pbx::keepPasswordIfEmpty(*config, current);
  // Error texts name the field and may echo other fields, never the password: validate a copy
  // with a marker password (unless the input itself contains the marker).
  constexpr std::string_view kMarker = "Zq9-fuzz-marker-Pw";
  if (text.find(kMarker) == std::string_view::npos && !config->password.empty()) {
    auto copy = *config;
    copy.password = std::string(kMarker);
    if (auto v = pbx::validateTrunk(copy); !v)
      if (http::dumpJson(http::errorBody(v.error())).find(kMarker) != std::string::npos)
        std::abort();
  }
  auto valid = pbx::validateTrunk(*config);
  if (!valid) {
    (void)http::dumpJson(http::errorBody(valid.error()));
    return 0;
  }
  (void)pbx::trunkDomain(*config);
  (void)pbx::registrarRequestUri(*config);
  (void)pbx::nextHopUri(*config);
  pbx::DialPlan plan(*config);
  (void)plan.external("0301234567");
  (void)plan.external("+4930123456");
  pbx::DidMap dids(*config);
  for (const auto& d : config->dids) (void)dids.lookup(d.did);
  auto out = http::dumpJson(http::toJson(pbx::redacted(*config)));
  if (out.find("\"password\"") != std::string::npos) std::abort();
  // Round trip: what is shown parses back to the same settings (the password aside).
  auto back = http::parseTrunkSettings(nlohmann::json::parse(out, nullptr, false));
  if (!back) std::abort();
  pbx::keepPasswordIfEmpty(*back, *config);
  if (!(*back == *config)) std::abort();
  return 0;
}

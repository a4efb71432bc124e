#include "http/trunk_routes.h"

#include "base/log.h"
#include "http/trunk_json.h"
#include "pbx/trunk/trunk_store.h"

namespace verbund::http {

namespace {

nlohmann::json trunkBody(const pbx::TrunkManager& trunk) {
  return {{"settings", toJson(trunk.view())}, {"status", toJson(trunk.status())}};
}

} // namespace

void addTrunkRoutes(AdminServer& server, pbx::TrunkManager& trunk, store::Database& db) {
  server.route(Method::Get, "/api/v1/trunk", [&trunk](RequestContext&) -> Result<Response> {
    return Response::json(trunkBody(trunk));
  });
  server.route(Method::Put, "/api/v1/trunk", [&trunk, &db](RequestContext& c) -> Result<Response> {
    auto in = parseTrunkSettings(c.body);
    if (!in) return in.error();
    pbx::TrunkConfig config = std::move(*in);
    pbx::keepPasswordIfEmpty(config, trunk.config());
    if (auto v = pbx::validateTrunk(config); !v) return v.error();
    if (auto u = trunk.update(config); !u) return u.error();
    // update() saves when the manager has a database; make sure these settings are
    // the stored ones in any case (a restart must come back with them).
    auto stored = pbx::loadTrunk(db);
    if (!stored || !*stored || **stored != config)
      if (auto s = pbx::saveTrunk(db, config); !s) return s.error();
    logger("http")->info("trunk settings changed by {} (enabled: {}, registrar: {})",
                         c.principal.name, config.enabled, config.registrar);
    return Response::json(trunkBody(trunk));
  });

  server.addStatus(
      [&trunk](nlohmann::json& s) { s["trunk"] = pbx::trunkStateName(trunk.status().state); });
  server.addMetrics([&trunk] {
    std::string out = "# HELP verbund_trunk_state External line state (1 for the current one)\n"
                      "# TYPE verbund_trunk_state gauge\n";
    for (auto st : {pbx::TrunkState::Disabled, pbx::TrunkState::Registering,
                    pbx::TrunkState::Registered, pbx::TrunkState::Failing})
      out += "verbund_trunk_state{state=\"" + std::string(pbx::trunkStateName(st)) + "\"} " +
             (trunk.status().state == st ? "1" : "0") + "\n";
    return out;
  });
}

} // namespace verbund::http

#pragma once
// The external line's (SIP trunk's) part of the admin API:
//   GET /api/v1/trunk   {"settings": <redacted settings>, "status": <run time status>}
//   PUT /api/v1/trunk   the complete settings (see trunk_json.h; an empty or missing password
//                       keeps the stored one) -> validated (400 naming the field), saved, applied
//                       (re-registers), answered with the new GET body
// plus the trunk state in /api/v1/status and a gauge in /metrics. Never shows the password.
#include "http/admin_server.h"
#include "pbx/trunk/trunk_manager.h"
#include "store/database.h"

namespace verbund::http {

// `db` is where the trunk settings live (pbx::saveTrunk); the manager normally persists them
// itself (TrunkManagerOptions::db), otherwise the route saves them there.
void addTrunkRoutes(AdminServer& server, pbx::TrunkManager& trunk, store::Database& db);

} // namespace verbund::http

#pragma once
// The federation's admin API (docs/federation-api.md) on top of FederationService.
#include "federation/service/federation_service.h"
#include "http/admin_server.h"

namespace verbund::app {

void addFederationRoutes(http::AdminServer& server, federation::FederationService& fed);

} // namespace verbund::app

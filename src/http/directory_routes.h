#pragma once
// The directory's part of the admin API:
//   GET    /api/v1/users[?q=text][&extension=101]   list / search
//   POST   /api/v1/users                            create (201)
//   GET    /api/v1/users/{id}   PATCH /api/v1/users/{id}   DELETE /api/v1/users/{id} (204)
//   GET    /api/v1/groups[?q=text][&number=600]     list / search
//   POST   /api/v1/groups                           create (201)
//   GET    /api/v1/groups/{id}  PATCH /api/v1/groups/{id}  DELETE /api/v1/groups/{id} (204)
//   PUT    /api/v1/groups/{id}/members/{owner}/{extension}/login   {loggedIn: bool}
//          owner "local" is this node
// plus counts in /api/v1/status and gauges in /metrics.
#include "http/admin_server.h"
#include "pbx/directory/directory.h"

namespace verbund::http {

void addDirectoryRoutes(AdminServer& server, pbx::Directory& directory);

} // namespace verbund::http

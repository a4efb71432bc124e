#pragma once
// The directory's part of the admin API:
//   GET    /api/v1/users[?q=text][&extension=101]   list / search
//   POST   /api/v1/users                            create (201)
//   POST   /api/v1/users/import[?dryRun=true]      bulk create: a JSON array of POST bodies, up
//          to 50,000; all created in one transaction (201 {created, version}) or none (400
//          {error: {code, message}, rows: [{row, field, error[, otherRow]}]}, rows counted
//          from 1 (otherRow: the earlier row a repeat repeats), every invalid row listed:
//          field rules, conflicts with existing users/groups, repeats inside the array);
//          dry run: 200 {dryRun: true, valid: n} or the same 400. Body limit 16 MiB (413).
//          With Content-Type text/csv the body is the CSV file itself (pbx/directory/user_csv.h,
//          the one codec of the CLI and the web UI): rows are the file's rows (header = row 1),
//          CSV-level errors (field count, "shared") listed with the others; a file that is not
//          CSV (unclosed quote, not UTF-8) 400 "row N: reason", more than 50,000 records 413.
//   GET    /api/v1/users/{id}   PATCH /api/v1/users/{id}   DELETE /api/v1/users/{id} (204)
//   PUT    /api/v1/users/{id}/features   {dnd, forward: {always, busy, noAnswer,
//          noAnswerSeconds, unregistered}} (present keys replace; answers the user)
//   GET    /api/v1/groups[?q=text][&number=600]     list / search
//   POST   /api/v1/groups                           create (201)
//   GET    /api/v1/groups/{id}  PATCH /api/v1/groups/{id}  DELETE /api/v1/groups/{id} (204)
//   PUT    /api/v1/groups/{id}/members/{owner}/{extension}/login   {loggedIn: bool}
//          owner "local" is this node
// plus counts in /api/v1/status and gauges in /metrics.
// A create or a change of a user's extension or a group's number that another site also uses is
// allowed, and the answer carries "warnings" (the `warnings` callback: the federation's view).
#include "http/admin_server.h"
#include "pbx/directory/directory.h"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace verbund::http {

// The warnings for `number` as a JSON array (empty: none).
using NumberWarnings = std::function<nlohmann::json(const std::string& number)>;

void addDirectoryRoutes(AdminServer& server, pbx::Directory& directory,
                        NumberWarnings warnings = {});

} // namespace verbund::http

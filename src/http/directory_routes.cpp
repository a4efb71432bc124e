#include "http/directory_routes.h"

#include "http/directory_json.h"
#include "http/loop_executor.h"
#include "pbx/directory/user_csv.h"

#include <algorithm>
#include <cctype>
#include <tuple>
#include <utility>

namespace verbund::http {

namespace {

bool containsFolded(std::string_view hay, std::string_view needle) {
  auto lower = [](char c) { return char(std::tolower(uint8_t(c))); };
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [&](char a, char b) { return lower(a) == lower(b); }) != hay.end();
}

// The answer of a create or change: the record, plus "warnings" when there are any.
Response withWarnings(nlohmann::json body, const NumberWarnings& warnings,
                      const std::string& number, int status = 200) {
  if (warnings) {
    auto w = warnings(number);
    if (w.is_array() && !w.empty()) body["warnings"] = std::move(w);
  }
  return Response::json(body, status);
}

std::string gauge(const char* name, const char* help, int64_t value) {
  return std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
         std::to_string(value) + "\n";
}

// The answer of an import: 400 listing every invalid row (errors sorted by row), or the dry
// run's count, or the number created.
Response importAnswer(const std::vector<pbx::UserRowError>& errors, const pbx::UserImport& done,
                      bool dryRun, int64_t version) {
  if (!errors.empty()) {
    auto rows = nlohmann::json::array();
    for (const auto& e : errors) {
      nlohmann::json j = {{"row", e.row}, {"field", e.field}, {"error", e.error}};
      if (e.otherRow) j["otherRow"] = e.otherRow;
      rows.push_back(std::move(j));
    }
    auto body =
        errorBody(Error{400, std::to_string(errors.size()) + " invalid row(s): nothing imported"});
    body["rows"] = std::move(rows);
    return Response::json(std::move(body), 400);
  }
  if (dryRun) return Response::json({{"dryRun", true}, {"valid", done.valid}});
  return Response::json({{"created", done.created.size()}, {"version", version}}, 201);
}

// Directory::importUsers on the loop (the parsing before it runs off the loop), with the
// directory's version after it.
Result<std::pair<pbx::UserImport, int64_t>> importOnLoop(pbx::Directory& dir, LoopExecutor& loop,
                                                         const std::vector<pbx::UserInput>& rows,
                                                         bool dryRun) {
  return loop.run([&]() -> Result<std::pair<pbx::UserImport, int64_t>> {
    auto r = dir.importUsers(rows, dryRun);
    if (!r) return r.error();
    return std::pair{std::move(*r), dir.version()};
  });
}

// A JSON array of user objects; rows count the array from 1.
Result<Response> importJson(pbx::Directory& dir, LoopExecutor& loop, const nlohmann::json& body,
                            bool dryRun) {
  if (!body.is_array()) return Error{400, "body: JSON array of users or a text/csv file expected"};
  if (body.size() > pbx::kMaxImportRows)
    return Error{413, "body: more than " + std::to_string(pbx::kMaxImportRows) + " users"};
  std::vector<pbx::UserInput> rows;
  rows.reserve(body.size());
  std::vector<pbx::UserRowError> errors;
  for (size_t i = 0; i < body.size(); ++i) {
    auto in = parseUserInput(body[i]);
    if (!in) {
      const auto& m = in.error().message;
      auto colon = m.find(": ");
      errors.push_back({i + 1, colon == std::string::npos ? "" : m.substr(0, colon),
                        colon == std::string::npos ? m : m.substr(colon + 2)});
      rows.emplace_back(); // keeps the row numbers; its errors are listed above
    } else {
      rows.push_back(std::move(*in));
    }
  }
  auto done = importOnLoop(dir, loop, rows, dryRun || !errors.empty());
  if (!done) return done.error();
  // Rows that failed to parse are listed once, with their parse error.
  std::vector<bool> unparsed(rows.size() + 1, false);
  for (const auto& e : errors) unparsed[e.row] = true;
  for (const auto& e : done->first.errors)
    if (!unparsed[e.row]) errors.push_back(e);
  std::stable_sort(errors.begin(), errors.end(),
                   [](const auto& a, const auto& b) { return a.row < b.row; });
  return importAnswer(errors, done->first, dryRun, done->second);
}

// A CSV file (pbx/directory/user_csv.h); rows are the file's rows (the header is row 1). With
// errors in some records the others are still checked, so one answer lists every invalid row.
Result<Response> importCsv(pbx::Directory& dir, LoopExecutor& loop, std::string_view text,
                           bool dryRun) {
  auto csv = pbx::usersFromCsv(text);
  if (!csv) return csv.error();
  bool headerBad = std::any_of(csv->errors.begin(), csv->errors.end(),
                               [](const pbx::UserRowError& e) { return e.row == 1; });
  pbx::UserImport done;
  int64_t version = 0;
  if (!headerBad && !csv->rows.empty()) {
    std::vector<pbx::UserInput> rows;
    rows.reserve(csv->rows.size());
    for (auto& r : csv->rows) rows.push_back(std::move(r.input));
    auto r = importOnLoop(dir, loop, rows, dryRun || !csv->errors.empty());
    if (!r) return r.error();
    std::tie(done, version) = std::move(*r);
  } else if (!headerBad) {
    auto v = loop.run([&dir] { return dir.version(); });
    if (!v) return v.error();
    version = *v;
  }
  return importAnswer(pbx::fileRowErrors(*csv, done.errors), done, dryRun, version);
}

} // namespace

void addDirectoryRoutes(AdminServer& server, pbx::Directory& dir, NumberWarnings warnings) {
  server.route(Method::Get, "/api/v1/users", [&dir](RequestContext& c) -> Result<Response> {
    auto list = nlohmann::json::array();
    if (auto ext = c.queryValue("extension")) {
      if (auto u = dir.userByExtension(*ext)) list.push_back(toJson(*u));
    } else {
      for (const auto& u : dir.searchUsers(c.queryValue("q").value_or("")))
        list.push_back(toJson(u));
    }
    return Response::json({{"users", list}, {"version", dir.version()}});
  });
  server.route(Method::Post, "/api/v1/users",
               [&dir, warnings](RequestContext& c) -> Result<Response> {
                 auto in = parseUserInput(c.body);
                 if (!in) return in.error();
                 auto u = dir.createUser(*in);
                 if (!u) return u.error();
                 return withWarnings(toJson(*u), warnings, u->extension, 201);
               });
  server.route(
      Method::Post, "/api/v1/users/import",
      [&dir](RequestContext& c) -> Result<Response> {
        bool dryRun = c.queryValue("dryRun").value_or("false") == "true";
        if (c.text) return importCsv(dir, *c.loop, *c.text, dryRun);
        return importJson(dir, *c.loop, c.body, dryRun);
      },
      // Off the loop: parsing 16 MiB of CSV or JSON would stall calls; importUsers runs on it.
      {Access::Admin, /*onLoop=*/false, {"text/csv"}});
  server.route(Method::Get, "/api/v1/users/{id}", [&dir](RequestContext& c) -> Result<Response> {
    auto id = c.idParam("id");
    if (!id) return id.error();
    auto u = dir.user(*id);
    if (!u) return Error{404, "user: not found"};
    return Response::json(toJson(*u));
  });
  server.route(Method::Patch, "/api/v1/users/{id}",
               [&dir, warnings](RequestContext& c) -> Result<Response> {
                 auto id = c.idParam("id");
                 if (!id) return id.error();
                 auto in = parseUserInput(c.body);
                 if (!in) return in.error();
                 auto u = dir.updateUser(*id, *in);
                 if (!u) return u.error();
                 return withWarnings(toJson(*u), warnings, u->extension);
               });
  server.route(Method::Put, "/api/v1/users/{id}/features",
               [&dir](RequestContext& c) -> Result<Response> {
                 auto id = c.idParam("id");
                 if (!id) return id.error();
                 auto in = parseUserFeatures(c.body);
                 if (!in) return in.error();
                 auto u = dir.updateUser(*id, *in);
                 if (!u) return u.error();
                 return Response::json(toJson(*u));
               });
  server.route(Method::Delete, "/api/v1/users/{id}", [&dir](RequestContext& c) -> Result<Response> {
    auto id = c.idParam("id");
    if (!id) return id.error();
    if (auto r = dir.deleteUser(*id); !r) return r.error();
    return Response::noContent();
  });

  server.route(Method::Get, "/api/v1/groups", [&dir](RequestContext& c) -> Result<Response> {
    auto list = nlohmann::json::array();
    if (auto num = c.queryValue("number")) {
      if (auto g = dir.groupByNumber(*num)) list.push_back(toJson(*g));
    } else {
      auto q = c.queryValue("q").value_or("");
      for (const auto& g : dir.groups())
        if (q.empty() || containsFolded(g.number, q) || containsFolded(g.name, q))
          list.push_back(toJson(g));
    }
    return Response::json({{"groups", list}, {"version", dir.version()}});
  });
  server.route(Method::Post, "/api/v1/groups",
               [&dir, warnings](RequestContext& c) -> Result<Response> {
                 auto in = parseGroupInput(c.body);
                 if (!in) return in.error();
                 auto g = dir.createGroup(*in);
                 if (!g) return g.error();
                 return withWarnings(toJson(*g), warnings, g->number, 201);
               });
  server.route(Method::Get, "/api/v1/groups/{id}", [&dir](RequestContext& c) -> Result<Response> {
    auto id = c.idParam("id");
    if (!id) return id.error();
    auto g = dir.group(*id);
    if (!g) return Error{404, "group: not found"};
    return Response::json(toJson(*g));
  });
  server.route(Method::Patch, "/api/v1/groups/{id}",
               [&dir, warnings](RequestContext& c) -> Result<Response> {
                 auto id = c.idParam("id");
                 if (!id) return id.error();
                 auto in = parseGroupInput(c.body);
                 if (!in) return in.error();
                 auto g = dir.updateGroup(*id, *in);
                 if (!g) return g.error();
                 return withWarnings(toJson(*g), warnings, g->number);
               });
  server.route(Method::Delete, "/api/v1/groups/{id}",
               [&dir](RequestContext& c) -> Result<Response> {
                 auto id = c.idParam("id");
                 if (!id) return id.error();
                 if (auto r = dir.deleteGroup(*id); !r) return r.error();
                 return Response::noContent();
               });
  server.route(Method::Put, "/api/v1/groups/{id}/members/{owner}/{extension}/login",
               [&dir](RequestContext& c) -> Result<Response> {
                 auto id = c.idParam("id");
                 if (!id) return id.error();
                 std::string owner = c.params["owner"];
                 if (owner == "local") owner.clear();
                 auto obj = c.object();
                 if (!obj) return obj.error();
                 auto it = (*obj)->find("loggedIn");
                 if (it == (*obj)->end() || !it->is_boolean())
                   return Error{400, "loggedIn: true or false expected"};
                 auto g = dir.setMemberLoggedIn(*id, owner, c.params["extension"], it->get<bool>());
                 if (!g) return g.error();
                 return Response::json(toJson(*g));
               });

  server.addStatus([&dir](nlohmann::json& s) {
    s["users"] = dir.userCount();
    s["groups"] = dir.groupCount();
    s["directoryVersion"] = dir.version();
  });
  server.addMetrics([&dir] {
    return gauge("verbund_directory_users", "Users of this node", int64_t(dir.userCount())) +
           gauge("verbund_directory_groups", "Groups of this node", int64_t(dir.groupCount())) +
           gauge("verbund_directory_version", "Directory change sequence", dir.version());
  });
}

} // namespace verbund::http

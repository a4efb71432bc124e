// The admin server over real sockets: AdminServer on 127.0.0.1:0, the node loop on its own
// thread, cpp-httplib's client.
#include "server_fixture.h"

#include "pbx/directory/user_csv.h"

#include <map>
#include <utility>

namespace verbund::http {
namespace {

using nlohmann::json;

const std::string kAlice =
    R"({"extension":"101","displayName":"Alice","sipPassword":"secret-pass"})";

TEST_F(AdminServerTest, SessionCsrfAndUserCrud) {
  // No session: 401.
  auto r = client_->Post("/api/v1/users", kAlice, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(body(r)["error"]["code"], "unauthorized");
  EXPECT_EQ(client_->Get("/api/v1/users")->status, 401);

  login();
  // Session without the CSRF header: reads work, changes do not.
  EXPECT_EQ(client_->Get("/api/v1/users", session(false))->status, 200);
  r = client_->Post("/api/v1/users", session(false), kAlice, "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(body(r)["error"]["field"], "X-CSRF-Token");
  httplib::Headers wrong{{"Cookie", cookie_}, {"X-CSRF-Token", "nope"}};
  EXPECT_EQ(client_->Post("/api/v1/users", wrong, kAlice, "application/json")->status, 403);

  r = client_->Post("/api/v1/users", session(), kAlice, "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  auto alice = body(r);
  EXPECT_EQ(alice["extension"], "101");
  EXPECT_EQ(alice["sipUser"], "101");
  EXPECT_FALSE(alice.contains("sipPassword"));
  EXPECT_EQ(r->body.find("secret-pass"), std::string::npos);
  std::string path = "/api/v1/users/" + std::to_string(alice["id"].get<int64_t>());

  r = client_->Post("/api/v1/users", session(), kAlice, "application/json");
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(body(r)["error"]["field"], "extension");

  r = client_->Patch(path.c_str(), session(), R"({"displayName":"Alice W","language":"en"})",
                     "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["displayName"], "Alice W");

  r = client_->Patch(path.c_str(), session(), R"({"externalNumber":"0301234"})",
                     "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["code"], "invalid");
  EXPECT_EQ(body(r)["error"]["field"], "externalNumber");

  r = client_->Get("/api/v1/users?q=alice%20w", session(false));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["users"].size(), 1u);
  r = client_->Get("/api/v1/users?extension=101", session(false));
  EXPECT_EQ(body(r)["users"].size(), 1u);
  r = client_->Get("/api/v1/users?q=bob", session(false));
  EXPECT_EQ(body(r)["users"].size(), 0u);

  EXPECT_EQ(client_->Delete(path.c_str(), session(false))->status, 403);
  EXPECT_EQ(client_->Delete(path.c_str(), session())->status, 204);
  r = client_->Get(path.c_str(), session(false));
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body(r)["error"]["code"], "not_found");
  r = client_->Get("/api/v1/users/abc", session(false));
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["field"], "id");
}

// Issue 11: a number another site uses is allowed, and the answer says so.
class NumberConflictTest : public AdminServerTest {
protected:
  json warningsFor(const std::string& number) const override {
    if (number != "201") return json::array();
    return json::array({{{"code", "extension-conflict"},
                         {"number", "201"},
                         {"nodeId", "node-b-id"},
                         {"nodeName", "site-b"},
                         {"kind", "user"},
                         {"name", "Bea"},
                         {"message", "number 201 is also used at site site-b (user Bea)"}}});
  }
};

TEST_F(NumberConflictTest, CreateAndRenameAnswerWithWarnings) {
  login();
  auto r = client_->Post("/api/v1/users", session(), kAlice, "application/json"); // 101
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_FALSE(body(r).contains("warnings"));
  std::string path = "/api/v1/users/" + std::to_string(body(r)["id"].get<int64_t>());
  r = client_->Patch(path.c_str(), session(), R"({"extension":"201"})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto renamed = body(r);
  EXPECT_EQ(renamed["extension"], "201");
  ASSERT_EQ(renamed["warnings"].size(), 1u);
  EXPECT_EQ(renamed["warnings"][0]["code"], "extension-conflict");
  EXPECT_EQ(renamed["warnings"][0]["nodeName"], "site-b");
  r = client_->Post("/api/v1/groups", session(), R"({"number":"600","name":"Sales","members":[]})",
                    "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_FALSE(body(r).contains("warnings"));
  std::string group = "/api/v1/groups/" + std::to_string(body(r)["id"].get<int64_t>());
  EXPECT_EQ(client_->Delete(path.c_str(), session())->status, 204);
  r = client_->Patch(group.c_str(), session(), R"({"number":"201","name":"Sales","members":[]})",
                     "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["warnings"][0]["number"], "201");
}

TEST_F(AdminServerTest, ValidationErrorsNameTheField) {
  login();
  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"extension":"1","displayName":"A","sipPassword":"secret-pass"})", "extension"},
           {R"({"extension":101,"displayName":"A","sipPassword":"secret-pass"})", "extension"},
           {R"({"extension":"101","displayName":"","sipPassword":"secret-pass"})", "displayName"},
           {R"({"extension":"101","displayName":"A","sipPassword":"short"})", "sipPassword"},
           {R"({"extension":"101","displayName":"A"})", "sipPassword"},
           {R"({"extension":"101","displayName":"A","sipPassword":"secret-pass","x":1})", "x"},
           {R"([])", "body"},
       }) {
    auto r = client_->Post("/api/v1/users", session(), c.body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << c.body;
    EXPECT_EQ(body(r)["error"]["field"], c.field) << c.body << " -> " << r->body;
  }
}

TEST_F(AdminServerTest, UserFeaturesAndTheirValidationErrors) {
  login();
  auto r = client_->Post("/api/v1/users", session(),
                         R"({"extension":"101","displayName":"A","sipPassword":"secret-pass"})",
                         "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body(r)["dnd"], false);
  EXPECT_EQ(body(r)["forward"]["noAnswerSeconds"], 20);
  std::string features =
      "/api/v1/users/" + std::to_string(body(r)["id"].get<int64_t>()) + "/features";
  r = client_->Put(features.c_str(), session(),
                   R"({"dnd":true,"forward":{"busy":"+4930123456","noAnswer":"202"}})",
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["dnd"], true);
  EXPECT_EQ(body(r)["forward"]["busy"], "+4930123456");
  EXPECT_EQ(body(r)["forward"]["noAnswer"], "202");
  EXPECT_EQ(body(r)["extension"], "101");
  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"forward":{"busy":"12ab"}})", "forward.busy"},
           {R"({"forward":{"always":"101"}})", "forward.always"},
           {R"({"forward":{"noAnswerSeconds":200}})", "forward.noAnswerSeconds"},
           {R"({"forward":{"unregistered":"123456789012345678901234567890123"}})",
            "forward.unregistered"},
           {R"({"dnd":1})", "dnd"},
       }) {
    r = client_->Put(features.c_str(), session(), c.body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << c.body;
    EXPECT_EQ(body(r)["error"]["field"], c.field) << c.body << " -> " << r->body;
  }
  // PATCH takes the same fields; keys not given stay.
  std::string user = features.substr(0, features.rfind('/'));
  r = client_->Patch(user.c_str(), session(), R"({"forward":{"busy":""}})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["forward"]["busy"], "");
  EXPECT_EQ(body(r)["forward"]["noAnswer"], "202");
  EXPECT_EQ(body(r)["dnd"], true);
}

TEST_F(AdminServerTest, BadJsonOversizedBodyUnknownRoute) {
  login();
  auto r = client_->Post("/api/v1/users", session(), "{\"extension\":", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["field"], "body");

  std::string big = "{\"displayName\":\"" + std::string((1 << 20) + 10, 'a') + "\"}";
  r = client_->Post("/api/v1/users", session(), big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(body(r)["error"]["code"], "too_large");

  r = client_->Get("/api/v1/nothing", session(false));
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body(r)["error"]["code"], "not_found");
  // Outside /api the admin UI's files are served; an unknown file is a plain 404.
  r = client_->Get("/no/such/thing");
  EXPECT_EQ(r->status, 404);
  r = client_->Get("/");
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->get_header_value("Content-Security-Policy").find("default-src 'self'"),
            std::string::npos);
  r = client_->Put("/api/v1/users", session(), "{}", "application/json");
  EXPECT_EQ(r->status, 405);
}

TEST_F(AdminServerTest, WrongPasswordAndThrottle) {
  for (int i = 0; i < 5; ++i) {
    auto r =
        client_->Post("/api/v1/session", R"({"password":"wrong-password"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << i;
    EXPECT_EQ(body(r)["error"]["field"], "password");
  }
  // Even the right password waits out the window now.
  auto r =
      client_->Post("/api/v1/session", json{{"password", kPassword}}.dump(), "application/json");
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(body(r)["error"]["code"], "too_many_requests");
  timers_.advance(std::chrono::seconds(61)); // ManualTimers: only the loop reads it
  login();
  r = client_->Post("/api/v1/session", R"({"pass":"x"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["field"], "password");
}

TEST_F(AdminServerTest, BearerTokens) {
  login();
  auto r = client_->Post("/api/v1/tokens", session(), R"({"name":"ci"})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  std::string token = body(r)["token"];
  int64_t id = body(r)["id"];
  httplib::Headers bearer{{"Authorization", "Bearer " + token}};

  // Tokens need no CSRF header (no ambient credential).
  r = client_->Post("/api/v1/users", bearer, kAlice, "application/json");
  EXPECT_EQ(r->status, 201) << r->body;
  r = client_->Get("/api/v1/tokens", bearer);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["tokens"][0]["name"], "ci");
  EXPECT_EQ(r->body.find(token), std::string::npos);
  // A token cannot mint tokens.
  EXPECT_EQ(client_->Post("/api/v1/tokens", bearer, R"({"name":"x"})", "application/json")->status,
            403);
  r = client_->Get("/api/v1/session", bearer);
  EXPECT_EQ(body(r)["principal"]["kind"], "token");

  std::string del = "/api/v1/tokens/" + std::to_string(id);
  EXPECT_EQ(client_->Delete(del.c_str(), session())->status, 204);
  r = client_->Get("/api/v1/users", bearer);
  EXPECT_EQ(r->status, 401);
  httplib::Headers bogus{{"Authorization", "Bearer vbt_bogus"}};
  EXPECT_EQ(client_->Get("/api/v1/users", bogus)->status, 401);
}

TEST_F(AdminServerTest, LogoutAndPasswordChange) {
  login();
  EXPECT_EQ(client_->Delete("/api/v1/session", session(false))->status, 403);
  auto r = client_->Delete("/api/v1/session", session());
  EXPECT_EQ(r->status, 204);
  EXPECT_NE(r->get_header_value("Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(client_->Get("/api/v1/users", session())->status, 401);

  login();
  r = client_->Put("/api/v1/admin/password", session(), R"({"password":"new-password-2"})",
                   "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["field"], "currentPassword");
  r = client_->Put("/api/v1/admin/password", session(),
                   R"({"password":"new-password-2","currentPassword":"nope-nope"})",
                   "application/json");
  EXPECT_EQ(r->status, 403);
  r = client_->Put("/api/v1/admin/password", session(),
                   json{{"password", "new-password-2"}, {"currentPassword", kPassword}}.dump(),
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(client_->Get("/api/v1/users", session())->status, 401); // sessions ended
  r = client_->Post("/api/v1/session", R"({"password":"new-password-2"})", "application/json");
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminServerTest, GroupsAndMemberLogin) {
  login();
  ASSERT_EQ(client_->Post("/api/v1/users", session(), kAlice, "application/json")->status, 201);
  auto r =
      client_->Post("/api/v1/groups", session(),
                    R"({"number":"101","name":"Sales","members":["101"]})", "application/json");
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(body(r)["error"]["field"], "number");
  r = client_->Post("/api/v1/groups", session(),
                    R"({"number":"600","name":"Sales","members":["101",
                       {"owner":"node-b","extension":"201"}]})",
                    "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  int64_t id = body(r)["id"];
  std::string base = "/api/v1/groups/" + std::to_string(id);
  r = client_->Put((base + "/members/local/101/login").c_str(), session(), R"({"loggedIn":false})",
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r)["members"][0]["loggedIn"], false);
  r = client_->Put((base + "/members/node-b/201/login").c_str(), session(), R"({"loggedIn":false})",
                   "application/json");
  EXPECT_EQ(r->status, 200);
  r = client_->Put((base + "/members/local/999/login").c_str(), session(), R"({"loggedIn":false})",
                   "application/json");
  EXPECT_EQ(r->status, 404);
  r = client_->Put((base + "/members/local/101/login").c_str(), session(), R"({"loggedIn":1})",
                   "application/json");
  EXPECT_EQ(body(r)["error"]["field"], "loggedIn");
  r = client_->Get("/api/v1/groups?q=sal", session());
  EXPECT_EQ(body(r)["groups"].size(), 1u);
  r = client_->Patch(base.c_str(), session(), R"({"name":"Sales Team"})", "application/json");
  EXPECT_EQ(body(r)["name"], "Sales Team");
  EXPECT_EQ(client_->Delete(base.c_str(), session())->status, 204);

  r = client_->Get("/api/v1/status", session());
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["node"], "node-a");
  EXPECT_EQ(body(r)["users"], 1);
  EXPECT_EQ(body(r)["groups"], 0);
}

TEST_F(AdminServerTest, MetricsFromLoopbackWithoutAuth) {
  auto r = client_->Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(r->body.find("# TYPE verbund_http_requests_total counter"), std::string::npos);
  EXPECT_NE(r->body.find("verbund_directory_users 0"), std::string::npos);
  EXPECT_NE(r->body.find("verbund_admin_sessions 0"), std::string::npos);
}

TEST_F(AdminServerTest, BusyLoopGives503) {
  login();
  std::promise<void> release;
  auto released = release.get_future().share();
  asio::post(io_, [released] { released.wait(); });
  auto r = client_->Get("/api/v1/users", session(false));
  release.set_value();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body(r)["error"]["code"], "unavailable");
  EXPECT_EQ(client_->Get("/api/v1/users", session(false))->status, 200);
}

// POST /api/v1/users/import with the CSV file itself (issue 14): the node's one CSV codec, rows
// named by the file's rows, nothing written unless every row is valid.
const std::string kCsvHeader = "extension,displayName,sipPassword,language\n";

TEST_F(AdminServerTest, CsvImportWithOneBadRowImportsNothingAndNamesTheRow) {
  login();
  std::string bad = kCsvHeader + "201,Anna,pw-201-secret,de\n"
                                 "202,\"Bau, Bernd\",pw-202-secret,en\n"
                                 "20x,Carla,pw-203-secret,de\n";
  auto r = client_->Post("/api/v1/users/import", session(), bad, "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  auto rows = body(r)["rows"];
  ASSERT_EQ(rows.size(), 1u) << r->body;
  EXPECT_EQ(rows[0]["row"], 4);
  EXPECT_EQ(rows[0]["field"], "extension");
  EXPECT_EQ(body(r)["error"]["message"], "1 invalid row(s): nothing imported");
  EXPECT_EQ(body(client_->Get("/api/v1/users", session(false)))["users"].size(), 0u);

  std::string good = kCsvHeader + "201,Anna,pw-201-secret,de\n"
                                  "202,\"Bau, Bernd\",pw-202-secret,en\n"
                                  "203,Carla,pw-203-secret,de\n";
  r = client_->Post("/api/v1/users/import?dryRun=true", session(), good, "text/csv; charset=utf-8");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body(r), (json{{"dryRun", true}, {"valid", 3}}));
  EXPECT_EQ(body(client_->Get("/api/v1/users", session(false)))["users"].size(), 0u);
  r = client_->Post("/api/v1/users/import", session(), good, "text/csv");
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body(r)["created"], 3);
  auto users = body(client_->Get("/api/v1/users?extension=202", session(false)))["users"];
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0]["displayName"], "Bau, Bernd");
  EXPECT_EQ(users[0]["language"], "en");
}

TEST_F(AdminServerTest, CsvImportListsEveryInvalidRowByItsFileRow) {
  login();
  ASSERT_EQ(client_->Post("/api/v1/users", session(), kAlice, "application/json")->status, 201);
  std::string csv = kCsvHeader + "301,\"Eva\nEbert\",pw-301-secret,de\n" // rows 2-3
                                 "101,Fritz,pw-302-secret,de\n"          // row 4: Alice's
                                 "303,Gina\n"                            // row 5: field count
                                 "301,Hans,pw-304-secret,de\n"           // row 6: repeats row 2
                                 "305,Ida,pw-305-secret,fr\n";           // row 7: language
  auto r = client_->Post("/api/v1/users/import?dryRun=true", session(), csv, "text/csv");
  ASSERT_EQ(r->status, 400) << r->body;
  std::vector<std::pair<int, std::string>> rows;
  std::map<std::pair<int, std::string>, json> byRow;
  auto answer = body(r);
  for (const auto& e : answer["rows"]) {
    rows.emplace_back(e["row"], e["field"]);
    byRow[rows.back()] = e;
  }
  EXPECT_EQ(rows, (std::vector<std::pair<int, std::string>>{{2, "displayName"},
                                                            {4, "extension"},
                                                            {4, "sipUser"},
                                                            {5, ""},
                                                            {6, "extension"},
                                                            {6, "sipUser"},
                                                            {7, "language"}}))
      << r->body;
  auto at = [&](int row, const char* field) {
    return byRow[std::pair<int, std::string>(row, field)];
  };
  EXPECT_EQ(at(4, "extension")["error"], "already used by user 'Alice'");
  EXPECT_EQ(at(5, "")["error"], "2 fields, the header has 4");
  EXPECT_EQ(at(6, "extension")["error"], "also in row 2");
  EXPECT_EQ(at(6, "sipUser")["otherRow"], 2);

  // A header without a required column: only row 1.
  r = client_->Post("/api/v1/users/import", session(), "extension,name\n401,A\n", "text/csv");
  ASSERT_EQ(r->status, 400) << r->body;
  auto header = body(r);
  ASSERT_FALSE(header["rows"].empty()) << r->body;
  for (const auto& e : header["rows"]) EXPECT_EQ(e["row"], 1) << r->body;
  EXPECT_EQ(body(client_->Get("/api/v1/users", session(false)))["users"].size(), 1u);
}

TEST_F(AdminServerTest, CsvImportRefusesWhatIsNotCsvOrTooLarge) {
  login();
  auto post = [&](const std::string& text, const char* type) {
    return client_->Post("/api/v1/users/import", session(), text, type);
  };
  std::string good = kCsvHeader + "201,Anna,pw-201-secret,de\n";
  // What a cross-site form can send stays refused (no CORS preflight for those).
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "text/html"}) {
    auto r = post(good, type);
    EXPECT_EQ(r->status, 415) << type;
    EXPECT_EQ(body(r)["error"]["message"], "Content-Type: application/json or text/csv expected");
  }
  // Only the import takes CSV.
  EXPECT_EQ(client_->Post("/api/v1/users", session(), good, "text/csv")->status, 415);

  auto r = post(kCsvHeader + "201,Anna,pw-201-secret,de\n202,B\"x,pw-202-secret,de\n", "text/csv");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["message"], "row 3: quote inside an unquoted field");
  r = post(kCsvHeader + "201,Anna,pw-201-secret,de\n202,M\xFCller,pw-202-secret,de\n", "text/csv");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body(r)["error"]["message"], "row 3: not UTF-8");

  std::string many = kCsvHeader;
  for (size_t i = 0; i <= pbx::kMaxImportRows; ++i) many += "1,a,b,c\n";
  r = post(many, "text/csv");
  EXPECT_EQ(r->status, 413) << r->body.substr(0, 200);
  std::string huge = kCsvHeader + std::string(pbx::kMaxCsvBytes, 'x');
  r = post(huge, "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(body(r)["error"]["code"], "too_large");
  EXPECT_EQ(body(client_->Get("/api/v1/users", session(false)))["users"].size(), 0u);
}

TEST(AdminServerRoutes, TextBodiesACrossSitePageCanSendAreRefused) {
  asio::io_context io;
  ManualTimers timers;
  auto db = std::move(store::Database::open(":memory:", AdminAuth::migrations()).value());
  auto auth = std::move(AdminAuth::open(*db, timers, AuthConfig{}).value());
  AdminServer server(io, *auth, AdminServerConfig{});
  auto handler = [](RequestContext&) -> Result<Response> { return Response::noContent(); };
  EXPECT_THROW(server.route(Method::Post, "/api/v1/a", handler,
                            {Access::Admin, true, {"text/plain; charset=utf-8"}}),
               std::logic_error);
  EXPECT_THROW(server.route(Method::Post, "/api/v1/b", handler,
                            {Access::Admin, true, {"Multipart/Form-Data"}}),
               std::logic_error);
  server.route(Method::Post, "/api/v1/c", handler, {Access::Admin, true, {"text/csv"}});
}

} // namespace
} // namespace verbund::http

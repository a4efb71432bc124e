// The trunk's JSON codec (strict decoding, redacted encoding) and its admin routes against a
// real AdminServer with a real TrunkManager over the dialog layer's fake transport.
#include "http/trunk_json.h"
#include "http/trunk_routes.h"
#include "pbx/trunk/trunk_store.h"
#include "unit/sip/dialog/harness.h"

#include <asio/executor_work_guard.hpp>
#include <gtest/gtest.h>
#include <httplib.h>
#include <thread>

namespace verbund::http {
namespace {

using nlohmann::json;

constexpr const char* kSecret = "carrier-S3cret!";

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

pbx::TrunkConfig fullConfig() {
  pbx::TrunkConfig c;
  c.enabled = true;
  c.mode = pbx::TrunkMode::Register;
  c.registrar = "sip.carrier.example:5070";
  c.domain = "carrier.example";
  c.username = "4930123456";
  c.authUser = "acct-77";
  c.password = kSecret;
  c.outboundProxy = "sip:proxy.carrier.example;lr";
  c.transport = pbx::TrunkTransport::Tcp;
  c.expiry = 300;
  c.dids = {{"+4930123456", "100"}, {"+4930123457", "600"}};
  c.defaultTarget = "100";
  c.dialPrefix = "0";
  c.outboundPattern = "\\+?[0-9]{3,15}";
  c.callerIdMode = pbx::CallerIdMode::PaiOnly;
  c.defaultCallerId = "+4930123456";
  c.trustedAddresses = {"192.0.2.10", "2001:db8::1"};
  return c;
}

TEST(TrunkJson, ViewRoundTripsExceptThePassword) {
  auto c = fullConfig();
  json j = toJson(pbx::redacted(c));
  EXPECT_EQ(j["passwordSet"], true);
  EXPECT_FALSE(j.contains("password"));
  EXPECT_EQ(j.dump().find(kSecret), std::string::npos);
  EXPECT_EQ(j["mode"], "register");
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["callerIdMode"], "pai-only");
  EXPECT_EQ(j["dids"][1], (json{{"did", "+4930123457"}, {"target", "600"}}));

  // What GET shows can be PUT back unchanged (passwordSet is ignored, the password kept).
  auto back = parseTrunkSettings(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->password.empty());
  pbx::keepPasswordIfEmpty(*back, c);
  EXPECT_EQ(*back, c);
  EXPECT_TRUE(pbx::validateTrunk(*back).ok());
}

TEST(TrunkJson, MissingFieldsGetDefaultsAndPasswordMayBeNull) {
  auto c = parseTrunkSettings(json::parse(R"({"enabled":false,"password":null})"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(*c, pbx::TrunkConfig{});
  auto p = parseTrunkSettings(json::parse(R"({"password":"new-one"})"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->password, "new-one");
}

TEST(TrunkJson, TypeErrorsAndUnknownFieldsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c : std::vector<Case>{
           {R"([1])", "body"},
           {R"("x")", "body"},
           {R"({"enabled":"yes"})", "enabled"},
           {R"({"enabled":1})", "enabled"},
           {R"({"mode":"peer"})", "mode"},
           {R"({"mode":1})", "mode"},
           {R"({"registrar":null})", "registrar"},
           {R"({"username":4930})", "username"},
           {R"({"password":123})", "password"},
           {R"({"transport":"sctp"})", "transport"},
           {R"({"expiry":"600"})", "expiry"},
           {R"({"expiry":600.5})", "expiry"},
           {R"({"expiry":true})", "expiry"},
           {R"({"dids":{"+49":"100"}})", "dids"},
           {R"({"dids":["+49"]})", "dids"},
           {R"({"dids":[{"did":49,"target":"100"}]})", "dids.did"},
           {R"({"dids":[{"did":"+4930","target":100}]})", "dids.target"},
           {R"({"dids":[{"did":"+4930"}]})", "dids.target"},
           {R"({"dids":[{"target":"100"}]})", "dids.did"},
           {R"({"dids":[{"did":"+4930","target":"100","note":"x"}]})", "dids.note"},
           {R"({"callerIdMode":"anonymous"})", "callerIdMode"},
           {R"({"trustedAddresses":"192.0.2.1"})", "trustedAddresses"},
           {R"({"trustedAddresses":[1]})", "trustedAddresses"},
           {R"({"outboundPatern":"x"})", "outboundPatern"},
           {R"({"settings":{}})", "settings"},
       }) {
    auto r = parseTrunkSettings(json::parse(c.body));
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().code, 400) << c.body;
    EXPECT_EQ(fieldOf(r.error()), c.field) << c.body << " -> " << r.error().message;
    EXPECT_EQ(errorBody(r.error())["error"].value("field", ""), c.field) << c.body;
  }
}

TEST(TrunkJson, OutOfRangeExpiryIsLeftToValidateTrunk) {
  for (const char* body : {R"({"expiry":-5})", R"({"expiry":59})", R"({"expiry":99999999999})"}) {
    auto c = parseTrunkSettings(json::parse(body));
    ASSERT_TRUE(c.ok()) << body;
    auto v = pbx::validateTrunk(*c);
    ASSERT_FALSE(v.ok()) << body;
    EXPECT_EQ(fieldOf(v.error()), "expiry");
  }
}

TEST(TrunkJson, StatusJson) {
  pbx::TrunkStatus s;
  s.state = pbx::TrunkState::Failing;
  s.reason = "408 Request Timeout";
  s.sinceMs = 1700000000123;
  s.lastError = "408 Request Timeout";
  s.lastErrorMs = 1700000000123;
  s.grantedExpires = 0;
  s.targets = {"UDP 127.0.0.1:5060"};
  s.activeTarget = "UDP 127.0.0.1:5060";
  json j = toJson(s);
  EXPECT_EQ(j["state"], "failing");
  EXPECT_EQ(j["reason"], "408 Request Timeout");
  EXPECT_EQ(j["since"], 1700000000123);
  EXPECT_EQ(j["lastErrorMs"], 1700000000123);
  EXPECT_EQ(j["targets"], json::array({"UDP 127.0.0.1:5060"}));
  EXPECT_EQ(j["activeTarget"], "UDP 127.0.0.1:5060");
  EXPECT_EQ(j["grantedExpires"], 0);
}

// ---- routes ----

constexpr const char* kAdminPassword = "admin-password-1";

class TrunkRoutesTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto m = AdminAuth::migrations();
    for (auto& x : pbx::trunkMigrations()) m.push_back(x);
    db_ = std::move(store::Database::open(":memory:", m).value());
    AuthConfig ac;
    ac.pbkdf2Iterations = 1000;
    auth_ = std::move(AdminAuth::open(*db_, authTimers_, ac).value());
    ASSERT_TRUE(auth_->bootstrap(std::string(kAdminPassword)).ok());
    pbx::TrunkManagerOptions o;
    o.db = db_.get();
    trunk_ = std::make_unique<pbx::TrunkManager>(h_.dm, h_.tp, h_.timers, nullptr, o);
    AdminServerConfig sc;
    sc.listen = "127.0.0.1:0";
    sc.loopTimeout = std::chrono::milliseconds(2000);
    server_ = std::make_unique<AdminServer>(io_, *auth_, sc);
    addTrunkRoutes(*server_, *trunk_, *db_);
    auto bound = server_->start();
    ASSERT_TRUE(bound.ok()) << bound.error().message;
    loop_ = std::thread([this] { io_.run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", bound->port);
    auto r = client_->Post("/api/v1/session", json{{"password", kAdminPassword}}.dump(),
                           "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto setCookie = r->get_header_value("Set-Cookie");
    headers_ = {{"Cookie", setCookie.substr(0, setCookie.find(';'))},
                {"X-CSRF-Token", json::parse(r->body)["csrfToken"].get<std::string>()}};
  }
  void TearDown() override {
    server_->stop();
    work_.reset();
    io_.stop();
    if (loop_.joinable()) loop_.join();
  }
  std::pair<int, json> put(const json& body) {
    auto r = client_->Put("/api/v1/trunk", headers_, body.dump(), "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> get() {
    auto r = client_->Get("/api/v1/trunk", headers_);
    if (!r) return {0, json()};
    EXPECT_EQ(r->body.find(kSecret), std::string::npos);
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  json settings() {
    json s = toJson(pbx::redacted(fullConfig()));
    s.erase("passwordSet");
    s["password"] = kSecret;
    s["registrar"] = "127.0.0.1:5999"; // numeric: no DNS
    s["outboundProxy"] = "";
    s["transport"] = "udp";
    return s;
  }

  ManualTimers authTimers_;
  sip::test::Harness h_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  std::thread loop_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<AdminAuth> auth_;
  std::unique_ptr<pbx::TrunkManager> trunk_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
  httplib::Headers headers_;
};

TEST_F(TrunkRoutesTest, NewTrunkNeedsAPassword) {
  auto s = settings();
  s.erase("password");
  auto [st, j] = put(s);
  EXPECT_EQ(st, 400);
  EXPECT_EQ(j["error"]["field"], "password") << j.dump();
  EXPECT_EQ(get().second["status"]["state"], "disabled");
}

TEST_F(TrunkRoutesTest, GetShowsDisabledTrunk) {
  auto [st, j] = get();
  ASSERT_EQ(st, 200);
  EXPECT_EQ(j["status"]["state"], "disabled");
  EXPECT_EQ(j["settings"]["enabled"], false);
  EXPECT_EQ(j["settings"]["passwordSet"], false);
}

TEST_F(TrunkRoutesTest, NeedsAuthentication) {
  auto r = client_->Get("/api/v1/trunk");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  auto p = client_->Put("/api/v1/trunk", settings().dump(), "application/json");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 401);
}

TEST_F(TrunkRoutesTest, PutValidatesSavesAppliesAndNeverShowsThePassword) {
  auto [st, j] = put(settings());
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["settings"]["passwordSet"], true);
  EXPECT_EQ(j["settings"]["registrar"], "127.0.0.1:5999");
  EXPECT_EQ(j["status"]["state"], "registering");
  EXPECT_EQ(j["status"]["activeTarget"], "UDP 127.0.0.1:5999");
  EXPECT_EQ(j.dump().find(kSecret), std::string::npos);
  // Applied: the manager sent a REGISTER to the carrier.
  ASSERT_FALSE(h_.tp.sent.empty());
  EXPECT_EQ(h_.tp.sent.back().bytes.rfind("REGISTER sip:127.0.0.1:5999 SIP/2.0", 0), 0u);
  EXPECT_EQ(h_.tp.sent.back().to.remote.toString(), "127.0.0.1:5999");
  // Saved, with the password.
  auto stored = pbx::loadTrunk(*db_);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->password, kSecret);
  EXPECT_EQ((*stored)->dids.size(), 2u);

  // Without a password: the stored one is kept.
  auto s2 = settings();
  s2.erase("password");
  s2["expiry"] = 120;
  auto [st2, j2] = put(s2);
  ASSERT_EQ(st2, 200) << j2.dump();
  EXPECT_EQ(j2["settings"]["expiry"], 120);
  EXPECT_EQ(j2["settings"]["passwordSet"], true);
  stored = pbx::loadTrunk(*db_);
  EXPECT_EQ((*stored)->password, kSecret);
  EXPECT_EQ((*stored)->expiry, 120u);

  // Disabling.
  auto s3 = settings();
  s3["enabled"] = false;
  s3["password"] = "";
  auto [st3, j3] = put(s3);
  ASSERT_EQ(st3, 200);
  EXPECT_EQ(j3["status"]["state"], "disabled");
  EXPECT_EQ(get().second["settings"]["enabled"], false);
}

TEST_F(TrunkRoutesTest, InvalidSettingsAre400NamingTheFieldAndChangeNothing) {
  ASSERT_EQ(put(settings()).first, 200);
  struct Case {
    const char* key;
    json value;
    const char* field;
  };
  for (const auto& c :
       std::vector<Case>{{"registrar", "", "registrar"},
                         {"expiry", 30, "expiry"},
                         {"expiry", "600", "expiry"},
                         {"username", "a b", "username"},
                         {"dids", json::array({{{"did", "abc"}, {"target", "1"}}}), "dids"},
                         {"outboundPattern", "([", "outboundPattern"},
                         {"trustedAddresses", json::array({"not-an-ip"}), "trustedAddresses"},
                         {"colour", "blue", "colour"}}) {
    auto s = settings();
    s[c.key] = c.value;
    auto [st, j] = put(s);
    EXPECT_EQ(st, 400) << c.key;
    EXPECT_EQ(j["error"]["code"], "invalid") << c.key;
    EXPECT_EQ(j["error"]["field"], c.field) << j.dump();
  }
  // Nothing of that was applied or saved.
  EXPECT_EQ(get().second["settings"]["registrar"], "127.0.0.1:5999");
  auto stored = pbx::loadTrunk(*db_);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ((*stored)->expiry, 300u);
  // Disabling without a password keeps the stored one.
  ASSERT_EQ(put(json{{"enabled", false}}).first, 200);
  stored = pbx::loadTrunk(*db_);
  EXPECT_EQ((*stored)->password, kSecret);

  auto s = get().second;
  EXPECT_EQ(s["settings"]["enabled"], false);
  auto body = client_->Put("/api/v1/trunk", headers_, "{not json", "application/json");
  ASSERT_TRUE(body);
  EXPECT_EQ(body->status, 400);
}

} // namespace
} // namespace verbund::http

#pragma once
// A running admin server for tests: AdminServer with the directory routes on 127.0.0.1:0, the
// node loop on its own thread, cpp-httplib's client.
#include "http/admin_server.h"
#include "http/directory_routes.h"

#include "base/manual_timers.h"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <future>
#include <gtest/gtest.h>
#include <httplib.h>

namespace verbund::http {

using nlohmann::json;
inline constexpr const char* kPassword = "admin-password-1";

class AdminServerTest : public ::testing::Test {
protected:
  void SetUp() override {
    db_ = std::move(store::Database::open(":memory:", migrations()).value());
    AuthConfig ac;
    ac.pbkdf2Iterations = 1000;
    auth_ = std::move(AdminAuth::open(*db_, timers_, ac).value());
    ASSERT_TRUE(auth_->bootstrap(std::string(kPassword)).ok());
    dir_ = std::move(pbx::Directory::open(*db_, "test.realm").value());
    AdminServerConfig sc;
    sc.listen = "127.0.0.1:0";
    sc.nodeName = "node-a";
    sc.version = "0.1.0";
    sc.loopTimeout = std::chrono::milliseconds(500);
    configure(sc);
    server_ = std::make_unique<AdminServer>(io_, *auth_, sc);
    addDirectoryRoutes(*server_, *dir_,
                       [this](const std::string& number) { return warningsFor(number); });
    addRoutes(*server_);
    auto bound = server_->start();
    ASSERT_TRUE(bound.ok()) << bound.error().message;
    ASSERT_NE(bound->port, 0);
    port_ = bound->port;
    loop_ = std::thread([this] { io_.run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", bound->port);
  }
  // Changes to the server configuration of a test suite.
  virtual void configure(AdminServerConfig&) {}
  // More routes of a test suite (before start).
  virtual void addRoutes(AdminServer&) {}
  // The numbers other sites use, as the federation would answer (runs on the loop).
  virtual json warningsFor(const std::string&) const { return json::array(); }
  void TearDown() override {
    server_->stop();
    work_.reset();
    io_.stop();
    if (loop_.joinable()) loop_.join();
  }
  static std::vector<store::Migration> migrations() {
    auto m = AdminAuth::migrations();
    for (auto& x : pbx::Directory::migrations()) m.push_back(x);
    return m;
  }

  // Logs in; fills cookie_ and csrf_.
  void login() {
    auto r =
        client_->Post("/api/v1/session", json{{"password", kPassword}}.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto setCookie = r->get_header_value("Set-Cookie");
    EXPECT_NE(setCookie.find("HttpOnly"), std::string::npos);
    EXPECT_NE(setCookie.find("SameSite=Strict"), std::string::npos);
    cookie_ = setCookie.substr(0, setCookie.find(';'));
    csrf_ = json::parse(r->body)["csrfToken"].get<std::string>();
  }
  httplib::Headers session(bool withCsrf = true) const {
    httplib::Headers h{{"Cookie", cookie_}};
    if (withCsrf) h.emplace("X-CSRF-Token", csrf_);
    return h;
  }
  static json body(const httplib::Result& r) { return json::parse(r->body, nullptr, false); }

  ManualTimers timers_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  std::thread loop_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<AdminAuth> auth_;
  std::unique_ptr<pbx::Directory> dir_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string cookie_, csrf_;
  uint16_t port_ = 0;
};

} // namespace verbund::http

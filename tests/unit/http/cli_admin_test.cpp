// The CLI against a running admin server: parses real argument vectors and checks output and
// exit codes.
#include "app/cli_admin.h"

#include "server_fixture.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace verbund::http {
namespace {

class CliTest : public AdminServerTest {
protected:
  struct Run {
    int code;
    std::string out, err;
  };
  Run cli(std::vector<std::string> args, const std::string& stdinText = "") {
    CLI::App app;
    app::AdminCommands cmds(app);
    args.push_back("--api");
    args.push_back("http://127.0.0.1:" + std::to_string(server_->port()));
    args.push_back("--password-file");
    args.push_back(passwordFile_.string());
    std::vector<const char*> argv{"verbund"};
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
      app.parse(int(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return {100 + e.get_exit_code(), "", e.what()};
    }
    EXPECT_TRUE(cmds.selected());
    std::istringstream in(stdinText);
    std::ostringstream out, err;
    int code = cmds.run(in, out, err);
    return {code, out.str(), err.str()};
  }
  void SetUp() override {
    AdminServerTest::SetUp();
    passwordFile_ =
        std::filesystem::temp_directory_path() / ("verbund-cli-test-" + std::to_string(getpid()));
    std::ofstream(passwordFile_) << kPassword << "\n";
  }
  void TearDown() override {
    std::filesystem::remove(passwordFile_);
    AdminServerTest::TearDown();
  }
  std::filesystem::path passwordFile_;
};

TEST_F(CliTest, UsersAndGroups) {
  auto r = cli({"user", "add", "101", "Alice", "--external", "+4930123456"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Alice"), std::string::npos);
  EXPECT_NE(r.out.find("device password: "), std::string::npos);
  r = cli({"user", "add", "102", "Bob", "--sip-password-stdin", "--language", "en"},
          "bob-password\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("device password"), std::string::npos);

  r = cli({"user", "add", "102", "Bobby", "--sip-password-stdin"}, "bob-password\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "verbund: extension: already used by user 'Bob'\n");
  r = cli({"user", "add", "1", "X"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("extension: digits only"), std::string::npos);

  r = cli({"user", "set", "101", "--name", "Alice W"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli({"user", "list", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto users = nlohmann::json::parse(r.out);
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0]["displayName"], "Alice W");
  r = cli({"user", "list"});
  EXPECT_EQ(r.out.substr(0, 9), "EXTENSION");

  r = cli({"group", "add", "600", "Sales", "-m", "101", "-m", "102", "-m", "node-b/201"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("101,102,node-b/201"), std::string::npos);
  r = cli({"group", "logout", "600", "102"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("102(out)"), std::string::npos);
  r = cli({"group", "login", "600", "102"});
  EXPECT_EQ(r.out.find("(out)"), std::string::npos);
  r = cli({"group", "set", "600", "--name", "Sales Team"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = cli({"user", "delete", "102"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli({"group", "list", "--json"});
  auto groups = nlohmann::json::parse(r.out);
  EXPECT_EQ(groups[0]["name"], "Sales Team");
  EXPECT_EQ(groups[0]["members"].size(), 2u);
  r = cli({"group", "delete", "600"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = cli({"group", "delete", "600"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "verbund: no group with number 600\n");
}

TEST_F(CliTest, UserFeatures) {
  ASSERT_EQ(cli({"user", "add", "101", "Alice"}).code, 0);
  auto r = cli({"user", "features", "101", "--dnd", "on", "--forward-busy", "202",
                "--forward-noanswer", "+4930123456", "--noanswer-seconds", "15"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 9), "EXTENSION");
  EXPECT_NE(r.out.find("+4930123456"), std::string::npos);
  r = cli({"user", "features", "101", "--forward-busy", "off", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto u = nlohmann::json::parse(r.out);
  EXPECT_EQ(u["dnd"], true);
  EXPECT_EQ(u["forward"]["busy"], "");
  EXPECT_EQ(u["forward"]["noAnswer"], "+4930123456");
  EXPECT_EQ(u["forward"]["noAnswerSeconds"], 15);
  r = cli({"user", "features", "101", "--forward-always", "12x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("verbund: forward.always: ", 0), 0u) << r.err;
  r = cli({"user", "features", "101", "--dnd", "maybe"});
  EXPECT_EQ(r.code, 2);
}

TEST_F(CliTest, AdminSetPasswordAndErrors) {
  auto r = cli({"admin", "set-password"}, "short\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("password: at least 8"), std::string::npos);
  r = cli({"admin", "set-password"}, "brand-new-password\n");
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli({"user", "list"}); // the file still holds the old password
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "verbund: password: wrong password\n");
  std::ofstream(passwordFile_) << "brand-new-password\n";
  EXPECT_EQ(cli({"user", "list"}).code, 0);

  CLI::App app;
  app::AdminCommands cmds(app);
  const char* argv[] = {"verbund", "user", "list", "--api", "http://127.0.0.1:1",
                        "--token", "vbt_x"};
  app.parse(7, argv);
  std::istringstream in;
  std::ostringstream out, err;
  EXPECT_EQ(cmds.run(in, out, err), 2);
  EXPECT_NE(err.str().find("cannot reach the node"), std::string::npos);
}

// A passphrase file that others may read is refused before anything is sent or written.
TEST_F(CliTest, FederationPassphraseFileMustBePrivate) {
  auto loose = passwordFile_.string() + ".pass";
  auto out = passwordFile_.string() + ".pem";
  std::ofstream(loose) << "a long passphrase\n";
  ::chmod(loose.c_str(), 0644);
  auto r = cli({"federation", "certificate", "-o", out, "--passphrase-file", loose});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  r = cli({"federation", "join", passwordFile_.string(), "--passphrase-file", loose});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("must not be accessible to group or others"), std::string::npos) << r.err;
  std::filesystem::remove(loose);
}

} // namespace
} // namespace verbund::http

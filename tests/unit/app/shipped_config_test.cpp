// The configuration file the Debian package installs (debian/verbund.toml) against the parser:
// it shows every key loadConfig accepts, commented out, in its section, and with every key
// uncommented it still loads (the examples are valid values).
#include "app/config.h"

#include <algorithm>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

namespace verbund::app {

namespace {

std::string shippedText() {
  std::ifstream f(VERBUND_SHIPPED_CONFIG);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "section.key" of every commented "# key = value" line.
std::set<std::string> commentedKeys(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line, section;
  std::regex sectionRx(R"(^\[(\w+)\]\s*$)"), keyRx(R"(^# (\w+) = .+$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, sectionRx))
      section = m[1];
    else if (std::regex_match(line, m, keyRx) && !section.empty())
      out.insert(section + "." + std::string(m[1]));
  }
  return out;
}

std::string uncommentAll(const std::string& text) {
  return std::regex_replace(text, std::regex(R"(^# (\w+ = ))", std::regex::multiline), "$1");
}

class ShippedConfig : public ::testing::Test {
protected:
  std::string path =
      ::testing::TempDir() + "verbund-shipped-config-" + std::to_string(::getpid()) + ".toml";
  void TearDown() override { ::unlink(path.c_str()); }
  Result<NodeConfig> load(const std::string& text) {
    std::ofstream(path) << text;
    return loadConfig(path);
  }
};

} // namespace

TEST_F(ShippedConfig, ShowsEveryKeyTheParserAccepts) {
  std::string text = shippedText();
  ASSERT_FALSE(text.empty()) << VERBUND_SHIPPED_CONFIG;
  auto shown = commentedKeys(text);
  for (const auto& key : configKeys()) EXPECT_TRUE(shown.count(key)) << key << " is not shown";
  for (const auto& key : shown) {
    const auto& keys = configKeys();
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end())
        << key << " is shown but not a key";
  }
}

TEST_F(ShippedConfig, AsShippedItIsTheDefault) {
  auto c = load(shippedText());
  ASSERT_TRUE(c) << c.error().message;
  NodeConfig d = defaultConfig();
  EXPECT_EQ(c->sipUdp, d.sipUdp);
  EXPECT_EQ(c->adminListen, d.adminListen);
  EXPECT_EQ(c->logLevel, d.logLevel);
}

TEST_F(ShippedConfig, EveryKeyUncommentedLoadsWithTheShownValues) {
  auto c = load(uncommentAll(shippedText()));
  ASSERT_TRUE(c) << c.error().message;
  NodeConfig d = defaultConfig();
  // The shown values are the defaults (except for examples of keys without a fixed default).
  EXPECT_EQ(c->sipUdp, d.sipUdp);
  EXPECT_EQ(c->sipTcp, d.sipTcp);
  EXPECT_EQ(c->adminListen, d.adminListen);
  EXPECT_EQ(c->noAnswerSeconds, d.noAnswerSeconds);
  EXPECT_EQ(c->sessionExpiresSeconds, d.sessionExpiresSeconds);
  EXPECT_EQ(c->authMaxFailures, d.authMaxFailures);
  EXPECT_EQ(c->sipMaxConnectionsPerSource, d.sipMaxConnectionsPerSource);
  EXPECT_EQ(c->federationListen, d.federationListen);
  EXPECT_EQ(c->federationHelloTimeoutMs, d.federationHelloTimeoutMs);
  EXPECT_EQ(c->mediaOwnRtpengine, d.mediaOwnRtpengine);
  EXPECT_EQ(c->mediaPortMin, d.mediaPortMin);
  EXPECT_EQ(c->mediaPortMax, d.mediaPortMax);
  EXPECT_EQ(c->digestAlgorithms, d.digestAlgorithms);
}

TEST_F(ShippedConfig, UnlistedKeyIsRefused) {
  auto c = load("[sip]\nudpp = \"0.0.0.0:5060\"\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("unknown key sip.udpp"), std::string::npos);
  auto section = load("[sipp]\nudp = \"0.0.0.0:5060\"\n");
  ASSERT_FALSE(section);
  EXPECT_NE(section.error().message.find("unknown section sipp"), std::string::npos);
}

} // namespace verbund::app

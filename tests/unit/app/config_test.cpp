// The node's TOML: the connection-limit keys (issue 10), their defaults and range checks.
#include "app/config.h"

#include <cstdio>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>

namespace verbund::app {
namespace {

class ConfigFile : public ::testing::Test {
protected:
  Result<NodeConfig> load(const std::string& text) {
    path_ = ::testing::TempDir() + "verbund-config-" + std::to_string(::getpid()) + ".toml";
    std::ofstream(path_) << text;
    return loadConfig(path_);
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_;
};

TEST_F(ConfigFile, ConnectionLimitDefaults) {
  auto c = load("");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->sipMaxConnections, 0); // derived from the open-file limit
  EXPECT_EQ(c->sipMaxConnectionsPerSource, 256);
  EXPECT_EQ(c->sipMaxPendingPerSource, 32);
  EXPECT_EQ(c->sipFirstMessageTimeoutMs, 10000);
  EXPECT_EQ(c->federationMaxConnections, 0);
  EXPECT_EQ(c->federationMaxPending, 64);
  EXPECT_EQ(c->federationMaxPendingPerSource, 4);
  EXPECT_EQ(c->federationReservedForMembers, 16);
  EXPECT_EQ(c->federationHelloTimeoutMs, 2000);
}

TEST_F(ConfigFile, ConnectionLimitKeys) {
  auto c = load("[sip]\nmax_connections = 5000\nmax_connections_per_source = 0\n"
                "max_pending_per_source = 8\nfirst_message_timeout_ms = 3000\n"
                "[federation]\nmax_connections = 100\nmax_pending = 20\n"
                "max_pending_per_source = 2\nreserved_for_members = 5\nhello_timeout_ms = 1500\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->sipMaxConnections, 5000);
  EXPECT_EQ(c->sipMaxConnectionsPerSource, 0);
  EXPECT_EQ(c->sipMaxPendingPerSource, 8);
  EXPECT_EQ(c->sipFirstMessageTimeoutMs, 3000);
  EXPECT_EQ(c->federationMaxConnections, 100);
  EXPECT_EQ(c->federationMaxPending, 20);
  EXPECT_EQ(c->federationMaxPendingPerSource, 2);
  EXPECT_EQ(c->federationReservedForMembers, 5);
  EXPECT_EQ(c->federationHelloTimeoutMs, 1500);
}

TEST_F(ConfigFile, ConnectionLimitErrorsNameTheKey) {
  struct Case {
    const char* toml;
    const char* key;
  };
  for (const Case& k :
       {Case{"[sip]\nmax_connections = -1\n", "sip.max_connections"},
        Case{"[sip]\nfirst_message_timeout_ms = 10\n", "sip.first_message_timeout_ms"},
        Case{"[sip]\nmax_pending_per_source = \"x\"\n", "sip.max_pending_per_source"},
        Case{"[federation]\nhello_timeout_ms = 0\n", "federation.hello_timeout_ms"},
        Case{"[federation]\nmax_pending = 10\nreserved_for_members = 10\n",
             "federation.reserved_for_members"}}) {
    auto c = load(k.toml);
    ASSERT_FALSE(c.ok()) << k.toml;
    EXPECT_NE(c.error().message.find(k.key), std::string::npos) << c.error().message;
  }
}

TEST_F(ConfigFile, FederationSessionTimerKeys) {
  auto d = load("");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->federationSessionExpiresSeconds, 90);
  EXPECT_EQ(d->federationMinSessionExpiresSeconds, 90);
  auto c = load("[federation]\nsession_expires = 120\nmin_se = 30\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->federationSessionExpiresSeconds, 120);
  EXPECT_EQ(c->federationMinSessionExpiresSeconds, 30);
  auto off = load("[federation]\nsession_expires = 0\n");
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_EQ(off->federationSessionExpiresSeconds, 0);
  for (const char* toml : {"[federation]\nsession_expires = 1\n", "[federation]\nmin_se = 0\n",
                           "[federation]\nsession_expires = \"90\"\n"}) {
    auto e = load(toml);
    ASSERT_FALSE(e.ok()) << toml;
    EXPECT_NE(e.error().message.find("federation."), std::string::npos) << e.error().message;
  }
}

TEST_F(ConfigFile, MediaDefaultsToOwnRtpengine) {
  auto c = load("");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->mediaOwnRtpengine);
  EXPECT_TRUE(c->mediaRtpengine.empty());
  EXPECT_EQ(c->mediaPortMin, 40000);
  EXPECT_EQ(c->mediaPortMax, 49999);
  EXPECT_EQ(c->mediaInterface, "");
  EXPECT_EQ(c->mediaAnchor, "always");
  auto a = load("[media]\nrtpengine = \"auto\"\nport_min = 20000\nport_max = 20999\n"
                "interface = \"192.0.2.7\"\n");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->mediaOwnRtpengine);
  EXPECT_EQ(a->mediaPortMin, 20000);
  EXPECT_EQ(a->mediaPortMax, 20999);
  EXPECT_EQ(a->mediaInterface, "192.0.2.7");
}

TEST_F(ConfigFile, MediaAnchorModes) {
  for (const char* mode : {"always", "off", "remote"}) {
    auto c = load(std::string("[media]\nanchor = \"") + mode + "\"\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->mediaAnchor, mode);
  }
}

TEST_F(ConfigFile, MediaExternalInstances) {
  auto c = load("[media]\nrtpengine = [\"127.0.0.1:2223\", \"[::1]:2224\"]\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c->mediaOwnRtpengine);
  EXPECT_EQ(c->mediaRtpengine, (std::vector<std::string>{"127.0.0.1:2223", "[::1]:2224"}));
  auto one = load("[media]\nrtpengine = \"10.0.0.5:2223\"\n");
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_FALSE(one->mediaOwnRtpengine);
}

TEST_F(ConfigFile, MediaErrors) {
  for (const char* bad :
       {"rtpengine = []", "rtpengine = [\"rtp.example.com:2223\"]", "rtpengine = [\"127.0.0.1\"]",
        "rtpengine = 5", "port_min = 80", "port_max = 70000", "port_min = 50000\nport_max = 40000",
        "interface = \"0.0.0.0\"", "interface = \"eth0\"", "nope = 1", "anchor = \"sometimes\"",
        "anchor = true"}) {
    auto c = load(std::string("[media]\n") + bad + "\n");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.error().message.find("media."), std::string::npos) << c.error().message;
  }
}

} // namespace
} // namespace verbund::app

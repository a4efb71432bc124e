#include "http/origin_check.h"

#include <gtest/gtest.h>

namespace verbund::http {
namespace {

const std::vector<std::string> kNone;
const std::vector<std::string> kProxy{"https://pbx.example.com"};

TEST(OriginCheck, HostOf) {
  EXPECT_EQ(hostOf("127.0.0.1:8080"), "127.0.0.1");
  EXPECT_EQ(hostOf("[::1]:8080"), "::1");
  EXPECT_EQ(hostOf("[::1]"), "::1");
  EXPECT_EQ(hostOf("LocalHost"), "localhost");
  EXPECT_EQ(hostOf("a:b"), "");
  EXPECT_EQ(hostOf("[::1"), "");
}

TEST(OriginCheck, HostsAreIpLiteralsLocalhostOrConfigured) {
  EXPECT_TRUE(hostAllowed("", kNone)); // not a browser
  EXPECT_TRUE(hostAllowed("127.0.0.1:8080", kNone));
  EXPECT_TRUE(hostAllowed("[::1]:8080", kNone));
  EXPECT_TRUE(hostAllowed("localhost:8080", kNone));
  EXPECT_TRUE(hostAllowed("10.1.2.3", kNone));
  EXPECT_FALSE(hostAllowed("evil.example:8080", kNone)); // DNS rebinding
  EXPECT_FALSE(hostAllowed("pbx.example.com", kNone));
  EXPECT_TRUE(hostAllowed("pbx.example.com", kProxy));
  EXPECT_TRUE(hostAllowed("PBX.example.com:443", kProxy));
}

TEST(OriginCheck, OriginsMustBeSameOriginOrConfigured) {
  EXPECT_TRUE(originAllowed("", "127.0.0.1:8080", kNone));
  EXPECT_TRUE(originAllowed("http://127.0.0.1:8080", "127.0.0.1:8080", kNone));
  EXPECT_TRUE(originAllowed("http://localhost:8080", "localhost:8080", kNone));
  EXPECT_FALSE(originAllowed("http://evil.example", "127.0.0.1:8080", kNone));
  EXPECT_FALSE(originAllowed("http://127.0.0.1:9999", "127.0.0.1:8080", kNone));
  EXPECT_FALSE(originAllowed("null", "127.0.0.1:8080", kNone));
  EXPECT_FALSE(originAllowed("http://evil.example:8080", "evil.example:8080", kNone));
  EXPECT_FALSE(originAllowed("ftp://127.0.0.1:8080", "127.0.0.1:8080", kNone));
  // Behind a proxy that rewrites Host to the upstream address.
  EXPECT_TRUE(originAllowed("https://pbx.example.com", "127.0.0.1:8080", kProxy));
  EXPECT_TRUE(originAllowed("HTTPS://PBX.example.com", "127.0.0.1:8080", kProxy));
  EXPECT_FALSE(originAllowed("http://pbx.example.com", "127.0.0.1:8080", kProxy));
}

} // namespace
} // namespace verbund::http

#include "base/net.h"

#include <gtest/gtest.h>

namespace verbund {
namespace {

bool privateIp(const char* s) {
  auto a = IpAddress::parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a && a->isPrivate();
}

TEST(IpAddress, PrivateRangesBehindNat) {
  for (const char* p :
       {"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.1", "192.168.1.2", "100.64.0.1",
        "100.127.255.254", "169.254.3.4", "fd00::1", "fc12::2", "fe80::1"})
    EXPECT_TRUE(privateIp(p)) << p;
  for (const char* p :
       {"127.0.0.1", "0.0.0.0", "172.15.0.1", "172.32.0.1", "192.169.0.1", "100.63.255.255",
        "100.128.0.1", "8.8.8.8", "203.0.113.7", "::1", "2001:db8::1", "fec0::1"})
    EXPECT_FALSE(privateIp(p)) << p;
}

} // namespace
} // namespace verbund

#include "net/fd_limit.h"

#include <gtest/gtest.h>

namespace verbund::net {
namespace {

TEST(FileLimit, RaisesTowardsTheHardLimitAndNeverLowers) {
  FileLimit l = raiseFileLimit();
  EXPECT_GE(l.soft, l.before);
  EXPECT_LE(l.soft, l.hard);
  EXPECT_EQ(currentFileLimit(), l.soft);
  FileLimit again = raiseFileLimit();
  EXPECT_EQ(again.before, l.soft);
  EXPECT_EQ(again.soft, l.soft);
}

TEST(FileLimit, BudgetLeavesHeadroom) {
  for (uint64_t limit : {1024ull, 4096ull, 65536ull, 1048576ull}) {
    ConnectionBudget b = connectionBudget(limit);
    EXPECT_GE(b.headroom, 256u) << limit;
    EXPECT_LE(b.sip + b.federation + b.headroom, limit) << limit;
    EXPECT_GE(b.federation, 16u) << limit;
    EXPECT_LE(b.federation, 1024u) << limit;
  }
  // The default 1,024 descriptors: fewer SIP connections than descriptors, by the headroom.
  ConnectionBudget small = connectionBudget(1024);
  EXPECT_EQ(small.headroom, 256u);
  EXPECT_EQ(small.federation, 48u);
  EXPECT_EQ(small.sip, 720u);
}

TEST(FileLimit, TinyLimitsStillAllowSomeConnections) {
  ConnectionBudget b = connectionBudget(100);
  EXPECT_GT(b.sip, 0u);
  EXPECT_GT(b.federation, 0u);
}

} // namespace
} // namespace verbund::net

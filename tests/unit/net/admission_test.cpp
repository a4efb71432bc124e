// The admission policy without sockets: caps, per-source accounting, the members' reserve.
#include "net/admission.h"

#include <gtest/gtest.h>

namespace verbund::net {
namespace {

IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}

TEST(Admission, PendingPerSourceCapRefusesOnlyThatSource) {
  AdmissionLimits l;
  l.maxPendingPerSource = 2;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2, t3, other;
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t1), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t2), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t3),
            Admission::Verdict::PendingPerSourceCap);
  EXPECT_FALSE(t3);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.2"), false, other), Admission::Verdict::Admit);
  // A first message frees the pending slot; the connection stays open.
  t1.firstMessage();
  EXPECT_EQ(a->pendingFrom(ip("192.0.2.1")), 1u);
  EXPECT_EQ(a->openFrom(ip("192.0.2.1")), 2u);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t3), Admission::Verdict::Admit);
}

TEST(Admission, OpenPerSourceCapCountsEstablishedConnections) {
  AdmissionLimits l;
  l.maxPerSource = 2;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2, t3;
  ASSERT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t1), Admission::Verdict::Admit);
  ASSERT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t2), Admission::Verdict::Admit);
  t1.firstMessage();
  t2.firstMessage();
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t3), Admission::Verdict::PerSourceCap);
  t1.release();
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t3), Admission::Verdict::Admit);
}

TEST(Admission, TicketsReleaseOnceAndOnDestruction) {
  auto a = std::make_shared<Admission>(AdmissionLimits{});
  {
    Admission::Ticket t;
    ASSERT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t), Admission::Verdict::Admit);
    EXPECT_EQ(a->open(), 1u);
    EXPECT_EQ(a->pending(), 1u);
    Admission::Ticket moved = std::move(t);
    t.release(); // moved-from: nothing
    EXPECT_EQ(a->open(), 1u);
    moved.firstMessage();
    moved.firstMessage();
    EXPECT_EQ(a->pending(), 0u);
  }
  EXPECT_EQ(a->open(), 0u);
  EXPECT_EQ(a->pending(), 0u);
  EXPECT_EQ(a->openFrom(ip("192.0.2.1")), 0u);
}

TEST(Admission, GlobalCapsKeepTheReserveForPrivilegedSources) {
  AdmissionLimits l;
  l.maxConnections = 100;
  l.maxPending = 3;
  l.reserved = 1;
  l.maxPendingPerSource = 1;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2, t3, member, member2;
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t1), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.2"), false, t2), Admission::Verdict::Admit);
  // Only the reserve is left: strangers are refused, a member gets in.
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.3"), false, t3), Admission::Verdict::PendingCap);
  EXPECT_EQ(Admission::admit(a, ip("198.51.100.7"), true, member), Admission::Verdict::Admit);
  // The reserve is a share of the cap, not beyond it.
  EXPECT_EQ(Admission::admit(a, ip("198.51.100.8"), true, member2), Admission::Verdict::PendingCap);
}

TEST(Admission, PrivilegedSourcesAreNotHeldToPerSourceCaps) {
  AdmissionLimits l;
  l.maxPendingPerSource = 1;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2;
  EXPECT_EQ(Admission::admit(a, ip("198.51.100.7"), true, t1), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("198.51.100.7"), true, t2), Admission::Verdict::Admit);
}

TEST(Admission, GlobalOpenCap) {
  AdmissionLimits l;
  l.maxConnections = 1;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2;
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t1), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("192.0.2.2"), false, t2), Admission::Verdict::GlobalCap);
}

TEST(Admission, Ipv6SourcesAreGroupedBySlash64) {
  AdmissionLimits l;
  l.maxPendingPerSource = 1;
  auto a = std::make_shared<Admission>(l);
  Admission::Ticket t1, t2, t3;
  EXPECT_EQ(Admission::admit(a, ip("2001:db8:1:2::1"), false, t1), Admission::Verdict::Admit);
  EXPECT_EQ(Admission::admit(a, ip("2001:db8:1:2::ffff"), false, t2),
            Admission::Verdict::PendingPerSourceCap);
  EXPECT_EQ(Admission::admit(a, ip("2001:db8:1:3::1"), false, t3), Admission::Verdict::Admit);
  EXPECT_NE(Admission::sourceKey(ip("0.0.0.1")), Admission::sourceKey(ip("::1")));
}

TEST(Admission, PublishesGauges) {
  // Registered for the process lifetime, like every gauge.
  static Gauge open("test_admission_open", "test"), pending("test_admission_pending", "test");
  ConnectionMetrics m;
  m.open = &open;
  m.pending = &pending;
  auto a = std::make_shared<Admission>(AdmissionLimits{}, m);
  Admission::Ticket t;
  ASSERT_EQ(Admission::admit(a, ip("192.0.2.1"), false, t), Admission::Verdict::Admit);
  EXPECT_EQ(open.value(), 1.0);
  EXPECT_EQ(pending.value(), 1.0);
  t.firstMessage();
  EXPECT_EQ(pending.value(), 0.0);
  t.release();
  EXPECT_EQ(open.value(), 0.0);
}

} // namespace
} // namespace verbund::net

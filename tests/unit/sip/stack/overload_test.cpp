// Overload control in the stack, in simulated time: old datagrams make the node refuse new
// INVITE/REGISTER/SUBSCRIBE with 503 + Retry-After; everything else is served, in-dialog first.
#include "sip/stack/sip_stack.h"
#include "unit/sip/transaction/test_support.h"

#include <cstring>

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;
using namespace verbund::sip::testing;

double gauge(const char* name) {
  for (const Gauge* g : allGauges())
    if (std::strcmp(g->name(), name) == 0) return g->value();
  ADD_FAILURE() << "no gauge " << name;
  return 0;
}

class OverloadTest : public ::testing::Test {
protected:
  ManualTimers timers;
  FakeTransport transport;
  RecordingTu tu;
  std::unique_ptr<SipStack> stack;
  Peer udp = peer(TransportType::Udp, "198.51.100.7:40000");
  int branch = 0;

  void SetUp() override { make({}); }
  void make(OverloadConfig oc) {
    StackConfig cfg;
    cfg.overload = oc; // target 150 ms, interval 100 ms
    stack = std::make_unique<SipStack>(transport, timers, tu, cfg);
  }
  // One datagram, `age` old when the loop gets to it, delivered in a batch of its own.
  void receive(const std::string& bytes, Duration age = 0ms) {
    stack->onReceiveBatchBegin();
    stack->onReceive(bytes, udp, timers.now() - age);
    stack->onReceiveBatchEnd(0);
  }
  std::string request(std::string method, std::string toTag = {}, std::string extra = {}) {
    RequestSpec s;
    s.method = std::move(method);
    s.toTag = std::move(toTag);
    s.extra = std::move(extra);
    s.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKov" + std::to_string(++branch);
    s.callId = "ov-" + std::to_string(branch);
    return requestText(s);
  }
  // Intervals in which every datagram waited `age` (an OPTIONS, never shed, carries the sample).
  void queueFor(int intervals, Duration age) {
    for (int i = 0; i < intervals; ++i) {
      receive(request("OPTIONS"), age);
      timers.advance(100ms);
    }
  }
  bool shedding() const { return stack->overload().state() == OverloadControl::State::Shedding; }
  // The last thing sent is a 503 with Retry-After; returns its value.
  int last503() {
    auto r = transport.last();
    EXPECT_EQ(r->statusCode(), 503);
    return std::atoi(header(*r, HeaderId::RetryAfter).c_str());
  }
};

TEST_F(OverloadTest, OldDatagramsMakeNewInviteRegisterSubscribeGet503WithRetryAfter) {
  queueFor(5, 1s);
  ASSERT_TRUE(shedding());
  EXPECT_DOUBLE_EQ(stack->overload().shedFraction(), 1.0);
  EXPECT_EQ(gauge("verbund_sip_overload_state"), 1);
  EXPECT_NEAR(gauge("verbund_sip_queue_delay_seconds"), 1.0, 0.001);
  size_t before = tu.requests.size();
  size_t transactions = stack->transactions().serverCount();
  uint64_t invites = counter("verbund_sip_overload_shed_invite_total");
  uint64_t registers = counter("verbund_sip_overload_shed_register_total");
  uint64_t subscribes = counter("verbund_sip_overload_shed_subscribe_total");
  for (const char* m : {"INVITE", "REGISTER", "SUBSCRIBE"}) {
    transport.clear();
    receive(request(m), 1s);
    ASSERT_EQ(transport.sent.size(), 1u) << m; // no 100 Trying: no transaction was made
    EXPECT_EQ(last503(), 5) << m;              // RFC 3261 §20.33: severity-scaled, 1..5 s
    EXPECT_FALSE(transport.last()->toTag().empty());
  }
  EXPECT_EQ(tu.requests.size(), before);
  EXPECT_EQ(stack->transactions().serverCount(), transactions);
  EXPECT_EQ(counter("verbund_sip_overload_shed_invite_total"), invites + 1);
  EXPECT_EQ(counter("verbund_sip_overload_shed_register_total"), registers + 1);
  EXPECT_EQ(counter("verbund_sip_overload_shed_subscribe_total"), subscribes + 1);
}

TEST_F(OverloadTest, InDialogRequestsAckCancelByeAndResponsesAreAlwaysServed) {
  queueFor(5, 1s);
  ASSERT_TRUE(shedding());
  transport.clear();
  receive(request("BYE", "tt1"), 1s);
  receive(request("INVITE", "tt2"), 1s);    // re-INVITE
  receive(request("SUBSCRIBE", "tt3"), 1s); // refresh
  receive(request("OPTIONS"), 1s);          // not named by the rule
  ASSERT_EQ(tu.requests.size(), 4u + 5u);   // the 5 OPTIONS of queueFor too
  receive(request("ACK", "tt2"), 1s);
  EXPECT_EQ(tu.acks.size(), 1u);
  receive(request("CANCEL"), 1s);
  EXPECT_EQ(transport.last()->statusCode(), 481); // matched nothing, but answered, not shed
  receive("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnone\r\n"
          "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\n"
          "Content-Length: 0\r\n\r\n",
          1s);
  EXPECT_EQ(tu.strays.size(), 1u); // reached the transaction layer
  for (size_t i = 0; i < transport.sent.size(); ++i)
    EXPECT_NE(transport.parsed(i)->statusCode(), 503);
}

TEST_F(OverloadTest, RetransmittedInviteWithATransactionIsAbsorbedNotShed) {
  std::string invite = request("INVITE");
  receive(invite);
  ASSERT_EQ(tu.requests.size(), 1u);
  ASSERT_TRUE(stack->transactions().respond(tu.requests[0].tx, 180));
  queueFor(5, 1s);
  ASSERT_TRUE(shedding());
  transport.clear();
  uint64_t absorbed = counter("verbund_sip_retransmissions_absorbed_total");
  receive(invite, 1s);
  EXPECT_EQ(counter("verbund_sip_retransmissions_absorbed_total"), absorbed + 1);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.last()->statusCode(), 180); // RFC 3261 §17.2.1: the last provisional
}

TEST_F(OverloadTest, OneSlowIntervalIsAbsorbedAndSheddingStopsOnceTheQueueIsShort) {
  // Hysteresis on the way in: one interval above target (a stall) sheds nothing.
  queueFor(1, 400ms);
  queueFor(1, 1ms);
  EXPECT_FALSE(shedding());
  // Two in a row start shedding.
  queueFor(2, 400ms);
  ASSERT_TRUE(shedding());
  // On the way out: the fraction decays while the queue stays short, not at once.
  queueFor(1, 1ms);
  EXPECT_TRUE(shedding());
  queueFor(10, 1ms);
  EXPECT_FALSE(shedding());
  EXPECT_EQ(gauge("verbund_sip_overload_state"), 0);
  transport.clear();
  receive(request("INVITE"));
  EXPECT_EQ(tu.requests.back().raw.substr(0, 6), "INVITE");
}

TEST_F(OverloadTest, PartialSheddingRefusesFreshRequestsFirstAndSpreadsRefusals) {
  queueFor(2, 400ms);
  ASSERT_TRUE(shedding());
  double p = stack->overload().shedFraction();
  ASSERT_GT(p, 0.0);
  ASSERT_LT(p, 1.0);
  // Requests answering a challenge already cost the node a round; they pass while p < 1.
  transport.clear();
  for (int i = 0; i < 10; ++i)
    receive(request("INVITE", {}, "Proxy-Authorization: Digest username=\"a\"\r\n"));
  for (size_t i = 0; i < transport.sent.size(); ++i)
    EXPECT_NE(transport.parsed(i)->statusCode(), 503);
  // Fresh ones are refused in proportion p.
  uint64_t shed = counter("verbund_sip_overload_shed_register_total");
  for (int i = 0; i < 100; ++i) receive(request("REGISTER"));
  EXPECT_NEAR(double(counter("verbund_sip_overload_shed_register_total") - shed), 100 * p, 1.0);
}

TEST_F(OverloadTest, TransactionCapShedsEverythingNewUntilBelowNinetyPercent) {
  OverloadConfig oc;
  oc.maxPendingTransactions = 10;
  make(oc);
  for (int i = 0; i < 10; ++i) receive(request("INVITE")); // the TU leaves them unanswered
  timers.advance(100ms);
  ASSERT_TRUE(shedding());
  EXPECT_TRUE(stack->overload().atTransactionCap());
  EXPECT_EQ(gauge("verbund_sip_server_transactions_pending"), 10);
  receive(request("INVITE", {}, "Authorization: Digest username=\"a\"\r\n"));
  EXPECT_EQ(last503(), 5);
  // 9 pending is still above the release point (90 % of 10 = 9 is not below it).
  ASSERT_TRUE(stack->transactions().respond(tu.requests[0].tx, 486));
  timers.advance(100ms);
  EXPECT_TRUE(shedding());
  ASSERT_TRUE(stack->transactions().respond(tu.requests[1].tx, 486));
  timers.advance(100ms);
  EXPECT_FALSE(shedding());
  size_t before = tu.requests.size();
  receive(request("INVITE"));
  EXPECT_EQ(tu.requests.size(), before + 1);
}

TEST_F(OverloadTest, KernelDropsStartSheddingAtOnce) {
  stack->onReceiveBatchBegin();
  stack->onReceiveBatchEnd(50);
  timers.advance(100ms);
  EXPECT_TRUE(shedding());
}

TEST_F(OverloadTest, ZeroTargetTurnsTheDelaySignalOff) {
  OverloadConfig oc;
  oc.queueDelayTarget = 0ms;
  make(oc);
  queueFor(5, 5s);
  EXPECT_FALSE(shedding());
}

TEST_F(OverloadTest, InABatchInDialogTrafficIsServedBeforeNewRequests) {
  std::string invite = request("INVITE");
  std::string cancel = invite;
  cancel.replace(0, 6, "CANCEL");
  cancel.replace(cancel.find("1 INVITE"), 8, "1 CANCEL");
  stack->onReceiveBatchBegin();
  stack->onReceive(request("REGISTER"), udp, timers.now());
  stack->onReceive(invite, udp, timers.now());
  stack->onReceive(request("BYE", "tt9"), udp, timers.now());
  stack->onReceive(cancel, udp, timers.now());
  EXPECT_EQ(tu.requests.size(), 1u); // the BYE only, so far
  stack->onReceiveBatchEnd(0);
  ASSERT_EQ(tu.requests.size(), 3u);
  EXPECT_EQ(tu.requests[0].raw.substr(0, 3), "BYE");
  EXPECT_EQ(tu.requests[1].raw.substr(0, 8), "REGISTER");
  EXPECT_EQ(tu.requests[2].raw.substr(0, 6), "INVITE");
  // RFC 3261 §9.2: the CANCEL waited for its INVITE and found it.
  EXPECT_EQ(tu.cancels.size(), 1u);
}

} // namespace
} // namespace verbund::sip

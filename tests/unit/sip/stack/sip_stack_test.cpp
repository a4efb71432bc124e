// SipStack: bytes in, parse, RFC 3261 §18 / §8.2 checks, transaction layer, bytes out.
#include "sip/stack/sip_stack.h"
#include "unit/sip/transaction/test_support.h"

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;
using namespace verbund::sip::testing;

class StackTest : public ::testing::Test {
protected:
  ManualTimers timers;
  FakeTransport transport;
  RecordingTu tu;
  std::unique_ptr<SipStack> stack;
  Peer udp = peer(TransportType::Udp, "198.51.100.7:40000");
  Peer tcp = peer(TransportType::Tcp, "198.51.100.7:40001", 5);

  void SetUp() override {
    StackConfig cfg;
    cfg.supported = {"100rel", "replaces"};
    stack = std::make_unique<SipStack>(transport, timers, tu, cfg);
  }
  void receive(const std::string& bytes, const Peer& from) {
    stack->onReceive(bytes, from, timers.now());
  }
};

const char* kBadCSeq = "INVITE sip:bob@192.0.2.1 SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKbad1\r\n"
                       "From: <sip:alice@198.51.100.7>;tag=1\r\n"
                       "To: <sip:bob@192.0.2.1>\r\n"
                       "Call-ID: bad-1\r\n"
                       "CSeq: abc INVITE\r\n"
                       "Content-Length: 0\r\n\r\n";

TEST_F(StackTest, MalformedRequestGets400WithReasonOverTheSamePeer) {
  uint64_t before = counter("verbund_sip_malformed_requests_total");
  receive(kBadCSeq, tcp);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_TRUE(samePeer(transport.sent[0].to, tcp));
  // The response copies the bad CSeq, so compare text rather than parse it back.
  const std::string& resp = transport.sent[0].bytes;
  EXPECT_EQ(resp.substr(0, resp.find("\r\n")), "SIP/2.0 400 Bad CSeq number");
  EXPECT_NE(resp.find("\r\nCall-ID: bad-1\r\n"), std::string::npos);
  EXPECT_NE(resp.find("\r\nVia: SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKbad1\r\n"),
            std::string::npos);
  EXPECT_TRUE(tu.requests.empty());
  EXPECT_EQ(counter("verbund_sip_malformed_requests_total"), before + 1);
}

TEST_F(StackTest, CSeqMethodMismatchGets400) {
  RequestSpec s;
  s.cseqMethod = "BYE";
  receive(requestText(s), udp);
  ASSERT_EQ(transport.sent.size(), 1u);
  auto resp = transport.parsed(0);
  EXPECT_EQ(resp->statusCode(), 400);
  EXPECT_NE(resp->reason().find("CSeq method does not match"), std::string_view::npos);
}

TEST_F(StackTest, MalformedAckIsNotAnswered) {
  std::string ack = kBadCSeq;
  ack.replace(0, 6, "ACK");
  ack.replace(ack.find("abc INVITE"), 10, "abc ACK");
  receive(ack, udp);
  EXPECT_TRUE(transport.sent.empty());
}

TEST_F(StackTest, MalformedResponseIsDroppedAndCounted) {
  uint64_t before = counter("verbund_sip_malformed_responses_dropped_total");
  receive("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n"
          "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCSeq: 1 OPTIONS\r\n"
          "Content-Length: 0\r\n\r\n", // no Call-ID
          udp);
  EXPECT_TRUE(transport.sent.empty());
  EXPECT_EQ(counter("verbund_sip_malformed_responses_dropped_total"), before + 1);
}

TEST_F(StackTest, ResponseWithTwoViasIsDropped) {
  uint64_t before = counter("verbund_sip_responses_multiple_via_dropped_total");
  receive("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n"
          "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKy\r\n"
          "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
          "Content-Length: 0\r\n\r\n",
          udp);
  EXPECT_EQ(counter("verbund_sip_responses_multiple_via_dropped_total"), before + 1);
}

TEST_F(StackTest, ReceivedAndRportAreFilledIn) {
  RequestSpec s;
  s.via = "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKnat1";
  tu.onRequestHook = [&](ServerTxId tx, const Message&) {
    EXPECT_TRUE(stack->transactions().respond(tx, 180));
  };
  receive(requestText(s), udp);
  ASSERT_EQ(transport.sent.size(), 1u);
  // RFC 3581 §4: to the source address and port.
  EXPECT_EQ(transport.sent[0].to.remote.toString(), "198.51.100.7:40000");
  auto resp = transport.parsed(0);
  EXPECT_EQ(resp->topVia().received, "198.51.100.7");
  ASSERT_TRUE(resp->topVia().rport.has_value());
  EXPECT_EQ(*resp->topVia().rport, 40000);
  EXPECT_EQ(resp->topVia().branch, "z9hG4bKnat1");
}

TEST_F(StackTest, ReceivedWithoutRportGoesToTheSentByPort) {
  RequestSpec s;
  s.via = "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKnat2";
  s.method = "OPTIONS";
  receive(requestText(s), udp);
  ASSERT_EQ(tu.requests.size(), 1u);
  ASSERT_TRUE(stack->transactions().respond(tu.requests[0].tx, 200));
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.sent[0].to.remote.toString(), "198.51.100.7:5070"); // RFC 3261 §18.2.2
  auto resp = transport.parsed(0);
  EXPECT_EQ(resp->topVia().received, "198.51.100.7");
  EXPECT_FALSE(resp->topVia().hasRport);
}

TEST_F(StackTest, MaxForwardsZeroGets483) {
  RequestSpec s;
  s.method = "MESSAGE";
  std::string text = requestText(s);
  text.replace(text.find("Max-Forwards: 70"), 16, "Max-Forwards: 0");
  receive(text, udp);
  EXPECT_TRUE(tu.requests.empty());
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.parsed(0)->statusCode(), 483);
}

TEST_F(StackTest, OptionsWithMaxForwardsZeroReachesTheTu) {
  RequestSpec s;
  s.method = "OPTIONS";
  std::string text = requestText(s);
  text.replace(text.find("Max-Forwards: 70"), 16, "Max-Forwards: 0");
  receive(text, udp);
  EXPECT_EQ(tu.requests.size(), 1u);
}

TEST_F(StackTest, UnsupportedRequireGets420WithUnsupported) {
  RequestSpec s;
  s.extra = "Require: 100rel, foo\r\nRequire: bar\r\n";
  receive(requestText(s), udp);
  EXPECT_TRUE(tu.requests.empty());
  ASSERT_EQ(transport.sent.size(), 1u);
  auto resp = transport.parsed(0);
  EXPECT_EQ(resp->statusCode(), 420);
  EXPECT_EQ(header(*resp, HeaderId::Unsupported), "foo, bar");
  RequestSpec ok;
  ok.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKok";
  ok.callId = "call-2";
  ok.extra = "Require: replaces, 100REL\r\n";
  receive(requestText(ok), udp);
  EXPECT_EQ(tu.requests.size(), 1u);
}

TEST_F(StackTest, Require100relGets420WhenPrackIsNotSupported) {
  // The node's option tags: no "100rel", since the dialog layer does not implement PRACK
  // (RFC 3262). RFC 3261 §8.2.2.3: 420 with Unsupported before any TU sees the INVITE; "timer"
  // (RFC 4028, handled by the dialog layer) passes.
  StackConfig cfg;
  cfg.supported = {"replaces", "path", "outbound", "timer"};
  SipStack node(transport, timers, tu, cfg);
  RequestSpec s;
  s.extra = "Supported: timer\r\nRequire: 100rel\r\n";
  node.onReceive(requestText(s), udp, timers.now());
  EXPECT_TRUE(tu.requests.empty());
  ASSERT_EQ(transport.sent.size(), 1u);
  auto resp = transport.parsed(0);
  EXPECT_EQ(resp->statusCode(), 420);
  EXPECT_EQ(header(*resp, HeaderId::Unsupported), "100rel");
  RequestSpec timer;
  timer.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKtimer";
  timer.callId = "call-3";
  timer.extra = "Require: timer\r\nSession-Expires: 1800\r\n";
  node.onReceive(requestText(timer), udp, timers.now());
  EXPECT_EQ(tu.requests.size(), 1u);
}

TEST_F(StackTest, UnsupportedUriSchemeGets416) {
  RequestSpec s;
  s.uri = "http://example.com/x";
  receive(requestText(s), udp);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.parsed(0)->statusCode(), 416);
  EXPECT_TRUE(tu.requests.empty());
}

TEST_F(StackTest, KeepAlivesAreIgnored) {
  uint64_t before = counter("verbund_sip_malformed_requests_total");
  receive("\r\n\r\n", udp);
  receive("\r\n", tcp);
  EXPECT_TRUE(transport.sent.empty());
  EXPECT_EQ(counter("verbund_sip_malformed_requests_total"), before);
}

TEST_F(StackTest, ResponsesReachTheClientTransaction) {
  ClientRecord rec;
  RequestSpec s;
  s.method = "OPTIONS";
  s.via = stack->transactions().makeVia(udp);
  auto id = stack->transactions().sendRequest(parseOrDie(requestText(s)), udp, rec.callbacks());
  ASSERT_TRUE(id.ok());
  auto req = transport.parsed(0);
  receive(responseTo(*req, 200, {}, "x").finish(), udp);
  EXPECT_EQ(rec.statuses, std::vector<int>{200});
}

TEST_F(StackTest, TransportErrorsReachTransactions) {
  ClientRecord rec;
  RequestSpec s;
  s.method = "OPTIONS";
  s.via = stack->transactions().makeVia(tcp);
  ASSERT_TRUE(
      stack->transactions().sendRequest(parseOrDie(requestText(s)), tcp, rec.callbacks()).ok());
  stack->onTransportError(tcp, "connection reset");
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::TransportError);
}

TEST_F(StackTest, StreamMessagesNeedContentLength) {
  RequestSpec s;
  s.via = "SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKtcp";
  std::string text = requestText(s);
  text.replace(text.find("Content-Length: 0\r\n"), 19, "");
  receive(text, tcp); // RFC 3261 §18.3: mandatory on streams
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(transport.parsed(0)->statusCode(), 400);
  receive(text, udp); // optional on datagrams
  EXPECT_EQ(tu.requests.size(), 1u);
}

} // namespace
} // namespace verbund::sip

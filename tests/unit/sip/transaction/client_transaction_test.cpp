// Client transactions (RFC 3261 §17.1, RFC 6026 §7.2) as inject/expect scripts in simulated time.
#include "unit/sip/transaction/test_support.h"

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;
using namespace verbund::sip::testing;

class ClientTxTest : public ::testing::Test {
protected:
  ManualTimers timers;
  FakeTransport transport;
  RecordingTu tu;
  TransactionConfig cfg;
  std::unique_ptr<TransactionLayer> layer;
  Peer udp = peer(TransportType::Udp, "198.51.100.7:5062");
  Peer tcp = peer(TransportType::Tcp, "198.51.100.7:5062");
  ClientRecord rec;

  void SetUp() override { layer = std::make_unique<TransactionLayer>(transport, timers, tu, cfg); }

  // Starts a client transaction for `method` towards `target`.
  ClientTxId start(const std::string& method, const Peer& target, std::string extra = {}) {
    RequestSpec s;
    s.method = method;
    s.uri = "sip:bob@198.51.100.7:5062";
    s.via = layer->makeVia(target);
    s.extra = std::move(extra);
    auto id = layer->sendRequest(parseOrDie(requestText(s)), target, rec.callbacks());
    EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error().message);
    return id.ok() ? *id : 0;
  }
  // Injects a response to the request sent first (transport.sent[0]).
  void answer(int status, std::string toTag = "tt1", const Peer* from = nullptr,
              size_t requestIndex = 0) {
    auto req = transport.parsed(requestIndex);
    auto resp = parseOrDie(responseTo(*req, status, {}, toTag).finish());
    resp->setSource(from ? *from : udp);
    layer->receive(std::move(resp));
  }
  size_t sentCount(std::string_view startsWith) const {
    size_t n = 0;
    for (auto& s : transport.sent) n += s.bytes.compare(0, startsWith.size(), startsWith) == 0;
    return n;
  }
};

// ---- INVITE client ----

TEST_F(ClientTxTest, InviteClientTimerARetransmitsDoubling) {
  start("INVITE", udp);
  EXPECT_EQ(transport.sent.size(), 1u);
  // RFC 3261 §17.1.1.2: T1, 2*T1, 4*T1, ... without the T2 cap: sends at 0, .5, 1.5, 3.5, 7.5,
  // 15.5, 31.5 s.
  const std::pair<Duration, size_t> script[] = {{499ms, 1},  {1ms, 2},    {999ms, 2},
                                                {1ms, 3},    {2000ms, 4}, {4000ms, 5},
                                                {8000ms, 6}, {16000ms, 7}};
  for (auto [d, n] : script) {
    timers.advance(d);
    EXPECT_EQ(transport.sent.size(), n);
  }
  for (auto& s : transport.sent) EXPECT_EQ(s.bytes, transport.sent[0].bytes);
}

TEST_F(ClientTxTest, InviteClientTimerBTimesOut) {
  uint64_t before = counter("verbund_sip_transaction_timeouts_total");
  start("INVITE", udp);
  timers.advance(31999ms);
  EXPECT_TRUE(rec.failures.empty());
  timers.advance(1ms);
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::Timeout);
  EXPECT_EQ(layer->clientCount(), 0u);
  EXPECT_EQ(counter("verbund_sip_transaction_timeouts_total"), before + 1);
  EXPECT_EQ(timers.pending(), 0u);
}

TEST_F(ClientTxTest, InviteClientTimerANotUsedOnReliableButTimerBIs) {
  start("INVITE", tcp);
  timers.advance(31s);
  EXPECT_EQ(transport.sent.size(), 1u);
  timers.advance(1s);
  ASSERT_EQ(rec.failures.size(), 1u);
}

TEST_F(ClientTxTest, InviteClientProvisionalStopsTimersAAndB) {
  start("INVITE", udp);
  timers.advance(600ms); // one retransmission
  answer(180);
  timers.advance(120s);
  EXPECT_EQ(transport.sent.size(), 2u);
  EXPECT_TRUE(rec.failures.empty());
  EXPECT_EQ(rec.statuses, std::vector<int>{180});
  EXPECT_EQ(layer->clientCount(), 1u); // RFC 3261: Proceeding waits for the TU (CANCEL)
}

TEST_F(ClientTxTest, InviteClientAckForNon2xxHasTheRightHeaders) {
  start("INVITE", udp, "Route: <sip:proxy1.example;lr>\r\nRoute: <sip:proxy2.example;lr>\r\n");
  answer(100, "");
  answer(486, "busy-tag");
  ASSERT_EQ(rec.statuses, (std::vector<int>{100, 486}));
  ASSERT_EQ(transport.sent.size(), 2u);
  auto inv = transport.parsed(0);
  auto ack = transport.parsed(1);
  // RFC 3261 §17.1.1.3
  EXPECT_EQ(ack->methodName(), "ACK");
  EXPECT_EQ(ack->requestUri().text, inv->requestUri().text);
  ASSERT_EQ(ack->vias().size(), 1u);
  EXPECT_EQ(ack->topVia().text, inv->topVia().text);
  EXPECT_EQ(ack->callId(), inv->callId());
  EXPECT_EQ(ack->from().text, inv->from().text);
  EXPECT_EQ(ack->toTag(), "busy-tag");
  EXPECT_EQ(ack->cseq().seq, inv->cseq().seq);
  EXPECT_EQ(ack->cseq().method, Method::Ack);
  ASSERT_EQ(ack->routes().size(), 2u);
  EXPECT_EQ(ack->routes()[0].uri.host, "proxy1.example");
  EXPECT_EQ(ack->routes()[1].uri.host, "proxy2.example");
  EXPECT_TRUE(ack->body().empty());
  EXPECT_TRUE(samePeer(transport.sent[1].to, udp)); // same destination as the INVITE
}

TEST_F(ClientTxTest, InviteClientAckOverTheResponseConnection) {
  Peer target = tcp; // connection chosen by the transport
  start("INVITE", target);
  Peer from = tcp;
  from.connection = 42;
  answer(603, "x", &from);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1].to.connection, 42u);
}

TEST_F(ClientTxTest, InviteClientTimerDAbsorbsRetransmittedFinal) {
  start("INVITE", udp);
  answer(404);
  ASSERT_EQ(transport.sent.size(), 2u);
  uint64_t absorbed = counter("verbund_sip_retransmissions_absorbed_total");
  answer(404);
  answer(404);
  EXPECT_EQ(rec.statuses, std::vector<int>{404}); // not passed up again
  EXPECT_EQ(sentCount("ACK "), 3u);               // but ACKed again
  EXPECT_EQ(counter("verbund_sip_retransmissions_absorbed_total"), absorbed + 2);
  timers.advance(31999ms);
  EXPECT_EQ(layer->clientCount(), 1u);
  timers.advance(1ms); // Timer D = 32 s
  EXPECT_EQ(layer->clientCount(), 0u);
  uint64_t strays = counter("verbund_sip_stray_responses_dropped_total");
  answer(404);
  EXPECT_EQ(counter("verbund_sip_stray_responses_dropped_total"), strays + 1);
  EXPECT_EQ(sentCount("ACK "), 3u);
}

TEST_F(ClientTxTest, InviteClientTimerDIsZeroOnReliable) {
  start("INVITE", tcp);
  answer(486);
  EXPECT_EQ(sentCount("ACK "), 1u);
  timers.advance(0ms);
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(ClientTxTest, InviteClientTimerMPasses2xxRetransmissionsAndForks) {
  start("INVITE", udp);
  answer(180, "fork1");
  answer(200, "fork1");
  EXPECT_EQ(rec.statuses, (std::vector<int>{180, 200}));
  EXPECT_EQ(sentCount("ACK "), 0u); // ACK for 2xx is the TU's (RFC 3261 §13.2.2.4)
  answer(200, "fork1");             // retransmission
  answer(200, "fork2");             // another fork
  EXPECT_EQ(rec.statuses, (std::vector<int>{180, 200, 200, 200}));
  EXPECT_EQ(rec.responses.back().find("tag=fork2") != std::string::npos, true);
  answer(486, "fork3"); // non-2xx in Accepted: absorbed
  EXPECT_EQ(rec.statuses.size(), 4u);
  EXPECT_EQ(sentCount("ACK "), 0u);
  timers.advance(31999ms);
  EXPECT_EQ(layer->clientCount(), 1u);
  timers.advance(1ms); // Timer M = 64*T1
  EXPECT_EQ(layer->clientCount(), 0u);
  answer(200, "fork1"); // after Timer M: to the TU as a stray 2xx (RFC 6026 §8.4)
  ASSERT_EQ(tu.strays.size(), 1u);
  EXPECT_EQ(rec.statuses.size(), 4u);
}

TEST_F(ClientTxTest, InviteClientTransportErrorInformsTu) {
  start("INVITE", tcp);
  Peer failed = tcp;
  failed.connection = 9; // the connection the transport picked
  layer->onTransportError(failed);
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::TransportError);
  EXPECT_EQ(layer->clientCount(), 0u);
  EXPECT_EQ(timers.pending(), 0u);
}

TEST_F(ClientTxTest, InviteClientRetransmissionFailureInformsTu) {
  start("INVITE", udp);
  transport.fail = true;
  timers.advance(500ms);
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::TransportError);
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(ClientTxTest, SendRequestRejectsImmediateTransportFailureWithoutCallbacks) {
  transport.fail = true;
  RequestSpec s;
  s.via = layer->makeVia(udp);
  auto id = layer->sendRequest(parseOrDie(requestText(s)), udp, rec.callbacks());
  EXPECT_FALSE(id.ok());
  EXPECT_EQ(layer->clientCount(), 0u);
  timers.advance(60s);
  EXPECT_TRUE(rec.failures.empty());
}

TEST_F(ClientTxTest, SendRequestRejectsAckAndOldBranchesAndDuplicates) {
  RequestSpec s;
  s.method = "ACK";
  EXPECT_FALSE(layer->sendRequest(parseOrDie(requestText(s)), udp, {}).ok());
  s.method = "INVITE";
  s.via = "SIP/2.0/UDP 192.0.2.1:5060;branch=1234";
  EXPECT_FALSE(layer->sendRequest(parseOrDie(requestText(s)), udp, {}).ok());
  s.via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsame";
  EXPECT_TRUE(layer->sendRequest(parseOrDie(requestText(s)), udp, {}).ok());
  EXPECT_FALSE(layer->sendRequest(parseOrDie(requestText(s)), udp, {}).ok());
}

TEST_F(ClientTxTest, MakeViaCarriesLocalAddressBranchAndRport) {
  std::string v = layer->makeVia(tcp, "z9hG4bKxyz");
  EXPECT_EQ(v, "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKxyz;rport");
  EXPECT_NE(layer->makeVia(udp).find(";branch=z9hG4bK"), std::string::npos);
}

// ---- CANCEL (RFC 3261 §9.1) ----

TEST_F(ClientTxTest, CancelCopiesTheInviteHeaders) {
  ClientTxId inv = start("INVITE", udp, "Route: <sip:proxy1.example;lr>\r\n");
  answer(180);
  ClientRecord crec;
  const HeaderField reason[] = {{"Reason", "SIP;cause=200;text=\"Call completed elsewhere\""}};
  auto c = layer->cancel(inv, crec.callbacks(), reason);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(transport.sent.size(), 2u);
  auto invite = transport.parsed(0);
  auto cancel = transport.parsed(1);
  EXPECT_EQ(cancel->methodName(), "CANCEL");
  EXPECT_EQ(cancel->requestUri().text, invite->requestUri().text);
  ASSERT_EQ(cancel->vias().size(), 1u);
  EXPECT_EQ(cancel->topVia().text, invite->topVia().text);
  EXPECT_EQ(cancel->callId(), invite->callId());
  EXPECT_EQ(cancel->from().text, invite->from().text);
  EXPECT_EQ(cancel->to().text, invite->to().text);
  EXPECT_EQ(cancel->cseq().seq, invite->cseq().seq);
  EXPECT_EQ(cancel->cseq().method, Method::Cancel);
  ASSERT_EQ(cancel->routes().size(), 1u);
  EXPECT_EQ(header(*cancel, HeaderId::Reason), "SIP;cause=200;text=\"Call completed elsewhere\"");
  EXPECT_TRUE(samePeer(transport.sent[1].to, udp));
  // The CANCEL is its own transaction: its 200 goes to it, the 487 to the INVITE.
  answer(200, "tt1", nullptr, 1);
  answer(487);
  EXPECT_EQ(crec.statuses, std::vector<int>{200});
  EXPECT_EQ(rec.statuses, (std::vector<int>{180, 487}));
  EXPECT_EQ(sentCount("ACK "), 1u);
  EXPECT_FALSE(layer->cancel(inv, {}).ok()); // final response already
}

TEST_F(ClientTxTest, CancelIsHeldUntilAProvisionalResponse) {
  ClientTxId inv = start("INVITE", udp);
  ClientRecord crec;
  ASSERT_TRUE(layer->cancel(inv, crec.callbacks()).ok());
  EXPECT_EQ(sentCount("CANCEL "), 0u); // RFC 3261 §9.1: not before a provisional response
  EXPECT_FALSE(layer->cancel(inv, {}).ok());
  answer(100, "");
  EXPECT_EQ(sentCount("CANCEL "), 1u);
  timers.advance(500ms); // Timer E of the CANCEL
  EXPECT_EQ(sentCount("CANCEL "), 2u);
  EXPECT_EQ(sentCount("INVITE "), 1u); // Timer A stopped by the 100
}

TEST_F(ClientTxTest, HeldCancelIsDroppedWhenTheInviteCompletes) {
  ClientTxId inv = start("INVITE", udp);
  ClientRecord crec;
  ASSERT_TRUE(layer->cancel(inv, crec.callbacks()).ok());
  EXPECT_EQ(layer->clientCount(), 2u);
  answer(486);
  EXPECT_EQ(layer->clientCount(), 1u);
  timers.advance(60s);
  EXPECT_EQ(sentCount("CANCEL "), 0u);
  EXPECT_TRUE(crec.statuses.empty());
  EXPECT_TRUE(crec.failures.empty());
}

TEST_F(ClientTxTest, InviteGivesUp64T1AfterAnUnansweredCancel) {
  ClientTxId inv = start("INVITE", tcp);
  answer(180);
  ClientRecord crec;
  ASSERT_TRUE(layer->cancel(inv, crec.callbacks()).ok());
  answer(200, "tt1", nullptr, 1); // 200 to the CANCEL, but no 487 ever comes
  timers.advance(31999ms);
  EXPECT_TRUE(rec.failures.empty());
  answer(183); // further provisionals do not stop the guard
  timers.advance(1ms);
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::Timeout);
}

// ---- non-INVITE client ----

TEST_F(ClientTxTest, NonInviteClientTimerERetransmitsUpToT2) {
  start("OPTIONS", udp);
  // RFC 3261 §17.1.2.2: 0, .5, 1.5, 3.5, 7.5, 11.5, 15.5 s (interval capped at T2 = 4 s)
  const std::pair<Duration, size_t> script[] = {{500ms, 2}, {1000ms, 3}, {2000ms, 4}, {3999ms, 4},
                                                {1ms, 5},   {4000ms, 6}, {4000ms, 7}};
  for (auto [d, n] : script) {
    timers.advance(d);
    EXPECT_EQ(transport.sent.size(), n);
  }
}

TEST_F(ClientTxTest, NonInviteClientTimerEFiresAtT2InProceeding) {
  start("REGISTER", udp);
  timers.advance(100ms);
  answer(100, "");
  EXPECT_EQ(rec.statuses, std::vector<int>{100});
  timers.advance(400ms); // the pending Timer E (T1) still fires
  EXPECT_EQ(transport.sent.size(), 2u);
  timers.advance(3999ms);
  EXPECT_EQ(transport.sent.size(), 2u);
  timers.advance(1ms); // then every T2
  EXPECT_EQ(transport.sent.size(), 3u);
  timers.advance(4s);
  EXPECT_EQ(transport.sent.size(), 4u);
}

TEST_F(ClientTxTest, NonInviteClientTimerFTimesOut) {
  start("BYE", udp);
  timers.advance(31999ms);
  EXPECT_TRUE(rec.failures.empty());
  timers.advance(1ms);
  ASSERT_EQ(rec.failures.size(), 1u);
  EXPECT_EQ(rec.failures[0], ClientTxFailure::Timeout);
  EXPECT_EQ(layer->clientCount(), 0u);
  EXPECT_EQ(timers.pending(), 0u);
}

TEST_F(ClientTxTest, NonInviteClientTimerEUnusedOnReliable) {
  start("BYE", tcp);
  timers.advance(31s);
  EXPECT_EQ(transport.sent.size(), 1u);
  timers.advance(1s);
  EXPECT_EQ(rec.failures.size(), 1u);
}

TEST_F(ClientTxTest, NonInviteClientTimerKAbsorbsRetransmittedFinal) {
  start("BYE", udp);
  answer(200);
  answer(200);
  EXPECT_EQ(rec.statuses, std::vector<int>{200});
  timers.advance(10s);
  EXPECT_EQ(transport.sent.size(), 1u); // Timer E stopped
  // Timer K = T4 = 5 s has run out.
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(ClientTxTest, NonInviteClientTimerKBoundary) {
  start("BYE", udp);
  answer(481);
  timers.advance(4999ms);
  EXPECT_EQ(layer->clientCount(), 1u);
  timers.advance(1ms);
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(ClientTxTest, NonInviteClientTimerKIsZeroOnReliable) {
  start("BYE", tcp);
  answer(200);
  timers.advance(0ms);
  EXPECT_EQ(layer->clientCount(), 0u);
}

TEST_F(ClientTxTest, ResponseMatchingNeedsBranchAndCSeqMethod) {
  start("INVITE", udp);
  auto req = transport.parsed(0);
  // Same branch, other CSeq method (RFC 3261 §17.1.3): not this transaction.
  std::string text = responseTo(*req, 200).finish();
  auto pos = text.find(" INVITE\r\n");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 9, " OPTIONS\r\n");
  uint64_t strays = counter("verbund_sip_stray_responses_dropped_total");
  layer->receive(parseOrDie(text));
  EXPECT_EQ(counter("verbund_sip_stray_responses_dropped_total"), strays + 1);
  EXPECT_TRUE(rec.statuses.empty());
}

TEST_F(ClientTxTest, CustomTimersScale) {
  cfg.t1 = 100ms;
  cfg.t2 = 400ms;
  SetUp();
  start("OPTIONS", udp);
  timers.advance(100ms);
  EXPECT_EQ(transport.sent.size(), 2u);
  timers.advance(6299ms); // Timer F = 64*T1 = 6.4 s
  EXPECT_TRUE(rec.failures.empty());
  timers.advance(1ms);
  EXPECT_EQ(rec.failures.size(), 1u);
}

} // namespace
} // namespace verbund::sip

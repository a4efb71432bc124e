// Server transactions (RFC 3261 §17.2, RFC 6026 §7.1), request matching (§17.2.3, including the
// RFC 2543 fallback), CANCEL (§9.2) and merged requests (§8.2.2.2) in simulated time.
#include "unit/sip/transaction/test_support.h"

namespace verbund::sip {
namespace {

using namespace std::chrono_literals;
using namespace verbund::sip::testing;

class ServerTxTest : public ::testing::Test {
protected:
  ManualTimers timers;
  FakeTransport transport;
  RecordingTu tu;
  TransactionConfig cfg;
  std::unique_ptr<TransactionLayer> layer;
  Peer udp = peer(TransportType::Udp, "198.51.100.7:5062");
  Peer tcp = peer(TransportType::Tcp, "198.51.100.7:5062", 7);

  void SetUp() override { layer = std::make_unique<TransactionLayer>(transport, timers, tu, cfg); }
  void reconfigure() { SetUp(); }

  void inject(const RequestSpec& s, const Peer& src = {}) {
    layer->receive(requestFrom(s, src.remote.port ? src : udp));
  }
  ServerTxId lastTx() const { return tu.requests.empty() ? 0 : tu.requests.back().tx; }
  int statusAt(size_t i) const { return transport.parsed(i)->statusCode(); }
  // The ACK a UAC sends for our non-2xx: same branch, To tag of our response.
  RequestSpec ackFor(const RequestSpec& invite, size_t responseIndex) const {
    RequestSpec a = invite;
    a.method = "ACK";
    a.toTag = std::string(transport.parsed(responseIndex)->toTag());
    return a;
  }
  RequestSpec cancelFor(const RequestSpec& invite) const {
    RequestSpec c = invite;
    c.method = "CANCEL";
    return c;
  }
};

// ---- INVITE server ----

TEST_F(ServerTxTest, InviteServerSends100TryingAfter200ms) {
  RequestSpec inv;
  inject(inv);
  ASSERT_EQ(tu.requests.size(), 1u);
  timers.advance(199ms);
  EXPECT_TRUE(transport.sent.empty());
  timers.advance(1ms);
  ASSERT_EQ(transport.sent.size(), 1u);
  auto trying = transport.parsed(0);
  EXPECT_EQ(trying->statusCode(), 100);
  EXPECT_TRUE(trying->toTag().empty()); // RFC 3261 §8.2.6.2: no tag needed on 100
  EXPECT_TRUE(samePeer(transport.sent[0].to, udp));
  inject(inv); // a retransmission gets the 100 again
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1].bytes, transport.sent[0].bytes);
  EXPECT_EQ(tu.requests.size(), 1u);
}

TEST_F(ServerTxTest, InviteServerNo100WhenTuAnswersWithin200ms) {
  tu.onRequestHook = [&](ServerTxId tx, const Message&) { EXPECT_TRUE(layer->respond(tx, 180)); };
  inject(RequestSpec{});
  timers.advance(1s);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(statusAt(0), 180);
}

TEST_F(ServerTxTest, InviteServer100TryingImmediatelyWhenConfigured) {
  cfg.trying100 = 0ms;
  reconfigure();
  tu.onRequestHook = [&](ServerTxId, const Message&) { EXPECT_EQ(transport.sent.size(), 1u); };
  RequestSpec inv;
  inv.extra = "Timestamp: 54.3\r\n";
  inject(inv);
  ASSERT_EQ(transport.sent.size(), 1u);
  auto trying = transport.parsed(0);
  EXPECT_EQ(trying->statusCode(), 100);
  EXPECT_EQ(header(*trying, HeaderId::Timestamp), "54.3"); // RFC 3261 §8.2.6.1
}

TEST_F(ServerTxTest, RetransmittedRequestGetsTheLastResponse) {
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 180));
  uint64_t absorbed = counter("verbund_sip_retransmissions_absorbed_total");
  inject(inv);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1].bytes, transport.sent[0].bytes);
  EXPECT_EQ(tu.requests.size(), 1u);
  EXPECT_EQ(counter("verbund_sip_retransmissions_absorbed_total"), absorbed + 1);
  ASSERT_TRUE(layer->respond(tx, 486));
  inject(inv);
  ASSERT_EQ(transport.sent.size(), 4u);
  EXPECT_EQ(statusAt(3), 486);
}

TEST_F(ServerTxTest, InviteServerTimerGRetransmitsFinalUpToT2) {
  inject(RequestSpec{});
  ASSERT_TRUE(layer->respond(lastTx(), 486));
  // RFC 3261 §17.2.1: 0, .5, 1.5, 3.5, 7.5, 11.5 s
  const std::pair<Duration, size_t> script[] = {{499ms, 1},  {1ms, 2},    {1000ms, 3}, {2000ms, 4},
                                                {4000ms, 5}, {3999ms, 5}, {1ms, 6}};
  for (auto [d, n] : script) {
    timers.advance(d);
    EXPECT_EQ(transport.sent.size(), n);
  }
  for (auto& s : transport.sent) EXPECT_EQ(s.bytes, transport.sent[0].bytes);
}

TEST_F(ServerTxTest, InviteServerTimerHEndsWithoutAck) {
  uint64_t timeouts = counter("verbund_sip_transaction_timeouts_total");
  inject(RequestSpec{});
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 486));
  timers.advance(31999ms);
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(1ms);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::NoAck));
  EXPECT_EQ(layer->serverCount(), 0u);
  EXPECT_EQ(timers.pending(), 0u);
  EXPECT_EQ(counter("verbund_sip_transaction_timeouts_total"), timeouts + 1);
}

TEST_F(ServerTxTest, InviteServerTimerIAbsorbsAcks) {
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 486));
  timers.advance(100ms);
  inject(ackFor(inv, 0));
  EXPECT_TRUE(tu.acks.empty()); // the ACK for a non-2xx belongs to the transaction
  timers.advance(1s);
  EXPECT_EQ(transport.sent.size(), 1u); // Timer G stopped
  inject(ackFor(inv, 0));
  inject(inv); // Confirmed absorbs INVITE retransmissions too
  EXPECT_EQ(transport.sent.size(), 1u);
  EXPECT_TRUE(tu.acks.empty());
  timers.advance(3999ms); // Timer I = T4 = 5 s from the ACK at 0.1 s
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(1ms);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::Normal));
}

TEST_F(ServerTxTest, InviteServerTimerGUnusedAndTimerIZeroOnReliable) {
  RequestSpec inv;
  inv.via = "SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKtcp1";
  inject(inv, tcp);
  ASSERT_TRUE(layer->respond(lastTx(), 603));
  EXPECT_EQ(transport.sent[0].to.connection, 7u); // back over the request's connection
  timers.advance(10s);
  EXPECT_EQ(transport.sent.size(), 1u);
  inject(ackFor(inv, 0), tcp);
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(0ms);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0].second, ServerTxEnd::Normal);
}

TEST_F(ServerTxTest, InviteServerTimerHAlsoOnReliable) {
  RequestSpec inv;
  inv.via = "SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKtcp2";
  inject(inv, tcp);
  ASSERT_TRUE(layer->respond(lastTx(), 486));
  timers.advance(32s);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0].second, ServerTxEnd::NoAck);
}

TEST_F(ServerTxTest, InviteServerTimerLAbsorbsInviteRetransmissionsAndPassesAck) {
  cfg.retransmitInvite2xx = false;
  reconfigure();
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 200));
  inject(inv); // RFC 6026 §7.1: absorbed in Accepted
  EXPECT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(tu.requests.size(), 1u);
  RequestSpec ack = ackFor(inv, 0);
  ack.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKack2xx"; // ACK for 2xx: new branch
  inject(ack);
  EXPECT_EQ(tu.acks.size(), 1u);
  // The TU may resend its 2xx while Accepted, nothing else.
  EXPECT_TRUE(layer->respond(tx, 200));
  EXPECT_FALSE(layer->respond(tx, 486));
  timers.advance(31999ms);
  EXPECT_TRUE(tu.ended.empty());
  EXPECT_EQ(transport.sent.size(), 2u);
  timers.advance(1ms); // Timer L = 64*T1
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::Normal));
  inject(inv); // now a new transaction
  EXPECT_EQ(tu.requests.size(), 2u);
}

TEST_F(ServerTxTest, InviteServerAckFor2xxReusingTheInviteBranchGoesToTu) {
  cfg.retransmitInvite2xx = false;
  reconfigure();
  RequestSpec inv;
  inject(inv);
  ASSERT_TRUE(layer->respond(lastTx(), 200));
  inject(ackFor(inv, 0)); // RFC 6026 §7.1: ACK matching an Accepted tx goes to the TU
  EXPECT_EQ(tu.acks.size(), 1u);
}

TEST_F(ServerTxTest, InviteServer2xxRetransmittedUntilAck) {
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 200));
  timers.advance(500ms);
  EXPECT_EQ(transport.sent.size(), 2u);
  timers.advance(1000ms);
  EXPECT_EQ(transport.sent.size(), 3u);
  RequestSpec ack = ackFor(inv, 0);
  ack.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKack2xx";
  inject(ack);
  EXPECT_EQ(tu.acks.size(), 1u);
  timers.advance(10s);
  EXPECT_EQ(transport.sent.size(), 3u);
  timers.advance(30s);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::Normal));
}

TEST_F(ServerTxTest, InviteServer2xxWithoutAckEndsWithNoAckAtTimerL) {
  inject(RequestSpec{});
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 200));
  timers.advance(32s);
  // RFC 3261 §13.3.1.4: 0, .5, 1.5, 3.5, 7.5, 11.5, ... 31.5 s
  EXPECT_EQ(transport.sent.size(), 11u);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::NoAck));
}

TEST_F(ServerTxTest, RespondChecksStateAndTransaction) {
  inject(RequestSpec{});
  ServerTxId tx = lastTx();
  EXPECT_FALSE(layer->respond(tx + 100, 200).ok());
  EXPECT_FALSE(layer->respond(tx, std::string("garbage")).ok());
  EXPECT_TRUE(layer->respond(tx, 486).ok());
  EXPECT_FALSE(layer->respond(tx, 200).ok());
  EXPECT_FALSE(layer->respond(tx, 180).ok());
  EXPECT_EQ(transport.sent.size(), 1u);
}

TEST_F(ServerTxTest, ResponseBuilderUsesOneTagPerTransaction) {
  inject(RequestSpec{});
  ServerTxId tx = lastTx();
  auto b = layer->responseBuilder(tx, 180);
  ASSERT_TRUE(b);
  b->header("Contact", "<sip:bob@192.0.2.1>");
  ASSERT_TRUE(layer->respond(tx, b->finish()));
  ASSERT_TRUE(layer->respond(tx, 200));
  EXPECT_EQ(transport.parsed(0)->toTag(), layer->localTag(tx));
  EXPECT_EQ(transport.parsed(1)->toTag(), layer->localTag(tx));
  EXPECT_EQ(header(*transport.parsed(0), HeaderId::Contact), "<sip:bob@192.0.2.1>");
  ASSERT_NE(layer->request(tx), nullptr);
  EXPECT_EQ(layer->request(tx)->callId(), "call-1@198.51.100.7");
}

TEST_F(ServerTxTest, TransportErrorOnRespondEndsTheTransaction) {
  inject(RequestSpec{});
  ServerTxId tx = lastTx();
  transport.fail = true;
  EXPECT_FALSE(layer->respond(tx, 180).ok());
  EXPECT_TRUE(tu.ended.empty()); // reported from the event loop, not inside respond()
  timers.advance(0ms);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::TransportError));
  timers.advance(60s);
  EXPECT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(layer->serverCount(), 0u);
}

TEST_F(ServerTxTest, TransportErrorFromTheTransportEndsServerTransactions) {
  RequestSpec inv;
  inv.via = "SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKtcp3";
  inject(inv, tcp);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 180));
  Peer other = tcp;
  other.connection = 8;
  layer->onTransportError(other);
  timers.advance(0ms);
  EXPECT_TRUE(tu.ended.empty());
  layer->onTransportError(tcp);
  timers.advance(0ms);
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::TransportError));
}

// ---- non-INVITE server ----

TEST_F(ServerTxTest, NonInviteServerTimerJAbsorbsRetransmissions) {
  RequestSpec opt;
  opt.method = "OPTIONS";
  inject(opt);
  ServerTxId tx = lastTx();
  inject(opt); // Trying: absorbed without an answer
  EXPECT_TRUE(transport.sent.empty());
  timers.advance(1s);
  EXPECT_TRUE(transport.sent.empty()); // no 100 Trying for non-INVITE
  ASSERT_TRUE(layer->respond(tx, 200));
  inject(opt);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1].bytes, transport.sent[0].bytes);
  EXPECT_EQ(tu.requests.size(), 1u);
  timers.advance(31999ms);
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(1ms); // Timer J = 64*T1
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx, ServerTxEnd::Normal));
  EXPECT_EQ(timers.pending(), 0u);
}

// Timer J keeps a Completed non-INVITE transaction 32 s for retransmissions only: its parsed
// request is released once the TU's callback has returned (memory per registration, issue 14),
// and matching (also the RFC 2543 fallback with its To tag) keeps working without it.
TEST_F(ServerTxTest, NonInviteServerReleasesItsRequestInTimerJ) {
  RequestSpec reg;
  reg.method = "REGISTER";
  reg.via = "SIP/2.0/UDP 198.51.100.7:5062"; // no branch: matched by the RFC 2543 rules
  reg.toTag = "tt1";
  inject(reg);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 200));
  EXPECT_NE(layer->request(tx), nullptr); // still there for the rest of the TU's callback
  timers.advance(0ms);
  EXPECT_EQ(layer->request(tx), nullptr);
  EXPECT_FALSE(layer->responseBuilder(tx, 200).has_value());
  inject(reg); // a retransmission still gets the final response
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(transport.sent[1].bytes, transport.sent[0].bytes);
  RequestSpec otherTag = reg;
  otherTag.toTag = "tt2";
  inject(otherTag); // another To tag: a new request
  EXPECT_EQ(tu.requests.size(), 2u);
  timers.advance(32s);
  EXPECT_EQ(tu.ended.size(), 1u);
}

// A REGISTER with digest over UDP: 401, then the authenticated REGISTER (new branch, CSeq + 1)
// gets 200. Once the TU's callbacks have returned, both Completed transactions keep only their
// key and response bytes (issue 14): retransmissions of either request get the identical bytes
// until Timer J, the TU sees neither again, and after Timer J the same request is a new
// transaction.
TEST_F(ServerTxTest, RegisterRetransmissionsAfter401And200GetTheIdenticalBytes) {
  RequestSpec first;
  first.method = "REGISTER";
  first.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKreg1;rport";
  inject(first);
  ServerTxId tx401 = lastTx();
  ASSERT_TRUE(layer->respond(tx401, 401));
  timers.advance(0ms); // the TU's callback is over: the transaction shrinks
  EXPECT_EQ(layer->request(tx401), nullptr);
  EXPECT_FALSE(layer->respond(tx401, 200).ok()); // no second final response
  RequestSpec second = first;
  second.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKreg2;rport";
  second.cseq = 2;
  second.extra = "Authorization: Digest username=\"alice\"\r\n";
  timers.advance(1s);
  inject(second);
  ServerTxId tx200 = lastTx();
  ASSERT_NE(tx200, tx401);
  ASSERT_TRUE(layer->respond(tx200, 200));
  timers.advance(0ms);
  EXPECT_EQ(layer->serverCount(), 2u);
  ASSERT_EQ(transport.sent.size(), 2u);

  inject(first); // a late copy of the first REGISTER
  inject(second);
  inject(second);
  ASSERT_EQ(transport.sent.size(), 5u);
  EXPECT_EQ(transport.sent[2].bytes, transport.sent[0].bytes);
  EXPECT_EQ(statusAt(2), 401);
  EXPECT_EQ(transport.sent[3].bytes, transport.sent[1].bytes);
  EXPECT_EQ(transport.sent[4].bytes, transport.sent[1].bytes);
  EXPECT_TRUE(samePeer(transport.sent[4].to, udp));
  EXPECT_EQ(tu.requests.size(), 2u);
  // Another sent-by with the same branch is another transaction (another From tag too, else it
  // would be a merged request and get 482).
  RequestSpec otherHost = second;
  otherHost.via = "SIP/2.0/UDP 198.51.100.8:5062;branch=z9hG4bKreg2;rport";
  otherHost.fromTag = "ft2";
  inject(otherHost);
  EXPECT_EQ(tu.requests.size(), 3u);
  ASSERT_TRUE(layer->respond(lastTx(), 200));

  timers.advance(30999ms); // 31.999 s after the 401
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(1ms); // Timer J of the 401's transaction: 32 s after its response
  ASSERT_EQ(tu.ended.size(), 1u);
  EXPECT_EQ(tu.ended[0], std::make_pair(tx401, ServerTxEnd::Normal));
  inject(first); // now a new transaction
  EXPECT_EQ(tu.requests.size(), 4u);
  EXPECT_EQ(transport.sent.size(), 6u); // nothing resent for it
  inject(second);                       // the 200's transaction still absorbs
  ASSERT_EQ(transport.sent.size(), 7u);
  EXPECT_EQ(transport.sent[6].bytes, transport.sent[1].bytes);
  timers.advance(1s); // Timer J of the 200's transaction and of otherHost's
  ASSERT_EQ(tu.ended.size(), 3u);
  EXPECT_TRUE(std::count(tu.ended.begin(), tu.ended.end(),
                         std::make_pair(tx200, ServerTxEnd::Normal)) == 1);
  inject(second);
  EXPECT_EQ(tu.requests.size(), 5u);
}

// A shrunk transaction still takes part in merge detection (RFC 3261 §8.2.2.2): the same
// request over another branch (a forking proxy's second copy) gets 482 until Timer J.
TEST_F(ServerTxTest, CompletedNonInviteStillDetectsMergedRequests) {
  RequestSpec msg;
  msg.method = "MESSAGE";
  inject(msg);
  ASSERT_TRUE(layer->respond(lastTx(), 200));
  timers.advance(0ms);
  EXPECT_EQ(layer->request(lastTx()), nullptr); // shrunk
  RequestSpec forked = msg;
  forked.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKother";
  inject(forked);
  EXPECT_EQ(tu.requests.size(), 1u);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(statusAt(1), 482);
  timers.advance(32s); // both Timer Js ran out
  EXPECT_EQ(layer->serverCount(), 0u);
  EXPECT_EQ(timers.pending(), 0u);
  inject(forked); // nothing left to merge with
  EXPECT_EQ(tu.requests.size(), 2u);
}

TEST_F(ServerTxTest, NonInviteServerProceedingResendsTheProvisional) {
  RequestSpec reg;
  reg.method = "REGISTER";
  inject(reg);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 100));
  inject(reg);
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(statusAt(1), 100);
  ASSERT_TRUE(layer->respond(tx, 200));
  EXPECT_FALSE(layer->respond(tx, 200).ok());
}

TEST_F(ServerTxTest, NonInviteServerTimerJIsZeroOnReliable) {
  RequestSpec bye;
  bye.method = "BYE";
  bye.toTag = "tt";
  bye.via = "SIP/2.0/TCP 198.51.100.7:5062;branch=z9hG4bKtcp4";
  // The TU answers inside onRequest; the request reference must stay valid afterwards.
  tu.onRequestHook = [&](ServerTxId tx, const Message& req) {
    ASSERT_TRUE(layer->respond(tx, 200));
    EXPECT_EQ(req.callId(), "call-1@198.51.100.7");
  };
  inject(bye, tcp);
  EXPECT_EQ(layer->serverCount(), 1u);
  timers.advance(0ms);
  EXPECT_EQ(layer->serverCount(), 0u);
  ASSERT_EQ(tu.ended.size(), 1u);
}

// ---- matching ----

TEST_F(ServerTxTest, SentByTakesPartInMatching) {
  RequestSpec a;
  a.method = "OPTIONS";
  RequestSpec b = a;
  b.via = "SIP/2.0/UDP 198.51.100.8:5062;branch=z9hG4bKabc1"; // same branch, other sent-by
  b.fromTag = "other";
  inject(a);
  inject(b);
  EXPECT_EQ(tu.requests.size(), 2u);
}

TEST_F(ServerTxTest, Rfc2543FallbackMatching) {
  RequestSpec inv;
  inv.via = "SIP/2.0/UDP 198.51.100.7:5062"; // no branch: RFC 2543 client
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 486));
  inject(inv); // Request-URI, tags, Call-ID, CSeq, top Via equal: retransmission
  EXPECT_EQ(tu.requests.size(), 1u);
  ASSERT_EQ(transport.sent.size(), 2u);
  RequestSpec wrongAck = ackFor(inv, 0);
  wrongAck.toTag = "not-ours";
  inject(wrongAck); // To tag differs from our response's: not this transaction
  EXPECT_EQ(tu.acks.size(), 1u);
  inject(ackFor(inv, 0)); // matches: Confirmed, absorbed
  EXPECT_EQ(tu.acks.size(), 1u);
  timers.advance(1s);
  EXPECT_EQ(transport.sent.size(), 2u); // Timer G stopped
  RequestSpec other = inv;
  other.cseq = 2;
  inject(other);
  EXPECT_EQ(tu.requests.size(), 2u);
  RequestSpec otherVia = inv;
  otherVia.via = "SIP/2.0/UDP 198.51.100.9:5062";
  otherVia.fromTag = "ft9";
  inject(otherVia);
  EXPECT_EQ(tu.requests.size(), 3u);
}

TEST_F(ServerTxTest, Rfc2543CancelMatchesTheInvite) {
  RequestSpec inv;
  inv.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=oldstyle1";
  inject(inv);
  ServerTxId tx = lastTx();
  inject(cancelFor(inv));
  ASSERT_EQ(tu.cancels.size(), 1u);
  EXPECT_EQ(tu.cancels[0].first, tx);
}

// ---- CANCEL (RFC 3261 §9.2) ----

TEST_F(ServerTxTest, CancelMatchesInviteIsAnswered200AndTuIsTold) {
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  ASSERT_TRUE(layer->respond(tx, 180));
  inject(cancelFor(inv));
  ASSERT_EQ(transport.sent.size(), 2u);
  auto ok = transport.parsed(1);
  EXPECT_EQ(ok->statusCode(), 200);
  EXPECT_EQ(ok->cseq().method, Method::Cancel);
  EXPECT_EQ(ok->toTag(), transport.parsed(0)->toTag()); // same tag as the INVITE's response
  ASSERT_EQ(tu.cancels.size(), 1u);
  EXPECT_EQ(tu.cancels[0].first, tx);
  EXPECT_TRUE(tu.requests.size() == 1u); // the CANCEL is not a new request for the TU
  ASSERT_TRUE(layer->respond(tx, 487));
  EXPECT_EQ(transport.parsed(2)->toTag(), ok->toTag());
  inject(cancelFor(inv)); // retransmitted CANCEL: the 200 again, no second onCancel
  ASSERT_EQ(transport.sent.size(), 4u);
  EXPECT_EQ(transport.sent[3].bytes, transport.sent[1].bytes);
  EXPECT_EQ(tu.cancels.size(), 1u);
  inject(ackFor(inv, 2)); // the ACK for the 487 is absorbed
  EXPECT_TRUE(tu.acks.empty());
}

TEST_F(ServerTxTest, CancelBeforeAnyTaggedResponseSharesTheTag) {
  RequestSpec inv;
  inject(inv);
  ServerTxId tx = lastTx();
  inject(cancelFor(inv));
  ASSERT_EQ(tu.cancels.size(), 1u);
  ASSERT_TRUE(layer->respond(tx, 487));
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_FALSE(transport.parsed(0)->toTag().empty());
  EXPECT_EQ(transport.parsed(0)->toTag(), transport.parsed(1)->toTag());
}

TEST_F(ServerTxTest, CancelWithoutTransactionGets481) {
  uint64_t before = counter("verbund_sip_481_sent_total");
  RequestSpec inv;
  inject(cancelFor(inv));
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(statusAt(0), 481);
  EXPECT_TRUE(tu.cancels.empty());
  EXPECT_TRUE(tu.requests.empty());
  EXPECT_EQ(counter("verbund_sip_481_sent_total"), before + 1);
  inject(cancelFor(inv)); // absorbed by its own transaction
  EXPECT_EQ(counter("verbund_sip_481_sent_total"), before + 1);
  EXPECT_EQ(transport.sent.size(), 2u);
}

TEST_F(ServerTxTest, CancelAfterFinalGets200ButNoOnCancel) {
  RequestSpec inv;
  inject(inv);
  ASSERT_TRUE(layer->respond(lastTx(), 486));
  inject(cancelFor(inv));
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(statusAt(1), 200);
  EXPECT_TRUE(tu.cancels.empty());
}

// ---- merged requests (RFC 3261 §8.2.2.2) ----

TEST_F(ServerTxTest, MergedRequestGets482) {
  uint64_t before = counter("verbund_sip_482_sent_total");
  RequestSpec first;
  inject(first);
  RequestSpec second = first;
  second.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKforked";
  inject(second);
  EXPECT_EQ(tu.requests.size(), 1u);
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(statusAt(0), 482);
  EXPECT_EQ(counter("verbund_sip_482_sent_total"), before + 1);
  inject(second); // its retransmission gets the 482 again from the 482's transaction
  ASSERT_EQ(transport.sent.size(), 2u);
  EXPECT_EQ(statusAt(1), 482);
  inject(ackFor(second, 0));
  EXPECT_TRUE(tu.acks.empty());
  // A request with a To tag is never a merged request.
  RequestSpec inDialog = first;
  inDialog.method = "INFO";
  inDialog.toTag = "tt";
  inDialog.via = "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKinfo";
  inject(inDialog);
  EXPECT_EQ(tu.requests.size(), 2u);
}

TEST_F(ServerTxTest, RequestScreenRejectionIsAnsweredStatefully) {
  layer->setRequestScreen([](const Message& m) -> std::optional<Rejection> {
    if (m.method() != Method::Invite) return std::nullopt;
    return Rejection{420, {}, "Unsupported", "foo"};
  });
  RequestSpec inv;
  inject(inv);
  EXPECT_TRUE(tu.requests.empty());
  ASSERT_EQ(transport.sent.size(), 1u);
  EXPECT_EQ(statusAt(0), 420);
  EXPECT_EQ(header(*transport.parsed(0), HeaderId::Unsupported), "foo");
  inject(inv);
  EXPECT_EQ(transport.sent.size(), 2u);
  inject(ackFor(inv, 0));
  EXPECT_TRUE(tu.acks.empty());
  EXPECT_TRUE(tu.ended.empty());
  timers.advance(60s);
  EXPECT_TRUE(tu.ended.empty()); // internal transactions are not reported
  EXPECT_EQ(layer->serverCount(), 0u);
}

TEST_F(ServerTxTest, ResponseDestinationFollowsRfc3261Section18_2_2) {
  RequestSpec s;
  s.via = "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1";
  auto noRport = requestFrom(s, peer(TransportType::Udp, "198.51.100.7:40000"));
  EXPECT_EQ(responseDestination(*noRport).remote.toString(), "198.51.100.7:5070");
  s.via = "SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK1";
  auto rport = requestFrom(s, peer(TransportType::Udp, "198.51.100.7:40000"));
  EXPECT_EQ(responseDestination(*rport).remote.toString(), "198.51.100.7:40000");
  s.via = "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1";
  auto defaultPort = requestFrom(s, peer(TransportType::Udp, "198.51.100.7:40000"));
  EXPECT_EQ(responseDestination(*defaultPort).remote.toString(), "198.51.100.7:5060");
  s.via = "SIP/2.0/TLS 10.0.0.5;branch=z9hG4bK1";
  auto tls = requestFrom(s, peer(TransportType::Tls, "198.51.100.7:40000", 12));
  Peer p = responseDestination(*tls);
  EXPECT_EQ(p.connection, 12u);
  EXPECT_EQ(p.remote.toString(), "198.51.100.7:5061");
  auto unknown = parseOrDie(requestText(s));
  EXPECT_EQ(responseDestination(*unknown).remote.toString(), "10.0.0.5:5061");
}

TEST_F(ServerTxTest, DestroyingTheLayerCancelsItsTimers) {
  inject(RequestSpec{});
  ASSERT_TRUE(layer->respond(lastTx(), 486));
  EXPECT_GT(timers.pending(), 0u);
  layer.reset();
  EXPECT_EQ(timers.pending(), 0u);
}

} // namespace
} // namespace verbund::sip

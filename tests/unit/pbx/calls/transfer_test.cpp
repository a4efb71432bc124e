// Call transfer carried out by the node (transfer.cpp) in simulated time over the real dialog
// and transaction layers: the phone (300) calls alice (100); alice's phone sends REFER. Blind
// transfer to bob (101): NOTIFY progress, the target called with the caller's identity and no
// offer, the caller re-INVITEd with the target's offer; the transferring phone hanging up before
// the answer; failures with and without the transferor (recall on busy and after the recall
// time); the caller hanging up meanwhile; attended transfer (Replaces naming the transferor's
// other call); refusals; the transfer state table.
#include "pbx/calls/refer.h"
#include "unit/pbx/calls/call_fixture.h"

namespace verbund::pbx {
namespace {

using namespace test;

const std::string kSdpPhone2 = "v=0\r\no=phone 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 "
                               "192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const std::string kSdpBob = "v=0\r\no=bob 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 "
                            "192.0.2.3\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

// A request inside a dialog as the peer sends it, with extra header lines.
std::string request(std::string_view method, std::string_view from, std::string_view to,
                    std::string_view callId, uint32_t cseq, std::string_view via,
                    std::string_view extra = {}, std::string_view body = {}) {
  return inDialog(method, from, to, callId, cseq, via, body, extra);
}

struct Transfer : Fixture {
  // 300 (kPhone) calls 100; alice answers; the phone ACKs.
  void connect() {
    h.inject(invite("100", "t1", {}, kSdpPhone), kPhone);
    auto forks = sentTo(kAliceDev, "INVITE");
    ASSERT_EQ(forks.size(), 1u);
    aliceInvite = std::move(forks[0]);
    h.inject(reply(*aliceInvite, 200, "al1", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice),
             kAliceDev);
    for (auto& m : h.take())
      if (m->isResponse() && m->statusCode() == 200) phoneTag = std::string(m->toTag());
    ASSERT_FALSE(phoneTag.empty());
    fromPhone("ACK", 1);
    h.take();
  }
  void fromPhone(std::string_view method, uint32_t cseq, std::string_view body = {}) {
    h.inject(request(method, "<sip:caller@192.0.2.9>;tag=ph1",
                     "<sip:100@192.0.2.1>;tag=" + phoneTag, "t1", cseq, "192.0.2.9:5060", {}, body),
             kPhone);
  }
  void fromAlice(std::string_view method, uint32_t cseq, std::string_view extra = {}) {
    h.inject(request(method, "<sip:100@nodeA.example>;tag=al1",
                     "<sip:300@nodeA.example>;tag=" + std::string(aliceInvite->fromTag()),
                     aliceInvite->callId(), cseq, "192.0.2.2:5060", extra),
             kAliceDev);
  }
  void refer(std::string_view target, uint32_t cseq = 7) {
    fromAlice("REFER", cseq, "Refer-To: <" + std::string(target) + ">\r\n");
  }
  struct Sent {
    std::vector<MessagePtr> phone, alice, bob;
  };
  Sent sent() {
    Sent s;
    auto all = h.take();
    for (size_t i = 0; i < all.size(); ++i) {
      if (h.last[i].to.remote == kPhone.remote) s.phone.push_back(std::move(all[i]));
      if (h.last[i].to.remote == kAliceDev.remote) s.alice.push_back(std::move(all[i]));
      if (h.last[i].to.remote == kBobDev.remote) s.bob.push_back(std::move(all[i]));
    }
    return s;
  }
  static const Message* req(const std::vector<MessagePtr>& v, std::string_view method) {
    for (const auto& m : v)
      if (m->isRequest() && m->methodName() == method) return m.get();
    return nullptr;
  }
  static int status(const std::vector<MessagePtr>& v, sip::Method method) {
    for (const auto& m : v)
      if (m->isResponse() && m->cseq().method == method) return m->statusCode();
    return 0;
  }
  // The sipfrag status codes of the NOTIFYs in `v`, with "terminated" marked by a minus sign.
  std::vector<int> notifies(const std::vector<MessagePtr>& v, uint32_t referCSeq = 7) {
    std::vector<int> out;
    for (const auto& m : v) {
      if (!m->isRequest() || m->methodName() != "NOTIFY") continue;
      EXPECT_EQ(m->header("Event").value_or(""), "refer;id=" + std::to_string(referCSeq));
      auto code = sipfragStatus(m->body());
      EXPECT_TRUE(code);
      bool over = m->header("Subscription-State").value_or("").rfind("terminated", 0) == 0;
      out.push_back(over ? -code.value_or(0) : code.value_or(0));
      h.inject(reply(*m, 200), kAliceDev);
    }
    return out;
  }
  // Transfer to bob (101): the REFER's answers and bob's INVITE.
  MessagePtr blindToBob(uint32_t cseq = 7) {
    refer("sip:101@nodeA.example", cseq);
    auto s = sent();
    EXPECT_EQ(status(s.alice, sip::Method::Refer), 202);
    EXPECT_EQ(notifies(s.alice, cseq), std::vector<int>{100});
    for (auto& m : s.bob)
      if (m->isRequest() && m->methodName() == "INVITE") return std::move(m);
    ADD_FAILURE() << "no INVITE to the target";
    return nullptr;
  }

  MessagePtr aliceInvite;
  std::string phoneTag;
};

TEST_F(Transfer, BlindTransferJoinsCallerAndTarget) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  // The target sees the original caller, and gets no offer: its answer brings one.
  EXPECT_NE(bob->header("From").value_or("").find("sip:300@"), std::string_view::npos);
  EXPECT_NE(bob->header("P-Asserted-Identity").value_or("").find("sip:300@"),
            std::string_view::npos);
  EXPECT_TRUE(bob->body().empty());
  h.inject(reply(*bob, 180, "bo1", "Contact: <sip:bob@192.0.2.3:5060>"), kBobDev);
  auto s = sent();
  EXPECT_EQ(notifies(s.alice), std::vector<int>{180});
  EXPECT_TRUE(s.phone.empty()) << "the caller's answered leg gets no provisional";
  h.inject(reply(*bob, 200, "bo1", "Contact: <sip:bob@192.0.2.3:5060>", kSdpBob), kBobDev);
  s = sent();
  EXPECT_EQ(notifies(s.alice), std::vector<int>{-200});
  EXPECT_TRUE(req(s.alice, "BYE")) << "the transferring phone's leg ends";
  EXPECT_FALSE(req(s.bob, "ACK")) << "the target's ACK waits for the caller's answer";
  const Message* reinvite = req(s.phone, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_EQ(reinvite->body(), kSdpBob);
  EXPECT_FALSE(req(s.phone, "BYE"));
  h.inject(reply(*reinvite, 200, "ph1", "Contact: <sip:caller@192.0.2.9:5060>", kSdpPhone2),
           kPhone);
  s = sent();
  const Message* ack = req(s.bob, "ACK");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->body(), kSdpPhone2);
  EXPECT_EQ(calls->stats().transfersDone, 1u);
  // The two remaining parties are one call now: the caller's BYE reaches bob.
  fromPhone("BYE", 3);
  s = sent();
  EXPECT_TRUE(req(s.bob, "BYE"));
  h.advance(Duration(10));
  auto records = log->find({});
  ASSERT_TRUE(records.ok());
  int transferred = 0;
  for (const auto& r : *records)
    if (r.transferredBy == "100") ++transferred;
  EXPECT_EQ(transferred, 2) << "the transferred call and the transfer's call name alice";
}

TEST_F(Transfer, TransferorHangsUpBeforeTheAnswerAndTheCallerStays) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  h.inject(reply(*bob, 180, "bo1", "Contact: <sip:bob@192.0.2.3:5060>"), kBobDev);
  notifies(sent().alice);
  fromAlice("BYE", 8);
  auto s = sent();
  EXPECT_FALSE(req(s.phone, "BYE")) << "the caller must not be dropped";
  EXPECT_TRUE(req(s.bob, "CANCEL") == nullptr);
  h.inject(reply(*bob, 200, "bo1", "Contact: <sip:bob@192.0.2.3:5060>", kSdpBob), kBobDev);
  s = sent();
  const Message* reinvite = req(s.phone, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_TRUE(s.alice.empty()) << "nothing more for the phone that left";
  h.inject(reply(*reinvite, 200, "ph1", "Contact: <sip:caller@192.0.2.9:5060>", kSdpPhone2),
           kPhone);
  EXPECT_TRUE(req(sent().bob, "ACK"));
  EXPECT_EQ(calls->stats().transfersDone, 1u);
}

TEST_F(Transfer, BusyTargetWhileTheTransferorStaysKeepsTheCall) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  h.inject(reply(*bob, 486, "bo1"), kBobDev);
  auto s = sent();
  EXPECT_EQ(notifies(s.alice), std::vector<int>{-486});
  EXPECT_FALSE(req(s.phone, "BYE"));
  EXPECT_FALSE(req(s.alice, "BYE"));
  EXPECT_EQ(calls->stats().transfersFailed, 1u);
  // The call goes on: the caller's BYE still reaches alice, and another transfer may follow.
  auto again = blindToBob(9);
  ASSERT_TRUE(again);
}

TEST_F(Transfer, BusyTargetAfterTheTransferorLeftRecallsAtOnce) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  fromAlice("BYE", 8);
  h.take();
  h.inject(reply(*bob, 486, "bo1"), kBobDev);
  auto s = sent();
  const Message* recall = req(s.alice, "INVITE");
  ASSERT_TRUE(recall) << "the transferring user's phone rings again";
  EXPECT_NE(recall->header("From").value_or("").find("sip:300@"), std::string_view::npos);
  EXPECT_FALSE(req(s.phone, "BYE"));
  EXPECT_EQ(calls->stats().recalls, 1u);
  h.inject(reply(*recall, 200, "al2", "Contact: <sip:alice@192.0.2.2:5060>", kSdpAlice), kAliceDev);
  s = sent();
  const Message* reinvite = req(s.phone, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_EQ(reinvite->body(), kSdpAlice);
}

TEST_F(Transfer, UnansweredTargetRecallsAfterTheRecallTime) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  h.inject(reply(*bob, 180, "bo1", "Contact: <sip:bob@192.0.2.3:5060>"), kBobDev);
  fromAlice("BYE", 8);
  h.take();
  h.advance(Duration(29000));
  EXPECT_FALSE(req(sent().alice, "INVITE")) << "not before the recall time";
  h.advance(Duration(1000));
  auto s = sent();
  EXPECT_TRUE(req(s.bob, "CANCEL"));
  EXPECT_TRUE(req(s.alice, "INVITE"));
  EXPECT_EQ(calls->stats().recalls, 1u);
}

TEST_F(Transfer, CallerHangsUpWhileTheTargetRings) {
  connect();
  auto bob = blindToBob();
  ASSERT_TRUE(bob);
  h.inject(reply(*bob, 180, "bo1", "Contact: <sip:bob@192.0.2.3:5060>"), kBobDev);
  notifies(sent().alice);
  fromPhone("BYE", 3);
  auto s = sent();
  EXPECT_TRUE(req(s.bob, "CANCEL"));
  EXPECT_EQ(notifies(s.alice), std::vector<int>{-487});
  EXPECT_TRUE(req(s.alice, "BYE"));
}

TEST_F(Transfer, RefusedWithoutUsableReferTo) {
  connect();
  fromAlice("REFER", 7);
  EXPECT_EQ(status(sent().alice, sip::Method::Refer), 400);
  refer("sip:%ZZ@nodeA.example", 8);
  EXPECT_EQ(status(sent().alice, sip::Method::Refer), 400);
  // Replaces naming no call of this user.
  refer("sip:101@nodeA.example?Replaces=nothing%3Bto-tag%3D1%3Bfrom-tag%3D2", 9);
  EXPECT_EQ(status(sent().alice, sip::Method::Refer), 403);
  EXPECT_EQ(calls->stats().transfers, 0u);
}

TEST_F(Transfer, AttendedTransferJoinsTheOtherPartiesOfBothCalls) {
  connect(); // call 1: 300 (phone) -> 100 (alice)
  // Call 2, the consultation: alice's phone calls bob (101).
  caller.party = localUser("100", "alice", "Alice");
  std::string consult = "INVITE sip:101@192.0.2.1 SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK-c2\r\n"
                        "Max-Forwards: 70\r\nFrom: <sip:100@192.0.2.1>;tag=alc\r\n"
                        "To: <sip:101@192.0.2.1>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\n"
                        "Contact: <sip:alice@192.0.2.2:5060>\r\nContent-Type: application/sdp\r\n"
                        "Content-Length: " +
                        std::to_string(kSdpAlice.size()) + "\r\n\r\n" + kSdpAlice;
  h.inject(consult, kAliceDev);
  auto s = sent();
  const Message* bobInvite = req(s.bob, "INVITE");
  ASSERT_TRUE(bobInvite);
  h.inject(reply(*bobInvite, 200, "bo1", "Contact: <sip:bob@192.0.2.3:5060>", kSdpBob), kBobDev);
  std::string nodeTag;
  for (auto& m : h.take())
    if (m->isResponse() && m->statusCode() == 200 && m->callId() == "c2")
      nodeTag = std::string(m->toTag());
  ASSERT_FALSE(nodeTag.empty());
  h.inject(request("ACK", "<sip:100@192.0.2.1>;tag=alc", "<sip:101@192.0.2.1>;tag=" + nodeTag, "c2",
                   1, "192.0.2.2:5060"),
           kAliceDev);
  h.take();
  // Alice transfers the phone (call 1) to bob, replacing her consultation dialog.
  refer("sip:101@nodeA.example?Replaces=c2%3Bto-tag%3D" + nodeTag + "%3Bfrom-tag%3Dalc");
  s = sent();
  EXPECT_EQ(status(s.alice, sip::Method::Refer), 202);
  auto n = notifies(s.alice);
  ASSERT_FALSE(n.empty());
  EXPECT_EQ(n.back(), -200);
  int byes = 0;
  for (auto& m : s.alice)
    if (m->isRequest() && m->methodName() == "BYE") ++byes;
  EXPECT_EQ(byes, 2) << "both of the transferring phone's legs end";
  EXPECT_FALSE(req(s.phone, "BYE"));
  EXPECT_FALSE(req(s.bob, "BYE"));
  const Message* ask = req(s.bob, "INVITE");
  ASSERT_TRUE(ask) << "an offerless re-INVITE asks bob for an offer";
  EXPECT_TRUE(ask->body().empty());
  h.inject(reply(*ask, 200, "bo1", "Contact: <sip:bob@192.0.2.3:5060>", kSdpBob), kBobDev);
  s = sent();
  const Message* reinvite = req(s.phone, "INVITE");
  ASSERT_TRUE(reinvite);
  EXPECT_EQ(reinvite->body(), kSdpBob);
  h.inject(reply(*reinvite, 200, "ph1", "Contact: <sip:caller@192.0.2.9:5060>", kSdpPhone2),
           kPhone);
  s = sent();
  const Message* ack = req(s.bob, "ACK");
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->body(), kSdpPhone2);
  EXPECT_EQ(calls->stats().transfersDone, 1u);
  fromPhone("BYE", 3);
  EXPECT_TRUE(req(sent().bob, "BYE"));
}

TEST_F(Transfer, CallerSideTransfersTheAnsweringParty) {
  connect();
  // The caller's phone (300, a local user) transfers alice to bob: alice is the transferee.
  fromPhone("REFER", 2);
  h.take(); // no Refer-To: 400, nothing else
  h.inject(request("REFER", "<sip:caller@192.0.2.9>;tag=ph1", "<sip:100@192.0.2.1>;tag=" + phoneTag,
                   "t1", 3, "192.0.2.9:5060", "Refer-To: <sip:101@nodeA.example>\r\n"),
           kPhone);
  auto s = sent();
  EXPECT_EQ(status(s.phone, sip::Method::Refer), 202);
  const Message* bob = req(s.bob, "INVITE");
  ASSERT_TRUE(bob);
  EXPECT_NE(bob->header("From").value_or("").find("sip:100@"), std::string_view::npos)
      << "bob sees alice, the party that stays";
  h.inject(reply(*bob, 200, "bo1", "Contact: <sip:bob@192.0.2.3:5060>", kSdpBob), kBobDev);
  Sent after = sent();
  EXPECT_TRUE(req(after.phone, "BYE")) << "the transferring phone's leg ends";
  const Message* reinvite = req(after.alice, "INVITE");
  ASSERT_TRUE(reinvite) << "alice is re-INVITEd with bob's offer";
  EXPECT_EQ(reinvite->body(), kSdpBob);
}

TEST(TransferStates, Table) {
  using S = TransferState;
  EXPECT_TRUE(allowed(S::Trying, S::Ringing));
  EXPECT_TRUE(allowed(S::Trying, S::Joining));
  EXPECT_TRUE(allowed(S::Ringing, S::Recalling));
  EXPECT_TRUE(allowed(S::Recalling, S::Joining));
  EXPECT_TRUE(allowed(S::AskingOffer, S::Joining));
  EXPECT_TRUE(allowed(S::Joining, S::Done));
  EXPECT_FALSE(allowed(S::Done, S::Failed));
  EXPECT_FALSE(allowed(S::Failed, S::Trying));
  EXPECT_FALSE(allowed(S::Recalling, S::Recalling));
  EXPECT_FALSE(allowed(S::Ringing, S::Trying));
  EXPECT_FALSE(allowed(S::Recalling, S::Ringing));
}

TEST(ReferCodec, ReferToAndReplaces) {
  auto blind = parseReferTo("\"Bob\" <sip:2-01@pbx.example;transport=udp>;x=1");
  ASSERT_TRUE(blind);
  EXPECT_EQ(blind->user, "201");
  EXPECT_FALSE(blind->replaces);
  auto att = parseReferTo("<sip:201@h?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2&X=y>");
  ASSERT_TRUE(att);
  ASSERT_TRUE(att->replaces);
  EXPECT_EQ(att->replaces->callId, "abc@h");
  EXPECT_EQ(att->replaces->toTag, "1");
  EXPECT_EQ(att->replaces->fromTag, "2");
  EXPECT_FALSE(parseReferTo(""));
  EXPECT_FALSE(parseReferTo("<sip:@h>"));
  EXPECT_FALSE(parseReferTo("<mailto:x@h>"));
  EXPECT_FALSE(parseReferTo("<sip:201@h?Replaces=abc%3Bto-tag%3D1>")); // no from-tag
  EXPECT_FALSE(parseReferTo("<sip:" + std::string(65, '1') + "@h>"));
  auto rep = parseReplaces(" c@h ; from-tag=b;to-tag=a;early-only");
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->callId, "c@h");
  EXPECT_EQ(rep->toTag, "a");
  EXPECT_TRUE(rep->earlyOnly);
  EXPECT_FALSE(parseReplaces("c;to-tag=a;to-tag=b;from-tag=c"));
  EXPECT_FALSE(parseReplaces(";to-tag=a;from-tag=b"));
}

TEST(ReferCodec, Sipfrag) {
  EXPECT_EQ(sipfrag(180), "SIP/2.0 180 Ringing\r\n");
  EXPECT_EQ(sipfrag(486, "Busy\r\nX: y"), "SIP/2.0 486 BusyX: y\r\n");
  EXPECT_EQ(sipfragStatus("SIP/2.0 200 OK\r\n"), 200);
  EXPECT_FALSE(sipfragStatus("SIP/2.0 20 OK"));
  EXPECT_FALSE(sipfragStatus("HTTP/1.1 200 OK"));
}

} // namespace
} // namespace verbund::pbx

#include "sip/message/builder.h"

#include <gtest/gtest.h>

namespace verbund::sip {
namespace {

MessagePtr parse(std::string s) {
  auto r = parseMessage(std::move(s));
  EXPECT_TRUE(r.ok()) << r.error.reason;
  return std::move(r.message);
}

TEST(Builder, RequestRoundTrip) {
  std::string wire = MessageBuilder::request("OPTIONS", "sip:a@127.0.0.1")
                         .header(HeaderId::Via, "SIP/2.0/UDP 127.0.0.1:5070;branch=" + newBranch())
                         .header("From", "<sip:b@127.0.0.1>;tag=" + newTag())
                         .header("To", "<sip:a@127.0.0.1>")
                         .header("Call-ID", newCallId("127.0.0.1"))
                         .header("CSeq", "1 OPTIONS")
                         .body("text/plain", "hello")
                         .finish();
  auto m = parse(wire);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body(), "hello");
  EXPECT_EQ(m->header(HeaderId::ContentType).value_or(""), "text/plain");
  EXPECT_TRUE(m->topVia().rfc3261Branch());
}

TEST(Builder, ResponseAddsReceivedAndRport) {
  auto req =
      parse("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP phone.example:5070;rport;"
            "branch=z9hG4bK1\r\nVia: SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n"
            "From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\n\r\n");
  ASSERT_TRUE(req);
  Peer src;
  src.remote = *SockAddr::parse("192.0.2.7:40000");
  req->setSource(src);
  auto resp = parse(responseTo(*req, 180, {}, "totag").finish());
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->statusCode(), 180);
  EXPECT_EQ(resp->reason(), "Ringing");
  EXPECT_EQ(resp->toTag(), "totag");
  EXPECT_EQ(resp->cseq().seq, 5u);
  ASSERT_EQ(resp->vias().size(), 2u);
  EXPECT_EQ(resp->topVia().received, "192.0.2.7");
  EXPECT_EQ(resp->topVia().rport, 40000);
  EXPECT_EQ(resp->topVia().branch, "z9hG4bK1");
  EXPECT_EQ(resp->vias()[1].host, "proxy");
}

TEST(Builder, NoReceivedWhenSentByMatchesSource) {
  auto req =
      parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1\r\n"
            "From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 5 OPTIONS\r\n\r\n");
  Peer src;
  src.remote = *SockAddr::parse("10.0.0.1:5070");
  req->setSource(src);
  auto resp = parse(responseTo(*req, 200).finish());
  EXPECT_EQ(resp->topVia().received, "");
  EXPECT_EQ(resp->topVia().text, "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1");
}

TEST(Builder, TokensAreUnique) {
  EXPECT_NE(newTag(), newTag());
  EXPECT_NE(newBranch(), newBranch());
  EXPECT_EQ(newBranch().substr(0, 7), "z9hG4bK");
}

} // namespace
} // namespace verbund::sip

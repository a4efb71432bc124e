#include "sip/message/builder.h"
#include "sip/message/message.h"

#include <gtest/gtest.h>

namespace verbund::sip {
namespace {

std::string crlf(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\r\n";
    else
      out += c;
  }
  return out;
}

const char* kInvite = R"(INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKnashds8;received=192.0.2.1
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: "Alice \"A\"" <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>
Route: <sip:p1.example.com;lr>,
 <sip:p2.example.com;lr>
Subject: a folded
	subject line
Content-Type: application/sdp
Content-Length: 4

v=0
)";

TEST(Parser, ParsesRoutingHeadersOfAnInvite) {
  auto r = parseMessage(crlf(kInvite));
  ASSERT_TRUE(r.ok()) << r.error.reason;
  const Message& m = *r.message;
  EXPECT_TRUE(m.isRequest());
  EXPECT_EQ(m.method(), Method::Invite);
  EXPECT_EQ(m.requestUri().user, "bob");
  EXPECT_EQ(m.requestUri().host, "biloxi.example.com");
  ASSERT_EQ(m.vias().size(), 2u);
  EXPECT_EQ(m.topVia().branch, "z9hG4bK776asdhds");
  EXPECT_EQ(m.topVia().transport, "UDP");
  EXPECT_EQ(m.vias()[1].host, "[2001:db8::1]");
  EXPECT_EQ(m.vias()[1].port, 5061);
  EXPECT_EQ(m.vias()[1].received, "192.0.2.1");
  EXPECT_EQ(m.fromTag(), "1928301774");
  EXPECT_EQ(m.from().displayName, R"(Alice \"A\")");
  EXPECT_EQ(m.toTag(), "");
  EXPECT_EQ(m.to().displayName, "Bob");
  EXPECT_EQ(m.callId(), "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(m.cseq().seq, 314159u);
  EXPECT_EQ(m.cseq().method, Method::Invite);
  EXPECT_EQ(m.maxForwards(), 70u);
  ASSERT_EQ(m.routes().size(), 2u);
  EXPECT_EQ(m.routes()[1].uri.host, "p2.example.com");
  EXPECT_TRUE(m.routes()[0].uri.hasParam("lr"));
  ASSERT_EQ(m.contacts().size(), 1u);
  EXPECT_EQ(m.contacts()[0].uri.transportParam(), "tcp");
  EXPECT_EQ(m.header(HeaderId::Subject).value_or(""), "a folded  \tsubject line");
  EXPECT_EQ(m.body(), "v=0\r");
  EXPECT_EQ(m.header("content-type").value_or(""), "application/sdp");
}

TEST(Parser, CompactFormsAndResponse) {
  auto r = parseMessage(crlf("SIP/2.0 180 Ringing\n"
                             "v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=5062\n"
                             "f: <sip:a@x>;tag=a\nt: <sip:b@y>;tag=b\ni: abc\n"
                             "CSeq: 1 INVITE\nm: <sip:b@10.0.0.2>\nl: 0\n\n"));
  ASSERT_TRUE(r.ok()) << r.error.reason;
  EXPECT_TRUE(r.message->isResponse());
  EXPECT_EQ(r.message->statusCode(), 180);
  EXPECT_EQ(r.message->reason(), "Ringing");
  EXPECT_EQ(r.message->toTag(), "b");
  EXPECT_EQ(r.message->callId(), "abc");
  EXPECT_EQ(r.message->topVia().rport, 5062);
  EXPECT_EQ(r.message->contacts().size(), 1u);
}

TEST(Parser, RejectsWithReasons) {
  struct Case {
    const char* msg;
    int status;
    const char* reason;
  } cases[] = {
      {"INVITE sip:a@b SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 "
       "INVITE\n\n",
       400, "Missing Via header"},
      {"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <sip:a@b>\nCall-ID: "
       "x\nCSeq: 1 INVITE\n\n",
       400, "Missing From header"},
      {"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: "
       "<sip:a@b>\nCall-ID: x\nCSeq: 1 BYE\n\n",
       400, "CSeq method does not match request method"},
      {"INVITE sip:a@b SIP/7.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: "
       "<sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
       505, "Version Not Supported"},
      {"INVITE sip:a@b ;lr SIP/2.0\nVia: SIP/2.0/UDP h\nFrom: <sip:a@b>\nTo: <sip:a@b>\nCall-ID: "
       "x\nCSeq: 1 INVITE\n\n",
       400, "Whitespace in Request-URI"},
      {"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: "
       "<sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 10\n\nabc",
       400, "Content-Length larger than message"},
      {"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: "
       "<sip:a@b>\nCall-ID: x\nCSeq: 99999999999 INVITE\n\n",
       400, "CSeq number too large"},
      {"INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: \"unterminated "
       "<sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\n\n",
       400, "Bad From header: Unterminated quoted display name"},
  };
  for (const auto& c : cases) {
    auto r = parseMessage(crlf(c.msg));
    ASSERT_FALSE(r.ok()) << c.msg;
    EXPECT_EQ(r.error.status, c.status) << c.msg;
    EXPECT_EQ(r.error.reason, c.reason) << c.msg;
    EXPECT_TRUE(r.error.isRequest);
  }
}

TEST(Parser, ToleratesExtraSpacesBetweenRequestLineElements) {
  auto r =
      parseMessage(crlf("OPTIONS  sip:a@b   SIP/2.0  \nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
                        "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"));
  ASSERT_TRUE(r.ok()) << r.error.reason;
  EXPECT_EQ(r.message->requestUri().text, "sip:a@b");
  EXPECT_EQ(r.message->sipVersion(), "SIP/2.0");
}

TEST(Parser, DatagramBodyIsTruncatedToContentLength) {
  auto r = parseMessage(crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
                             "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n"
                             "Content-Length: 2\n\nabcdef"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.message->body(), "ab");
  auto s = parseMessage(crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
                             "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n"
                             "Content-Length: 2\n\nabcdef"),
                        ParseOptions{.stream = true, .limits = {}});
  EXPECT_FALSE(s.ok());
}

TEST(Parser, LimitsAreEnforced) {
  std::string big = "OPTIONS sip:a@b SIP/2.0\r\n" + std::string(70000, 'a');
  auto r = parseMessage(big);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.status, 513);
  std::string many = "OPTIONS sip:a@b SIP/2.0\r\n";
  for (int i = 0; i < 300; ++i) many += "X-H: 1\r\n";
  many += "\r\n";
  EXPECT_EQ(parseMessage(many).error.reason, "Too many headers");
}

TEST(Parser, SerializeRoundTrips) {
  auto r = parseMessage(crlf(kInvite));
  ASSERT_TRUE(r.ok());
  std::string wire = r.message->serialize();
  auto again = parseMessage(wire);
  ASSERT_TRUE(again.ok()) << again.error.reason;
  EXPECT_EQ(again.message->serialize(), wire);
  EXPECT_EQ(again.message->vias().size(), 2u);
  EXPECT_EQ(again.message->routes().size(), 2u);
  EXPECT_EQ(again.message->body(), r.message->body());
  EXPECT_EQ(again.message->callId(), r.message->callId());
}

TEST(Parser, ErrorResponseCopiesDialogHeaders) {
  std::string bad = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h:5070;branch=z9hG4bK1\n"
                         "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\n"
                         "Content-Length: abc\n\n");
  auto r = parseMessage(bad);
  ASSERT_FALSE(r.ok());
  std::string resp = buildErrorResponse(bad, r.error);
  auto p = parseMessage(resp);
  ASSERT_TRUE(p.ok()) << resp;
  EXPECT_EQ(p.message->statusCode(), 400);
  EXPECT_EQ(p.message->reason(), "Bad Content-Length");
  EXPECT_EQ(p.message->callId(), "x");
  EXPECT_FALSE(p.message->toTag().empty());
  EXPECT_EQ(buildErrorResponse("garbage\r\n\r\n", ParseError{400, "x", true}), "");
  // A header that does not parse is left out rather than echoed.
  std::string badCseq =
      crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n"
           "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: abc INVITE\n\n");
  std::string resp2 = buildErrorResponse(badCseq, ParseError{400, "Bad CSeq", true});
  EXPECT_EQ(resp2.find("CSeq:"), std::string::npos);
  EXPECT_NE(resp2.find("Call-ID: x"), std::string::npos);
}

TEST(Parser, NeverCrashesOnTruncations) {
  std::string full = crlf(kInvite);
  for (size_t n = 0; n < full.size(); ++n) {
    auto r = parseMessage(full.substr(0, n));
    (void)r;
  }
  SUCCEED();
}

} // namespace
} // namespace verbund::sip

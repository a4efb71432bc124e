// Dialog state: RFC 3261 §12.1 creation, §12.2.1.1 request construction, §12.2.2 CSeq rules.
#include "sip/dialog/dialog.h"
#include "unit/sip/dialog/harness.h"

#include <gtest/gtest.h>

namespace verbund::sip::test {
namespace {

const char* kInvite = "INVITE sip:bob@example.com SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa\r\n"
                      "Max-Forwards: 70\r\n"
                      "From: \"Alice\" <sip:alice@example.com>;tag=ft1\r\n"
                      "To: <sip:bob@example.com>\r\n"
                      "Call-ID: call-1\r\n"
                      "CSeq: 7 INVITE\r\n"
                      "Contact: <sip:alice@192.0.2.1:5060>\r\n"
                      "Content-Length: 0\r\n\r\n";

std::string okWithRecordRoute(std::string_view rr) {
  auto inv = parse(kInvite);
  return reply(*inv, 200, "tt1",
               std::string("Record-Route: ") + std::string(rr) +
                   "\r\nContact: <sip:bob@192.0.2.9:5070>");
}

TEST(Dialog, UacRouteSetIsReversedAndLooseRoutingKeepsTheTarget) {
  auto inv = parse(kInvite);
  auto ok = parse(okWithRecordRoute("<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"));
  auto d = Dialog::fromUac(*inv, *ok);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->id(), (DialogId{"call-1", "ft1", "tt1"}));
  EXPECT_FALSE(d->early());
  EXPECT_TRUE(d->isUac());
  ASSERT_EQ(d->routeSet().size(), 2u);
  EXPECT_EQ(d->routeSet()[0], "<sip:p1.example.com;lr>");
  EXPECT_EQ(d->routeSet()[1], "<sip:p2.example.com;lr>");
  EXPECT_EQ(d->remoteTarget(), "sip:bob@192.0.2.9:5070");
  EXPECT_EQ(d->localCSeq(), 7u);
  EXPECT_FALSE(d->remoteCSeq());

  DialogTarget t = d->target();
  EXPECT_EQ(t.requestUri, "sip:bob@192.0.2.9:5070");
  EXPECT_EQ(t.nextHop, "sip:p1.example.com;lr");
  EXPECT_EQ(t.routes, d->routeSet());

  uint32_t seq = d->nextLocalCSeq();
  EXPECT_EQ(seq, 8u);
  auto bye = parse(d->request("BYE", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb", seq, false).finish());
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->requestUri().text, "sip:bob@192.0.2.9:5070");
  ASSERT_EQ(bye->routes().size(), 2u);
  EXPECT_EQ(bye->routes()[0].uri.text, "sip:p1.example.com;lr");
  EXPECT_EQ(bye->fromTag(), "ft1");
  EXPECT_EQ(bye->toTag(), "tt1");
  EXPECT_EQ(bye->from().displayName, "Alice");
  EXPECT_EQ(bye->cseq().seq, 8u);
  EXPECT_EQ(bye->cseq().method, Method::Bye);
  EXPECT_EQ(bye->maxForwards(), 70u);
}

TEST(Dialog, StrictRouterBecomesRequestUriAndTargetIsLastRoute) {
  auto inv = parse(kInvite);
  auto ok = parse(okWithRecordRoute("<sip:p2.example.com;lr>, <sip:p1.example.com>"));
  auto d = Dialog::fromUac(*inv, *ok);
  ASSERT_TRUE(d.ok());
  DialogTarget t = d->target();
  // RFC 3261 §12.2.1.1: strict routing.
  EXPECT_EQ(t.requestUri, "sip:p1.example.com");
  EXPECT_EQ(t.nextHop, "sip:p1.example.com");
  ASSERT_EQ(t.routes.size(), 2u);
  EXPECT_EQ(t.routes[0], "<sip:p2.example.com;lr>");
  EXPECT_EQ(t.routes[1], "<sip:bob@192.0.2.9:5070>");
  auto req = parse(d->request("INFO", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc", 8, false).finish());
  ASSERT_TRUE(req);
  EXPECT_EQ(req->requestUri().text, "sip:p1.example.com");
  ASSERT_EQ(req->routes().size(), 2u);
  EXPECT_EQ(req->routes()[1].uri.text, "sip:bob@192.0.2.9:5070");
}

TEST(Dialog, NoRoutesMeansRemoteTargetIsNextHop) {
  auto inv = parse(kInvite);
  auto ok = parse(reply(*inv, 200, "tt1", "Contact: <sip:bob@192.0.2.9>"));
  auto d = Dialog::fromUac(*inv, *ok);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->routeSet().empty());
  EXPECT_EQ(d->target().nextHop, "sip:bob@192.0.2.9");
  EXPECT_EQ(d->target().requestUri, "sip:bob@192.0.2.9");
}

TEST(Dialog, UasKeepsRecordRouteOrderAndChecksCSeq) {
  std::string text = kInvite;
  text.insert(text.find("Contact:"),
              "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n");
  auto inv = parse(text);
  auto d = Dialog::fromUas(*inv, "mytag", "sip:pbx@192.0.2.1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->id(), (DialogId{"call-1", "mytag", "ft1"}));
  EXPECT_TRUE(d->early());
  ASSERT_EQ(d->routeSet().size(), 2u);
  EXPECT_EQ(d->routeSet()[0], "<sip:p2.example.com;lr>");
  EXPECT_EQ(d->remoteTarget(), "sip:alice@192.0.2.1:5060");
  EXPECT_EQ(d->remoteCSeq(), 7u);
  EXPECT_FALSE(d->localCSeq());
  EXPECT_EQ(d->nextLocalCSeq(), 1u); // empty local CSeq starts at 1
  EXPECT_EQ(d->localHeader(), "<sip:bob@example.com>;tag=mytag");

  auto bye = [&](uint32_t seq) {
    std::string b = "BYE sip:bob@192.0.2.1 SIP/2.0\r\n"
                    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx" +
                    std::to_string(seq) +
                    "\r\n"
                    "From: <sip:alice@example.com>;tag=ft1\r\n"
                    "To: <sip:bob@example.com>;tag=mytag\r\n"
                    "Call-ID: call-1\r\n"
                    "CSeq: " +
                    std::to_string(seq) + " BYE\r\nContent-Length: 0\r\n\r\n";
    return parse(b);
  };
  // RFC 3261 §12.2.2: lower (or repeated) CSeq -> 500, higher is taken.
  auto low = d->acceptRemoteCSeq(*bye(6));
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.error().code, 500);
  EXPECT_FALSE(d->acceptRemoteCSeq(*bye(7)).ok());
  EXPECT_TRUE(d->acceptRemoteCSeq(*bye(9)).ok());
  EXPECT_EQ(d->remoteCSeq(), 9u);
}

TEST(Dialog, UasRejectsRequestWithoutContact) {
  std::string text = kInvite;
  text.erase(text.find("Contact:"), std::string("Contact: <sip:alice@192.0.2.1:5060>\r\n").size());
  auto inv = parse(text);
  EXPECT_FALSE(Dialog::fromUas(*inv, "t", "sip:x@192.0.2.1").ok());
}

TEST(Dialog, UacNeedsToTag) {
  auto inv = parse(kInvite);
  auto ringing = parse(reply(*inv, 180));
  EXPECT_FALSE(Dialog::fromUac(*inv, *ringing).ok());
}

TEST(Dialog, TargetRefreshAndEarlyToConfirmed) {
  auto inv = parse(kInvite);
  auto ringing = parse(reply(
      *inv, 180, "tt1", "Record-Route: <sip:old.example.com;lr>\r\nContact: <sip:bob@10.0.0.1>"));
  auto d = Dialog::fromUac(*inv, *ringing);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->early());
  // RFC 3261 §13.2.2.4: the 2xx recomputes the route set of an early dialog.
  auto ok = parse(reply(*inv, 200, "tt1",
                        "Record-Route: <sip:new.example.com;lr>\r\nContact: <sip:bob@10.0.0.2>"));
  d->confirmFromResponse(*ok);
  EXPECT_FALSE(d->early());
  ASSERT_EQ(d->routeSet().size(), 1u);
  EXPECT_EQ(d->routeSet()[0], "<sip:new.example.com;lr>");
  EXPECT_EQ(d->remoteTarget(), "sip:bob@10.0.0.2");
}

} // namespace
} // namespace verbund::sip::test

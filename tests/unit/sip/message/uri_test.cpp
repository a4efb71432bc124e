#include "sip/message/headers.h"
#include "sip/message/uri.h"

#include <gtest/gtest.h>

namespace verbund::sip {
namespace {

TEST(Uri, ParsesSipUriParts) {
  auto u = parseUri("sips:alice:secret@[2001:db8::10]:5061;transport=tls;lr?subject=x&priority=u");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->scheme, UriScheme::Sips);
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "secret");
  EXPECT_EQ(u->host, "[2001:db8::10]");
  EXPECT_EQ(u->port, 5061);
  EXPECT_EQ(u->transportParam(), "tls");
  EXPECT_TRUE(u->hasParam("lr"));
  EXPECT_EQ(u->headers, "subject=x&priority=u");
}

TEST(Uri, TelAndOtherSchemes) {
  auto t = parseUri("tel:+49-30-1234;phone-context=+49");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->scheme, UriScheme::Tel);
  EXPECT_EQ(t->user, "+49-30-1234");
  EXPECT_EQ(t->param("phone-context").value_or(""), "+49");
  auto o = parseUri("mailto:a@b.example");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->scheme, UriScheme::Other);
}

TEST(Uri, RejectsBadUris) {
  for (const char* bad :
       {"sip:", "sip:user@", "sip:a@b:99999", "sip:a@b c", "sip:a@[::1", "sip:us%zzer@b", "nocolon",
        "sip:a@exa%2ecom", "1sip:a@b", "sip:a@h;ttl=1;TTL=2"})
    EXPECT_FALSE(parseUri(bad).ok()) << bad;
}

TEST(Uri, ComparisonFollowsRfc3261) {
  auto eq = [](const char* a, const char* b) {
    return uriEquals(parseUri(a).value(), parseUri(b).value());
  };
  EXPECT_TRUE(eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
  EXPECT_TRUE(eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
  EXPECT_FALSE(eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
  EXPECT_FALSE(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
  EXPECT_FALSE(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
  EXPECT_FALSE(eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"));
}

TEST(NameAddr, Forms) {
  auto a = parseNameAddr("  Bob Smith <sip:bob@x.example>;tag=77;expires=30");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->displayName, "Bob Smith");
  EXPECT_EQ(a->tag(), "77");
  EXPECT_EQ(a->param("expires").value_or(""), "30");
  auto b = parseNameAddr("sip:bob@x.example;tag=88");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->uri.params, "");
  EXPECT_EQ(b->tag(), "88");
  EXPECT_FALSE(parseNameAddr("Bob <sip:bob@x").ok());
  EXPECT_FALSE(parseNameAddr("B\"b <sip:bob@x>").ok());
  EXPECT_TRUE(parseNameAddr("Bell, Alexander <sip:bob@x>").ok()); // RFC 4475 baddn: liberal
}

TEST(Via, Parameters) {
  auto v =
      parseVia("SIP / 2.0 / TCP client.example:5070 ;branch=z9hG4bKabc;rport;received=1.2.3.4");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->transport, "TCP");
  EXPECT_EQ(v->host, "client.example");
  EXPECT_EQ(v->port, 5070);
  EXPECT_EQ(v->branch, "z9hG4bKabc");
  EXPECT_TRUE(v->hasRport);
  EXPECT_FALSE(v->rport.has_value());
  EXPECT_TRUE(v->rfc3261Branch());
  EXPECT_FALSE(parseVia("SIP/3.0/UDP h").ok());
  EXPECT_FALSE(parseVia("SIP/2.0/UDP").ok());
  EXPECT_FALSE(parseVia("SIP/2.0/UDP h:70000").ok());
}

TEST(CSeq, Bounds) {
  EXPECT_EQ(parseCSeq("2147483647 ACK")->seq, 2147483647u);
  EXPECT_FALSE(parseCSeq("2147483648 ACK").ok());
  EXPECT_FALSE(parseCSeq("1INVITE").ok());
  EXPECT_FALSE(parseCSeq("INVITE").ok());
}

} // namespace
} // namespace verbund::sip

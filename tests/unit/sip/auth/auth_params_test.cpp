// parseAuthParams (RFC 3261 §25.1 challenge / credentials, RFC 7235 §2.1).
#include "sip/message/headers.h"

#include <gtest/gtest.h>
#include <string>

namespace verbund::sip {
namespace {

TEST(AuthParams, ParsesChallenge) {
  auto r = parseAuthParams(R"(Digest realm="a", nonce="b", qop="auth,auth-int", )"
                           R"(algorithm=SHA-256, stale=TRUE)");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->scheme, "Digest");
  ASSERT_EQ(r->count, 5u);
  EXPECT_EQ(r->get("realm"), "a");
  EXPECT_EQ(r->get("nonce"), "b");
  EXPECT_EQ(r->get("qop"), "auth,auth-int"); // the comma inside quotes does not split
  EXPECT_EQ(r->get("algorithm"), "SHA-256");
  EXPECT_EQ(r->get("STALE"), "TRUE"); // names are case-insensitive
  EXPECT_TRUE(r->items[0].quoted);
  EXPECT_FALSE(r->items[3].quoted);
  EXPECT_FALSE(r->get("opaque").has_value());
}

TEST(AuthParams, ViewsPointIntoInput) {
  std::string in = "Digest username=\"bob\"";
  auto r = parseAuthParams(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->get("username")->data(), in.data() + 17);
}

TEST(AuthParams, QuotedCommasAndEscapes) {
  auto r = parseAuthParams(R"(Digest realm="a, \"b\" \\ c",nonce="x,y=z")");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->count, 2u);
  EXPECT_EQ(r->get("realm"), R"(a, \"b\" \\ c)");
  EXPECT_EQ(unquote(*r->get("realm")), R"(a, "b" \ c)");
  EXPECT_EQ(r->get("nonce"), "x,y=z");
}

TEST(AuthParams, Whitespace) {
  auto r = parseAuthParams("  Digest \t realm = \"a\"  ,\tnonce\t=b ,  opaque=\"\"  \r\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->count, 3u);
  EXPECT_EQ(r->get("realm"), "a");
  EXPECT_EQ(r->get("nonce"), "b");
  EXPECT_EQ(r->get("opaque"), "");
  EXPECT_TRUE(r->items[2].quoted);
}

TEST(AuthParams, UnfoldedAndRawFolds) {
  auto r = parseAuthParams("Digest realm=\"a\",\r\n nonce=\"b\r\n\tc\"");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->get("nonce"), "b\r\n\tc");
}

TEST(AuthParams, EmptyListElementsTolerated) {
  // RFC 7230 §7: recipients accept empty list elements.
  auto r = parseAuthParams("Digest ,realm=a,, nonce=b,");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->count, 2u);
}

TEST(AuthParams, BareScheme) {
  auto r = parseAuthParams("Digest");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scheme, "Digest");
  EXPECT_EQ(r->count, 0u);
}

TEST(AuthParams, Errors) {
  const char* bad[] = {
      "",
      "   ",
      "\"Digest\" realm=a",
      "Digest realm",                    // no '='
      "Digest realm=",                   // empty token value
      "Digest realm=,nonce=b",           // empty token value
      "Digest realm=\"a",                // unterminated
      "Digest realm=\"a\\",              // escape at the end
      "Digest realm=\"a\" nonce=b",      // missing comma
      "Digest realm=a b",                // junk after value
      "Digest realm=a;nonce=b",          // wrong separator
      "Digest =a",                       // no name
      "Digest realm=\"a\x01\"",          // control character
      "Digest realm=\"a\nb\"",           // bare LF
      "Digest realm=\"a\\\nb\"",         // escaped LF
      "Digest realm=\"a\", realm=\"b\"", // duplicate (RFC 7616 §3.4)
      "Digest Realm=a, REALM=b",         // duplicate, case-insensitive
      "Basic dXNlcjpwYXNz",              // token68 is not an auth-param
      "Digest\x01 realm=a",
      "Digest,realm=a", // scheme needs LWS
  };
  for (const char* s : bad) {
    auto r = parseAuthParams(s);
    EXPECT_FALSE(r.ok()) << "accepted: " << s;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, 400);
      EXPECT_EQ(r.error().message.rfind("Bad auth header: ", 0), 0u) << r.error().message;
    }
  }
}

TEST(AuthParams, NonAsciiInQuotedStringAllowed) {
  auto r = parseAuthParams("Digest realm=\"M\xc3\xbcnchen\""); // UTF8-NONASCII
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->get("realm"), "M\xc3\xbcnchen");
}

TEST(AuthParams, TooManyParams) {
  std::string s = "Digest ";
  for (size_t i = 0; i < AuthParams::kMaxParams; ++i) s += "p" + std::to_string(i) + "=v,";
  auto ok = parseAuthParams(s);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->count, AuthParams::kMaxParams);
  s += "extra=v";
  auto r = parseAuthParams(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "Bad auth header: too many parameters");
}

TEST(AuthParams, EmbeddedNulIsRejectedNotTruncated) {
  std::string s("Digest realm=\"a\0b\"", 19);
  EXPECT_FALSE(parseAuthParams(s).ok());
  std::string t("Digest realm=a\0", 15);
  EXPECT_FALSE(parseAuthParams(t).ok());
}

TEST(AuthParams, Unquote) {
  EXPECT_EQ(unquote(""), "");
  EXPECT_EQ(unquote("abc"), "abc");
  EXPECT_EQ(unquote(R"(a\"b\\c\d)"), R"(a"b\cd)");
  EXPECT_EQ(unquote("a\\"), "a\\"); // a dangling backslash is kept rather than dropped
}

} // namespace
} // namespace verbund::sip

#include "http/request_parser.h"

#include <gtest/gtest.h>

namespace verbund::http {
namespace {

RequestLimits small() {
  RequestLimits l;
  l.maxHeadBytes = 256;
  l.maxHeaders = 4;
  l.maxBodyBytes = 16;
  return l;
}

// Feeds the bytes one at a time: every state must survive arbitrary splits.
RequestParser& feedBytewise(RequestParser& p, std::string_view text) {
  for (char c : text) {
    if (p.done() || p.failed()) break;
    p.feed(std::string_view(&c, 1));
  }
  return p;
}

TEST(RequestParser, ParsesHeadQueryAndBody) {
  std::string text = "POST /api/v1/users%2Fx?q=a+b&n=%41 HTTP/1.1\r\nHost: h\r\n"
                     "content-length: 5\r\nX-Empty:\r\n\r\nhello";
  for (bool bytewise : {false, true}) {
    RequestParser p(small());
    if (bytewise)
      feedBytewise(p, text);
    else
      EXPECT_EQ(p.feed(text), text.size());
    ASSERT_TRUE(p.done()) << p.errorMessage();
    auto& r = p.request();
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/api/v1/users/x");
    EXPECT_EQ(r.query.find("q")->second, "a b");
    EXPECT_EQ(r.query.find("n")->second, "A");
    EXPECT_EQ(r.headerValue("HOST"), "h");
    EXPECT_EQ(r.headerValue("x-empty"), "");
    EXPECT_EQ(r.body, "hello");
    EXPECT_TRUE(r.keepAlive);
  }
}

TEST(RequestParser, LeavesPipelinedBytes) {
  std::string text = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  RequestParser p;
  size_t used = p.feed(text);
  ASSERT_TRUE(p.done());
  EXPECT_EQ(text.substr(used), "GET /b HTTP/1.1\r\n\r\n");
  p.reset();
  p.feed(text.substr(used));
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.request().path, "/b");
}

TEST(RequestParser, DecodesChunkedBodiesWithExtensionsAndTrailers) {
  std::string text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n3\r\n ab\r\n0\r\nX-Trailer: t\r\n\r\n";
  RequestParser p(small());
  feedBytewise(p, text);
  ASSERT_TRUE(p.done()) << p.errorMessage();
  EXPECT_EQ(p.request().body, "hello ab");
  EXPECT_TRUE(p.request().chunked);
}

TEST(RequestParser, ChunkedBodyOverTheLimitFailsBeforeTheData) {
  RequestParser p(small());
  std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(p.feed(head + "10\r\n"), head.size() + 4); // 16: exactly the limit
  EXPECT_FALSE(p.failed());
  p.feed(std::string(16, 'x') + "\r\n");
  EXPECT_FALSE(p.failed());
  p.feed("1\r\n"); // one byte more than the limit: refused at the size line
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.errorStatus(), 413);
  EXPECT_LE(p.request().body.size(), 16u);
  EXPECT_EQ(p.feed("x"), 0u); // sticky
}

TEST(RequestParser, HugeChunkSizeIsRefusedWithoutOverflow) {
  RequestParser p(small());
  p.feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n");
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.errorStatus(), 413);
  RequestParser q(small());
  q.feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n");
  ASSERT_TRUE(q.failed());
  EXPECT_EQ(q.errorStatus(), 400);
}

TEST(RequestParser, ContentLengthOverTheLimitFailsAtTheHead) {
  RequestParser p(small());
  p.feed("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n");
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.errorStatus(), 413);
}

TEST(RequestParser, HeaderFloodGets431) {
  RequestParser count(small());
  feedBytewise(count, "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n");
  ASSERT_TRUE(count.failed());
  EXPECT_EQ(count.errorStatus(), 431);

  RequestParser size(small());
  size.feed("GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'a'));
  ASSERT_TRUE(size.failed()); // before the line even ends
  EXPECT_EQ(size.errorStatus(), 431);

  RequestParser exact(small()); // four fields pass
  feedBytewise(exact, "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n");
  EXPECT_TRUE(exact.done()) << exact.errorMessage();
}

TEST(RequestParser, TrailerFloodGets431) {
  RequestParser p(small());
  std::string text = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 10; ++i) text += "t: 1\r\n";
  p.feed(text);
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.errorStatus(), 431);
}

struct Bad {
  const char* text;
  int status;
};

TEST(RequestParser, RefusesMalformedAndAmbiguousRequests) {
  const Bad cases[] = {
      {"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / FTP/1.0\r\n\r\n", 400},
      {"GET http://x/ HTTP/1.1\r\n\r\n", 400},
      {"GET /a%zz HTTP/1.1\r\n\r\n", 400},
      {"GET /a%00 HTTP/1.1\r\n\r\n", 400},
      {"GET /?a=%4 HTTP/1.1\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nExpect: something\r\n\r\n", 417},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400},
  };
  for (const auto& c : cases) {
    RequestParser p(small());
    p.feed(c.text);
    EXPECT_TRUE(p.failed()) << c.text;
    EXPECT_EQ(p.errorStatus(), c.status) << c.text;
  }
}

TEST(RequestParser, ConnectionAndExpectHeaders) {
  RequestParser p;
  p.feed("POST / HTTP/1.1\r\nConnection: foo, Close\r\nExpect: 100-continue\r\n"
         "Content-Length: 2\r\n\r\n");
  EXPECT_TRUE(p.headComplete());
  EXPECT_FALSE(p.done());
  EXPECT_FALSE(p.request().keepAlive);
  EXPECT_TRUE(p.request().expectContinue);
  RequestParser old;
  old.feed("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old.done());
  EXPECT_FALSE(old.request().keepAlive);
}

TEST(RequestParser, IgnoresAFewLeadingBlankLinesOnly) {
  RequestParser p;
  p.feed("\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(p.done());
  RequestParser q;
  q.feed(std::string(200, '\n'));
  EXPECT_TRUE(q.failed());
}

} // namespace
} // namespace verbund::http

#include "sip/transport/framing.h"

#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace verbund::sip {
namespace {

using Kind = StreamFramer::Kind;

// What the framer produced, flattened for comparison: messages as text, pings as "<ping>",
// an error as "<error>".
std::vector<std::string> drain(StreamFramer& f) {
  std::vector<std::string> out;
  for (;;) {
    auto fr = f.next();
    if (fr.kind == Kind::NeedMore) return out;
    if (fr.kind == Kind::Ping) out.push_back("<ping>");
    if (fr.kind == Kind::Message) out.push_back(std::move(fr.message));
    if (fr.kind == Kind::Error) {
      out.push_back("<error>");
      return out;
    }
  }
}

std::vector<std::string> feedAll(StreamFramer& f, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) {
    f.feed(c);
    auto part = drain(f);
    out.insert(out.end(), part.begin(), part.end());
    if (!out.empty() && out.back() == "<error>") break;
  }
  return out;
}

const std::string kOptions = "OPTIONS sip:a@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
                             "Call-ID: x\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n";
const std::string kMessage = "MESSAGE sip:a@example.com SIP/2.0\r\n"
                             "Call-ID: y\r\n"
                             "content-length: 5\r\n"
                             "\r\n"
                             "hello";
const std::string kCompact = "SIP/2.0 200 OK\r\n"
                             "i: z\r\n"
                             "L : 3\r\n"
                             "\r\n"
                             "abc";

TEST(StreamFramer, SingleMessage) {
  StreamFramer f;
  EXPECT_EQ(feedAll(f, {kOptions}), std::vector<std::string>{kOptions});
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(StreamFramer, SeveralMessagesInOneChunk) {
  StreamFramer f;
  std::string all = kOptions + kMessage + kCompact;
  EXPECT_EQ(feedAll(f, {all}), (std::vector<std::string>{kOptions, kMessage, kCompact}));
}

TEST(StreamFramer, SplitAtEveryByteBoundary) {
  const std::string all = "\r\n" + kMessage + "\r\n\r\n" + kOptions + kCompact + "\r\n";
  const std::vector<std::string> want{kMessage, "<ping>", kOptions, kCompact};
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    StreamFramer f;
    EXPECT_EQ(feedAll(f, {all.substr(0, cut), all.substr(cut)}), want) << "cut at " << cut;
  }
  for (size_t a = 0; a <= all.size(); a += 7) {
    for (size_t b = a; b <= all.size(); ++b) {
      StreamFramer f;
      EXPECT_EQ(feedAll(f, {all.substr(0, a), all.substr(a, b - a), all.substr(b)}), want);
    }
  }
}

TEST(StreamFramer, ByteByByte) {
  const std::string all = kOptions + kMessage + kCompact;
  std::vector<std::string> chunks;
  for (char c : all) chunks.emplace_back(1, c);
  StreamFramer f;
  EXPECT_EQ(feedAll(f, chunks), (std::vector<std::string>{kOptions, kMessage, kCompact}));
}

TEST(StreamFramer, PingAndPong) {
  StreamFramer f;
  // RFC 5626 §3.5.1: CRLFCRLF is a ping; a lone CRLF (pong) is skipped.
  EXPECT_EQ(feedAll(f, {"\r\n\r\n"}), std::vector<std::string>{"<ping>"});
  EXPECT_EQ(feedAll(f, {"\r\n" + kOptions}), std::vector<std::string>{kOptions});
  EXPECT_EQ(feedAll(f, {"\r\n\r\n\r\n\r\n"}), (std::vector<std::string>{"<ping>", "<ping>"}));
  // A CRLF at the end of the buffer could be half a ping: nothing is reported yet.
  EXPECT_EQ(feedAll(f, {"\r\n"}), std::vector<std::string>{});
  EXPECT_EQ(feedAll(f, {"\r\n"}), std::vector<std::string>{"<ping>"});
  EXPECT_EQ(feedAll(f, {"\r\n", kCompact}), std::vector<std::string>{kCompact});
}

TEST(StreamFramer, CompactAndFoldedContentLength) {
  StreamFramer f;
  EXPECT_EQ(feedAll(f, {kCompact}), std::vector<std::string>{kCompact});
  const std::string folded = "INFO sip:b SIP/2.0\r\nCONTENT-LENGTH:\r\n \t 4\r\nX: y\r\n\r\nbody";
  EXPECT_EQ(feedAll(f, {folded}), std::vector<std::string>{folded});
  // The start-line is not a header even when it looks like one.
  const std::string tricky = "l: 99 SIP/2.0\r\nl:1\r\n\r\nZ";
  EXPECT_EQ(feedAll(f, {tricky}), std::vector<std::string>{tricky});
}

TEST(StreamFramer, DuplicateContentLength) {
  StreamFramer same;
  const std::string ok = "A b SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nxy";
  EXPECT_EQ(feedAll(same, {ok}), std::vector<std::string>{ok});
  StreamFramer conflicting;
  EXPECT_EQ(feedAll(conflicting, {"A b SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\nxyz"}),
            std::vector<std::string>{"<error>"});
  EXPECT_EQ(conflicting.error(), "conflicting Content-Length headers");
}

class BadContentLength : public ::testing::TestWithParam<std::string> {};

TEST_P(BadContentLength, IsFatal) {
  StreamFramer f;
  std::string msg = "INVITE sip:x SIP/2.0\r\nCall-ID: a\r\n" + GetParam() + "\r\n";
  EXPECT_EQ(feedAll(f, {msg, "more"}), std::vector<std::string>{"<error>"});
  EXPECT_TRUE(f.failed());
  EXPECT_FALSE(f.error().empty());
  // Sticky: further input changes nothing.
  f.feed(kOptions);
  EXPECT_EQ(f.next().kind, Kind::Error);
}

INSTANTIATE_TEST_SUITE_P(StreamFramer, BadContentLength,
                         ::testing::Values("", "Content-Length: -1\r\n", "Content-Length: +1\r\n",
                                           "Content-Length:\r\n", "Content-Length: 1x\r\n",
                                           "Content-Length: 1 2\r\n", "Content-Length: 0x10\r\n",
                                           "Content-Length: 99999999999999999999999999\r\n",
                                           "Content-Length: 18446744073709551617\r\n",
                                           "Content-Length: 65537\r\n", "l: 4294967296\r\n",
                                           "Content-Lengthy: 0\r\n"));

TEST(StreamFramer, HeaderLimit) {
  StreamFramer f(256, 1024);
  std::string big = "INVITE sip:x SIP/2.0\r\nX: " + std::string(300, 'a');
  EXPECT_EQ(feedAll(f, {big}), std::vector<std::string>{"<error>"});
  EXPECT_EQ(f.error(), "header block exceeds limit");
  EXPECT_EQ(f.buffered(), 0u);

  // Terminator present but beyond the limit, all in one chunk.
  StreamFramer g(256, 1024);
  EXPECT_EQ(feedAll(g, {big + "\r\nl: 0\r\n\r\n"}), std::vector<std::string>{"<error>"});

  // Exactly at the limit is fine.
  std::string head = "A b SIP/2.0\r\nl: 0\r\nX: ";
  std::string exact = head + std::string(256 - head.size() - 4, 'b') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 256u);
  StreamFramer h(256, 1024);
  EXPECT_EQ(feedAll(h, {exact}), std::vector<std::string>{exact});
}

TEST(StreamFramer, MessageLimit) {
  const std::string head = "A b SIP/2.0\r\nl: ";
  StreamFramer f(256, 1024);
  std::string okHead = head + "1000\r\n\r\n";
  std::string ok = okHead + std::string(1024 - okHead.size(), 'x');
  std::string tooBig = head + "1010\r\n\r\n";
  EXPECT_EQ(feedAll(f, {ok}), std::vector<std::string>{ok});
  EXPECT_EQ(feedAll(f, {tooBig}), std::vector<std::string>{"<error>"});
  EXPECT_EQ(f.error(), "message exceeds limit");
}

TEST(StreamFramer, GarbageWithoutTerminatorFailsAtLimit) {
  StreamFramer f(1024, 4096);
  std::vector<std::string> out;
  for (int i = 0; i < 100 && out.empty(); ++i) out = feedAll(f, {std::string(100, '\x01')});
  EXPECT_EQ(out, std::vector<std::string>{"<error>"});
  EXPECT_TRUE(f.failed());
}

TEST(StreamFramer, BinaryBodyWithCrlfs) {
  StreamFramer f;
  std::string body("\r\n\r\n\0\r\n", 7);
  std::string msg = "A b SIP/2.0\r\nl: 7\r\n\r\n" + body;
  EXPECT_EQ(feedAll(f, {msg + msg}), (std::vector<std::string>{msg, msg}));
}

} // namespace
} // namespace verbund::sip

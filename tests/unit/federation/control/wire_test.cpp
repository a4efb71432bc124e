#include "federation/control/wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace verbund::federation {
namespace {

using nlohmann::json;

std::string rawFrame(std::string_view body) {
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string f;
  f.push_back(static_cast<char>(n >> 24));
  f.push_back(static_cast<char>((n >> 16) & 0xff));
  f.push_back(static_cast<char>((n >> 8) & 0xff));
  f.push_back(static_cast<char>(n & 0xff));
  f += body;
  return f;
}

bool isCode(const Error& e, ControlErrc c) {
  return e.code == static_cast<int>(c);
}

Hello sampleHello() {
  Hello h;
  h.federationId = "0123456789abcdef0123456789abcdef";
  h.nodeId = "node-a";
  h.name = "Zürich";
  h.productVersion = "0.1.0";
  h.protocol = {1, 3};
  h.controlAddresses = {"10.0.0.1:3090", "[fd00::1]:3090", "pbx.example.org:3090"};
  h.sipAddress = "10.0.0.1:5061";
  h.sentMs = 1764300000000;
  return h;
}

TEST(ControlFrame, EncodesBigEndianLengthAndJson) {
  std::string f = encodeFrame(json{{"t", "ping"}, {"ms", 5}});
  ASSERT_GE(f.size(), 4u);
  std::string body = f.substr(4);
  EXPECT_EQ(body, R"({"ms":5,"t":"ping"})");
  EXPECT_EQ(f.substr(0, 4), std::string("\0\0\0\x13", 4));
}

TEST(ControlFrame, DecodesSeveralFramesFedByteByByte) {
  std::string stream = encodeFrame(json{{"t", "a"}}) + encodeFrame(json{{"t", "b"}, {"x", {1, 2}}});
  FrameDecoder d;
  std::vector<json> out;
  for (char c : stream) ASSERT_TRUE(d.feed(std::string_view(&c, 1), out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["t"], "a");
  EXPECT_EQ(out[1]["x"][1], 2);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ControlFrame, KeepsPartialFrameBuffered) {
  std::string f = encodeFrame(json{{"t", "members"}, {"members", json::array()}});
  FrameDecoder d;
  std::vector<json> out;
  ASSERT_TRUE(d.feed(std::string_view(f).substr(0, 7), out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(d.buffered(), 7u);
  ASSERT_TRUE(d.feed(std::string_view(f).substr(7), out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ControlFrame, RefusesOversizeLengthBeforeReadingBody) {
  FrameDecoder d;
  std::vector<json> out;
  uint32_t n = kMaxFrameBytes + 1;
  std::string header{static_cast<char>(n >> 24), static_cast<char>((n >> 16) & 0xff),
                     static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
  auto r = d.feed(header, out);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isCode(r.error(), ControlErrc::kBadFrame));
  EXPECT_NE(r.error().message.find("exceeds"), std::string::npos);
}

TEST(ControlFrame, AcceptsFrameOfExactlyTheLimit) {
  std::string filler(kMaxFrameBytes - 20, 'x');
  json j{{"t", "big"}, {"f", filler}};
  std::string f = encodeFrame(j);
  ASSERT_LE(f.size() - 4, kMaxFrameBytes);
  FrameDecoder d;
  std::vector<json> out;
  ASSERT_TRUE(d.feed(f, out).ok());
  ASSERT_EQ(out.size(), 1u);
}

TEST(ControlFrame, RefusesBadJsonAndStaysFailed) {
  FrameDecoder d;
  std::vector<json> out;
  auto r = d.feed(rawFrame(R"({"t":"hello",)") + encodeFrame(json{{"t", "ok"}}), out);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isCode(r.error(), ControlErrc::kBadFrame));
  EXPECT_TRUE(out.empty());
  auto again = d.feed(encodeFrame(json{{"t", "ok"}}), out);
  EXPECT_FALSE(again.ok());
  EXPECT_TRUE(out.empty());
}

TEST(ControlFrame, MessagesBeforeABadFrameAreDelivered) {
  FrameDecoder d;
  std::vector<json> out;
  auto r = d.feed(encodeFrame(json{{"t", "ok"}}) + rawFrame("[1,2]"), out);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["t"], "ok");
}

TEST(ControlFrame, RefusesNonObjectsAndMissingOrEmptyType) {
  for (const std::string& body :
       std::vector<std::string>{R"([1])", R"("t")", R"({"x":1})", R"({"t":""})", R"({"t":5})",
                                std::string("\xff\xfe{}", 4), R"({"t":"a\ud800"})"}) {
    FrameDecoder d;
    std::vector<json> out;
    auto r = d.feed(rawFrame(body), out);
    EXPECT_FALSE(r.ok()) << body;
    EXPECT_TRUE(out.empty()) << body;
  }
  FrameDecoder d;
  std::vector<json> out;
  EXPECT_FALSE(d.feed(std::string(4, '\0'), out).ok()); // empty frame
}

TEST(ControlFrame, RefusesDeepNestingButCountsOnlyOutsideStrings) {
  std::string deep = R"({"t":"x","a":)" + std::string(100, '[') + std::string(100, ']') + "}";
  FrameDecoder d1;
  std::vector<json> out;
  auto r = d1.feed(rawFrame(deep), out);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nested"), std::string::npos);

  std::string ok = R"({"t":"x","a":)" + std::string(60, '[') + std::string(60, ']') + R"(,"s":")" +
                   std::string(200, '[') + R"(\"{{{"})";
  FrameDecoder d2;
  ASSERT_TRUE(d2.feed(rawFrame(ok), out).ok());
  ASSERT_EQ(out.size(), 1u);
}

TEST(ControlProtocolVersion, ParsesAndPrints) {
  auto v = ProtocolVersion::parse("1.0");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (ProtocolVersion{1, 0}));
  EXPECT_EQ((ProtocolVersion{12, 345}).toString(), "12.345");
  EXPECT_EQ(ProtocolVersion::parse("999.999"), (ProtocolVersion{999, 999}));
  for (const char* bad : {"", "1", "1.", ".1", "1.0.0", "a.b", "-1.0", "+1.0", "1000.0", "1.1000",
                          " 1.0", "1.0 ", "1,0"})
    EXPECT_FALSE(ProtocolVersion::parse(bad)) << bad;
}

TEST(ControlProtocolVersion, EqualMajorsAreCompatible) {
  EXPECT_TRUE((ProtocolVersion{1, 0}).compatibleWith({1, 7}));
  EXPECT_FALSE((ProtocolVersion{1, 0}).compatibleWith({2, 0}));
  EXPECT_EQ(kProtocolVersion, (ProtocolVersion{1, 0}));
}

TEST(ControlHello, RoundTripsThroughJsonAndFrames) {
  Hello h = sampleHello();
  FrameDecoder d;
  std::vector<json> out;
  ASSERT_TRUE(d.feed(encodeFrame(toJson(h)), out).ok());
  ASSERT_EQ(out.size(), 1u);
  auto back = helloFromJson(out[0]);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->federationId, h.federationId);
  EXPECT_EQ(back->nodeId, h.nodeId);
  EXPECT_EQ(back->name, h.name);
  EXPECT_EQ(back->productVersion, h.productVersion);
  EXPECT_EQ(back->protocol, h.protocol);
  EXPECT_EQ(back->controlAddresses, h.controlAddresses);
  EXPECT_EQ(back->sipAddress, h.sipAddress);
  EXPECT_EQ(back->sentMs, h.sentMs);
  EXPECT_EQ(out[0]["protocol"], "1.3");
}

TEST(ControlHello, RejectsInvalidMembersNamingThem) {
  struct Case {
    const char* member;
    json value;
  };
  std::vector<Case> cases = {
      {"federationId", "ABC"},
      {"federationId", 5},
      {"nodeId", "bad id"},
      {"nodeId", ""},
      {"nodeId", std::string(65, 'a')},
      {"name", ""},
      {"name", "tab\there"},
      {"productVersion", ""},
      {"productVersion", "1 0"},
      {"protocol", "1"},
      {"protocol", 1.0},
      {"controlAddresses", "10.0.0.1:3090"},
      {"controlAddresses", json::array({"10.0.0.1"})},
      {"controlAddresses", json::array({"fd00::1:3090"})},
      {"controlAddresses", json::array({1})},
      {"controlAddresses", json(std::vector<std::string>(9, "10.0.0.1:3090"))},
      {"sipAddress", "10.0.0.1:0"},
      {"sentMs", "123"},
      {"sentMs", -1},
      {"sentMs", 1.5},
  };
  for (const auto& c : cases) {
    json j = toJson(sampleHello());
    j[c.member] = c.value;
    auto r = helloFromJson(j);
    ASSERT_FALSE(r.ok()) << c.member << " = " << c.value.dump();
    EXPECT_TRUE(isCode(r.error(), ControlErrc::kBadMessage));
    EXPECT_NE(r.error().message.find(std::string("hello.") + c.member), std::string::npos)
        << r.error().message;
  }
  for (const char* member : {"federationId", "nodeId", "name", "productVersion", "protocol",
                             "controlAddresses", "sipAddress", "sentMs"}) {
    json j = toJson(sampleHello());
    j.erase(member);
    EXPECT_FALSE(helloFromJson(j).ok()) << member;
  }
  EXPECT_FALSE(helloFromJson(json::array()).ok());
  json wrongType = toJson(sampleHello());
  wrongType["t"] = "refuse";
  EXPECT_FALSE(helloFromJson(wrongType).ok());
}

TEST(ControlHello, AcceptsEmptySipAddressAndNoControlAddresses) {
  Hello h = sampleHello();
  h.sipAddress.clear();
  h.controlAddresses.clear();
  EXPECT_TRUE(helloFromJson(toJson(h)).ok());
}

TEST(ControlRefusal, RoundTripsAndValidates) {
  Refusal r{"incompatible", "protocol 2.0 of node B is incompatible with ours (1.0)", "2.0"};
  auto back = refusalFromJson(toJson(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->code, r.code);
  EXPECT_EQ(back->message, r.message);
  EXPECT_EQ(back->protocol, "2.0");

  for (auto [member, value] : std::vector<std::pair<const char*, json>>{{"code", ""},
                                                                        {"code", "Bad Code"},
                                                                        {"code", 3},
                                                                        {"message", 3},
                                                                        {"message", "bell\a"},
                                                                        {"protocol", "x"},
                                                                        {"protocol", nullptr}}) {
    json j = toJson(r);
    j[member] = value;
    EXPECT_FALSE(refusalFromJson(j).ok()) << member << " = " << value.dump();
  }
  json noMessage = toJson(r);
  noMessage.erase("message");
  EXPECT_TRUE(refusalFromJson(noMessage).ok());
}

} // namespace
} // namespace verbund::federation

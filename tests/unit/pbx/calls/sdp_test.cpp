#include "pbx/calls/sdp.h"

#include <gtest/gtest.h>

namespace verbund::pbx::sdp {
namespace {

const char* kPhoneA = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
                      "m=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\n"
                      "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
                      "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
const char* kPhoneB = "v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=-\r\nt=0 0\r\n"
                      "m=audio 5000 RTP/AVP 0 96\r\nc=IN IP4 10.0.0.2\r\n"
                      "a=rtpmap:96 telephone-event/8000\r\n";

TEST(Sdp, ParsesMediaAndCodecs) {
  auto a = parse(kPhoneA);
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->media.size(), 1u);
  EXPECT_EQ(a->media[0].port, 4000);
  EXPECT_EQ(a->media[0].address, "10.0.0.1");
  ASSERT_EQ(a->media[0].codecs.size(), 4u);
  EXPECT_EQ(a->media[0].codecs[0].encoding, "g722/8000");
  EXPECT_EQ(a->media[0].codecs[3].fmtp, "0-15");
  auto b = parse(kPhoneB);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->media[0].address, "10.0.0.2");
  EXPECT_EQ(b->media[0].codecs[0].encoding, "pcmu/8000"); // static type without rtpmap
}

TEST(Sdp, AnswerUsesPeerAddressAndCommonCodecsInOfferOrder) {
  auto a = parse(kPhoneA);
  auto b = parse(kPhoneB);
  auto ans = answerFrom(*a, *b, 7);
  ASSERT_TRUE(ans.has_value());
  EXPECT_NE(ans->find("m=audio 5000 RTP/AVP 0 101\r\n"), std::string::npos) << *ans;
  EXPECT_NE(ans->find("c=IN IP4 10.0.0.2"), std::string::npos);
  EXPECT_NE(ans->find("a=rtpmap:101 telephone-event/8000"), std::string::npos);
  EXPECT_EQ(ans->find("G722"), std::string::npos);
  auto back = parse(*ans);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->media[0].codecs.size(), 2u);
}

TEST(Sdp, NoCommonCodecMeansNoAnswer) {
  auto a = parse("v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 1 RTP/AVP 9\r\n");
  auto b = parse("v=0\r\nc=IN IP4 2.2.2.2\r\nm=audio 2 RTP/AVP 8\r\n");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(answerFrom(*a, *b, 1).has_value());
}

TEST(Sdp, RejectsBrokenInput) {
  EXPECT_FALSE(parse("").has_value());
  EXPECT_FALSE(parse("v=0\r\nm=audio x RTP/AVP 0\r\n").has_value());
  EXPECT_FALSE(parse("v=0\r\nm=audio 99999 RTP/AVP 0\r\n").has_value());
  EXPECT_TRUE(parse("garbage\nm=audio 1 RTP/AVP 0\n").has_value());
}

} // namespace
} // namespace verbund::pbx::sdp

namespace verbund::pbx::sdp {
namespace {

std::string offerWith(const std::string& conn, const std::string& sessionAttr,
                      const std::string& mediaAttr, int port = 4000) {
  std::string s = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 " + conn + "\r\nt=0 0\r\n";
  if (!sessionAttr.empty()) s += "a=" + sessionAttr + "\r\n";
  s += "m=audio " + std::to_string(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
  if (!mediaAttr.empty()) s += "a=" + mediaAttr + "\r\n";
  return s;
}

TEST(SdpHold, SendonlyAndInactiveHold) {
  EXPECT_TRUE(holdsOtherParty(offerWith("10.0.0.1", "", "sendonly")));
  EXPECT_TRUE(holdsOtherParty(offerWith("10.0.0.1", "", "inactive")));
}

TEST(SdpHold, SendrecvRecvonlyAndNoAttributeDoNotHold) {
  EXPECT_FALSE(holdsOtherParty(offerWith("10.0.0.1", "", "sendrecv")));
  EXPECT_FALSE(holdsOtherParty(offerWith("10.0.0.1", "", "recvonly")));
  EXPECT_FALSE(holdsOtherParty(offerWith("10.0.0.1", "", "")));
}

TEST(SdpHold, NullConnectionAddressHolds) { // RFC 2543 style
  EXPECT_TRUE(holdsOtherParty(offerWith("0.0.0.0", "", "")));
  EXPECT_TRUE(holdsOtherParty(offerWith("0.0.0.0", "", "sendrecv")));
  // media-level c= overrides the session-level one
  std::string s = offerWith("10.0.0.1", "", "") + "c=IN IP4 0.0.0.0\r\n";
  EXPECT_TRUE(holdsOtherParty(s));
}

TEST(SdpHold, SessionLevelDirectionAppliesUnlessMediaOverrides) {
  EXPECT_TRUE(holdsOtherParty(offerWith("10.0.0.1", "sendonly", "")));
  EXPECT_FALSE(holdsOtherParty(offerWith("10.0.0.1", "sendonly", "sendrecv")));
  EXPECT_TRUE(holdsOtherParty(offerWith("10.0.0.1", "sendrecv", "inactive")));
  auto d = parse(offerWith("10.0.0.1", "inactive", ""));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->direction, "inactive");
  EXPECT_EQ(directionOf(*d, d->media[0]), "inactive");
}

TEST(SdpHold, OnlyAudioStreamsInUseCount) {
  // a rejected audio stream (port 0) is not "held"
  EXPECT_FALSE(holdsOtherParty(offerWith("10.0.0.1", "", "sendonly", 0)));
  // one audio stream still receiving: not a hold
  std::string two =
      offerWith("10.0.0.1", "", "sendonly") + "m=audio 4002 RTP/AVP 0\r\na=sendrecv\r\n";
  EXPECT_FALSE(holdsOtherParty(two));
  // video sendonly with audio sendrecv: not a hold
  std::string video =
      offerWith("10.0.0.1", "", "sendrecv") + "m=video 4004 RTP/AVP 96\r\na=sendonly\r\n";
  EXPECT_FALSE(holdsOtherParty(video));
}

TEST(SdpHold, BrokenOrEmptyOfferIsNotAHold) {
  EXPECT_FALSE(holdsOtherParty(std::string_view{}));
  EXPECT_FALSE(holdsOtherParty(std::string_view{"v=0\r\nm=audio x RTP/AVP 0\r\n"}));
  EXPECT_FALSE(holdsOtherParty(std::string_view{"v=0\r\na=sendonly\r\n"}));
}

} // namespace
} // namespace verbund::pbx::sdp

namespace verbund::pbx::sdp {
namespace {

// Found by fuzz/sdp: a stream without any connection address produced "c=IN IP4 " in the answer.
TEST(Sdp, PeerStreamWithoutAddressIsNotUsed) {
  auto offer = parse("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n");
  auto peer = parse("v=0\r\nm=audio 5000 RTP/AVP 0\r\n");
  ASSERT_TRUE(offer && peer);
  EXPECT_FALSE(answerFrom(*offer, *peer, 1).has_value());
}

} // namespace
} // namespace verbund::pbx::sdp

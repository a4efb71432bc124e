#include "media/bencode.h"
#include "media/ng_message.h"

#include <gtest/gtest.h>

using namespace verbund;
using namespace verbund::media;
using namespace verbund::media::bencode;

namespace {

DecodeError errorOf(std::string_view in, const Limits& l = {}) {
  auto r = decode(in, l);
  EXPECT_FALSE(r.ok()) << in;
  return r.ok() ? DecodeError{} : DecodeError(r.error().code);
}

TEST(Bencode, DecodesEveryKind) {
  auto v = decode("d3:bar4:spam3:fooi42e4:listl1:ai-7eee");
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_TRUE(v->isDict());
  const Dict& d = v->asDict();
  EXPECT_EQ(d.string("bar"), "spam");
  EXPECT_EQ(d.integer("foo"), 42);
  const List* l = d.list("list");
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].asString(), "a");
  EXPECT_EQ((*l)[1].asInteger(), -7);
  EXPECT_EQ(d.string("foo"), std::nullopt); // wrong kind
  EXPECT_EQ(d.find("missing"), nullptr);
}

TEST(Bencode, KeepsKeyOrderAndRoundTrips) {
  // rtpengine writes "result" before "error-reason": not sorted, and must stay accepted.
  std::string in = "d6:result5:error12:error-reason15:Unknown call-ide";
  auto v = decode(in);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->asDict().entries()[0].first, "result");
  EXPECT_EQ(encode(*v), in);
}

TEST(Bencode, EncodesBinaryStringsAndEmptyContainers) {
  Dict d{{"sdp", std::string("v=0\r\n\0x", 7)}, {"l", List{}}, {"d", Dict{}}, {"n", int64_t{-1}}};
  std::string e = encode(Value(d));
  EXPECT_EQ(e, std::string("d3:sdp7:v=0\r\n\0x1:lle1:dde1:ni-1ee", 33));
  auto back = decode(e);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->asDict(), d);
}

TEST(Bencode, SetReplacesExistingKey) {
  Dict d{{"a", 1}};
  d.set("b", 2).set("a", 3);
  EXPECT_EQ(encode(Value(d)), "d1:ai3e1:bi2ee");
}

TEST(Bencode, IntegerLimits) {
  EXPECT_EQ(decode("i9223372036854775807e")->asInteger(), INT64_MAX);
  EXPECT_EQ(decode("i-9223372036854775808e")->asInteger(), INT64_MIN);
  EXPECT_EQ(errorOf("i9223372036854775808e"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("i-0e"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("i03e"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("ie"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("i-e"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("i1x2e"), DecodeError::BadInteger);
  EXPECT_EQ(errorOf("i12"), DecodeError::Truncated);
}

TEST(Bencode, StringErrors) {
  EXPECT_EQ(errorOf("5:abc"), DecodeError::Truncated);
  EXPECT_EQ(errorOf("03:abc"), DecodeError::BadLength);
  EXPECT_EQ(errorOf("3"), DecodeError::Truncated);
  EXPECT_EQ(errorOf("99999999999:x"), DecodeError::BadLength);
  Limits small;
  small.maxStringLength = 4;
  EXPECT_EQ(errorOf("5:abcde", small), DecodeError::StringTooLong);
  EXPECT_TRUE(decode("4:abcd", small).ok());
  EXPECT_TRUE(decode("0:").ok());
}

TEST(Bencode, StructureErrors) {
  EXPECT_EQ(errorOf(""), DecodeError::Truncated);
  EXPECT_EQ(errorOf("x"), DecodeError::UnexpectedByte);
  EXPECT_EQ(errorOf("l1:a"), DecodeError::Truncated);
  EXPECT_EQ(errorOf("d1:a"), DecodeError::Truncated);
  EXPECT_EQ(errorOf("di1ei2ee"), DecodeError::KeyNotString);
  EXPECT_EQ(errorOf("d1:ai1e1:ai2ee"), DecodeError::DuplicateKey);
  EXPECT_EQ(errorOf("i1ei2e"), DecodeError::TrailingData);
  EXPECT_EQ(errorOf("le "), DecodeError::TrailingData);
}

TEST(Bencode, DepthAndItemLimits) {
  Limits l;
  l.maxDepth = 3;
  EXPECT_TRUE(decode("llleee", l).ok());
  EXPECT_EQ(errorOf("lllleeee", l), DecodeError::TooDeep);
  // The default depth bounds the recursion whatever the input's nesting.
  EXPECT_EQ(errorOf(std::string(100000, 'l')), DecodeError::TooDeep);
  Limits few;
  few.maxItems = 3;
  EXPECT_TRUE(decode("li1ei2ee", few).ok());
  EXPECT_EQ(errorOf("li1ei2ei3ee", few), DecodeError::TooManyItems);
  EXPECT_EQ(errorOf("d1:ai1e1:bi2ee", few), DecodeError::TooManyItems); // keys count too
}

TEST(Bencode, ErrorMessageNamesOffset) {
  auto r = decode("d1:ai1e1:ai2ee");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "bencode: duplicate dictionary key at offset 7");
}

TEST(NgMessage, RoundTrip) {
  Dict d{{"command", "ping"}};
  std::string wire = encodeNgMessage("abc_1", d);
  EXPECT_EQ(wire, "abc_1 d7:command4:pinge");
  auto m = decodeNgMessage(wire);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->cookie, "abc_1");
  EXPECT_EQ(m->dict, d);
}

TEST(NgMessage, Errors) {
  EXPECT_EQ(decodeNgMessage("d7:command4:pinge").error().code, int(NgDecodeError::NoCookie));
  EXPECT_EQ(decodeNgMessage(" d7:command4:pinge").error().code, int(NgDecodeError::NoCookie));
  EXPECT_EQ(decodeNgMessage("a\x01 de").error().code, int(NgDecodeError::BadCookie));
  EXPECT_EQ(decodeNgMessage(std::string(65, 'c') + " de").error().code,
            int(NgDecodeError::BadCookie));
  EXPECT_EQ(decodeNgMessage("c li1ee").error().code, int(NgDecodeError::NotADictionary));
  EXPECT_EQ(decodeNgMessage("c d").error().code, int(DecodeError::Truncated));
  EXPECT_EQ(decodeNgMessage("c " + std::string(70000, 'x')).error().code,
            int(NgDecodeError::TooLarge));
  EXPECT_TRUE(decodeNgMessage("c de").ok());
}

} // namespace

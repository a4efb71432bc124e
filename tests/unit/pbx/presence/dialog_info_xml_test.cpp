// application/dialog-info+xml (RFC 4235 §4): writing, reading back, escaping, bounds.
#include "pbx/presence/dialog_info_xml.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

DialogInfo ringingCall() {
  DialogInfo d;
  d.id = "c1";
  d.callId = "abc@192.0.2.9";
  d.localTag = "lt1";
  d.remoteTag = "rt1";
  d.direction = DialogDirection::Recipient;
  d.state = DialogState::Early;
  d.local = {"sip:201@pbx.example", "Bob", "sip:201@192.0.2.20:5060"};
  d.remote = {"sip:100@pbx.example", "Alice", "sip:100@192.0.2.10:5060"};
  return d;
}

TEST(DialogInfoXml, RoundTripsEverythingForPickup) {
  DialogInfoDocument doc;
  doc.version = 7;
  doc.entity = "sip:201@pbx.example";
  doc.line = LineState::Ringing;
  doc.dialogs.push_back(ringingCall());
  DialogInfo ended = ringingCall();
  ended.id = "c0";
  ended.state = DialogState::Terminated;
  ended.stateEvent = "cancelled";
  ended.stateCode = 487;
  doc.dialogs.push_back(ended);
  std::string xml = buildDialogInfo(doc);
  EXPECT_NE(xml.find("xmlns=\"urn:ietf:params:xml:ns:dialog-info\""), std::string::npos);
  EXPECT_NE(xml.find("state=\"full\""), std::string::npos);
  EXPECT_NE(xml.find("vb:line=\"ringing\""), std::string::npos);

  auto back = parseDialogInfo(xml);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->version, 7u);
  EXPECT_TRUE(back->full);
  EXPECT_EQ(back->entity, "sip:201@pbx.example");
  EXPECT_EQ(back->line, LineState::Ringing);
  ASSERT_EQ(back->dialogs.size(), 2u);
  EXPECT_EQ(back->dialogs[0], ringingCall());
  EXPECT_EQ(back->dialogs[1], ended);
  EXPECT_EQ(buildDialogInfo(*back), xml);
}

TEST(DialogInfoXml, ParsesForeignPrefixesAndDerivesLineState) {
  // As another implementation may write it: prefixed elements, no extension attribute.
  const char* xml = R"(<?xml version="1.0"?>
<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" version="3" state="partial"
    entity="sip:300@example.com">
  <d:dialog id="x" call-id="cid" local-tag="a" remote-tag="b" direction="initiator">
    <d:state>confirmed</d:state>
    <d:remote><d:identity display="Carol &amp; Co">sip:400@example.com</d:identity>
      <d:target uri="sip:400@198.51.100.4"/></d:remote>
  </d:dialog>
</d:dialog-info>)";
  auto doc = parseDialogInfo(xml);
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_FALSE(doc->full);
  EXPECT_EQ(doc->version, 3u);
  EXPECT_FALSE(doc->line.has_value());
  ASSERT_EQ(doc->dialogs.size(), 1u);
  const DialogInfo& d = doc->dialogs[0];
  EXPECT_EQ(d.direction, DialogDirection::Initiator);
  EXPECT_EQ(d.state, DialogState::Confirmed);
  EXPECT_EQ(d.remote.display, "Carol & Co");
  EXPECT_EQ(d.remote.target, "sip:400@198.51.100.4");
  EXPECT_EQ(lineStateOf(*doc), LineState::Busy);
}

TEST(DialogInfoXml, HostileDisplayNamesAreEscapedAndCleaned) {
  DialogInfoDocument doc;
  doc.entity = "sip:201@pbx.example\"><evil/>";
  DialogInfo d = ringingCall();
  d.remote.display = "\"/><dialog id=\"fake\"><state>confirmed</state></dialog><x a=\"";
  d.remote.identity = "sip:a@b</identity><![CDATA[x]]>&amp;";
  d.callId = "c\"id'<>&";
  d.local.display = std::string("Bad\x01\x1b[31m\r\nName\xff\xfe", 17);
  doc.dialogs.push_back(d);
  std::string xml = buildDialogInfo(doc);
  EXPECT_EQ(xml.find("<evil"), std::string::npos);
  EXPECT_EQ(xml.find("<dialog id=\"fake\""), std::string::npos);
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
  EXPECT_EQ(xml.find('\x1b'), std::string::npos);
  auto back = parseDialogInfo(xml);
  ASSERT_TRUE(back) << back.error().message << "\n" << xml;
  ASSERT_EQ(back->dialogs.size(), 1u);
  EXPECT_EQ(back->entity, doc.entity);
  EXPECT_EQ(back->dialogs[0].remote.display, d.remote.display);
  EXPECT_EQ(back->dialogs[0].remote.identity, d.remote.identity);
  EXPECT_EQ(back->dialogs[0].callId, d.callId);
  // Control characters became spaces, invalid UTF-8 U+FFFD.
  EXPECT_EQ(back->dialogs[0].local.display, "Bad  [31m  Name\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(DialogInfoXml, CleanTextIsIdempotentAndBounded) {
  std::string longName(2000, 'a');
  longName += "\xC3\xA4";
  std::string c = cleanXmlText(longName);
  EXPECT_EQ(c.size(), kMaxFieldBytes);
  EXPECT_EQ(cleanXmlText(c), c);
  // A multi-byte character is never cut.
  std::string umlauts;
  for (int i = 0; i < 400; ++i) umlauts += "\xC3\xA4";
  c = cleanXmlText(umlauts);
  EXPECT_EQ(c.size() % 2, 0u);
  EXPECT_EQ(cleanXmlText(c), c);
  EXPECT_EQ(cleanXmlText("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // surrogate
  EXPECT_EQ(cleanXmlText("  \t x \n"), "x");
}

TEST(DialogInfoXml, UnknownLineIsAFullDocumentWithoutDialogs) {
  DialogInfoDocument doc;
  doc.version = 4;
  doc.entity = "sip:201@pbx.example";
  doc.line = LineState::Unknown;
  std::string xml = buildDialogInfo(doc);
  EXPECT_EQ(xml.find("<dialog "), std::string::npos);
  auto back = parseDialogInfo(xml);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->full);
  EXPECT_TRUE(back->dialogs.empty());
  EXPECT_EQ(lineStateOf(*back), LineState::Unknown);
}

TEST(DialogInfoXml, RejectsBrokenDocuments) {
  for (const char* bad : {
           "",
           "not xml",
           "<dialog-info version=\"1\" state=\"full\" entity=\"x\"", // unterminated
           "<presence version=\"1\" state=\"full\" entity=\"x\"/>",
           "<dialog-info xmlns=\"urn:other\" version=\"1\" state=\"full\" entity=\"x\"/>",
           "<dialog-info version=\"-1\" state=\"full\" entity=\"x\"/>",
           "<dialog-info version=\"4294967296\" state=\"full\" entity=\"x\"/>",
           "<dialog-info version=\"1\" state=\"both\" entity=\"x\"/>",
           "<dialog-info version=\"1\" state=\"full\"/>",
           "<dialog-info version=\"1\" state=\"full\" entity=\"x\"><dialog><state>early</state>"
           "</dialog></dialog-info>",
           "<dialog-info version=\"1\" state=\"full\" entity=\"x\"><dialog id=\"a\"/>"
           "</dialog-info>",
           "<dialog-info version=\"1\" state=\"full\" entity=\"x\"><dialog id=\"a\">"
           "<state>ringing</state></dialog></dialog-info>",
       })
    EXPECT_FALSE(parseDialogInfo(bad)) << bad;

  std::string many = "<dialog-info version=\"1\" state=\"full\" entity=\"x\">";
  for (size_t i = 0; i <= kMaxDialogsPerDocument; ++i)
    many += "<dialog id=\"" + std::to_string(i) + "\"><state>early</state></dialog>";
  many += "</dialog-info>";
  EXPECT_FALSE(parseDialogInfo(many));
  EXPECT_FALSE(parseDialogInfo(std::string(kMaxDialogInfoBytes + 1, ' ')));
}

TEST(DialogInfoXml, DoesNotExpandDocumentTypeEntities) {
  // "Billion laughs": pugixml does not expand DTD entities; the reference stays literal text.
  const char* xml = R"(<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<dialog-info version="1" state="full" entity="&b;"/>)";
  auto doc = parseDialogInfo(xml);
  ASSERT_TRUE(doc);
  EXPECT_LT(doc->entity.size(), 10u);
}

} // namespace
} // namespace verbund::pbx

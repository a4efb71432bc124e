// Trunk settings: validation, redaction, dial-out rule, DID map, persistence.
#include "pbx/trunk/trunk_config.h"
#include "pbx/trunk/trunk_store.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

TrunkConfig good() {
  TrunkConfig c;
  c.enabled = true;
  c.registrar = "sip.carrier.test";
  c.username = "4930123456";
  c.authUser = "acct-77";
  c.password = "s3cret!";
  c.dids = {{"+4930123456", "100"}, {"+49 30 123457", "200"}};
  c.dialPrefix = "0";
  return c;
}

std::string errorOf(const TrunkConfig& c) {
  auto r = validateTrunk(c);
  return r ? std::string() : r.error().message;
}

TEST(TrunkValidation, AcceptsGoodSettingsAndNamesTheBadField) {
  EXPECT_EQ(errorOf(good()), "");
  TrunkConfig off; // a disabled, empty trunk is valid
  EXPECT_EQ(errorOf(off), "");

  auto c = good();
  c.registrar.clear();
  EXPECT_EQ(errorOf(c), "registrar: required");
  c = good();
  c.password.clear();
  EXPECT_EQ(errorOf(c), "password: required");
  c.mode = TrunkMode::Ip; // IP trunks need no credentials
  c.username.clear();
  EXPECT_EQ(errorOf(c), "");
  c = good();
  c.password = "a\r\nb";
  EXPECT_EQ(errorOf(c).rfind("password:", 0), 0u);
  EXPECT_EQ(errorOf(c).find("a\r\nb"), std::string::npos); // never echoes the secret
  c = good();
  c.registrar = "http://x";
  EXPECT_EQ(errorOf(c).rfind("registrar:", 0), 0u);
  c = good();
  c.username = "bad user";
  EXPECT_EQ(errorOf(c).rfind("username:", 0), 0u);
  c = good();
  c.expiry = 30;
  EXPECT_EQ(errorOf(c), "expiry: between 60 and 86400");
  c = good();
  c.outboundPattern = "([0-9";
  EXPECT_EQ(errorOf(c).rfind("outboundPattern: invalid regular expression", 0), 0u);
  c = good();
  c.dids.push_back({"+4930-123456", "300"});
  EXPECT_EQ(errorOf(c), "dids: +4930-123456 is listed twice");
  c = good();
  c.dids.push_back({"sip:x", "300"});
  EXPECT_EQ(errorOf(c), "dids: \"sip:x\" is not a number");
  c = good();
  c.dids.push_back({"123", "1 0"});
  EXPECT_EQ(errorOf(c).rfind("dids: target", 0), 0u);
  c = good();
  c.dialPrefix = "9x";
  EXPECT_EQ(errorOf(c).rfind("dialPrefix:", 0), 0u);
  c = good();
  c.trustedAddresses = {"192.0.2.9", "carrier"};
  EXPECT_EQ(errorOf(c), "trustedAddresses: \"carrier\" is not an IP address");
  c = good();
  c.outboundProxy = "sip:proxy.test;lr?x=y";
  EXPECT_EQ(errorOf(c), "outboundProxy: URI headers are not allowed");
}

TEST(TrunkView, HasNoPassword) {
  auto v = redacted(good());
  EXPECT_TRUE(v.passwordSet);
  EXPECT_EQ(v.username, "4930123456");
  TrunkConfig incoming = good();
  incoming.password.clear();
  keepPasswordIfEmpty(incoming, good());
  EXPECT_EQ(incoming.password, "s3cret!");
  incoming.password = "new";
  keepPasswordIfEmpty(incoming, good());
  EXPECT_EQ(incoming.password, "new");
}

TEST(TrunkAddresses, DerivedFromRegistrarProxyAndTransport) {
  auto c = good();
  EXPECT_EQ(trunkDomain(c), "sip.carrier.test");
  EXPECT_EQ(registrarRequestUri(c), "sip:sip.carrier.test");
  EXPECT_EQ(nextHopUri(c), "sip:sip.carrier.test;transport=udp");
  c.transport = TrunkTransport::Auto;
  EXPECT_EQ(nextHopUri(c), "sip:sip.carrier.test");
  c.registrar = "sip:user@127.0.0.1:5070;transport=tcp";
  c.domain = "carrier.test";
  EXPECT_EQ(trunkDomain(c), "carrier.test");
  EXPECT_EQ(registrarRequestUri(c), "sip:127.0.0.1:5070");
  EXPECT_EQ(nextHopUri(c), "sip:user@127.0.0.1:5070;transport=tcp"); // its own transport wins
  c.outboundProxy = "sip:proxy.test;lr";
  c.transport = TrunkTransport::Tls;
  EXPECT_EQ(nextHopUri(c), "sip:proxy.test;lr;transport=tls");
}

TEST(DialPlan, PrefixIsRequiredAndStripped) {
  DialPlan p(good());
  EXPECT_EQ(p.external("0030123456"), "030123456");
  EXPECT_EQ(p.external("0+4930123"), "+4930123");
  EXPECT_EQ(p.external("0 30-12 34"), "301234"); // visual separators go
  EXPECT_FALSE(p.external("030"));               // "30": too short for the default pattern
  EXPECT_FALSE(p.external("30123456"));          // no prefix
  EXPECT_FALSE(p.external("0sip:x@y"));
  EXPECT_FALSE(p.external("0" + std::string(80, '1')));
}

TEST(DialPlan, CustomPatternStillOnlyLetsDialStringsOut) {
  auto c = good();
  c.dialPrefix.clear();
  c.outboundPattern = ".*";
  DialPlan p(c);
  EXPECT_EQ(p.external("110"), "110");
  EXPECT_EQ(p.external("*31#0301234"), "*31#0301234");
  EXPECT_FALSE(p.external("a@b")); // whatever the pattern: no URI injection
  EXPECT_FALSE(p.external("1;x=y"));
  c.outboundPattern = "(00|\\+)[1-9][0-9]+";
  DialPlan intl(c);
  EXPECT_TRUE(intl.external("0044207"));
  EXPECT_FALSE(intl.external("030123"));
}

TEST(DidMap, MatchesNormalisedNumbersAndFallsBackToDefault) {
  auto c = good();
  DidMap m(c);
  EXPECT_EQ(m.lookup("+4930123456"), "100");
  EXPECT_EQ(m.lookup("+4930123457"), "200");
  EXPECT_EQ(m.lookup("+49-30-123456"), "100");
  EXPECT_FALSE(m.lookup("+4930999"));
  c.defaultTarget = "500";
  DidMap d(c);
  EXPECT_EQ(d.lookup("+4930999"), "500");
  EXPECT_FALSE(d.lookup("+4930999", false));
}

TEST(TrunkStore, RoundTripsAndRejectsBadRows) {
  auto db = store::Database::open(":memory:", trunkMigrations());
  ASSERT_TRUE(db) << db.error().message;
  auto none = loadTrunk(**db);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  auto c = good();
  c.outboundProxy = "sip:127.0.0.1:5099;lr";
  c.trustedAddresses = {"192.0.2.9", "2001:db8::9"};
  c.callerIdMode = CallerIdMode::PaiOnly;
  c.transport = TrunkTransport::Tcp;
  c.defaultTarget = "500";
  ASSERT_TRUE(saveTrunk(**db, c));
  auto back = loadTrunk(**db);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(*back);
  // DIDs come back sorted by DID.
  std::sort(c.dids.begin(), c.dids.end(), [](auto& a, auto& b) { return a.did < b.did; });
  EXPECT_EQ(**back, c);

  // Saving again replaces the DID map.
  c.dids = {{"+4930123458", "300"}};
  ASSERT_TRUE(saveTrunk(**db, c));
  back = loadTrunk(**db);
  ASSERT_TRUE(back && *back);
  EXPECT_EQ((*back)->dids, c.dids);

  // Invalid settings are not saved.
  auto bad = c;
  bad.expiry = 1;
  EXPECT_FALSE(saveTrunk(**db, bad));
  EXPECT_EQ((*loadTrunk(**db))->expiry, c.expiry);

  // A damaged row is an error, not an exception.
  ASSERT_TRUE((*db)->exec("UPDATE trunk SET mode = 'bogus'"));
  auto damaged = loadTrunk(**db);
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().message.find("stored trunk settings"), std::string::npos);
  EXPECT_EQ(damaged.error().message.find("s3cret"), std::string::npos);
  EXPECT_EQ((*db)->schemaVersion("trunk"), 1);
}

} // namespace
} // namespace verbund::pbx

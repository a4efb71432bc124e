#include "federation/trust/errors.h"
#include "federation/trust/revocation.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace verbund::federation {
namespace {

using namespace std::chrono_literals;
using testing::makeCa;
using testing::mint;
using testing::testNow;

const std::string kFp(64, 'a');

RevocationEntry entry(const FederationCa& ca, std::string_view node, std::string_view fp = "",
                      std::string_view by = "admin", SysTime at = testNow()) {
  auto e = signRevocation(ca, node, fp, "removed", by, at);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  return std::move(e).value();
}

TEST(Revocation, IsRevokedByNodeOrKey) {
  FederationCa ca = makeCa();
  RevocationList list(ca.federationId());
  ASSERT_TRUE(list.add(entry(ca, "n1"), ca.cert()).ok());
  ASSERT_TRUE(list.add(entry(ca, "n2", kFp), ca.cert()).ok());
  EXPECT_TRUE(list.isRevoked("n1", "anything"));
  EXPECT_TRUE(list.isRevoked("n1", ""));
  EXPECT_TRUE(list.isRevoked("n2", kFp));
  EXPECT_FALSE(list.isRevoked("n2", std::string(64, 'b')));
  EXPECT_TRUE(list.isRevoked("other-id", kFp)); // a revoked key stays revoked under any name
  EXPECT_FALSE(list.isRevoked("n3", ""));
}

TEST(Revocation, SignatureCheckedAgainstCa) {
  FederationCa ca = makeCa();
  FederationCa other = makeCa();
  RevocationList list(ca.federationId());
  RevocationEntry foreign = entry(other, "n1");
  auto r = list.add(foreign, ca.cert());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kBadSignature));

  RevocationEntry e = entry(ca, "n1");
  EXPECT_TRUE(verifyRevocation(e, ca.cert(), ca.federationId()).ok());
  for (auto tamper : std::vector<std::function<void(RevocationEntry&)>>{
           [](RevocationEntry& x) { x.nodeId = "n2"; },
           [](RevocationEntry& x) { x.reason = "other"; },
           [](RevocationEntry& x) { x.revokedAt += 1; },
           [](RevocationEntry& x) { x.byNode = "mallory"; },
           [](RevocationEntry& x) { x.fingerprint = std::string(64, 'c'); },
           [](RevocationEntry& x) { x.signature = "AAAA"; },
           [](RevocationEntry& x) { x.signature = "!!"; }}) {
    RevocationEntry t = e;
    tamper(t);
    EXPECT_FALSE(verifyRevocation(t, ca.cert(), ca.federationId()).ok());
  }
  // Same CA key, but bound to the federation id.
  EXPECT_FALSE(verifyRevocation(e, ca.cert(), other.federationId()).ok());
}

TEST(Revocation, JsonRoundTripVerifies) {
  FederationCa ca = makeCa();
  RevocationList list(ca.federationId());
  ASSERT_TRUE(list.add(entry(ca, "n1"), ca.cert()).ok());
  ASSERT_TRUE(list.add(entry(ca, "n2", kFp), ca.cert()).ok());
  std::string json = list.toJson();
  auto back = RevocationList::parse(json, ca.cert(), ca.federationId());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->entries(), list.entries());

  // Any change to a signed field is caught.
  auto doc = nlohmann::json::parse(json);
  doc["entries"][0]["reason"] = "forged";
  auto r = RevocationList::parse(doc.dump(), ca.cert(), ca.federationId());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kBadSignature));
  // Another federation's list is refused.
  FederationCa other = makeCa();
  r = RevocationList::parse(json, other.cert(), other.federationId());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kOtherFederation));
  for (std::string_view junk : {"", "[]", "{}", "{\"format\":\"verbund-revocations\"}", "nul",
                                "{\"format\":\"verbund-revocations\",\"version\":1,"
                                "\"federationId\":\"x\",\"entries\":[1]}"}) {
    EXPECT_FALSE(RevocationList::parse(junk, ca.cert(), ca.federationId()).ok()) << junk;
  }
}

TEST(Revocation, MergeIsUnionAndConverges) {
  FederationCa ca = makeCa();
  RevocationList a(ca.federationId()), b(ca.federationId());
  ASSERT_TRUE(a.add(entry(ca, "n1"), ca.cert()).ok());
  ASSERT_TRUE(a.add(entry(ca, "n2", kFp, "x", testNow() + 10s), ca.cert()).ok());
  ASSERT_TRUE(b.add(entry(ca, "n3"), ca.cert()).ok());
  // The same revocation made independently on two nodes: the earlier one wins everywhere.
  ASSERT_TRUE(b.add(entry(ca, "n2", kFp, "y", testNow()), ca.cert()).ok());

  RevocationList ab = a, ba = b;
  ASSERT_TRUE(ab.merge(b).ok());
  ASSERT_TRUE(ba.merge(a).ok());
  EXPECT_EQ(ab.entries(), ba.entries());
  EXPECT_EQ(ab.size(), 3u);
  EXPECT_EQ(ab.find("n2", kFp)->byNode, "y");
  // Entries never disappear: merging an empty or older list changes nothing.
  auto changed = ab.merge(RevocationList(ca.federationId()));
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(*changed, 0u);
  changed = ab.merge(a);
  EXPECT_EQ(*changed, 0u);
  EXPECT_EQ(ab.size(), 3u);
  // Merging through JSON (as received from a peer) gives the same.
  auto fromPeer = RevocationList::parse(b.toJson(), ca.cert(), ca.federationId());
  ASSERT_TRUE(fromPeer.ok());
  RevocationList viaJson = a;
  ASSERT_TRUE(viaJson.merge(*fromPeer).ok());
  EXPECT_EQ(viaJson.entries(), ab.entries());
  // Lists of different federations do not mix.
  FederationCa other = makeCa();
  EXPECT_FALSE(ab.merge(RevocationList(other.federationId())).ok());
}

TEST(Revocation, ValidatesFields) {
  FederationCa ca = makeCa();
  EXPECT_FALSE(signRevocation(ca, "", "", "r", "by", testNow()).ok());
  EXPECT_FALSE(signRevocation(ca, "n1", "ABC", "r", "by", testNow()).ok());
  EXPECT_FALSE(signRevocation(ca, "n1", "", std::string(201, 'r'), "by", testNow()).ok());
  EXPECT_FALSE(signRevocation(ca, "n1", "", "line\nbreak", "by", testNow()).ok());
  EXPECT_FALSE(signRevocation(ca, "n1", "", "r", "", testNow()).ok());
  EXPECT_TRUE(signRevocation(ca, "n1", "", "", "by", testNow()).ok());
}

} // namespace
} // namespace verbund::federation

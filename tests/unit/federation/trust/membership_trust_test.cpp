// The trust model where removal is enforced: pinned member keys, CA rotation, the rekey message.
#include "federation/trust/errors.h"
#include "federation/trust/rekey.h"
#include "federation/trust/trust_store.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <map>

namespace verbund::federation {
namespace {

using testing::makeCa;
using testing::mint;
using testing::testNow;

// A trust store for node "self" of a fresh federation.
TrustStore selfStore() {
  TrustStore t(makeCa("Nord"));
  EXPECT_TRUE(t.setNodeCredentials(mint(t.ca(), "self")).ok());
  return t;
}

FederationCa copyCa(const FederationCa& ca) {
  auto c = FederationCa::fromParts(shareCert(ca.cert()), sharePKey(ca.key()));
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

struct Pins {
  std::map<std::string, std::string> members; // node id → pin ("" unknown)
  PinLookup lookup() const {
    return [this](const std::string& id) -> std::optional<std::string> {
      auto it = members.find(id);
      if (it == members.end()) return std::nullopt;
      return it->second;
    };
  }
};

TEST(MemberTrust, RotationKeepsTheNodeKeyAndResignsRevocations) {
  TrustStore t = selfStore();
  std::string nodeFp = *fingerprintOf(t.nodeCredentials()->cert.get());
  std::string oldCaFp = t.ca().fingerprint();
  ASSERT_TRUE(t.revoke("gone", "", "removed", "self", testNow()).ok());
  ASSERT_TRUE(t.rotate(testNow()).ok());
  EXPECT_EQ(t.generation(), 1);
  EXPECT_NE(t.ca().fingerprint(), oldCaFp);
  EXPECT_EQ(*fingerprintOf(t.nodeCredentials()->cert.get()), nodeFp); // the pin stays
  EXPECT_EQ(nodeIdOf(t.nodeCredentials()->cert.get()), "self");
  // The node certificate is the new CA's, with the same SAN addresses.
  EXPECT_EQ(X509_verify(t.nodeCredentials()->cert.get(), X509_get0_pubkey(t.ca().cert())), 1);
  EXPECT_EQ(X509_check_ip_asc(t.nodeCredentials()->cert.get(), "fd00::1", 0), 1);
  // The revocation list verifies under the new CA only.
  auto parsed =
      RevocationList::parse(t.revocations().toJson(), t.ca().cert(), t.ca().federationId());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_TRUE(parsed->isRevoked("gone", ""));
  EXPECT_EQ(parsed->find("gone", "")->revokedAt, t.revocations().find("gone", "")->revokedAt);
}

TEST(MemberTrust, SupersededByHigherGenerationThenLargerFingerprint) {
  TrustStore a = selfStore();
  auto next = FederationCa::successor(a.ca(), testNow());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->federationId(), a.ca().federationId());
  EXPECT_EQ(next->name(), a.ca().name());
  EXPECT_TRUE(a.supersededBy(*next, 1));
  EXPECT_FALSE(a.supersededBy(*next, 0) && next->fingerprint() < a.ca().fingerprint());
  EXPECT_EQ(a.supersededBy(*next, 0), next->fingerprint() > a.ca().fingerprint());
  FederationCa other = makeCa("Nord"); // another federation
  EXPECT_FALSE(a.supersededBy(other, 5));
  ASSERT_TRUE(a.adoptCa(std::move(*next), 3, testNow()).ok());
  EXPECT_EQ(a.generation(), 3);
  EXPECT_FALSE(a.adoptCa(makeCa("Nord"), 4, testNow()).ok()); // other federation id
}

TEST(MemberTrust, PinnedMemberIsAdmittedByItsKeyEvenWithAnOldCertificate) {
  TrustStore t = selfStore();
  NodeCredentials peer = mint(t.ca(), "peer");
  std::string pin = *fingerprintOf(peer.cert.get());
  ASSERT_TRUE(t.rotate(testNow()).ok());
  Pins pins;
  pins.members["peer"] = pin;
  // The peer was offline during the rotation: its certificate is of the old CA.
  auto ok = verifyMember(peer.cert.get(), nullptr, t, pins.lookup(), false, testNow());
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->nodeId, "peer");
  // Another key for the same id (e.g. minted with a CA key a removed node kept): refused.
  NodeCredentials forged = mint(t.ca(), "peer");
  auto bad = verifyMember(forged.cert.get(), nullptr, t, pins.lookup(), true, testNow());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(isTrustError(bad.error(), TrustErrc::kPinMismatch)) << bad.error().message;
  // A pinned member whose certificate has expired is refused even by its key.
  pins.members["peer"] = pin;
  auto late = verifyMember(peer.cert.get(), nullptr, t, pins.lookup(), false,
                           testNow() + std::chrono::hours(24 * 800));
  EXPECT_FALSE(late.ok());
}

TEST(MemberTrust, OldCaCannotAdmitAnyoneAfterRotation) {
  TrustStore t = selfStore();
  FederationCa old = copyCa(t.ca()); // what a removed member (or an old bundle) holds
  ASSERT_TRUE(t.rotate(testNow()).ok());
  Pins pins;
  NodeCredentials newcomer = mint(old, "intruder");
  for (bool allowJoin : {true, false}) {
    auto r = verifyMember(newcomer.cert.get(), nullptr, t, pins.lookup(), allowJoin, testNow());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStaleCa)) << r.error().message;
  }
  // A member listed without a pin (old bundle) needs the current CA too.
  pins.members["intruder"] = "";
  auto r = verifyMember(newcomer.cert.get(), nullptr, t, pins.lookup(), false, testNow());
  EXPECT_FALSE(r.ok());
}

TEST(MemberTrust, NonMembersOnlyJoinWithTheCurrentCa) {
  TrustStore t = selfStore();
  Pins pins;
  NodeCredentials joiner = mint(t.ca(), "joiner");
  auto sip = verifyMember(joiner.cert.get(), nullptr, t, pins.lookup(), false, testNow());
  ASSERT_FALSE(sip.ok());
  EXPECT_TRUE(isTrustError(sip.error(), TrustErrc::kNotMember)) << sip.error().message;
  EXPECT_TRUE(verifyMember(joiner.cert.get(), nullptr, t, pins.lookup(), true, testNow()).ok());
  // Revoked ids are refused before anything else, even with a pin.
  pins.members["joiner"] = *fingerprintOf(joiner.cert.get());
  ASSERT_TRUE(t.revoke("joiner", "", "removed", "self", testNow()).ok());
  auto gone = verifyMember(joiner.cert.get(), nullptr, t, pins.lookup(), true, testNow());
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(isTrustError(gone.error(), TrustErrc::kRevoked));
  // Another federation stays "other federation".
  NodeCredentials stranger = mint(makeCa("Süd"), "stranger");
  auto other = verifyMember(stranger.cert.get(), nullptr, t, pins.lookup(), true, testNow());
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(isTrustError(other.error(), TrustErrc::kOtherFederation));
}

TEST(MemberTrust, RekeyMessageRoundTrip) {
  TrustStore t = selfStore();
  ASSERT_TRUE(t.revoke("gone", "", "removed", "self", testNow()).ok());
  ASSERT_TRUE(t.rotate(testNow()).ok());
  auto msg = rekeyMessage(t);
  auto rk = rekeyFromJson(msg, t.ca().federationId());
  ASSERT_TRUE(rk.ok()) << rk.error().message;
  EXPECT_EQ(rk->generation, 1);
  EXPECT_EQ(rk->ca.fingerprint(), t.ca().fingerprint());
  auto list = RevocationList::parse(rk->revocations, rk->ca.cert(), rk->ca.federationId());
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->isRevoked("gone", ""));
  // Another federation's id, a key of another CA, broken fields: refused, never thrown.
  EXPECT_FALSE(rekeyFromJson(msg, std::string(32, '0')).ok());
  auto swapped = msg;
  swapped["caKey"] = *detail::keyToPem(makeCa().key());
  EXPECT_FALSE(rekeyFromJson(swapped, t.ca().federationId()).ok());
  for (const char* field : {"generation", "ca", "caKey", "revocations"}) {
    auto broken = msg;
    broken[field] = 0;
    EXPECT_FALSE(rekeyFromJson(broken, t.ca().federationId()).ok()) << field;
    broken.erase(field);
    EXPECT_FALSE(rekeyFromJson(broken, t.ca().federationId()).ok()) << field;
  }
  auto zero = msg;
  zero["generation"] = 0;
  EXPECT_FALSE(rekeyFromJson(zero, t.ca().federationId()).ok());
  EXPECT_FALSE(rekeyFromJson(nlohmann::json::array(), t.ca().federationId()).ok());
}

TEST(MemberTrust, GenerationIsPersisted) {
  testing::TempDir dir;
  TrustStore t = selfStore();
  ASSERT_TRUE(t.rotate(testNow()).ok());
  ASSERT_TRUE(t.rotate(testNow()).ok());
  auto db = store::Database::open((dir.path() / "node.db").string(), TrustStore::migrations());
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(t.save(**db, dir.path(), testNow()).ok());
  auto loaded = TrustStore::load(**db, dir.path());
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ((*loaded)->generation(), 2);
  EXPECT_EQ((*loaded)->ca().fingerprint(), t.ca().fingerprint());
}

} // namespace
} // namespace verbund::federation

#include "federation/trust/bundle.h"
#include "federation/trust/errors.h"
#include "federation/trust/trust_store.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

namespace verbund::federation {
namespace {

using testing::makeCa;
using testing::mint;
using testing::testNow;

std::unique_ptr<store::Database> openDb(const std::filesystem::path& dir) {
  auto db = store::Database::open((dir / "node.db").string(), TrustStore::migrations());
  EXPECT_TRUE(db.ok()) << (db.ok() ? "" : db.error().message);
  return std::move(db).value();
}

TEST(TrustStore, PersistenceRoundTrip) {
  testing::TempDir dir;
  FederationCa ca = makeCa("Nord");
  std::string caFp = *fingerprintOf(ca.cert());
  std::string fedId = ca.federationId();
  TrustStore trust(std::move(ca));
  NodeCredentials node = mint(trust.ca(), "self");
  std::string nodeFp = *fingerprintOf(node.cert.get());
  ASSERT_TRUE(trust.setNodeCredentials(std::move(node)).ok());
  ASSERT_TRUE(trust.revoke("gone", "", "left", "self", testNow()).ok());
  ASSERT_TRUE(trust.revoke("lost", std::string(64, 'f'), "stolen laptop", "self", testNow()).ok());
  {
    auto db = openDb(dir.path());
    EXPECT_EQ(db->schemaVersion("federation_trust"), 2);
    ASSERT_TRUE(trust.save(*db, dir.path()).ok());
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / kSecretFileName).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto db = openDb(dir.path());
  // No private key in the clear in the database.
  auto rows = db->query("SELECT ca_key, node_key FROM federation_trust");
  ASSERT_TRUE(rows.ok());
  for (const auto& v : rows->at(0)) {
    auto text = store::asText(v);
    ASSERT_TRUE(text);
    EXPECT_NE(text->find("BEGIN ENCRYPTED PRIVATE KEY"), std::string::npos);
  }
  auto loaded = TrustStore::load(*db, dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  TrustStore& t = **loaded;
  EXPECT_EQ(t.ca().name(), "Nord");
  EXPECT_EQ(t.ca().federationId(), fedId);
  EXPECT_EQ(fingerprintOf(t.ca().cert()), caFp);
  ASSERT_TRUE(t.nodeCredentials());
  EXPECT_EQ(fingerprintOf(t.nodeCredentials()->cert.get()), nodeFp);
  EXPECT_EQ(t.revocations().entries(), trust.revocations().entries());
  EXPECT_TRUE(t.revocations().isRevoked("gone", ""));
  // The loaded CA still issues certificates that verify.
  NodeCredentials peer = mint(t.ca(), "peer");
  EXPECT_TRUE(verifyPeer(peer.cert.get(), nullptr, t, testNow()).ok());
}

TEST(TrustStore, LoadWithoutFederation) {
  testing::TempDir dir;
  auto db = openDb(dir.path());
  auto loaded = TrustStore::load(*db, dir.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

TEST(TrustStore, LoadNeedsTheSecretFile) {
  testing::TempDir dir;
  TrustStore trust(makeCa());
  auto db = openDb(dir.path());
  ASSERT_TRUE(trust.save(*db, dir.path()).ok());
  auto secret = dir.path() / kSecretFileName;

  ::chmod(secret.c_str(), 0644);
  auto r = TrustStore::load(*db, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStorage));
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);

  ::chmod(secret.c_str(), 0600);
  {
    std::ofstream out(secret, std::ios::trunc);
    out << std::string(64, '0') << "\n"; // another secret
  }
  r = TrustStore::load(*db, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStorage)) << r.error().message;

  std::filesystem::remove(secret);
  r = TrustStore::load(*db, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStorage));
}

TEST(TrustStore, LoadRejectsTamperedRows) {
  testing::TempDir dir;
  TrustStore trust(makeCa());
  ASSERT_TRUE(trust.revoke("gone", "", "left", "self", testNow()).ok());
  auto db = openDb(dir.path());
  ASSERT_TRUE(trust.save(*db, dir.path()).ok());
  ASSERT_TRUE(db->exec("UPDATE federation_revocations SET reason = 'forged'").ok());
  auto r = TrustStore::load(*db, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStorage));

  ASSERT_TRUE(trust.save(*db, dir.path()).ok()); // restores the row
  ASSERT_TRUE(TrustStore::load(*db, dir.path()).ok());
  TrustStore other(makeCa());
  auto otherPem = detail::certToPem(other.ca().cert());
  ASSERT_TRUE(db->exec("UPDATE federation_trust SET ca_cert = ?1", {*otherPem}).ok());
  r = TrustStore::load(*db, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kStorage));
}

TEST(TrustStore, RefusesForeignNodeCredentials) {
  TrustStore trust(makeCa());
  FederationCa other = makeCa();
  auto r = trust.setNodeCredentials(mint(other, "n1"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kOtherFederation));
  NodeCredentials a = mint(trust.ca(), "n1"), b = mint(trust.ca(), "n1");
  r = trust.setNodeCredentials(NodeCredentials{std::move(a.cert), std::move(b.key)});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kKeyMismatch));
}

TEST(TrustStore, JoinFromBundleThenSaveAndEraseRoundTrip) {
  testing::TempDir dir;
  FederationCa creator = makeCa("Verbund Süd");
  auto bytes = makeBundle(creator, {{"c1", "Creator", {"10.0.0.1:3090"}}}, "0123456789ab",
                          testNow(), testing::kFastKdf);
  ASSERT_TRUE(bytes.ok());
  auto opened = openBundle(*bytes, "0123456789ab", testNow());
  ASSERT_TRUE(opened.ok());
  TrustStore joiner(std::move(opened->ca));
  ASSERT_TRUE(joiner.setNodeCredentials(mint(joiner.ca(), "j1")).ok());
  // Revocations exchanged both ways.
  TrustStore creatorTrust(
      std::move(FederationCa::fromParts(shareCert(creator.cert()), sharePKey(creator.key())))
          .value());
  ASSERT_TRUE(creatorTrust.revoke("x", "", "test", "c1", testNow()).ok());
  auto merged = joiner.mergeRevocations(creatorTrust.revocations().toJson());
  ASSERT_TRUE(merged.ok()) << merged.error().message;
  EXPECT_EQ(*merged, 1u);
  auto db = openDb(dir.path());
  ASSERT_TRUE(joiner.save(*db, dir.path()).ok());
  auto loaded = TrustStore::load(*db, dir.path());
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_TRUE((*loaded)->revocations().isRevoked("x", ""));
  ASSERT_TRUE(TrustStore::erase(*db).ok());
  loaded = TrustStore::load(*db, dir.path());
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

} // namespace
} // namespace verbund::federation

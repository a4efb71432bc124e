#include "federation/trust/errors.h"
#include "federation/trust/trust_store.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <openssl/x509.h>

namespace verbund::federation {
namespace {

using namespace std::chrono_literals;
using testing::makeCa;
using testing::mint;
using testing::testNow;

struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

TrustStore storeFor(const FederationCa& ca) {
  return TrustStore(
      std::move(FederationCa::fromParts(shareCert(ca.cert()), sharePKey(ca.key()))).value());
}

TEST(VerifyPeer, AcceptsNodeOfOwnFederation) {
  FederationCa ca = makeCa();
  TrustStore trust = storeFor(ca);
  NodeCredentials node = mint(ca, "peer-1");
  auto id = verifyPeer(node.cert.get(), nullptr, trust, testNow());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->nodeId, "peer-1");
  EXPECT_EQ(id->fingerprint, fingerprintOf(node.cert.get()));
  EXPECT_EQ(id->federationId, ca.federationId());
  // With the CA in the presented chain, too (what a TLS peer typically sends).
  std::unique_ptr<STACK_OF(X509), StackFree> chain(sk_X509_new_null());
  sk_X509_push(chain.get(), shareCert(ca.cert()).release());
  EXPECT_TRUE(verifyPeer(node.cert.get(), chain.get(), trust, testNow()).ok());
}

TEST(VerifyPeer, RefusesOtherFederation) {
  FederationCa ours = makeCa("Nord");
  FederationCa theirs = makeCa("Nord"); // same name, different federation
  TrustStore trust = storeFor(ours);
  NodeCredentials node = mint(theirs, "peer-1");
  auto r = verifyPeer(node.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kOtherFederation)) << r.error().message;
  EXPECT_NE(r.error().message.find(theirs.federationId()), std::string::npos);
  // Presenting their CA in the chain does not help.
  std::unique_ptr<STACK_OF(X509), StackFree> chain(sk_X509_new_null());
  sk_X509_push(chain.get(), shareCert(theirs.cert()).release());
  r = verifyPeer(node.cert.get(), chain.get(), trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kOtherFederation)) << r.error().message;
}

TEST(VerifyPeer, RefusesSelfSigned) {
  FederationCa ca = makeCa();
  TrustStore trust = storeFor(ca);
  auto cert = testing::selfSignedNodeCert("peer-1");
  auto r = verifyPeer(cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kSelfSigned)) << r.error().message;
}

TEST(VerifyPeer, RefusesExpiredAndNotYetValid) {
  FederationCa ca = makeCa("Nord", testNow() - 24h * 400);
  TrustStore trust = storeFor(ca);
  NodeCredentials old = mint(ca, "peer-1", testNow() - 24h * 300, 24h * 30);
  auto r = verifyPeer(old.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kExpired)) << r.error().message;

  NodeCredentials future = mint(ca, "peer-2", testNow() + 24h * 10);
  r = verifyPeer(future.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kNotYetValid)) << r.error().message;
}

TEST(VerifyPeer, RefusesWhenCaExpired) {
  FederationCa ca = FederationCa::create("Alt", testNow() - 24h * 100, 24h * 50).value();
  TrustStore trust = storeFor(ca);
  NodeCredentials node = mint(ca, "peer-1", testNow() - 24h * 90);
  auto r = verifyPeer(node.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kExpired)) << r.error().message;
}

TEST(VerifyPeer, RefusesRevoked) {
  FederationCa ca = makeCa();
  TrustStore trust = storeFor(ca);
  NodeCredentials a = mint(ca, "peer-1");
  NodeCredentials b = mint(ca, "peer-2");
  NodeCredentials b2 = mint(ca, "peer-2");
  ASSERT_TRUE(trust.revoke("peer-1", "", "left the federation", "admin-node", testNow()).ok());
  ASSERT_TRUE(
      trust.revoke("peer-2", *fingerprintOf(b.cert.get()), "key lost", "admin-node", testNow())
          .ok());
  auto r = verifyPeer(a.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kRevoked));
  EXPECT_NE(r.error().message.find("left the federation"), std::string::npos);
  r = verifyPeer(b.cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kRevoked));
  // Same node, new key: only the old key was revoked.
  EXPECT_TRUE(verifyPeer(b2.cert.get(), nullptr, trust, testNow()).ok());
}

TEST(VerifyPeer, RefusesMissingNodeUri) {
  FederationCa ca = makeCa();
  TrustStore trust = storeFor(ca);
  auto cert = testing::nodeCertWithoutUri(ca, "peer-1");
  auto r = verifyPeer(cert.get(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kMissingNodeUri)) << r.error().message;
}

TEST(VerifyPeer, RefusesCaAsPeerAndNull) {
  FederationCa ca = makeCa();
  TrustStore trust = storeFor(ca);
  auto r = verifyPeer(ca.cert(), nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kInvalidCertificate)) << r.error().message;
  r = verifyPeer(nullptr, nullptr, trust, testNow());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kInvalidCertificate));
}

} // namespace
} // namespace verbund::federation

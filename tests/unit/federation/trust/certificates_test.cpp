#include "federation/trust/certificates.h"
#include "federation/trust/errors.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

namespace verbund::federation {
namespace {

using namespace std::chrono_literals;
using testing::makeCa;
using testing::mint;
using testing::testNow;

std::string subjectEntry(X509* cert, int nid) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

TEST(FederationCa, CreatesSelfSignedP256Ca) {
  FederationCa ca = makeCa("Nord");
  EXPECT_EQ(ca.name(), "Nord");
  EXPECT_EQ(ca.federationId().size(), 32u);
  X509* cert = ca.cert();
  EXPECT_EQ(subjectEntry(cert, NID_commonName), "Verbund federation Nord");
  EXPECT_EQ(subjectEntry(cert, NID_serialNumber), ca.federationId());
  EXPECT_EQ(X509_self_signed(cert, 1), 1);
  EXPECT_NE(X509_get_extension_flags(cert) & EXFLAG_CA, 0u);
  EXPECT_EQ(X509_get_pathlen(cert), 0);
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  EXPECT_TRUE(detail::isP256(ca.key()));
  auto end = notAfterOf(cert);
  ASSERT_TRUE(end);
  EXPECT_GE(*end - testNow(), 20 * 365 * 24h);
  EXPECT_EQ(federationIdOf(cert), ca.federationId());
  auto facts = FederationCa::inspectCaCertificate(cert);
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->first, "Nord");
}

TEST(FederationCa, SameNameDifferentFederation) {
  FederationCa a = makeCa("Nord");
  FederationCa b = makeCa("Nord");
  EXPECT_NE(a.federationId(), b.federationId());
  EXPECT_NE(X509_NAME_cmp(X509_get_subject_name(a.cert()), X509_get_subject_name(b.cert())), 0);
}

TEST(FederationCa, ValidatesName) {
  EXPECT_FALSE(FederationCa::create("").ok());
  EXPECT_FALSE(FederationCa::create(std::string(41, 'x')).ok());
  EXPECT_FALSE(FederationCa::create("bad\nname").ok());
  EXPECT_TRUE(FederationCa::create(std::string(40, 'x')).ok());
  EXPECT_TRUE(FederationCa::create("Zentrale München").ok());
  auto r = FederationCa::create("");
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kInvalidArgument));
}

TEST(FederationCa, FromPartsRejectsForeignKey) {
  FederationCa a = makeCa();
  FederationCa b = makeCa();
  auto r = FederationCa::fromParts(shareCert(a.cert()), sharePKey(b.key()));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(isTrustError(r.error(), TrustErrc::kKeyMismatch));
  EXPECT_TRUE(FederationCa::fromParts(shareCert(a.cert()), sharePKey(a.key())).ok());
}

TEST(NodeCertificate, MintHasNamesAndUsages) {
  FederationCa ca = makeCa();
  NodeCredentials node = mint(ca, "a1b2c3");
  X509* cert = node.cert.get();
  EXPECT_EQ(subjectEntry(cert, NID_commonName), "a1b2c3");
  EXPECT_EQ(subjectEntry(cert, NID_name), "Node a1b2c3");
  EXPECT_EQ(nodeIdOf(cert), "a1b2c3");
  EXPECT_EQ(federationIdOf(cert), ca.federationId());
  EXPECT_EQ(X509_check_ip_asc(cert, "10.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "fd00::1", 0), 1);
  uint32_t xku = X509_get_extended_key_usage(cert);
  EXPECT_NE(xku & XKU_SSL_SERVER, 0u);
  EXPECT_NE(xku & XKU_SSL_CLIENT, 0u);
  EXPECT_EQ(X509_check_ca(cert), 0);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(ca.cert())), 1);
  EXPECT_TRUE(detail::sameKey(X509_get0_pubkey(cert), node.key.get()));
  auto end = notAfterOf(cert);
  ASSERT_TRUE(end);
  EXPECT_GE(*end - testNow(), 2 * 365 * 24h);
  EXPECT_LE(*end - testNow(), 2 * 366 * 24h);
}

TEST(NodeCertificate, RandomSerials) {
  FederationCa ca = makeCa();
  NodeCredentials a = mint(ca, "n1");
  NodeCredentials b = mint(ca, "n1");
  EXPECT_NE(
      ASN1_INTEGER_cmp(X509_get0_serialNumber(a.cert.get()), X509_get0_serialNumber(b.cert.get())),
      0);
  EXPECT_NE(fingerprintOf(a.cert.get()), fingerprintOf(b.cert.get()));
}

TEST(NodeCertificate, ValidatesInput) {
  FederationCa ca = makeCa();
  auto bad = [&](std::string_view id, std::string_view name, std::vector<std::string> addrs) {
    auto r = mintNodeCertificate(ca, id, name, addrs, testNow());
    return !r.ok() && isTrustError(r.error(), TrustErrc::kInvalidArgument);
  };
  EXPECT_TRUE(bad("", "n", {}));
  EXPECT_TRUE(bad("a b", "n", {}));
  EXPECT_TRUE(bad("a,URI:x", "n", {}));
  EXPECT_TRUE(bad(std::string(65, 'a'), "n", {}));
  EXPECT_TRUE(bad("ok", "", {}));
  EXPECT_TRUE(bad("ok", "n", {"10.0.0.1,URI:evil"}));
  EXPECT_TRUE(bad("ok", "n", {"example.org"}));
  EXPECT_TRUE(bad("ok", "n", std::vector<std::string>(17, "10.0.0.1")));
  EXPECT_TRUE(mintNodeCertificate(ca, "ok", "n", {}, testNow()).ok());
}

TEST(NodeCertificate, NeverOutlivesCa) {
  FederationCa ca = makeCa("Kurz", testNow());
  auto c = mintNodeCertificate(ca, "n1", "n", {}, testNow() + 24h * 365 * 19 + 24h * 300);
  ASSERT_TRUE(c.ok());
  EXPECT_LE(*notAfterOf(c->cert.get()), *notAfterOf(ca.cert()));
}

TEST(NodeCertificate, FingerprintIsStableSpkiHash) {
  FederationCa ca = makeCa();
  NodeCredentials node = mint(ca, "n1");
  auto fp = fingerprintOf(node.cert.get());
  ASSERT_TRUE(fp);
  EXPECT_EQ(fp->size(), 64u);
  EXPECT_EQ(fingerprintOf(node.cert.get()), fp);
  EXPECT_EQ(fingerprintOfKey(node.key.get()), fp);
  // Survives a PEM round trip.
  auto pem = detail::certToPem(node.cert.get());
  ASSERT_TRUE(pem.ok());
  auto back = detail::certFromPem(*pem);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(fingerprintOf(back->get()), fp);
}

TEST(NodeCertificate, RenewalDueWithin30Days) {
  FederationCa ca = makeCa();
  NodeCredentials node = mint(ca, "n1", testNow(), 90 * 24h);
  EXPECT_FALSE(renewalDue(node.cert.get(), testNow()));
  EXPECT_FALSE(renewalDue(node.cert.get(), testNow() + 59 * 24h));
  EXPECT_TRUE(renewalDue(node.cert.get(), testNow() + 61 * 24h));
  EXPECT_TRUE(renewalDue(node.cert.get(), testNow() + 200 * 24h)); // expired
  EXPECT_TRUE(renewalDue(nullptr, testNow()));
}

TEST(NodeCertificate, HelpersOnForeignCertificates) {
  auto self = testing::selfSignedNodeCert("x1");
  EXPECT_EQ(nodeIdOf(self.get()), "x1");
  EXPECT_FALSE(federationIdOf(self.get())); // no serialNumber in its issuer
  EXPECT_FALSE(nodeIdOf(nullptr));
  EXPECT_FALSE(fingerprintOf(nullptr));
}

} // namespace
} // namespace verbund::federation

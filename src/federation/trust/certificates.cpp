#include "federation/trust/certificates.h"

#include "federation/trust/cert_builder.h"
#include "federation/trust/errors.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <climits>

namespace verbund::federation {
namespace {

Error invalid(std::string_view field, std::string_view why) {
  return trustError(TrustErrc::kInvalidArgument, std::string(field) + ": " + std::string(why));
}

Error internal(const std::string& what) {
  return trustError(TrustErrc::kInternal, what + ": " + detail::drainOpensslErrors());
}

bool isLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<std::string> nameEntry(const X509_NAME* name, int nid) {
  if (name == nullptr) return std::nullopt;
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return std::nullopt;
  // Exactly one entry of each kind we read.
  if (X509_NAME_get_index_by_NID(name, nid, idx) >= 0) return std::nullopt;
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};

} // namespace

Result<void> validateFederationName(std::string_view name) {
  size_t chars = 0;
  if (name.empty()) return invalid("name", "required");
  if (!detail::isCleanUtf8(name, &chars)) return invalid("name", "no control characters");
  if (chars > kMaxFederationNameChars) return invalid("name", "at most 40 characters");
  if (name.front() == ' ' || name.back() == ' ')
    return invalid("name", "no leading or trailing spaces");
  return {};
}

Result<void> validateNodeId(std::string_view field, std::string_view id) {
  if (id.empty()) return invalid(field, "required");
  if (id.size() > kMaxNodeIdChars) return invalid(field, "at most 64 characters");
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return invalid(field, "node id: letters, digits and -._ only");
  }
  return {};
}

Result<void> validateNodeName(std::string_view name) {
  size_t chars = 0;
  if (name.empty()) return invalid("nodeName", "required");
  if (!detail::isCleanUtf8(name, &chars)) return invalid("nodeName", "no control characters");
  if (chars > kMaxNodeNameChars) return invalid("nodeName", "at most 64 characters");
  return {};
}

Result<void> validateFederationId(std::string_view id) {
  if (id.size() != 32 || !isLowerHex(id)) return invalid("federationId", "32 lowercase hex digits");
  return {};
}

Result<void> validateIpAddress(std::string_view field, std::string_view ip) {
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) return invalid(field, "not an IP address");
  std::string s(ip);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1)
    return {};
  return invalid(field, "not an IP address");
}

namespace detail {

Result<X509Ptr> buildCertificate(const CertSpec& spec) {
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1)
    return internal("creating a certificate");

  // Random positive 127-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).
  std::string serialHex = randomHex(16);
  serialHex[0] = "01234567"[serialHex[0] % 8];
  if (serialHex.find_first_not_of('0') == std::string::npos) serialHex.back() = '1';
  BIGNUM* bn = nullptr;
  if (BN_hex2bn(&bn, serialHex.c_str()) == 0) return internal("serial number");
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  if (serial == nullptr) return internal("serial number");

  X509_NAME* subject = X509_get_subject_name(x.get());
  for (const auto& [nid, value] : spec.subject) {
    if (value.size() > INT_MAX ||
        X509_NAME_add_entry_by_NID(subject, nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1)
      return internal("subject name");
  }
  X509* issuer = spec.issuerCert ? spec.issuerCert : x.get();
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(issuer)) != 1) return internal("issuer");
  if (ASN1_TIME_set(X509_getm_notBefore(x.get()),
                    static_cast<time_t>(unixSeconds(spec.notBefore))) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(unixSeconds(spec.notAfter))) ==
          nullptr)
    return internal("validity");
  if (X509_set_pubkey(x.get(), spec.subjectKey) != 1) return internal("public key");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) -> Result<void> {
    if (value.empty()) return {};
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return internal("extension " + std::string(OBJ_nid2sn(nid)));
    int ok = X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1) return internal("extension");
    return {};
  };
  for (auto r :
       {add(NID_basic_constraints, spec.basicConstraints), add(NID_key_usage, spec.keyUsage),
        add(NID_ext_key_usage, spec.extendedKeyUsage),
        add(NID_subject_alt_name, spec.subjectAltName), add(NID_subject_key_identifier, "hash"),
        add(NID_authority_key_identifier, spec.issuerCert ? "keyid" : "")})
    if (!r) return r.error();

  if (X509_sign(x.get(), spec.issuerKey, EVP_sha256()) <= 0)
    return internal("signing a certificate");
  return x;
}

} // namespace detail

Result<FederationCa> FederationCa::create(std::string_view name, SysTime now,
                                          std::chrono::seconds validity) {
  if (auto r = validateFederationName(name); !r) return r.error();
  return build(std::string(name), detail::randomHex(16), now, validity);
}

Result<FederationCa> FederationCa::successor(const FederationCa& previous, SysTime now,
                                             std::chrono::seconds validity) {
  return build(previous.name_, previous.federationId_, now, validity);
}

Result<FederationCa> FederationCa::build(std::string name, std::string federationId, SysTime now,
                                         std::chrono::seconds validity) {
  auto key = detail::generateP256Key();
  if (!key) return key.error();
  FederationCa ca;
  ca.name_ = std::move(name);
  ca.federationId_ = std::move(federationId);
  detail::CertSpec spec;
  spec.subject = {{NID_commonName, std::string(kCaCommonNamePrefix) + ca.name_},
                  {NID_organizationName, "Verbund"},
                  {NID_serialNumber, ca.federationId_}};
  spec.subjectKey = key->get();
  spec.issuerKey = key->get();
  spec.notBefore = now - std::chrono::minutes(1);
  spec.notAfter = now + validity;
  spec.basicConstraints = "critical,CA:TRUE,pathlen:0";
  spec.keyUsage = "critical,keyCertSign,cRLSign";
  auto cert = detail::buildCertificate(spec);
  if (!cert) return cert.error();
  ca.cert_ = std::move(*cert);
  ca.key_ = std::move(*key);
  return ca;
}

std::string FederationCa::fingerprint() const {
  return fingerprintOfKey(key_.get()).value_or("");
}

Result<std::pair<std::string, std::string>> FederationCa::inspectCaCertificate(X509* cert) {
  auto bad = [](const std::string& why) {
    return trustError(TrustErrc::kCorrupt, "not a Verbund federation CA certificate: " + why);
  };
  if (cert == nullptr) return bad("missing");
  uint32_t flags = X509_get_extension_flags(cert);
  ERR_clear_error();
  if (X509_get_version(cert) != X509_VERSION_3 || (flags & EXFLAG_INVALID) != 0)
    return bad("malformed extensions");
  if ((flags & EXFLAG_CA) == 0 || X509_get_pathlen(cert) != 0)
    return bad("not a CA with pathlen 0");
  if ((X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) return bad("no keyCertSign usage");
  if (!detail::isP256(X509_get0_pubkey(cert))) return bad("key is not EC P-256");
  if (X509_get_signature_nid(cert) != NID_ecdsa_with_SHA256)
    return bad("not signed with ECDSA-SHA256");
  int selfSigned = X509_self_signed(cert, 1);
  ERR_clear_error();
  if (selfSigned != 1) return bad("not self-signed");
  auto cn = nameEntry(X509_get_subject_name(cert), NID_commonName);
  auto id = nameEntry(X509_get_subject_name(cert), NID_serialNumber);
  if (!cn || !cn->starts_with(kCaCommonNamePrefix)) return bad("unexpected common name");
  std::string name = cn->substr(kCaCommonNamePrefix.size());
  if (!validateFederationName(name)) return bad("invalid federation name");
  if (!id || !validateFederationId(*id)) return bad("invalid federation id");
  return std::pair{name, *id};
}

Result<FederationCa> FederationCa::fromParts(X509Ptr cert, PKeyPtr key) {
  auto facts = inspectCaCertificate(cert.get());
  if (!facts) return facts.error();
  if (!key || !detail::sameKey(X509_get0_pubkey(cert.get()), key.get()))
    return trustError(TrustErrc::kKeyMismatch, "the CA key does not belong to the CA certificate");
  FederationCa ca;
  ca.name_ = facts->first;
  ca.federationId_ = facts->second;
  ca.cert_ = std::move(cert);
  ca.key_ = std::move(key);
  return ca;
}

namespace {
Result<NodeCredentials> issueNodeCertificate(const FederationCa& ca, PKeyPtr key,
                                             std::string_view nodeId, std::string_view nodeName,
                                             const std::vector<std::string>& addresses, SysTime now,
                                             std::chrono::seconds validity) {
  if (auto r = validateNodeId("nodeId", nodeId); !r) return r.error();
  if (auto r = validateNodeName(nodeName); !r) return r.error();
  if (addresses.size() > kMaxCertAddresses) return invalid("addresses", "at most 16");
  std::string san;
  for (const auto& a : addresses) {
    if (auto r = validateIpAddress("addresses", a); !r) return r.error();
    san += "IP:" + a + ",";
  }
  san += "URI:" + std::string(kNodeUriPrefix) + std::string(nodeId);
  detail::CertSpec spec;
  spec.subject = {{NID_commonName, std::string(nodeId)}, {NID_name, std::string(nodeName)}};
  spec.subjectKey = key.get();
  spec.issuerCert = ca.cert();
  spec.issuerKey = ca.key();
  spec.notBefore = now - std::chrono::minutes(1);
  spec.notAfter = now + validity;
  // Never beyond the CA: a chain is only as valid as its shortest link.
  if (auto caEnd = detail::notAfter(ca.cert());
      caEnd && detail::unixSeconds(spec.notAfter) > *caEnd)
    spec.notAfter = detail::fromUnixSeconds(*caEnd);
  spec.basicConstraints = "critical,CA:FALSE";
  spec.keyUsage = "critical,digitalSignature";
  spec.extendedKeyUsage = "serverAuth,clientAuth";
  spec.subjectAltName = san;
  auto cert = detail::buildCertificate(spec);
  if (!cert) return cert.error();
  return NodeCredentials{std::move(*cert), std::move(key)};
}
} // namespace

Result<NodeCredentials> mintNodeCertificate(const FederationCa& ca, std::string_view nodeId,
                                            std::string_view nodeName,
                                            const std::vector<std::string>& addresses, SysTime now,
                                            std::chrono::seconds validity) {
  auto key = detail::generateP256Key();
  if (!key) return key.error();
  return issueNodeCertificate(ca, std::move(*key), nodeId, nodeName, addresses, now, validity);
}

Result<NodeCredentials> reissueNodeCertificate(const FederationCa& ca, EVP_PKEY* nodeKey,
                                               std::string_view nodeId, std::string_view nodeName,
                                               const std::vector<std::string>& addresses,
                                               SysTime now, std::chrono::seconds validity) {
  if (nodeKey == nullptr) return trustError(TrustErrc::kInvalidArgument, "node key required");
  return issueNodeCertificate(ca, sharePKey(nodeKey), nodeId, nodeName, addresses, now, validity);
}

bool renewalDue(X509* cert, SysTime now) {
  auto end = detail::notAfter(cert);
  if (!end) return true;
  return *end - detail::unixSeconds(now) <
         std::chrono::duration_cast<std::chrono::seconds>(kRenewBefore).count();
}

std::optional<std::string> nodeIdOf(X509* cert) {
  if (cert == nullptr) return std::nullopt;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();
  if (!names) return std::nullopt;
  std::optional<std::string> found;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = gn->d.uniformResourceIdentifier;
    std::string_view v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                       static_cast<size_t>(ASN1_STRING_length(uri)));
    if (!v.starts_with(kNodeUriPrefix)) continue;
    std::string id(v.substr(kNodeUriPrefix.size()));
    if (!validateNodeId("nodeId", id)) return std::nullopt;
    if (found && *found != id) return std::nullopt; // two identities: refuse to pick one
    found = id;
  }
  return found;
}

std::optional<std::string> federationIdOf(X509* cert) {
  if (cert == nullptr) return std::nullopt;
  auto id = nameEntry(X509_get_issuer_name(cert), NID_serialNumber);
  if (!id || !validateFederationId(*id)) return std::nullopt;
  return id;
}

std::optional<std::string> fingerprintOfKey(EVP_PKEY* key) {
  if (key == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdLen = 0;
  int ok = EVP_Digest(der, static_cast<size_t>(n), md, &mdLen, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return detail::toHex(md, mdLen);
}

std::optional<std::string> fingerprintOf(X509* cert) {
  if (cert == nullptr) return std::nullopt;
  // Hash the SubjectPublicKeyInfo exactly as encoded in the certificate.
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (n <= 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdLen = 0;
  int ok = EVP_Digest(der, static_cast<size_t>(n), md, &mdLen, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return detail::toHex(md, mdLen);
}

std::optional<SysTime> notAfterOf(X509* cert) {
  auto end = detail::notAfter(cert);
  if (!end) return std::nullopt;
  return detail::fromUnixSeconds(*end);
}

} // namespace verbund::federation

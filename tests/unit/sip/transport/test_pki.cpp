#include "unit/sip/transport/test_pki.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdexcept>

namespace verbund::sip::testing {

namespace {

std::string toPem(int (*write)(BIO*, void*), void* obj) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || write(bio.get(), obj) != 1) throw std::runtime_error("PEM write failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

std::string certToPem(X509* x) {
  return toPem([](BIO* b, void* o) { return PEM_write_bio_X509(b, static_cast<X509*>(o)); }, x);
}

std::string keyToPem(EVP_PKEY* k) {
  return toPem(
      [](BIO* b, void* o) {
        return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(o), nullptr, nullptr, 0, nullptr,
                                        nullptr);
      },
      k);
}

void addExt(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) throw std::runtime_error("bad extension");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

TestCert make(const TestCert* ca, const std::string& cn) {
  static long serial = 1;
  TestCert out;
  out.key.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  out.cert.reset(X509_new(), X509_free);
  if (!out.key || !out.cert) throw std::runtime_error("OpenSSL allocation failed");
  X509* x = out.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, out.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer = ca ? ca->cert.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(issuer));
  addExt(x, issuer, NID_subject_key_identifier, "hash");
  addExt(x, issuer, NID_authority_key_identifier, "keyid:always");
  if (ca) {
    addExt(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
    addExt(x, issuer, NID_key_usage, "critical,digitalSignature");
    addExt(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  } else {
    addExt(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
    addExt(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  EVP_PKEY* signer = ca ? ca->key.get() : out.key.get();
  if (X509_sign(x, signer, EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");
  out.certPem = certToPem(x);
  out.keyPem = keyToPem(out.key.get());
  return out;
}

} // namespace

TestCert makeCa(const std::string& cn) {
  return make(nullptr, cn);
}
TestCert makeLeaf(const TestCert& ca, const std::string& cn) {
  return make(&ca, cn);
}

std::string commonName(X509* cert) {
  if (!cert) return "";
  char buf[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf) < 0)
    return "";
  return buf;
}

} // namespace verbund::sip::testing

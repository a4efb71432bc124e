#include "federation/trust/ossl.h"

#include "federation/trust/errors.h"

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

#include <climits>
#include <ctime>
#include <vector>

namespace verbund::federation {

X509Ptr shareCert(X509* cert) {
  if (cert == nullptr || X509_up_ref(cert) != 1) return nullptr;
  return X509Ptr(cert);
}

PKeyPtr sharePKey(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_up_ref(key) != 1) return nullptr;
  return PKeyPtr(key);
}

namespace detail {
namespace {

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct SigFree {
  void operator()(X509_SIG* p) const { X509_SIG_free(p); }
};
struct P8Free {
  void operator()(PKCS8_PRIV_KEY_INFO* p) const { PKCS8_PRIV_KEY_INFO_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

Error internal(const std::string& what) {
  return trustError(TrustErrc::kInternal, what + ": " + drainOpensslErrors());
}

std::string bioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

BioPtr memBio(std::string_view data) {
  if (data.size() > INT_MAX) return nullptr;
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::optional<int64_t> asnTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm));
}

// Checks the PBES2/PBKDF2 parameters of an EncryptedPrivateKeyInfo before any work is done.
Result<void> checkKdf(const X509_SIG* sig, int maxIterations) {
  const X509_ALGOR* alg = nullptr;
  X509_SIG_get0(sig, &alg, nullptr);
  const ASN1_OBJECT* oid = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&oid, &ptype, &pval, alg);
  auto bad = [](const char* why) { return trustError(TrustErrc::kCorrupt, why); };
  if (OBJ_obj2nid(oid) != NID_pbes2 || ptype != V_ASN1_SEQUENCE) {
    return bad("private key is not protected with PBES2");
  }
  auto* pbe2 = static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(
      ASN1_ITEM_rptr(PBE2PARAM), reinterpret_cast<const ASN1_TYPE*>(alg->parameter)));
  if (pbe2 == nullptr) {
    ERR_clear_error();
    return bad("private key has damaged PBES2 parameters");
  }
  std::unique_ptr<PBE2PARAM, decltype(&PBE2PARAM_free)> pbe2Guard(pbe2, PBE2PARAM_free);
  if (OBJ_obj2nid(pbe2->keyfunc->algorithm) != NID_id_pbkdf2 || pbe2->keyfunc->parameter == nullptr)
    return bad("private key is not protected with PBKDF2");
  auto* kdf = static_cast<PBKDF2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter));
  if (kdf == nullptr) {
    ERR_clear_error();
    return bad("private key has damaged PBKDF2 parameters");
  }
  std::unique_ptr<PBKDF2PARAM, decltype(&PBKDF2PARAM_free)> kdfGuard(kdf, PBKDF2PARAM_free);
  int64_t iter = 0;
  if (ASN1_INTEGER_get_int64(&iter, kdf->iter) != 1 || iter < 1 || iter > maxIterations) {
    ERR_clear_error();
    return bad("private key uses an unsupported PBKDF2 iteration count");
  }
  return {};
}

} // namespace

int64_t unixSeconds(SysTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

SysTime fromUnixSeconds(int64_t s) {
  return SysTime(std::chrono::seconds(s));
}

std::string drainOpensslErrors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string toHex(const unsigned char* data, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    s += digits[data[i] >> 4];
    s += digits[data[i] & 15];
  }
  return s;
}

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  // RAND_bytes only fails when the system has no entropy source at all; that is fatal.
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) std::abort();
  return toHex(buf.data(), buf.size());
}

std::string base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0 || text.size() > INT_MAX) return std::nullopt;
  for (char c : text) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/' || c == '='))
      return std::nullopt;
  }
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  // '=' only as trailing padding.
  if (text.find('=') != std::string_view::npos && text.find('=') < text.size() - pad)
    return std::nullopt;
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

Result<PKeyPtr> generateP256Key() {
  PKeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return internal("EC P-256 key generation failed");
  return key;
}

bool isP256(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_is_a(key, "EC") != 1) return false;
  char group[64] = {};
  size_t len = 0;
  bool ok = EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1 &&
            std::string_view(group, len) == "prime256v1";
  ERR_clear_error();
  return ok;
}

bool sameKey(EVP_PKEY* a, EVP_PKEY* b) {
  bool ok = a != nullptr && b != nullptr && EVP_PKEY_eq(a, b) == 1;
  ERR_clear_error();
  return ok;
}

Result<std::string> certToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return internal("writing a certificate");
  return bioToString(bio.get());
}

Result<X509Ptr> certFromPem(std::string_view pem) {
  BioPtr bio = memBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    return trustError(TrustErrc::kCorrupt, "not a PEM certificate");
  }
  return cert;
}

Result<X509Ptr> certFromDer(std::string_view der) {
  if (der.size() > INT_MAX) return trustError(TrustErrc::kCorrupt, "certificate too large");
  auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return trustError(TrustErrc::kCorrupt, "damaged certificate");
  }
  return cert;
}

std::optional<int64_t> notAfter(X509* cert) {
  return cert ? asnTime(X509_get0_notAfter(cert)) : std::nullopt;
}
std::optional<int64_t> notBefore(X509* cert) {
  return cert ? asnTime(X509_get0_notBefore(cert)) : std::nullopt;
}

namespace {
Result<std::unique_ptr<X509_SIG, SigFree>> encryptKey(EVP_PKEY* key, std::string_view passphrase,
                                                      int iterations) {
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, P8Free> p8(EVP_PKEY2PKCS8(key));
  if (!p8) return internal("encoding a private key");
  if (passphrase.size() > INT_MAX)
    return trustError(TrustErrc::kInvalidArgument, "passphrase too long");
  // pbe_nid -1 + cipher: PBES2; OpenSSL 3 uses hmacWithSHA256 as the PBKDF2 PRF. A null salt
  // with a length makes OpenSSL draw a random salt of that length (the default is only 8).
  std::unique_ptr<X509_SIG, SigFree> sig(PKCS8_encrypt(-1, EVP_aes_256_cbc(), passphrase.data(),
                                                       static_cast<int>(passphrase.size()), nullptr,
                                                       16, iterations, p8.get()));
  if (!sig) return internal("encrypting a private key");
  return sig;
}
} // namespace

Result<std::string> encryptKeyPem(EVP_PKEY* key, std::string_view passphrase, int iterations) {
  auto sig = encryptKey(key, passphrase, iterations);
  if (!sig) return sig.error();
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8(bio.get(), sig->get()) != 1) return internal("writing a key");
  return bioToString(bio.get());
}

Result<std::string> keyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (key == nullptr || !bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return internal("writing a key");
  return bioToString(bio.get());
}

Result<PKeyPtr> keyFromPem(std::string_view pem) {
  if (pem.size() > 4096) return trustError(TrustErrc::kCorrupt, "private key too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return internal("reading a key");
  // A null password callback result: an encrypted key fails instead of prompting.
  PKeyPtr key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  ERR_clear_error();
  if (!key || !isP256(key.get()))
    return trustError(TrustErrc::kCorrupt, "not an EC P-256 private key");
  return key;
}

Result<std::string> encryptKeyDer(EVP_PKEY* key, std::string_view passphrase, int iterations) {
  auto sig = encryptKey(key, passphrase, iterations);
  if (!sig) return sig.error();
  unsigned char* der = nullptr;
  int n = i2d_X509_SIG(sig->get(), &der);
  if (n <= 0) return internal("encoding an encrypted key");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

Result<PKeyPtr> decryptKeyDer(std::string_view der, std::string_view passphrase,
                              int maxIterations) {
  if (der.size() > INT_MAX) return trustError(TrustErrc::kCorrupt, "private key too large");
  auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509_SIG, SigFree> sig(d2i_X509_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return trustError(TrustErrc::kCorrupt, "damaged encrypted private key");
  }
  if (auto r = checkKdf(sig.get(), maxIterations); !r) return r.error();
  if (passphrase.empty() || passphrase.size() > INT_MAX)
    return trustError(TrustErrc::kWrongPassphrase, "wrong passphrase");
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, P8Free> p8(
      PKCS8_decrypt(sig.get(), passphrase.data(), static_cast<int>(passphrase.size())));
  if (!p8) {
    ERR_clear_error();
    // CBC padding or the inner DER did not check out: with an intact envelope that is the
    // passphrase (a damaged ciphertext looks the same; the message says so).
    return trustError(TrustErrc::kWrongPassphrase,
                      "wrong passphrase (or the encrypted key is damaged)");
  }
  PKeyPtr key(EVP_PKCS82PKEY(p8.get()));
  if (!key) {
    ERR_clear_error();
    return trustError(TrustErrc::kWrongPassphrase,
                      "wrong passphrase (or the encrypted key is damaged)");
  }
  return key;
}

Result<PKeyPtr> decryptKeyPem(std::string_view pem, std::string_view passphrase,
                              int maxIterations) {
  BioPtr bio = memBio(pem);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (!bio || PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
    ERR_clear_error();
    return trustError(TrustErrc::kCorrupt, "not a PEM encrypted private key");
  }
  std::string n(name), der(reinterpret_cast<char*>(data), static_cast<size_t>(len));
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  if (n != PEM_STRING_PKCS8) return trustError(TrustErrc::kCorrupt, "not an encrypted private key");
  return decryptKeyDer(der, passphrase, maxIterations);
}

Result<std::string> signBase64(EVP_PKEY* key, std::string_view data) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1)
    return internal("signing");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return internal("signing");
  sig.resize(len);
  return base64Encode(sig);
}

bool verifyBase64(EVP_PKEY* publicKey, std::string_view data, std::string_view signatureBase64) {
  auto sig = base64Decode(signatureBase64);
  if (!sig || sig->empty() || publicKey == nullptr) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, publicKey) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

bool isCleanUtf8(std::string_view s, size_t* codePoints) {
  size_t count = 0;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      n = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates, out of range, control characters.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 || cp == 0x7F ||
        (cp >= 0x80 && cp < 0xA0))
      return false;
    i += n;
    ++count;
  }
  if (codePoints) *codePoints = count;
  return true;
}

} // namespace detail
} // namespace verbund::federation

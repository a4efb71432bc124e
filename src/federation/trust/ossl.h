#pragma once
// Thin RAII and helper layer over OpenSSL 3 for the trust module. Everything that reads bytes
// from outside returns Result and leaves the OpenSSL error queue empty.
#include "base/result.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace verbund::federation {

using SysTime = std::chrono::system_clock::time_point;
// Wall-clock milliseconds since the Unix epoch (as Timers::wallMs() gives them) as a SysTime.
inline SysTime sysTimeFromMs(int64_t unixMs) {
  return SysTime(std::chrono::milliseconds(unixMs));
}

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PKeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PKeyPtr = std::unique_ptr<EVP_PKEY, PKeyFree>;

// New owning references to shared OpenSSL objects (reference counted by OpenSSL).
X509Ptr shareCert(X509* cert);
PKeyPtr sharePKey(EVP_PKEY* key);

namespace detail {

int64_t unixSeconds(SysTime t);
SysTime fromUnixSeconds(int64_t s);

// Drains the thread's OpenSSL error queue into one line (for messages; never secrets).
std::string drainOpensslErrors();

std::string toHex(const unsigned char* data, size_t size);
std::string randomHex(size_t bytes);
std::string base64Encode(std::string_view data);
std::optional<std::string> base64Decode(std::string_view text);

// A fresh EC P-256 key pair; true if key is one.
Result<PKeyPtr> generateP256Key();
bool isP256(EVP_PKEY* key);
// 1 if the public halves are equal.
bool sameKey(EVP_PKEY* a, EVP_PKEY* b);

Result<std::string> certToPem(X509* cert);
Result<X509Ptr> certFromPem(std::string_view pem);
Result<X509Ptr> certFromDer(std::string_view der);

// Validity end / start of a certificate as Unix seconds.
std::optional<int64_t> notAfter(X509* cert);
std::optional<int64_t> notBefore(X509* cert);

// PKCS#8 EncryptedPrivateKeyInfo: PBES2, PBKDF2-HMAC-SHA256 with `iterations`, AES-256-CBC.
Result<std::string> encryptKeyPem(EVP_PKEY* key, std::string_view passphrase, int iterations);
Result<std::string> encryptKeyDer(EVP_PKEY* key, std::string_view passphrase, int iterations);
// Decrypts an EncryptedPrivateKeyInfo (DER). Only PBES2 + PBKDF2 with at most maxIterations is
// accepted so that an uploaded file cannot make us spin. Errors: kCorrupt (envelope),
// kWrongPassphrase.
Result<PKeyPtr> decryptKeyDer(std::string_view der, std::string_view passphrase, int maxIterations);
Result<PKeyPtr> decryptKeyPem(std::string_view pem, std::string_view passphrase, int maxIterations);

// Unencrypted PKCS#8 PEM, only for keys that travel inside an authenticated TLS link (the rekey
// message) or go to a TLS library in memory. keyFromPem accepts only an EC P-256 private key
// (kCorrupt otherwise) and at most 4 KiB.
Result<std::string> keyToPem(EVP_PKEY* key);
Result<PKeyPtr> keyFromPem(std::string_view pem);

// ECDSA/SHA-256; signature is DER, returned base64-encoded.
Result<std::string> signBase64(EVP_PKEY* key, std::string_view data);
bool verifyBase64(EVP_PKEY* publicKey, std::string_view data, std::string_view signatureBase64);

// Strings from untrusted sources: valid UTF-8 without control characters; length in code points.
bool isCleanUtf8(std::string_view s, size_t* codePoints = nullptr);

} // namespace detail
} // namespace verbund::federation

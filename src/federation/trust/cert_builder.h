#pragma once
// Internal: assembles and signs an X.509 v3 certificate. Used by certificates.cpp and by tests
// that need deliberately odd certificates (self-signed leaves, missing names).
#include "base/result.h"
#include "federation/trust/ossl.h"

#include <string>
#include <utility>
#include <vector>

namespace verbund::federation::detail {

struct CertSpec {
  std::vector<std::pair<int, std::string>> subject; // (NID, UTF-8 value), in order
  EVP_PKEY* subjectKey = nullptr;
  X509* issuerCert = nullptr; // nullptr: self-signed
  EVP_PKEY* issuerKey = nullptr;
  SysTime notBefore;
  SysTime notAfter;
  // OpenSSL config syntax, as in `openssl x509 -extfile`; empty = extension omitted.
  std::string basicConstraints;
  std::string keyUsage;
  std::string extendedKeyUsage;
  std::string subjectAltName;
};

Result<X509Ptr> buildCertificate(const CertSpec& spec);

} // namespace verbund::federation::detail

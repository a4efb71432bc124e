#pragma once
// A throw-away PKI for TLS tests, generated in memory with the OpenSSL 3 API: an EC P-256 CA and
// leaf certificates signed by it. Nothing is read from or written to disk.
#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace verbund::sip::testing {

struct TestCert {
  std::string certPem;
  std::string keyPem;
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
};

TestCert makeCa(const std::string& commonName);
// A leaf for both serverAuth and clientAuth, signed by `ca`.
TestCert makeLeaf(const TestCert& ca, const std::string& commonName);
// The subject CN of a certificate, "" when absent.
std::string commonName(X509* cert);

} // namespace verbund::sip::testing

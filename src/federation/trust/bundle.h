#pragma once
// The downloadable "federation certificate": a passphrase-protected bundle with the federation
// CA certificate, the CA key and the members known when it was made. Format (see README.md):
// a PEM text file with
//   -----BEGIN CERTIFICATE-----            the CA certificate
//   -----BEGIN ENCRYPTED PRIVATE KEY-----  the CA key, PKCS#8 PBES2 (PBKDF2-HMAC-SHA256,
//   AES-256-CBC)
//   -----BEGIN VERBUND MEMBERS-----        base64 of a JSON document, signed with the CA key
// so that `openssl x509 -in f` and `openssl pkey -in f` read it as they are.
#include "base/result.h"
#include "federation/trust/certificates.h"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxBundleBytes = 64 * 1024;
inline constexpr size_t kMaxMembers = 1000;
inline constexpr size_t kMaxMemberAddresses = 8;
inline constexpr size_t kMinPassphraseChars = 10;
inline constexpr size_t kMaxPassphraseBytes = 1024;
inline constexpr int kBundleKdfIterations = 600'000;
// Upper bound accepted when opening: an uploaded file must not make the node spin for minutes.
inline constexpr int kMaxBundleKdfIterations = 2'000'000;
inline constexpr std::string_view kMembersPemName = "VERBUND MEMBERS";

// A member as the bundle lists it. addresses: control-plane endpoints "host:port" with host an
// IPv4 literal, a bracketed IPv6 literal or a DNS name.
struct Member {
  std::string nodeId;
  std::string name;
  std::vector<std::string> addresses;
  std::string fingerprint; // the member's pinned key (SPKI SHA-256, 64 hex); "" in old bundles
  friend bool operator==(const Member&, const Member&) = default;
};

Result<void> validatePassphrase(std::string_view passphrase); // kWeakPassphrase
Result<void> validateHostPort(std::string_view field, std::string_view hostPort);
Result<void> validateMember(const Member& m); // kInvalidArgument
Result<void> validateMembers(const std::vector<Member>& members);

// Builds the bundle. kdfIterations: PBKDF2 rounds protecting the CA key (tests and the fuzz seed
// generator use fewer to stay fast). Errors: kWeakPassphrase, kInvalidArgument, kTooLarge.
Result<std::string> makeBundle(const FederationCa& ca, const std::vector<Member>& members,
                               std::string_view passphrase,
                               SysTime now = std::chrono::system_clock::now(),
                               int kdfIterations = kBundleKdfIterations);

struct OpenedBundle {
  FederationCa ca;
  std::vector<Member> members;
  SysTime createdAt;
};

// Opens an uploaded bundle. Never throws. Errors: kTooLarge, kCorrupt (not a bundle, damaged,
// tampered member list), kWrongPassphrase, kKeyMismatch (CA key not of the CA certificate),
// kExpired (CA certificate no longer valid at `now`).
Result<OpenedBundle> openBundle(std::string_view bytes, std::string_view passphrase,
                                SysTime now = std::chrono::system_clock::now());

} // namespace verbund::federation

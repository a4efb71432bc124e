#pragma once
// Small cryptographic helpers of the admin API on OpenSSL: random bytes, encodings, SHA-256,
// and password hashing with PBKDF2-HMAC-SHA256.
#include "base/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::http {

// Iterations for admin password hashes (OWASP 2023 asks for at least 600k for PBKDF2-SHA256; the
// brief's floor is 200k). Verifying costs a few hundred ms, so it never runs on the node's loop.
inline constexpr int kPbkdf2Iterations = 600000;
inline constexpr int kMinPbkdf2Iterations = 1000; // accepted when reading a stored hash
inline constexpr int kMaxPbkdf2Iterations = 10000000;

// Cryptographically secure random bytes; throws std::runtime_error only when the OpenSSL DRBG
// fails, which means the process cannot do any security work at all.
std::vector<uint8_t> randomBytes(size_t n);
// base64url without padding (RFC 4648 §5).
std::string base64Url(const uint8_t* data, size_t size);
std::string base64Url(const std::vector<uint8_t>& bytes);
std::optional<std::vector<uint8_t>> fromBase64Url(std::string_view text);
// n random bytes, base64url-encoded.
std::string randomToken(size_t bytes);
std::string sha256Hex(std::string_view data);
// Compares in time independent of where the strings differ (their lengths may leak).
bool constantTimeEquals(std::string_view a, std::string_view b);

// "$pbkdf2-sha256$i=<iterations>$<salt b64url>$<hash b64url>", 16-byte salt, 32-byte hash.
std::string hashPassword(std::string_view password, int iterations = kPbkdf2Iterations);
// False for a wrong password and for a malformed stored hash (stored rows are untrusted).
bool verifyPassword(std::string_view password, std::string_view stored);

} // namespace verbund::http

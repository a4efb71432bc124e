#include "http/crypto.h"

#include <charconv>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdexcept>

namespace verbund::http {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kPrefix = "$pbkdf2-sha256$i=";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

int decodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

bool pbkdf2(std::string_view password, const std::vector<uint8_t>& salt, int iterations,
            uint8_t* out, size_t outLen) {
  return PKCS5_PBKDF2_HMAC(password.data(), int(password.size()), salt.data(), int(salt.size()),
                           iterations, EVP_sha256(), int(outLen), out) == 1;
}
} // namespace

std::vector<uint8_t> randomBytes(size_t n) {
  std::vector<uint8_t> out(n);
  if (n > 0 && RAND_bytes(out.data(), int(n)) != 1)
    throw std::runtime_error("OpenSSL random generator failed");
  return out;
}

std::string base64Url(const uint8_t* data, size_t size) {
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (size - i == 1) {
    uint32_t v = uint32_t(data[i]) << 16;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
  } else if (size - i == 2) {
    uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
  }
  return out;
}

std::string base64Url(const std::vector<uint8_t>& bytes) {
  return base64Url(bytes.data(), bytes.size());
}

std::optional<std::vector<uint8_t>> fromBase64Url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = decodeChar(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t(acc >> bits));
    }
  }
  return out;
}

std::string randomToken(size_t bytes) {
  return base64Url(randomBytes(bytes));
}

std::string sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hashPassword(std::string_view password, int iterations) {
  auto salt = randomBytes(kSaltBytes);
  uint8_t hash[kHashBytes];
  if (!pbkdf2(password, salt, iterations, hash, sizeof hash))
    throw std::runtime_error("PBKDF2 failed");
  return std::string(kPrefix) + std::to_string(iterations) + "$" + base64Url(salt) + "$" +
         base64Url(hash, sizeof hash);
}

bool verifyPassword(std::string_view password, std::string_view stored) {
  if (!stored.starts_with(kPrefix)) return false;
  auto rest = stored.substr(kPrefix.size());
  auto d1 = rest.find('$');
  if (d1 == std::string_view::npos) return false;
  auto d2 = rest.find('$', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  int iterations = 0;
  auto num = rest.substr(0, d1);
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), iterations);
  if (ec != std::errc() || p != num.data() + num.size() || iterations < kMinPbkdf2Iterations ||
      iterations > kMaxPbkdf2Iterations)
    return false;
  auto salt = fromBase64Url(rest.substr(d1 + 1, d2 - d1 - 1));
  auto expected = fromBase64Url(rest.substr(d2 + 1));
  if (!salt || !expected || salt->empty() || expected->size() != kHashBytes) return false;
  uint8_t hash[kHashBytes];
  if (!pbkdf2(password, *salt, iterations, hash, sizeof hash)) return false;
  return CRYPTO_memcmp(hash, expected->data(), kHashBytes) == 0;
}

} // namespace verbund::http

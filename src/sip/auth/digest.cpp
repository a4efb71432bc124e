#include "sip/auth/digest.h"

#include "base/metrics.h"
#include "sip/message/text.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace verbund::sip {

namespace {

Counter g_challenges("verbund_sip_auth_challenges_total",
                     "Digest challenge sets issued (401/407 responses built)");
Counter g_authOk("verbund_sip_auth_ok_total", "Digest credentials accepted");
Counter g_failMissing("verbund_sip_auth_fail_missing_total", "Requests without credentials");
Counter g_failNotDigest("verbund_sip_auth_fail_not_digest_total",
                        "Credentials of a scheme other than Digest");
Counter g_failWrongRealm("verbund_sip_auth_fail_wrong_realm_total",
                         "Digest credentials for another realm");
Counter g_failUnknownAlgorithm("verbund_sip_auth_fail_unknown_algorithm_total",
                               "Digest credentials with an algorithm not offered");
Counter g_failMalformed("verbund_sip_auth_fail_malformed_total",
                        "Digest credentials missing or with invalid parameters");
Counter g_failStale("verbund_sip_auth_fail_stale_nonce_total",
                    "Correct digest credentials with an expired nonce");
Counter g_failBadNonce("verbund_sip_auth_fail_bad_nonce_total",
                       "Digest credentials with a nonce not issued by this server");
Counter g_failReplay("verbund_sip_auth_fail_replayed_nc_total",
                     "Correct digest credentials with a nonce count already used");
Counter g_failWrongResponse("verbund_sip_auth_fail_wrong_response_total",
                            "Digest credentials with a wrong response or unknown user");

void count(DigestStatus s) {
  switch (s) {
  case DigestStatus::Ok:
    g_authOk.inc();
    break;
  case DigestStatus::Missing:
    g_failMissing.inc();
    break;
  case DigestStatus::NotDigest:
    g_failNotDigest.inc();
    break;
  case DigestStatus::WrongRealm:
    g_failWrongRealm.inc();
    break;
  case DigestStatus::UnknownAlgorithm:
    g_failUnknownAlgorithm.inc();
    break;
  case DigestStatus::Malformed:
    g_failMalformed.inc();
    break;
  case DigestStatus::StaleNonce:
    g_failStale.inc();
    break;
  case DigestStatus::BadNonce:
    g_failBadNonce.inc();
    break;
  case DigestStatus::ReplayedNonceCount:
    g_failReplay.inc();
    break;
  case DigestStatus::WrongResponse:
    g_failWrongResponse.inc();
    break;
  }
}

// The three hashes, fetched once (OpenSSL 3 explicit fetch avoids a provider lookup per call).
// Never freed: they live as long as the process, like the counters.
const EVP_MD* md(DigestAlgorithm a) {
  static const std::array<EVP_MD*, 3> kMds = {
      EVP_MD_fetch(nullptr, "MD5", nullptr),
      EVP_MD_fetch(nullptr, "SHA256", nullptr),
      EVP_MD_fetch(nullptr, "SHA512-256", nullptr),
  };
  switch (baseAlgorithm(a)) {
  case DigestAlgorithm::Sha256:
    return kMds[1];
  case DigestAlgorithm::Sha512_256:
    return kMds[2];
  default:
    return kMds[0];
  }
}

std::string toHex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xF];
  }
  return out;
}

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = text::lower(c);
  return out;
}

// RFC 4648 §5 without padding: nonces travel inside quoted-strings and URIs of logs.
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t(p[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
  }
  return out;
}

int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Decodes exactly `size` bytes of unpadded base64url; false on any other length or character.
bool unbase64url(std::string_view s, uint8_t* out, size_t size) {
  if (s.size() != (size * 4 + 2) / 3) return false;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = b64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= size) return false;
      out[o++] = uint8_t(acc >> bits);
    }
  }
  // Non-zero leftover bits would make several strings decode to the same nonce.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  return o == size;
}

void putU64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = uint8_t(v);
    v >>= 8;
  }
}
uint64_t getU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// quoted-string for a header value (RFC 3261 §25.1 quoted-pair for '"' and '\').
std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

// Values we put into a header ourselves must not smuggle line breaks or NULs.
bool safeForHeader(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && u != '\t') return false;
    if (u == 0x7F) return false;
  }
  return true;
}

// Parameter value with quoted-pair escapes removed; token values are returned as they are.
std::optional<std::string> paramString(const AuthParams& p, std::string_view name) {
  for (size_t i = 0; i < p.count && i < AuthParams::kMaxParams; ++i) {
    if (!text::iequals(p.items[i].name, name)) continue;
    if (p.items[i].quoted) return unquote(p.items[i].value);
    return std::string(p.items[i].value);
  }
  return std::nullopt;
}

bool parseNc(std::string_view s, uint32_t& out) {
  // RFC 7616 §3.4: nc-value = 8LHEX. Upper-case hex is tolerated.
  if (s.size() != 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    v = (v << 4) | uint32_t(d);
  }
  out = v;
  return true;
}

size_t hexLength(DigestAlgorithm a) {
  switch (baseAlgorithm(a)) {
  case DigestAlgorithm::Md5:
    return 32;
  default:
    return 64;
  }
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Algorithms and hashing

std::string_view digestAlgorithmName(DigestAlgorithm a) {
  switch (a) {
  case DigestAlgorithm::Md5:
    return "MD5";
  case DigestAlgorithm::Md5Sess:
    return "MD5-sess";
  case DigestAlgorithm::Sha256:
    return "SHA-256";
  case DigestAlgorithm::Sha256Sess:
    return "SHA-256-sess";
  case DigestAlgorithm::Sha512_256:
    return "SHA-512-256";
  case DigestAlgorithm::Sha512_256Sess:
    return "SHA-512-256-sess";
  }
  return "MD5";
}

std::optional<DigestAlgorithm> digestAlgorithmFromName(std::string_view name) {
  for (auto a :
       {DigestAlgorithm::Md5, DigestAlgorithm::Md5Sess, DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha256Sess, DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha512_256Sess})
    if (text::iequals(name, digestAlgorithmName(a))) return a;
  return std::nullopt;
}

bool isSessAlgorithm(DigestAlgorithm a) {
  return a == DigestAlgorithm::Md5Sess || a == DigestAlgorithm::Sha256Sess ||
         a == DigestAlgorithm::Sha512_256Sess;
}

DigestAlgorithm baseAlgorithm(DigestAlgorithm a) {
  switch (a) {
  case DigestAlgorithm::Md5Sess:
    return DigestAlgorithm::Md5;
  case DigestAlgorithm::Sha256Sess:
    return DigestAlgorithm::Sha256;
  case DigestAlgorithm::Sha512_256Sess:
    return DigestAlgorithm::Sha512_256;
  default:
    return a;
  }
}

int digestStrength(DigestAlgorithm a) {
  switch (baseAlgorithm(a)) {
  case DigestAlgorithm::Sha512_256:
    return 3;
  case DigestAlgorithm::Sha256:
    return 2;
  default:
    return 1;
  }
}

std::optional<std::string> digestHex(DigestAlgorithm a,
                                     std::initializer_list<std::string_view> parts) {
  const EVP_MD* type = md(a);
  if (type == nullptr) return std::nullopt;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return std::nullopt;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex2(ctx, type, nullptr) == 1;
  for (std::string_view p : parts)
    if (ok && !p.empty()) ok = EVP_DigestUpdate(ctx, p.data(), p.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return std::nullopt;
  return toHex(out, len);
}

std::optional<std::string> digestHa1(DigestAlgorithm a, std::string_view username,
                                     std::string_view realm, std::string_view password) {
  return digestHex(a, {username, ":", realm, ":", password});
}

std::optional<std::string> digestResponse(const DigestInputs& in) {
  // RFC 7616 §3.4.2: for -sess, A1 = H(user:realm:pass) ":" nonce ":" cnonce.
  std::string sessHa1;
  std::string_view ha1 = in.ha1;
  if (isSessAlgorithm(in.algorithm)) {
    auto h = digestHex(in.algorithm, {in.ha1, ":", in.nonce, ":", in.cnonce});
    if (!h) return std::nullopt;
    sessHa1 = std::move(*h);
    ha1 = sessHa1;
  }
  // RFC 7616 §3.4.3: A2 = method ":" uri [":" H(entity-body)] for auth-int.
  std::optional<std::string> ha2;
  if (in.qop == "auth-int") {
    auto bodyHash = digestHex(in.algorithm, {in.body});
    if (!bodyHash) return std::nullopt;
    ha2 = digestHex(in.algorithm, {in.method, ":", in.uri, ":", *bodyHash});
  } else {
    ha2 = digestHex(in.algorithm, {in.method, ":", in.uri});
  }
  if (!ha2) return std::nullopt;
  // RFC 7616 §3.4.1; RFC 2069 §2.1.2 when there is no qop.
  if (in.qop.empty()) return digestHex(in.algorithm, {ha1, ":", in.nonce, ":", *ha2});
  return digestHex(in.algorithm,
                   {ha1, ":", in.nonce, ":", in.nc, ":", in.cnonce, ":", in.qop, ":", *ha2});
}

std::string_view digestStatusName(DigestStatus s) {
  switch (s) {
  case DigestStatus::Ok:
    return "ok";
  case DigestStatus::Missing:
    return "missing";
  case DigestStatus::NotDigest:
    return "not-digest";
  case DigestStatus::WrongRealm:
    return "wrong-realm";
  case DigestStatus::UnknownAlgorithm:
    return "unknown-algorithm";
  case DigestStatus::Malformed:
    return "malformed";
  case DigestStatus::StaleNonce:
    return "stale-nonce";
  case DigestStatus::BadNonce:
    return "bad-nonce";
  case DigestStatus::ReplayedNonceCount:
    return "replayed-nc";
  case DigestStatus::WrongResponse:
    return "wrong-response";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Server

DigestServer::DigestServer(DigestServerConfig config, const Timers& timers)
    : config_(std::move(config)), timers_(timers) {
  if (RAND_bytes(secret_.data(), int(secret_.size())) != 1)
    throw std::runtime_error("digest: cannot draw the nonce secret");
  if (config_.algorithms.empty()) throw std::runtime_error("digest: no algorithm configured");
  for (DigestAlgorithm a : config_.algorithms)
    if (md(a) == nullptr)
      throw std::runtime_error("digest: OpenSSL lacks " + std::string(digestAlgorithmName(a)));
  if (config_.maxTrackedNonces == 0) config_.maxTrackedNonces = 1;
  EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (hmac) hmac_ = EVP_MAC_CTX_new(hmac);
  EVP_MAC_free(hmac); // the context holds its own reference
  char sha256[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0),
                         OSSL_PARAM_construct_end()};
  if (!hmac_ || EVP_MAC_init(hmac_, secret_.data(), secret_.size(), params) != 1)
    throw std::runtime_error("digest: OpenSSL lacks HMAC-SHA256");
}

DigestServer::~DigestServer() {
  EVP_MAC_CTX_free(hmac_);
}

uint64_t DigestServer::nowMs() const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.now().time_since_epoch());
  return ms.count() < 0 ? 0 : uint64_t(ms.count());
}

std::array<uint8_t, DigestServer::kMacBytes> DigestServer::mac(const uint8_t* data,
                                                               size_t size) const {
  // The realm is bound into the MAC so that a nonce of one realm is useless in another realm
  // served with the same secret.
  std::array<uint8_t, kMacBytes> out{};
  size_t len = 0;
  // A null key re-initialises HMAC with the key set in the constructor.
  if (EVP_MAC_init(hmac_, nullptr, 0, nullptr) != 1 || EVP_MAC_update(hmac_, data, size) != 1 ||
      EVP_MAC_update(hmac_, reinterpret_cast<const unsigned char*>(config_.realm.data()),
                     config_.realm.size()) != 1 ||
      EVP_MAC_final(hmac_, out.data(), &len, out.size()) != 1 || len != out.size()) {
    // Cannot happen with the default provider. A random MAC makes every nonce fail the check:
    // authentication fails closed instead of trusting an unkeyed value.
    RAND_bytes(out.data(), int(out.size()));
  }
  return out;
}

std::string DigestServer::makeNonce() {
  std::array<uint8_t, kNonceBytes> raw{};
  putU64(raw.data(), nowMs());
  // Should RAND_bytes fail, the MAC still makes the nonce unforgeable and the issue time keeps
  // it mostly unique; refusing service would be worse.
  (void)RAND_bytes(raw.data() + 8, int(kRandomBytes));
  auto m = mac(raw.data(), 8 + kRandomBytes);
  std::memcpy(raw.data() + 8 + kRandomBytes, m.data(), m.size());
  return base64url(raw.data(), raw.size());
}

DigestServer::NonceCheck DigestServer::checkNonce(std::string_view nonce, Decoded& out) const {
  std::array<uint8_t, kNonceBytes> raw{};
  if (!unbase64url(nonce, raw.data(), raw.size())) return NonceCheck::Bad;
  auto expected = mac(raw.data(), 8 + kRandomBytes);
  if (CRYPTO_memcmp(expected.data(), raw.data() + 8 + kRandomBytes, kMacBytes) != 0)
    return NonceCheck::Bad;
  out.issueMs = getU64(raw.data());
  std::memcpy(&out.key.a, raw.data() + 8, 8);
  std::memcpy(&out.key.b, raw.data() + 16, 8);
  uint64_t now = nowMs();
  if (out.issueMs > now) return NonceCheck::Bad; // we never issue nonces from the future
  auto lifetime = uint64_t(std::max<int64_t>(0, config_.nonceLifetime.count()));
  if (now - out.issueMs > lifetime) return NonceCheck::Stale;
  return NonceCheck::Valid;
}

std::vector<std::string> DigestServer::challenges(bool stale) {
  g_challenges.inc();
  // RFC 8760 §2.4 / RFC 7616 §3.7: one challenge per algorithm, preferred first. One nonce
  // serves them all; it is bound to the realm, not to the algorithm.
  std::string nonce = makeNonce();
  std::string common = "Digest realm=" + quote(config_.realm) + ", nonce=\"" + nonce + "\"";
  std::string tail = config_.offerAuthInt ? ", qop=\"auth,auth-int\"" : ", qop=\"auth\"";
  if (stale) tail += ", stale=true";
  std::vector<std::string> out;
  out.reserve(config_.algorithms.size());
  for (DigestAlgorithm a : config_.algorithms)
    out.push_back(common + ", algorithm=" + std::string(digestAlgorithmName(a)) + tail);
  return out;
}

void DigestServer::expireNonces() {
  uint64_t now = nowMs();
  // Strictly older than now: at expiresMs the nonce is still valid and its history must stay.
  while (!order_.empty() && order_.front().second < now) {
    nonces_.erase(order_.front().first);
    order_.pop_front();
  }
}

bool DigestServer::acceptNc(const Decoded& nonce, uint32_t nc) {
  expireNonces();
  auto it = nonces_.find(nonce.key);
  if (it == nonces_.end()) {
    // History of this nonce may have been dropped by the cap: do not treat it as fresh.
    if (evictedAny_ && nonce.issueMs <= evictedWatermarkMs_) return false;
    NcWindow w;
    w.highest = nc;
    w.seen = 1;
    w.issueMs = nonce.issueMs;
    nonces_.emplace(nonce.key, w);
    auto lifetime = uint64_t(std::max<int64_t>(0, config_.nonceLifetime.count()));
    order_.emplace_back(nonce.key, nonce.issueMs + lifetime);
    uint64_t now = nowMs();
    while (nonces_.size() > config_.maxTrackedNonces && !order_.empty()) {
      auto [key, expires] = order_.front();
      auto victim = nonces_.find(key);
      if (victim != nonces_.end() && expires >= now) {
        evictedAny_ = true;
        evictedWatermarkMs_ = std::max(evictedWatermarkMs_, victim->second.issueMs);
      }
      if (victim != nonces_.end()) nonces_.erase(victim);
      order_.pop_front();
    }
    return true;
  }
  // RFC 7616 §3.4 / RFC 4303-style sliding window: nc must grow, but UDP and parallel
  // transactions reorder requests, so values just below the highest are accepted once.
  NcWindow& w = it->second;
  if (nc > w.highest) {
    uint32_t shift = nc - w.highest;
    w.seen = shift >= 64 ? 0 : (w.seen << shift);
    w.seen |= 1;
    w.highest = nc;
    return true;
  }
  uint32_t back = w.highest - nc;
  if (back >= 64) return false;
  uint64_t bit = uint64_t(1) << back;
  if (w.seen & bit) return false;
  w.seen |= bit;
  return true;
}

DigestVerdict DigestServer::verify(const AuthParams& creds, std::string_view method,
                                   std::string_view body, const DigestLookup& lookup) {
  DigestVerdict v;
  auto finish = [&](DigestStatus s) {
    v.status = s;
    count(s);
    return v;
  };
  expireNonces();
  if (creds.scheme.empty()) return finish(DigestStatus::Missing);
  if (!text::iequals(creds.scheme, "Digest")) return finish(DigestStatus::NotDigest);

  auto realm = paramString(creds, "realm");
  if (!realm) return finish(DigestStatus::Malformed);
  if (*realm != config_.realm) return finish(DigestStatus::WrongRealm);

  // RFC 7616 §3.3: no algorithm means MD5. Only what we offered is acceptable, otherwise a
  // client could be talked down to MD5 by a middlebox.
  DigestAlgorithm alg = DigestAlgorithm::Md5;
  if (auto name = creds.get("algorithm")) {
    auto a = digestAlgorithmFromName(*name);
    if (!a) return finish(DigestStatus::UnknownAlgorithm);
    alg = *a;
  }
  if (std::find(config_.algorithms.begin(), config_.algorithms.end(), alg) ==
      config_.algorithms.end())
    return finish(DigestStatus::UnknownAlgorithm);
  v.algorithm = alg;

  auto username = paramString(creds, "username");
  auto nonce = paramString(creds, "nonce");
  auto uri = paramString(creds, "uri");
  auto response = creds.get("response");
  if (!username || !nonce || !uri || uri->empty() || !response)
    return finish(DigestStatus::Malformed);
  v.username = *username;
  v.uri = *uri;

  // qop (RFC 7616 §3.4): "auth" or "auth-int", which then need cnonce and nc. Absent: RFC 2069.
  std::optional<std::string> cnonce;
  std::string_view ncText;
  uint32_t nc = 1; // a no-qop nonce is good for one request: treat it as nc=1
  if (auto qop = creds.get("qop")) {
    if (text::iequals(*qop, "auth"))
      v.qop = "auth";
    else if (text::iequals(*qop, "auth-int") && config_.offerAuthInt)
      v.qop = "auth-int";
    else
      return finish(DigestStatus::Malformed);
    cnonce = paramString(creds, "cnonce");
    auto ncParam = creds.get("nc");
    if (!cnonce || cnonce->empty() || !ncParam || !parseNc(*ncParam, nc) || nc == 0)
      return finish(DigestStatus::Malformed);
    ncText = *ncParam;
  } else if (!config_.allowNoQop || isSessAlgorithm(alg)) {
    return finish(DigestStatus::Malformed); // -sess needs a cnonce, which needs qop
  }

  Decoded decoded;
  NonceCheck nonceState = checkNonce(*nonce, decoded);
  if (nonceState == NonceCheck::Bad) return finish(DigestStatus::BadNonce);

  // From here on the work is the same whether or not the user exists, so the timing and the
  // answer do not reveal which user names are valid.
  std::optional<DigestSecret> secret =
      lookup ? lookup(*username, *realm, baseAlgorithm(alg)) : std::nullopt;
  bool known = secret.has_value();
  bool storedHa1 = known && secret->kind == DigestSecret::Kind::Ha1;
  // One HA1 computation on every path (placeholder password for unknown users and stored HA1s).
  std::string_view password =
      known && !storedHa1 ? std::string_view(secret->value) : std::string_view("\x01unknown");
  std::optional<std::string> ha1 = digestHa1(alg, *username, *realm, password);
  if (storedHa1) ha1 = lowerAscii(secret->value);
  if (!ha1) return finish(DigestStatus::UnknownAlgorithm);

  DigestInputs in;
  in.algorithm = alg;
  in.ha1 = *ha1;
  in.nonce = *nonce;
  in.cnonce = cnonce ? std::string_view(*cnonce) : std::string_view{};
  in.nc = ncText;
  in.qop = v.qop;
  in.method = method;
  in.uri = *uri;
  in.body = body;
  auto expected = digestResponse(in);
  if (!expected) return finish(DigestStatus::UnknownAlgorithm);

  std::string got = lowerAscii(*response);
  bool lengthOk = got.size() == expected->size() && got.size() == hexLength(alg);
  // CRYPTO_memcmp: constant time for equal lengths; compare something either way.
  const std::string& rhs = lengthOk ? got : *expected;
  bool same = CRYPTO_memcmp(expected->data(), rhs.data(), expected->size()) == 0;
  if (!(known && lengthOk && same)) return finish(DigestStatus::WrongResponse);

  // Only a correct response may consume a nonce count: otherwise anyone could burn the counts
  // of a legitimate client by sending garbage with its nonce.
  if (nonceState == NonceCheck::Stale) return finish(DigestStatus::StaleNonce);
  if (!acceptNc(decoded, nc)) return finish(DigestStatus::ReplayedNonceCount);
  return finish(DigestStatus::Ok);
}

// ---------------------------------------------------------------------------------------------
// Client

namespace {

struct ChosenQop {
  bool ok = true;
  std::string_view qop; // empty: RFC 2069 compatibility
};

// RFC 7616 §3.3: qop is a quoted list of options. Prefer auth: auth-int needs the final body,
// which proxies may change, and it buys little in SIP.
ChosenQop chooseQop(const AuthParams& challenge) {
  auto list = challenge.get("qop");
  if (!list) return {true, {}};
  bool auth = false, authInt = false;
  std::string_view s = *list;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view item = text::trim(s.substr(0, comma));
    if (text::iequals(item, "auth")) auth = true;
    if (text::iequals(item, "auth-int")) authInt = true;
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (auth) return {true, "auth"};
  if (authInt) return {true, "auth-int"};
  return {false, {}};
}

std::optional<DigestAlgorithm> challengeAlgorithm(const AuthParams& c) {
  if (!text::iequals(c.scheme, "Digest")) return std::nullopt;
  auto name = c.get("algorithm");
  if (!name) return DigestAlgorithm::Md5;
  return digestAlgorithmFromName(*name);
}

bool answerable(const AuthParams& c) {
  auto alg = challengeAlgorithm(c);
  if (!alg || !c.get("realm") || !c.get("nonce")) return false;
  ChosenQop q = chooseQop(c);
  if (!q.ok) return false;
  return !(q.qop.empty() && isSessAlgorithm(*alg));
}

} // namespace

std::optional<size_t> DigestClient::pickChallenge(std::span<const AuthParams> challenges) {
  std::optional<size_t> best;
  int bestStrength = 0;
  for (size_t i = 0; i < challenges.size(); ++i) {
    if (!answerable(challenges[i])) continue;
    int s = digestStrength(*challengeAlgorithm(challenges[i]));
    if (s > bestStrength) {
      best = i;
      bestStrength = s;
    }
  }
  return best;
}

Result<std::string> DigestClient::authorize(const AuthParams& challenge, std::string_view username,
                                            std::string_view password, std::string_view method,
                                            std::string_view uri, std::string_view body) {
  return answer(challenge, username, DigestSecret{DigestSecret::Kind::Password, password}, method,
                uri, body);
}

Result<std::string> DigestClient::authorizeHa1(const AuthParams& challenge,
                                               std::string_view username, std::string_view ha1,
                                               std::string_view method, std::string_view uri,
                                               std::string_view body) {
  return answer(challenge, username, DigestSecret{DigestSecret::Kind::Ha1, ha1}, method, uri, body);
}

Result<std::string> DigestClient::answer(const AuthParams& challenge, std::string_view username,
                                         const DigestSecret& secret, std::string_view method,
                                         std::string_view uri, std::string_view body) {
  if (!text::iequals(challenge.scheme, "Digest")) return Error{400, "not a Digest challenge"};
  auto alg = challengeAlgorithm(challenge);
  if (!alg) return Error{400, "unsupported digest algorithm"};
  auto realm = paramString(challenge, "realm");
  auto nonce = paramString(challenge, "nonce");
  if (!realm || !nonce) return Error{400, "challenge without realm or nonce"};
  ChosenQop q = chooseQop(challenge);
  if (!q.ok) return Error{400, "no supported qop in challenge"};
  if (q.qop.empty() && isSessAlgorithm(*alg)) return Error{400, "-sess algorithm without qop"};
  auto opaque = paramString(challenge, "opaque");
  if (!safeForHeader(username) || !safeForHeader(uri) || !safeForHeader(*realm) ||
      !safeForHeader(*nonce) || (opaque && !safeForHeader(*opaque)) || !text::isToken(method))
    return Error{400, "control characters in digest parameters"};

  std::optional<std::string> ha1 = secret.kind == DigestSecret::Kind::Ha1
                                       ? std::optional<std::string>(lowerAscii(secret.value))
                                       : digestHa1(*alg, username, *realm, secret.value);
  if (!ha1) return Error{500, "digest algorithm unavailable"};

  std::string cnonce;
  char ncText[9] = {};
  if (!q.qop.empty()) {
    uint8_t rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1) return Error{500, "no randomness for cnonce"};
    cnonce = toHex(rnd, sizeof rnd);
    if (nc_.size() >= kMaxNonces && !nc_.contains(*nonce)) nc_.clear(); // old nonces: forget
    uint32_t nc = ++nc_[*nonce];
    static constexpr char kDigits[] = "0123456789abcdef";
    for (int i = 7; i >= 0; --i) {
      ncText[i] = kDigits[nc & 0xF];
      nc >>= 4;
    }
  }

  DigestInputs in;
  in.algorithm = *alg;
  in.ha1 = *ha1;
  in.nonce = *nonce;
  in.cnonce = cnonce;
  in.nc = q.qop.empty() ? std::string_view{} : std::string_view(ncText, 8);
  in.qop = q.qop;
  in.method = method;
  in.uri = uri;
  in.body = body;
  auto response = digestResponse(in);
  if (!response) return Error{500, "digest algorithm unavailable"};

  // RFC 7616 §3.4: qop and nc are unquoted tokens, algorithm too; the rest quoted-strings.
  std::string out = "Digest username=" + quote(username) + ", realm=" + quote(*realm) +
                    ", nonce=" + quote(*nonce) + ", uri=" + quote(uri) + ", response=\"" +
                    *response + "\", algorithm=" + std::string(digestAlgorithmName(*alg));
  if (!q.qop.empty()) {
    out +=
        ", cnonce=\"" + cnonce + "\", qop=" + std::string(q.qop) + ", nc=" + std::string(ncText, 8);
  }
  if (opaque) out += ", opaque=" + quote(*opaque);
  return out;
}

} // namespace verbund::sip

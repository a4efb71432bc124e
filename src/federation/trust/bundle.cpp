#include "federation/trust/bundle.h"

#include "federation/trust/errors.h"

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <charconv>
#include <climits>
#include <ctime>
#include <set>

namespace verbund::federation {
namespace {

using json = nlohmann::json;

constexpr std::string_view kMembersFormat = "verbund-federation-members";
constexpr int kMembersVersion = 1;
constexpr std::string_view kPreamble =
    "Verbund federation certificate. Keep it secret: it holds the federation's CA key.\n"
    "Upload it on a node with \"join an active federation\" and the passphrase.\n\n";

Error invalid(std::string_view field, std::string_view why) {
  return trustError(TrustErrc::kInvalidArgument, std::string(field) + ": " + std::string(why));
}
Error corrupt(std::string_view why) {
  return trustError(TrustErrc::kCorrupt, "not a valid federation certificate: " + std::string(why));
}

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};

struct PemBlock {
  std::string name;
  std::string data;
};

// Every PEM block of the file, in order. Text outside blocks is ignored (as openssl does).
Result<std::vector<PemBlock>> readPemBlocks(std::string_view bytes) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  if (!bio) return corrupt("unreadable");
  std::vector<PemBlock> blocks;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    ERR_clear_error();
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;
      return corrupt("damaged PEM block");
    }
    bool hasHeader = header != nullptr && header[0] != '\0';
    PemBlock b{name, std::string(reinterpret_cast<char*>(data), static_cast<size_t>(len))};
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    // Legacy "Proc-Type: 4,ENCRYPTED" blocks and other headers are not ours.
    if (hasHeader) return corrupt("unexpected PEM headers");
    blocks.push_back(std::move(b));
    if (blocks.size() > 3) return corrupt("unexpected extra PEM blocks");
  }
  return blocks;
}

Result<std::string> pemBlock(std::string_view name, std::string_view data) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  std::string n(name);
  if (!bio ||
      PEM_write_bio(bio.get(), n.c_str(), "", reinterpret_cast<const unsigned char*>(data.data()),
                    static_cast<long>(data.size())) <= 0)
    return trustError(TrustErrc::kInternal, "writing PEM: " + detail::drainOpensslErrors());
  char* p = nullptr;
  long len = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(len));
}

// "fingerprint" only when known, so that a member without one renders as before.
json memberToJson(const Member& m) {
  json j{{"nodeId", m.nodeId}, {"name", m.name}, {"addresses", m.addresses}};
  if (!m.fingerprint.empty()) j["fingerprint"] = m.fingerprint;
  return j;
}

// The signed part of the member document, canonical: nlohmann sorts object keys, and the
// document is rebuilt from parsed values before verifying, so whitespace and key order in the
// file do not matter.
json membersPayload(std::string_view federationId, std::string_view federationName,
                    int64_t createdAt, const std::vector<Member>& members) {
  json list = json::array();
  for (const auto& m : members) list.push_back(memberToJson(m));
  return json{{"format", kMembersFormat},     {"version", kMembersVersion},
              {"federationId", federationId}, {"federationName", federationName},
              {"createdAt", createdAt},       {"members", std::move(list)}};
}

std::optional<std::string> dumpCanonical(const json& j) {
  try {
    return j.dump();
  } catch (const json::exception&) {
    return std::nullopt; // invalid UTF-8; inputs are validated, so not expected
  }
}

const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<std::string> stringField(const json& obj, const char* name) {
  const json* v = field(obj, name);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

Result<Member> memberFromJson(const json& j) {
  const json* fp = j.is_object() ? field(j, "fingerprint") : nullptr;
  if (!j.is_object() || j.size() != (fp ? 4u : 3u) || (fp && !fp->is_string()))
    return corrupt("member entry is not {nodeId, name, addresses[, fingerprint]}");
  auto id = stringField(j, "nodeId");
  auto name = stringField(j, "name");
  const json* addrs = field(j, "addresses");
  if (!id || !name || addrs == nullptr || !addrs->is_array() || addrs->size() > kMaxMemberAddresses)
    return corrupt("member entry is not {nodeId, name, addresses[, fingerprint]}");
  Member m{*id, *name, {}, fp ? fp->get<std::string>() : std::string()};
  for (const auto& a : *addrs) {
    if (!a.is_string()) return corrupt("member address is not a string");
    m.addresses.push_back(a.get<std::string>());
  }
  if (auto r = validateMember(m); !r) return corrupt("member list: " + r.error().message);
  return m;
}

std::string formatDate(int64_t unix) {
  time_t t = static_cast<time_t>(unix);
  struct tm tm {};
  char buf[32] = "?";
  if (gmtime_r(&t, &tm) != nullptr) strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

bool isDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : host) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

} // namespace

Result<void> validatePassphrase(std::string_view passphrase) {
  size_t chars = 0;
  bool utf8 = detail::isCleanUtf8(passphrase, &chars);
  if (!utf8) chars = passphrase.size();
  if (passphrase.find('\0') != std::string_view::npos)
    return trustError(TrustErrc::kWeakPassphrase, "passphrase: must not contain NUL");
  if (chars < kMinPassphraseChars)
    return trustError(TrustErrc::kWeakPassphrase, "passphrase: at least 10 characters");
  if (passphrase.size() > kMaxPassphraseBytes)
    return trustError(TrustErrc::kWeakPassphrase, "passphrase: at most 1024 bytes");
  return {};
}

Result<void> validateHostPort(std::string_view field, std::string_view hp) {
  size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return invalid(field, "expected host:port");
  std::string_view host = hp.substr(0, colon);
  std::string_view port = hp.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535 || port.front() == '+')
    return invalid(field, "port must be 1 to 65535");
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return invalid(field, "bad IPv6 literal");
    std::string_view ip = host.substr(1, host.size() - 2);
    if (ip.find(':') == std::string_view::npos || !validateIpAddress(field, ip))
      return invalid(field, "bad IPv6 literal");
    return {};
  }
  if (host.find(':') != std::string_view::npos)
    return invalid(field, "IPv6 addresses go in brackets: [addr]:port");
  if (validateIpAddress(field, host) || isDnsName(host)) return {};
  return invalid(field, "host must be an IP address or a DNS name");
}

Result<void> validateMember(const Member& m) {
  if (auto r = validateNodeId("members.nodeId", m.nodeId); !r) return r;
  size_t chars = 0;
  if (m.name.empty() || !detail::isCleanUtf8(m.name, &chars) || chars > kMaxNodeNameChars)
    return invalid("members.name", "1 to 64 characters, no control characters");
  if (m.addresses.empty() || m.addresses.size() > kMaxMemberAddresses)
    return invalid("members.addresses", "1 to 8 control-plane addresses");
  for (const auto& a : m.addresses)
    if (auto r = validateHostPort("members.addresses", a); !r) return r;
  if (!m.fingerprint.empty()) {
    bool hex = m.fingerprint.size() == 64;
    for (char c : m.fingerprint) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    if (!hex) return invalid("members.fingerprint", "64 lowercase hex digits");
  }
  return {};
}

Result<void> validateMembers(const std::vector<Member>& members) {
  if (members.size() > kMaxMembers)
    return trustError(TrustErrc::kTooLarge, "members: at most 1000");
  std::set<std::string_view> seen;
  for (const auto& m : members) {
    if (auto r = validateMember(m); !r) return r;
    if (!seen.insert(m.nodeId).second)
      return invalid("members", "node " + m.nodeId + " listed twice");
  }
  return {};
}

Result<std::string> makeBundle(const FederationCa& ca, const std::vector<Member>& members,
                               std::string_view passphrase, SysTime now, int kdfIterations) {
  if (auto r = validatePassphrase(passphrase); !r) return r.error();
  if (auto r = validateMembers(members); !r) return r.error();
  if (kdfIterations < 1 || kdfIterations > kMaxBundleKdfIterations)
    return invalid("kdfIterations", "out of range");
  json doc = membersPayload(ca.federationId(), ca.name(), detail::unixSeconds(now), members);
  auto canonical = dumpCanonical(doc);
  if (!canonical) return invalid("members", "not valid UTF-8");
  auto signature = detail::signBase64(ca.key(), *canonical);
  if (!signature) return signature.error();
  doc["signature"] = *signature;
  auto membersText = dumpCanonical(doc);
  auto certPem = detail::certToPem(ca.cert());
  if (!certPem) return certPem.error();
  auto keyPem = detail::encryptKeyPem(ca.key(), passphrase, kdfIterations);
  if (!keyPem) return keyPem.error();
  auto membersPem = pemBlock(kMembersPemName, *membersText);
  if (!membersPem) return membersPem.error();
  std::string out = std::string(kPreamble) + *certPem + *keyPem + *membersPem;
  if (out.size() > kMaxBundleBytes)
    return trustError(TrustErrc::kTooLarge, "the federation certificate would exceed 64 KiB; "
                                            "list fewer members (joiners learn the rest)");
  return out;
}

Result<OpenedBundle> openBundle(std::string_view bytes, std::string_view passphrase, SysTime now) {
  if (bytes.size() > kMaxBundleBytes)
    return trustError(TrustErrc::kTooLarge, "federation certificate larger than 64 KiB");
  auto blocks = readPemBlocks(bytes);
  if (!blocks) return blocks.error();
  const PemBlock* certBlock = nullptr;
  const PemBlock* keyBlock = nullptr;
  const PemBlock* membersBlock = nullptr;
  for (const auto& b : *blocks) {
    const PemBlock** slot = b.name == PEM_STRING_X509    ? &certBlock
                            : b.name == PEM_STRING_PKCS8 ? &keyBlock
                            : b.name == kMembersPemName  ? &membersBlock
                                                         : nullptr;
    if (slot == nullptr) return corrupt("unexpected PEM block \"" + b.name.substr(0, 40) + "\"");
    if (*slot != nullptr) return corrupt("duplicate PEM block " + b.name);
    *slot = &b;
  }
  if (certBlock == nullptr || keyBlock == nullptr || membersBlock == nullptr)
    return corrupt("expected a CA certificate, an encrypted CA key and a member list");

  auto cert = detail::certFromDer(certBlock->data);
  if (!cert) return corrupt("damaged CA certificate");
  auto facts = FederationCa::inspectCaCertificate(cert->get());
  if (!facts) return facts.error();

  // The member list: parse strictly, rebuild canonically, check the CA's signature.
  json doc = json::parse(membersBlock->data, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.size() != 7)
    return corrupt("damaged member list");
  auto format = stringField(doc, "format");
  const json* version = field(doc, "version");
  auto fedId = stringField(doc, "federationId");
  auto fedName = stringField(doc, "federationName");
  const json* created = field(doc, "createdAt");
  const json* list = field(doc, "members");
  auto signature = stringField(doc, "signature");
  if (!format || *format != kMembersFormat || version == nullptr || !version->is_number_integer() ||
      !fedId || !fedName || created == nullptr || !created->is_number_integer() ||
      list == nullptr || !list->is_array() || !signature)
    return corrupt("damaged member list");
  if (version->get<int64_t>() != kMembersVersion)
    return corrupt("member list version " + std::to_string(version->get<int64_t>()) +
                   " is not supported");
  if (list->size() > kMaxMembers) return trustError(TrustErrc::kTooLarge, "more than 1000 members");
  std::vector<Member> members;
  members.reserve(list->size());
  for (const auto& j : *list) {
    auto m = memberFromJson(j);
    if (!m) return m.error();
    members.push_back(std::move(*m));
  }
  if (auto r = validateMembers(members); !r) return corrupt("member list: " + r.error().message);
  if (*fedId != facts->second || *fedName != facts->first)
    return corrupt("member list belongs to another federation");
  int64_t createdAt = created->get<int64_t>();
  auto canonical = dumpCanonical(membersPayload(*fedId, *fedName, createdAt, members));
  if (!canonical || !detail::verifyBase64(X509_get0_pubkey(cert->get()), *canonical, *signature))
    return corrupt("the member list's signature does not match the CA certificate");

  auto key = detail::decryptKeyDer(keyBlock->data, passphrase, kMaxBundleKdfIterations);
  if (!key) {
    if (isTrustError(key.error(), TrustErrc::kCorrupt)) return corrupt(key.error().message);
    return key.error();
  }
  if (!detail::isP256(key->get()) || !detail::sameKey(X509_get0_pubkey(cert->get()), key->get()))
    return trustError(TrustErrc::kKeyMismatch,
                      "the CA key in the federation certificate does not belong to its CA "
                      "certificate");
  auto end = detail::notAfter(cert->get());
  if (!end) return corrupt("unreadable CA validity");
  if (*end < detail::unixSeconds(now))
    return trustError(TrustErrc::kExpired,
                      "the federation CA certificate expired on " + formatDate(*end));
  auto ca = FederationCa::fromParts(std::move(*cert), std::move(*key));
  if (!ca) return ca.error();
  return OpenedBundle{std::move(*ca), std::move(members), detail::fromUnixSeconds(createdAt)};
}

} // namespace verbund::federation

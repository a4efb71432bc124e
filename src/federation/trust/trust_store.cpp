#include "federation/trust/trust_store.h"

#include "federation/trust/errors.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace verbund::federation {
namespace {

constexpr int kAtRestKdfIterations = 10'000; // the secret is 256 random bits; PBKDF2 adds little
constexpr int kMaxAtRestKdfIterations = 2'000'000;

Error storage(const std::string& what) {
  return trustError(TrustErrc::kStorage, what);
}

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

std::string formatDate(int64_t unix) {
  time_t t = static_cast<time_t>(unix);
  struct tm tm {};
  char buf[32] = "?";
  if (gmtime_r(&t, &tm) != nullptr) strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// The node certificate must be issued by this CA (signature and names) and match its key.
Result<void> checkNodeCredentials(const FederationCa& ca, const NodeCredentials& creds) {
  if (!creds.cert || !creds.key)
    return trustError(TrustErrc::kInvalidArgument, "node certificate and key required");
  int issued = X509_check_issued(ca.cert(), creds.cert.get());
  int sig = X509_verify(creds.cert.get(), X509_get0_pubkey(ca.cert()));
  ERR_clear_error();
  if (issued != X509_V_OK || sig != 1)
    return trustError(TrustErrc::kOtherFederation,
                      "the node certificate was not issued by this federation's CA");
  if (!nodeIdOf(creds.cert.get()))
    return trustError(TrustErrc::kMissingNodeUri, "the node certificate has no node URI");
  if (!detail::sameKey(X509_get0_pubkey(creds.cert.get()), creds.key.get()))
    return trustError(TrustErrc::kKeyMismatch,
                      "the node key does not belong to the node certificate");
  return {};
}

Error revokedError(const RevocationEntry& e) {
  std::string msg =
      "node " + e.nodeId + " was revoked on " + formatDate(e.revokedAt) + " by " + e.byNode;
  if (!e.reason.empty()) msg += ": " + e.reason;
  return trustError(TrustErrc::kRevoked, msg);
}

// The node name and IP addresses a node certificate carries (to re-issue it for a new CA).
struct NodeCertFacts {
  std::string name;
  std::vector<std::string> addresses;
};

std::optional<NodeCertFacts> nodeCertFacts(X509* cert) {
  if (cert == nullptr) return std::nullopt;
  NodeCertFacts f;
  const X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_name, -1);
  if (idx < 0) return std::nullopt;
  const ASN1_STRING* name = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
  f.name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name)),
                static_cast<size_t>(ASN1_STRING_length(name)));
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type != GEN_IPADD) continue;
      const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(ip);
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text))
        f.addresses.emplace_back(text);
    }
    GENERAL_NAMES_free(names);
  }
  ERR_clear_error();
  return f;
}

bool isHexSecret(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

} // namespace

namespace detail {

Result<std::string> loadLocalSecret(const std::filesystem::path& dataDir, bool create) {
  std::filesystem::path path = dataDir / kSecretFileName;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT && create) {
    std::string secret = randomHex(32);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return storage("cannot create " + path.string() + ": " + std::strerror(errno));
    std::string line = secret + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      return storage("cannot write " + path.string());
    }
    return secret;
  }
  if (fd < 0) return storage("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return storage(path.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return storage(path.string() + " must not be readable by group or others (chmod 600)");
  }
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string_view text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (!isHexSecret(text)) return storage(path.string() + " is damaged");
  return std::string(text);
}

} // namespace detail

TrustStore::TrustStore(FederationCa ca)
    : ca_(std::move(ca)), revocations_(RevocationList(ca_.federationId())) {}

std::vector<store::Migration> TrustStore::migrations() {
  return {{"federation_trust", 1, "federation CA, node certificate, revocations", R"SQL(
CREATE TABLE federation_trust(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  federation_name TEXT NOT NULL,
  federation_id TEXT NOT NULL,
  ca_cert TEXT NOT NULL,
  ca_key TEXT NOT NULL,
  node_cert TEXT,
  node_key TEXT,
  updated_ms INTEGER NOT NULL);
CREATE TABLE federation_revocations(
  federation_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  reason TEXT NOT NULL,
  by_node TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY(federation_id, node_id, fingerprint));
)SQL"},
          {"federation_trust", 2, "CA generation (the CA changes when a member is removed)", R"SQL(
ALTER TABLE federation_trust ADD COLUMN ca_generation INTEGER NOT NULL DEFAULT 0;
)SQL"}};
}

Result<void> TrustStore::setNodeCredentials(NodeCredentials creds) {
  if (auto r = checkNodeCredentials(ca_, creds); !r) return r;
  node_ = std::move(creds);
  return {};
}

Result<RevocationEntry> TrustStore::revoke(std::string_view nodeId, std::string_view fingerprint,
                                           std::string_view reason, std::string_view byNode,
                                           SysTime now) {
  auto e = signRevocation(ca_, nodeId, fingerprint, reason, byNode, now);
  if (!e) return e.error();
  auto added = revocations_.add(*e, ca_.cert());
  if (!added) return added.error();
  // An equal-key entry that ranks earlier stays; report what the list holds.
  if (const auto* held = revocations_.find(nodeId, fingerprint)) return *held;
  return *e;
}

bool TrustStore::supersededBy(const FederationCa& ca, int64_t generation) const {
  if (ca.federationId() != ca_.federationId()) return false;
  if (generation != generation_) return generation > generation_;
  return ca.fingerprint() > ca_.fingerprint();
}

Result<void> TrustStore::rotate(SysTime now) {
  auto next = FederationCa::successor(ca_, now);
  if (!next) return next.error();
  return replaceCa(std::move(*next), generation_ + 1, now);
}

Result<void> TrustStore::adoptCa(FederationCa ca, int64_t generation, SysTime now) {
  if (ca.federationId() != ca_.federationId())
    return trustError(TrustErrc::kOtherFederation, "the new CA belongs to another federation");
  return replaceCa(std::move(ca), generation, now);
}

Result<void> TrustStore::replaceCa(FederationCa ca, int64_t generation, SysTime now) {
  if (!node_) return trustError(TrustErrc::kInvalidArgument, "no node certificate to re-issue");
  auto nodeId = nodeIdOf(node_->cert.get());
  auto facts = nodeCertFacts(node_->cert.get());
  if (!nodeId || !facts)
    return trustError(TrustErrc::kInvalidCertificate, "the node certificate cannot be re-issued");
  auto creds =
      reissueNodeCertificate(ca, node_->key.get(), *nodeId, facts->name, facts->addresses, now);
  if (!creds) return creds.error();
  RevocationList list(ca.federationId());
  for (const auto& e : revocations_.entries()) {
    auto signedEntry = signRevocation(ca, e.nodeId, e.fingerprint, e.reason, e.byNode,
                                      detail::fromUnixSeconds(e.revokedAt));
    if (!signedEntry) return signedEntry.error();
    if (auto r = list.add(*signedEntry, ca.cert()); !r) return r.error();
  }
  if (auto r = checkNodeCredentials(ca, *creds); !r) return r;
  ca_ = std::move(ca);
  generation_ = generation;
  node_ = std::move(*creds);
  revocations_ = std::move(list);
  return {};
}

Result<size_t> TrustStore::mergeRevocations(const RevocationList& other) {
  return revocations_.merge(other);
}

Result<size_t> TrustStore::mergeRevocations(std::string_view json) {
  auto list = RevocationList::parse(json, ca_.cert(), ca_.federationId());
  if (!list) return list.error();
  return revocations_.merge(*list);
}

Result<void> TrustStore::save(store::Database& db, const std::filesystem::path& dataDir,
                              SysTime now) const {
  auto secret = detail::loadLocalSecret(dataDir, true);
  if (!secret) return secret.error();
  auto caCert = detail::certToPem(ca_.cert());
  if (!caCert) return caCert.error();
  auto caKey = detail::encryptKeyPem(ca_.key(), *secret, kAtRestKdfIterations);
  if (!caKey) return caKey.error();
  store::Value nodeCert = nullptr, nodeKey = nullptr;
  if (node_) {
    auto c = detail::certToPem(node_->cert.get());
    if (!c) return c.error();
    auto k = detail::encryptKeyPem(node_->key.get(), *secret, kAtRestKdfIterations);
    if (!k) return k.error();
    nodeCert = std::move(*c);
    nodeKey = std::move(*k);
  }
  int64_t nowMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  return db.transaction([&]() -> Result<void> {
    if (auto r = db.exec("INSERT OR REPLACE INTO federation_trust(id, federation_name, "
                         "federation_id, ca_cert, ca_key, node_cert, node_key, updated_ms, "
                         "ca_generation) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                         {ca_.name(), ca_.federationId(), *caCert, *caKey, nodeCert, nodeKey, nowMs,
                          generation_});
        !r)
      return r;
    // Entries are re-signed when the CA changes: the stored ones are replaced.
    if (auto r = db.exec("DELETE FROM federation_revocations"); !r) return r;
    for (const auto& e : revocations_.entries()) {
      if (auto r = db.exec("INSERT OR REPLACE INTO federation_revocations(federation_id, node_id, "
                           "fingerprint, revoked_at, reason, by_node, signature) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           {ca_.federationId(), e.nodeId, e.fingerprint, e.revokedAt, e.reason,
                            e.byNode, e.signature});
          !r)
        return r;
    }
    return {};
  });
}

Result<std::optional<TrustStore>> TrustStore::load(store::Database& db,
                                                   const std::filesystem::path& dataDir) {
  auto rows =
      db.query("SELECT federation_name, federation_id, ca_cert, ca_key, node_cert, node_key, "
               "ca_generation FROM federation_trust WHERE id = 1");
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<TrustStore>();
  const auto& row = rows->at(0);
  auto name = store::asText(row.at(0));
  auto fedId = store::asText(row.at(1));
  auto caCertPem = store::asText(row.at(2));
  auto caKeyPem = store::asText(row.at(3));
  if (!name || !fedId || !caCertPem || !caKeyPem) return storage("federation_trust row is damaged");
  auto secret = detail::loadLocalSecret(dataDir, false);
  if (!secret)
    return storage("cannot decrypt the stored federation keys: " + secret.error().message);

  auto caCert = detail::certFromPem(*caCertPem);
  if (!caCert) return storage("stored CA certificate is damaged");
  auto caKey = detail::decryptKeyPem(*caKeyPem, *secret, kMaxAtRestKdfIterations);
  if (!caKey) return storage("stored CA key cannot be decrypted: " + caKey.error().message);
  auto ca = FederationCa::fromParts(std::move(*caCert), std::move(*caKey));
  if (!ca) return storage("stored federation CA is invalid: " + ca.error().message);
  if (ca->name() != *name || ca->federationId() != *fedId)
    return storage("stored federation name/id do not match the CA certificate");
  TrustStore trust(std::move(*ca));
  trust.generation_ = store::asInt(row.at(6)).value_or(0);

  auto nodeCertPem = store::asText(row.at(4));
  auto nodeKeyPem = store::asText(row.at(5));
  if (nodeCertPem && nodeKeyPem) {
    auto cert = detail::certFromPem(*nodeCertPem);
    if (!cert) return storage("stored node certificate is damaged");
    auto key = detail::decryptKeyPem(*nodeKeyPem, *secret, kMaxAtRestKdfIterations);
    if (!key) return storage("stored node key cannot be decrypted: " + key.error().message);
    if (auto r = trust.setNodeCredentials(NodeCredentials{std::move(*cert), std::move(*key)}); !r)
      return storage("stored node certificate is invalid: " + r.error().message);
  } else if (nodeCertPem || nodeKeyPem) {
    return storage("stored node certificate without key (or key without certificate)");
  }

  auto revs = db.query("SELECT node_id, fingerprint, revoked_at, reason, by_node, signature FROM "
                       "federation_revocations WHERE federation_id = ?1",
                       {trust.ca().federationId()});
  if (!revs) return revs.error();
  for (const auto& r : *revs) {
    RevocationEntry e;
    auto nodeId = store::asText(r.at(0));
    auto fp = store::asText(r.at(1));
    auto at = store::asInt(r.at(2));
    auto reason = store::asText(r.at(3));
    auto by = store::asText(r.at(4));
    auto sig = store::asText(r.at(5));
    if (!nodeId || !fp || !at || !reason || !by || !sig)
      return storage("revocation row is damaged");
    e = {*nodeId, *fp, *at, *reason, *by, *sig};
    auto added = trust.revocations_.add(e, trust.ca().cert());
    if (!added) return storage("stored revocation is invalid: " + added.error().message);
  }
  return std::optional<TrustStore>(std::move(trust));
}

Result<void> TrustStore::erase(store::Database& db) {
  return db.transaction([&]() -> Result<void> {
    if (auto r = db.exec("DELETE FROM federation_trust"); !r) return r;
    return db.exec("DELETE FROM federation_revocations");
  });
}

Result<PeerIdentity> verifyPeer(X509* peer, STACK_OF(X509) * chain, const TrustStore& trust,
                                SysTime now) {
  if (peer == nullptr)
    return trustError(TrustErrc::kInvalidCertificate, "peer sent no certificate");
  const FederationCa& ca = trust.ca();
  auto peerFed = federationIdOf(peer);
  auto otherFederation = [&]() {
    std::string msg = "peer certificate was not issued by this federation's CA";
    if (peerFed && *peerFed != ca.federationId())
      msg += " (it belongs to federation " + *peerFed + ")";
    return trustError(TrustErrc::kOtherFederation, msg);
  };

  // A self-signed leaf (not our CA itself): say so rather than "unknown issuer".
  int selfSigned = X509_self_signed(peer, 1);
  ERR_clear_error();
  if (selfSigned == 1 && X509_cmp(peer, ca.cert()) != 0)
    return trustError(TrustErrc::kSelfSigned, "peer certificate is self-signed");

  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.cert()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), peer, chain) != 1) {
    return trustError(TrustErrc::kInternal, "verification setup: " + detail::drainOpensslErrors());
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(detail::unixSeconds(now)));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  int ok = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  ERR_clear_error();
  if (ok != 1) {
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      if (depth > 0)
        return trustError(TrustErrc::kExpired, "the federation CA certificate has expired");
      return trustError(TrustErrc::kExpired, "peer certificate expired on " +
                                                 formatDate(detail::notAfter(peer).value_or(0)));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return trustError(TrustErrc::kNotYetValid, "peer certificate is not valid yet (clock skew?)");
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return trustError(TrustErrc::kSelfSigned, "peer certificate is self-signed");
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return otherFederation();
    default:
      return trustError(TrustErrc::kInvalidCertificate, std::string("peer certificate rejected: ") +
                                                            X509_verify_cert_error_string(err));
    }
  }

  if (X509_check_ca(peer) != 0)
    return trustError(TrustErrc::kInvalidCertificate, "peer presented a CA certificate, not a node "
                                                      "certificate");
  uint32_t xku = X509_get_extended_key_usage(peer);
  ERR_clear_error();
  if ((xku & XKU_SSL_SERVER) == 0 || (xku & XKU_SSL_CLIENT) == 0)
    return trustError(TrustErrc::kInvalidCertificate,
                      "peer certificate lacks serverAuth/clientAuth extended key usage");
  auto nodeId = nodeIdOf(peer);
  if (!nodeId)
    return trustError(TrustErrc::kMissingNodeUri,
                      "peer certificate has no (single, valid) urn:verbund:node: URI");
  const X509_NAME* subject = X509_get_subject_name(peer);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  const ASN1_STRING* cn =
      idx >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)) : nullptr;
  if (cn == nullptr || std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                                        static_cast<size_t>(ASN1_STRING_length(cn))) != *nodeId)
    return trustError(TrustErrc::kInvalidCertificate,
                      "peer certificate's common name differs from its node URI");
  auto fingerprint = fingerprintOf(peer);
  if (!fingerprint) return trustError(TrustErrc::kInvalidCertificate, "unreadable public key");
  if (const auto* e = trust.revocations().find(*nodeId, *fingerprint)) return revokedError(*e);
  return PeerIdentity{*nodeId, *fingerprint, ca.federationId()};
}

Result<PeerIdentity> verifyMember(X509* peer, STACK_OF(X509) * chain, const TrustStore& trust,
                                  const PinLookup& pinOf, bool allowJoin, SysTime now) {
  auto nodeId = peer ? nodeIdOf(peer) : std::nullopt;
  auto fingerprint = peer ? fingerprintOf(peer) : std::nullopt;
  if (!nodeId || !fingerprint) {
    auto r = verifyPeer(peer, chain, trust, now); // the precise reason
    if (!r) return r.error();
    return trustError(TrustErrc::kMissingNodeUri, "peer certificate names no node");
  }
  if (const auto* e = trust.revocations().find(*nodeId, *fingerprint)) return revokedError(*e);
  const std::string& federationId = trust.ca().federationId();
  bool ourFederation = federationIdOf(peer) == federationId;
  std::optional<std::string> pin = pinOf ? pinOf(*nodeId) : std::nullopt;
  auto verified = verifyPeer(peer, chain, trust, now);
  if (pin && !pin->empty()) {
    if (*pin != *fingerprint)
      return trustError(TrustErrc::kPinMismatch,
                        "node " + *nodeId + " presented a key other than the one pinned for it");
    if (verified) return verified;
    // A member that was offline while the CA changed still has a certificate of an earlier CA:
    // its pinned key is what counts (it receives the new CA over the link).
    if (!isTrustError(verified.error(), TrustErrc::kOtherFederation) || !ourFederation)
      return verified.error();
    int64_t t = detail::unixSeconds(now);
    auto from = detail::notBefore(peer), until = detail::notAfter(peer);
    if (!from || !until || t < *from || t > *until)
      return trustError(TrustErrc::kExpired,
                        "the certificate of node " + *nodeId + " is outside its validity period");
    return PeerIdentity{*nodeId, *fingerprint, federationId};
  }
  if (!verified) {
    if (isTrustError(verified.error(), TrustErrc::kOtherFederation) && ourFederation)
      return trustError(TrustErrc::kStaleCa,
                        "the certificate of node " + *nodeId +
                            " was issued by an earlier key of this federation (before a member "
                            "was removed): it needs a federation file made since");
    return verified.error();
  }
  if (!pin && !allowJoin)
    return trustError(TrustErrc::kNotMember,
                      "node " + *nodeId + " is not a member of this federation");
  return verified;
}

} // namespace verbund::federation

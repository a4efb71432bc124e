#include "federation/trust/revocation.h"

#include "federation/trust/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>

namespace verbund::federation {
namespace {

using json = nlohmann::json;
constexpr std::string_view kFormat = "verbund-revocations";
constexpr int kVersion = 1;

Error corrupt(std::string_view why) {
  return trustError(TrustErrc::kCorrupt, "revocation list: " + std::string(why));
}

bool isFingerprint(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Result<void> validateFields(const RevocationEntry& e) {
  if (auto r = validateNodeId("nodeId", e.nodeId); !r) return r;
  if (auto r = validateNodeId("byNode", e.byNode); !r) return r;
  if (!e.fingerprint.empty() && !isFingerprint(e.fingerprint))
    return trustError(TrustErrc::kInvalidArgument, "fingerprint: 64 lowercase hex digits or empty");
  size_t chars = 0;
  if (!detail::isCleanUtf8(e.reason, &chars) || chars > kMaxRevocationReasonChars)
    return trustError(TrustErrc::kInvalidArgument,
                      "reason: at most 200 characters, no control characters");
  if (e.revokedAt < 0) return trustError(TrustErrc::kInvalidArgument, "revokedAt: negative");
  return {};
}

std::optional<std::string> canonical(const RevocationEntry& e, std::string_view federationId) {
  json j{{"type", "verbund-revocation"},
         {"federationId", federationId},
         {"nodeId", e.nodeId},
         {"fingerprint", e.fingerprint},
         {"revokedAt", e.revokedAt},
         {"reason", e.reason},
         {"byNode", e.byNode}};
  try {
    return j.dump();
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

auto key(const RevocationEntry& e) {
  return std::tie(e.nodeId, e.fingerprint);
}
auto rank(const RevocationEntry& e) {
  return std::tie(e.revokedAt, e.byNode, e.signature);
}

} // namespace

Result<RevocationEntry> signRevocation(const FederationCa& ca, std::string_view nodeId,
                                       std::string_view fingerprint, std::string_view reason,
                                       std::string_view byNode, SysTime now) {
  RevocationEntry e{std::string(nodeId), std::string(fingerprint), detail::unixSeconds(now),
                    std::string(reason), std::string(byNode),      {}};
  if (auto r = validateFields(e); !r) return r.error();
  auto text = canonical(e, ca.federationId());
  if (!text) return trustError(TrustErrc::kInvalidArgument, "reason: not valid UTF-8");
  auto sig = detail::signBase64(ca.key(), *text);
  if (!sig) return sig.error();
  e.signature = std::move(*sig);
  return e;
}

Result<void> verifyRevocation(const RevocationEntry& e, X509* caCert,
                              std::string_view federationId) {
  if (auto r = validateFields(e); !r) return r;
  auto text = canonical(e, federationId);
  if (!text || caCert == nullptr ||
      !detail::verifyBase64(X509_get0_pubkey(caCert), *text, e.signature))
    return trustError(TrustErrc::kBadSignature,
                      "revocation of node " + e.nodeId + " is not signed by this federation's CA");
  return {};
}

bool RevocationList::isRevoked(std::string_view nodeId, std::string_view fingerprint) const {
  return find(nodeId, fingerprint) != nullptr;
}

const RevocationEntry* RevocationList::find(std::string_view nodeId,
                                            std::string_view fingerprint) const {
  for (const auto& e : entries_) {
    if (e.nodeId == nodeId && (e.fingerprint.empty() || e.fingerprint == fingerprint)) return &e;
    if (!fingerprint.empty() && e.fingerprint == fingerprint) return &e;
  }
  return nullptr;
}

bool RevocationList::insert(const RevocationEntry& e) {
  auto it = std::lower_bound(
      entries_.begin(), entries_.end(), e,
      [](const RevocationEntry& a, const RevocationEntry& b) { return key(a) < key(b); });
  if (it != entries_.end() && key(*it) == key(e)) {
    if (rank(e) < rank(*it)) {
      *it = e;
      return true;
    }
    return false;
  }
  entries_.insert(it, e);
  return true;
}

Result<bool> RevocationList::add(const RevocationEntry& e, X509* caCert) {
  if (auto r = verifyRevocation(e, caCert, federationId_); !r) return r.error();
  if (entries_.size() >= kMaxRevocations && !find(e.nodeId, e.fingerprint))
    return trustError(TrustErrc::kTooLarge, "revocation list: at most 10000 entries");
  return insert(e);
}

Result<size_t> RevocationList::merge(const RevocationList& other) {
  if (other.federationId_ != federationId_)
    return trustError(TrustErrc::kOtherFederation, "revocation list of another federation");
  size_t changed = 0;
  for (const auto& e : other.entries_) {
    if (entries_.size() >= kMaxRevocations)
      return trustError(TrustErrc::kTooLarge, "revocation list: at most 10000 entries");
    if (insert(e)) ++changed;
  }
  return changed;
}

std::string RevocationList::toJson() const {
  json list = json::array();
  for (const auto& e : entries_) {
    list.push_back(json{{"nodeId", e.nodeId},
                        {"fingerprint", e.fingerprint},
                        {"revokedAt", e.revokedAt},
                        {"reason", e.reason},
                        {"byNode", e.byNode},
                        {"signature", e.signature}});
  }
  json doc{{"format", kFormat},
           {"version", kVersion},
           {"federationId", federationId_},
           {"entries", std::move(list)}};
  try {
    return doc.dump();
  } catch (const json::exception&) {
    return {}; // entries are validated on the way in; not reached
  }
}

Result<RevocationList> RevocationList::parse(std::string_view text, X509* caCert,
                                             std::string_view federationId) {
  if (text.size() > kMaxRevocationListBytes)
    return trustError(TrustErrc::kTooLarge, "revocation list: too large");
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return corrupt("not a JSON object");
  auto fmt = doc.find("format");
  auto ver = doc.find("version");
  auto fed = doc.find("federationId");
  auto list = doc.find("entries");
  if (fmt == doc.end() || !fmt->is_string() || fmt->get<std::string>() != kFormat)
    return corrupt("unknown format");
  if (ver == doc.end() || !ver->is_number_integer() || ver->get<int64_t>() != kVersion)
    return corrupt("unsupported version");
  if (fed == doc.end() || !fed->is_string()) return corrupt("federationId missing");
  if (fed->get<std::string>() != federationId)
    return trustError(TrustErrc::kOtherFederation, "revocation list of another federation");
  if (list == doc.end() || !list->is_array()) return corrupt("entries missing");
  if (list->size() > kMaxRevocations)
    return trustError(TrustErrc::kTooLarge, "revocation list: too many entries");
  RevocationList out{std::string(federationId)};
  for (const auto& j : *list) {
    if (!j.is_object()) return corrupt("entry is not an object");
    RevocationEntry e;
    auto str = [&](const char* name, std::string& dst) {
      auto it = j.find(name);
      if (it == j.end() || !it->is_string()) return false;
      dst = it->get<std::string>();
      return true;
    };
    auto at = j.find("revokedAt");
    if (!str("nodeId", e.nodeId) || !str("fingerprint", e.fingerprint) ||
        !str("reason", e.reason) || !str("byNode", e.byNode) || !str("signature", e.signature) ||
        at == j.end() || !at->is_number_integer())
      return corrupt("entry fields missing or of the wrong type");
    e.revokedAt = at->get<int64_t>();
    if (auto r = verifyRevocation(e, caCert, federationId); !r) {
      if (isTrustError(r.error(), TrustErrc::kInvalidArgument)) return corrupt(r.error().message);
      return r.error();
    }
    out.insert(e);
  }
  return out;
}

} // namespace verbund::federation

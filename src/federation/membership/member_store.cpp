#include "federation/membership/member_store.h"

#include "base/log.h"
#include "federation/trust/bundle.h"
#include "federation/trust/certificates.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <tuple>

namespace verbund::federation {

namespace {

using json = nlohmann::json;

Error invalid(std::string_view field, std::string_view reason) {
  return Error{400, std::string(field) + ": " + std::string(reason)};
}

// The trust validators name their own field and use the trust error code; gossip errors are
// plain 400s naming the gossip field.
Error renamed(std::string_view field, const Error& e) {
  auto colon = e.message.find(": ");
  std::string reason = colon == std::string::npos ? e.message : e.message.substr(colon + 2);
  return invalid(field, reason);
}

const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

// Missing members count as empty strings (older or partial records, e.g. from a bundle);
// present ones must be strings.
Result<std::string> optionalString(const json& obj, const char* name) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return invalid(name, "must be a string");
  return v->get<std::string>();
}

Result<void> validateVersion(std::string_view field, std::string_view v) {
  // "1.0", "0.1.0", "1.2.3-rc1": short and printable; empty while not known yet.
  if (v.size() > kMaxVersionChars) return invalid(field, "at most 32 characters");
  for (char c : v)
    if (c <= 0x20 || c >= 0x7F) return invalid(field, "printable characters only");
  return {};
}

bool memberLess(const MemberRecord& a, const MemberRecord& b) {
  return std::tie(a.name, a.nodeId) < std::tie(b.name, b.nodeId);
}

// Equal timestamps with different facts: both sides pick the same record, so gossip converges
// instead of flapping between two versions.
bool newer(const MemberRecord& incoming, const MemberRecord& current) {
  if (incoming.updatedMs != current.updatedMs) return incoming.updatedMs > current.updatedMs;
  if (incoming == current) return false;
  return toJson(incoming).dump() > toJson(current).dump();
}

// Cuts at a UTF-8 character boundary so that the text stays valid.
std::string truncateUtf8(std::string_view s, size_t maxBytes) {
  if (s.size() <= maxBytes) return std::string(s);
  size_t n = maxBytes;
  while (n > 0 && (uint8_t(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Length(std::string_view s, size_t i) {
  auto b0 = uint8_t(s[i]);
  size_t len = b0 < 0x80             ? 1
               : (b0 & 0xE0) == 0xC0 ? 2
               : (b0 & 0xF0) == 0xE0 ? 3
               : (b0 & 0xF8) == 0xF0 ? 4
                                     : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1Fu) : len == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
  for (size_t k = 1; k < len; ++k) {
    auto b = uint8_t(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Audit text is for humans and ends up in API documents: control characters become spaces and
// bytes that are not UTF-8 become '?', so the text always renders as JSON.
std::string cleanText(std::string_view s, size_t maxBytes) {
  std::string in = truncateUtf8(s, maxBytes), out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    size_t len = utf8Length(in, i);
    if (len == 0) {
      out += '?';
      ++i;
    } else if (len == 1) {
      char c = in[i++];
      out += (uint8_t(c) < 0x20 || c == 0x7F) ? ' ' : c;
    } else {
      out.append(in, i, len);
      i += len;
    }
  }
  return out;
}

// A pinned key never changes through a record (gossip, hello): the pinned one stays.
MemberRecord keepPin(const MemberRecord& incoming, const std::optional<MemberRecord>& current) {
  MemberRecord m = incoming;
  if (current && !current->fingerprint.empty() && m.fingerprint != current->fingerprint) {
    if (!m.fingerprint.empty())
      logger("federation")
          ->warn("member {}: a record names another key than the pinned one; pin kept", m.nodeId);
    m.fingerprint = current->fingerprint;
  }
  return m;
}

} // namespace

Result<void> validateMemberRecord(const MemberRecord& m) {
  if (auto r = validateNodeId("nodeId", m.nodeId); !r) return renamed("nodeId", r.error());
  if (auto r = validateNodeName(m.name); !r) return renamed("name", r.error());
  if (m.controlAddresses.empty() || m.controlAddresses.size() > kMaxMemberAddresses)
    return invalid("controlAddresses", "1 to 8 addresses");
  std::set<std::string_view> seen;
  for (const auto& a : m.controlAddresses) {
    if (auto r = validateHostPort("controlAddresses", a); !r)
      return renamed("controlAddresses", r.error());
    if (!seen.insert(a).second) return invalid("controlAddresses", "address listed twice");
  }
  if (!m.sipAddress.empty())
    if (auto r = validateHostPort("sipAddress", m.sipAddress); !r)
      return renamed("sipAddress", r.error());
  if (auto r = validateVersion("productVersion", m.productVersion); !r) return r;
  if (auto r = validateVersion("protocolVersion", m.protocolVersion); !r) return r;
  if (m.updatedMs < 0) return invalid("updatedMs", "must not be negative");
  if (!m.fingerprint.empty()) {
    bool hex = m.fingerprint.size() == 64;
    for (char c : m.fingerprint) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    if (!hex) return invalid("fingerprint", "64 lowercase hex digits");
  }
  return {};
}

json toJson(const MemberRecord& m) {
  return json{{"nodeId", m.nodeId},
              {"name", m.name},
              {"controlAddresses", m.controlAddresses},
              {"sipAddress", m.sipAddress},
              {"productVersion", m.productVersion},
              {"protocolVersion", m.protocolVersion},
              {"updatedMs", m.updatedMs},
              {"fingerprint", m.fingerprint}};
}

Result<MemberRecord> memberFromJson(const json& j) {
  if (!j.is_object()) return invalid("members", "each member must be an object");
  MemberRecord m;
  const json* id = field(j, "nodeId");
  if (id == nullptr || !id->is_string()) return invalid("nodeId", "required string");
  m.nodeId = id->get<std::string>();
  const json* name = field(j, "name");
  if (name == nullptr || !name->is_string()) return invalid("name", "required string");
  m.name = name->get<std::string>();
  const json* addrs = field(j, "controlAddresses");
  if (addrs == nullptr || !addrs->is_array())
    return invalid("controlAddresses", "required array of \"host:port\"");
  if (addrs->size() > kMaxMemberAddresses) return invalid("controlAddresses", "1 to 8 addresses");
  for (const auto& a : *addrs) {
    if (!a.is_string()) return invalid("controlAddresses", "must be strings");
    m.controlAddresses.push_back(a.get<std::string>());
  }
  auto sip = optionalString(j, "sipAddress");
  if (!sip) return sip.error();
  m.sipAddress = std::move(*sip);
  auto product = optionalString(j, "productVersion");
  if (!product) return product.error();
  m.productVersion = std::move(*product);
  auto protocol = optionalString(j, "protocolVersion");
  if (!protocol) return protocol.error();
  m.protocolVersion = std::move(*protocol);
  auto fingerprint = optionalString(j, "fingerprint");
  if (!fingerprint) return fingerprint.error();
  m.fingerprint = std::move(*fingerprint);
  if (const json* u = field(j, "updatedMs"); u != nullptr) {
    if (u->is_number_unsigned()) {
      if (u->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        return invalid("updatedMs", "out of range");
      m.updatedMs = int64_t(u->get<uint64_t>());
    } else if (u->is_number_integer()) {
      m.updatedMs = u->get<int64_t>();
    } else {
      return invalid("updatedMs", "must be an integer");
    }
  }
  if (auto r = validateMemberRecord(m); !r) return r.error();
  return m;
}

json membersMessage(const std::vector<MemberRecord>& members) {
  json list = json::array();
  for (const auto& m : members) list.push_back(toJson(m));
  return json{{"t", "members"}, {"members", std::move(list)}};
}

Result<std::vector<MemberRecord>> membersFromMessage(const json& j) {
  if (!j.is_object()) return invalid("members", "message must be an object");
  const json* list = field(j, "members");
  if (list == nullptr || !list->is_array()) return invalid("members", "required array");
  if (list->size() > kMaxMembers) return invalid("members", "at most 1000");
  std::vector<MemberRecord> out;
  out.reserve(list->size());
  std::set<std::string> seen;
  for (const auto& e : *list) {
    auto m = memberFromJson(e);
    if (!m) return invalid("members", m.error().message);
    if (!seen.insert(m->nodeId).second)
      return invalid("members", "node " + m->nodeId + " listed twice");
    out.push_back(std::move(*m));
  }
  return out;
}

std::vector<store::Migration> MemberStore::migrations() {
  return {{"federation_members", 1, "federation members and audit log", R"SQL(
CREATE TABLE federation_members(
  node_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  control_addresses TEXT NOT NULL,
  sip_address TEXT NOT NULL,
  product_version TEXT NOT NULL,
  protocol_version TEXT NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE TABLE federation_audit(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  event TEXT NOT NULL,
  node_id TEXT NOT NULL,
  detail TEXT NOT NULL
);
)SQL"},
          {"federation_members", 2, "pinned member keys", R"SQL(
ALTER TABLE federation_members ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
)SQL"}};
}

Result<std::unique_ptr<MemberStore>> MemberStore::open(store::Database& db, const Timers& timers) {
  std::unique_ptr<MemberStore> s(new MemberStore(db, timers));
  if (auto r = s->load(); !r) return r.error();
  return s;
}

Result<void> MemberStore::load() {
  auto rows = db_.query("SELECT node_id, name, control_addresses, sip_address, product_version, "
                        "protocol_version, updated_ms, fingerprint FROM federation_members");
  if (!rows) return rows.error();
  members_.clear();
  for (const auto& row : *rows) {
    auto id = store::asText(row[0]);
    auto name = store::asText(row[1]);
    auto addrs = store::asText(row[2]);
    auto sip = store::asText(row[3]);
    auto product = store::asText(row[4]);
    auto protocol = store::asText(row[5]);
    auto updated = store::asInt(row[6]);
    auto fingerprint = store::asText(row[7]);
    if (!id || !name || !addrs || !sip || !product || !protocol || !updated || !fingerprint) {
      logger("federation")->warn("skipping malformed member row");
      continue;
    }
    MemberRecord m{*id, *name, {}, *sip, *product, *protocol, *updated, *fingerprint};
    json list = json::parse(*addrs, nullptr, false);
    bool listOk = list.is_array();
    if (listOk)
      for (const auto& a : list) {
        if (!a.is_string()) {
          listOk = false;
          break;
        }
        m.controlAddresses.push_back(a.get<std::string>());
      }
    auto valid = validateMemberRecord(m);
    if (!listOk || !valid) {
      logger("federation")
          ->warn("skipping invalid member row: {}", listOk ? valid.error().message : "addresses");
      continue;
    }
    members_.push_back(std::move(m));
  }
  std::sort(members_.begin(), members_.end(), memberLess);
  return {};
}

std::optional<MemberRecord> MemberStore::get(const std::string& nodeId) const {
  for (const auto& m : members_)
    if (m.nodeId == nodeId) return m;
  return std::nullopt;
}

Result<void> MemberStore::write(const MemberRecord& m) {
  auto r = db_.exec("INSERT OR REPLACE INTO federation_members(node_id, name, control_addresses, "
                    "sip_address, product_version, protocol_version, updated_ms, fingerprint) "
                    "VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                    {m.nodeId, m.name, json(m.controlAddresses).dump(), m.sipAddress,
                     m.productVersion, m.protocolVersion, m.updatedMs, m.fingerprint});
  if (!r) return r;
  auto it = std::find_if(members_.begin(), members_.end(),
                         [&](const MemberRecord& x) { return x.nodeId == m.nodeId; });
  if (it != members_.end())
    *it = m;
  else
    members_.push_back(m);
  std::sort(members_.begin(), members_.end(), memberLess);
  return {};
}

std::optional<std::string> MemberStore::pinOf(const std::string& nodeId) const {
  for (const auto& m : members_)
    if (m.nodeId == nodeId) return m.fingerprint;
  return std::nullopt;
}

Result<bool> MemberStore::upsert(const MemberRecord& record) {
  if (auto r = validateMemberRecord(record); !r) return r.error();
  auto current = get(record.nodeId);
  MemberRecord m = keepPin(record, current);
  if (current && (m.updatedMs < current->updatedMs || *current == m)) return false;
  if (!current && members_.size() >= kMaxMembers) return invalid("members", "at most 1000");
  if (auto r = write(m); !r) return r.error();
  return true;
}

Result<bool> MemberStore::remove(const std::string& nodeId) {
  auto it = std::find_if(members_.begin(), members_.end(),
                         [&](const MemberRecord& x) { return x.nodeId == nodeId; });
  if (it == members_.end()) return false;
  if (auto r = db_.exec("DELETE FROM federation_members WHERE node_id = ?1", {nodeId}); !r)
    return r.error();
  members_.erase(it);
  return true;
}

Result<std::vector<std::string>> MemberStore::merge(const std::vector<MemberRecord>& members,
                                                    const RevocationList& revocations,
                                                    const std::string& self,
                                                    std::vector<std::string>* added) {
  // Validate everything first: a bad list changes nothing.
  std::map<std::string, const MemberRecord*> incoming;
  for (const auto& m : members) {
    if (auto r = validateMemberRecord(m); !r) return r.error();
    auto [it, inserted] = incoming.emplace(m.nodeId, &m);
    if (!inserted && newer(m, *it->second)) it->second = &m;
  }
  std::vector<MemberRecord> changes;
  std::vector<std::string> newIds;
  size_t count = members_.size();
  for (const auto& [id, m] : incoming) {
    if (id == self) continue;
    if (revocations.isRevoked(id, "")) continue;
    auto current = get(id);
    if (current) {
      MemberRecord kept = keepPin(*m, current);
      if (newer(kept, *current)) changes.push_back(std::move(kept));
      continue;
    }
    if (count >= kMaxMembers) {
      logger("federation")->warn("member list full; not adding node {}", id);
      continue;
    }
    ++count;
    changes.push_back(*m);
    newIds.push_back(id);
  }
  if (changes.empty()) {
    if (added != nullptr) added->clear();
    return std::vector<std::string>{};
  }
  auto saved = members_;
  auto tx = db_.transaction([&]() -> Result<void> {
    for (const auto& m : changes)
      if (auto r = write(m); !r) return r;
    return {};
  });
  if (!tx) {
    members_ = std::move(saved);
    return tx.error();
  }
  std::vector<std::string> ids;
  ids.reserve(changes.size());
  for (const auto& m : changes) ids.push_back(m.nodeId);
  if (added != nullptr) *added = std::move(newIds);
  return ids;
}

Result<void> MemberStore::clear() {
  if (auto r = db_.exec("DELETE FROM federation_members"); !r) return r;
  members_.clear();
  return {};
}

Result<void> MemberStore::audit(std::string_view event, std::string_view nodeId,
                                std::string_view detail) {
  auto r = db_.exec("INSERT INTO federation_audit(at_ms, event, node_id, detail) "
                    "VALUES (?1,?2,?3,?4)",
                    {timers_.wallMs(), cleanText(event, 64), cleanText(nodeId, 64),
                     cleanText(detail, kMaxAuditDetailBytes)});
  if (!r) return r;
  int64_t id = db_.lastInsertId();
  if (id > kMaxAuditEntries)
    if (auto d = db_.exec("DELETE FROM federation_audit WHERE id <= ?1", {id - kMaxAuditEntries});
        !d)
      return d;
  return {};
}

Result<std::vector<AuditEntry>> MemberStore::auditLog(int limit) const {
  limit = std::clamp(limit, 1, int(kMaxAuditEntries));
  auto rows = db_.query("SELECT id, at_ms, event, node_id, detail FROM federation_audit "
                        "ORDER BY id DESC LIMIT ?1",
                        {int64_t(limit)});
  if (!rows) return rows.error();
  std::vector<AuditEntry> out;
  out.reserve(rows->size());
  for (const auto& row : *rows) {
    auto id = store::asInt(row[0]);
    auto at = store::asInt(row[1]);
    auto event = store::asText(row[2]);
    auto node = store::asText(row[3]);
    auto detail = store::asText(row[4]);
    if (!id || !at || !event || !node || !detail) continue;
    out.push_back({*id, *at, *event, *node, *detail});
  }
  return out;
}

} // namespace verbund::federation

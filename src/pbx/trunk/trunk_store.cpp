#include "pbx/trunk/trunk_store.h"

namespace verbund::pbx {

namespace {

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string joinList(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ',';
    out += s;
  }
  return out;
}

Error rowError(const std::string& what) {
  return makeError(500, "stored trunk settings: " + what);
}

} // namespace

std::vector<store::Migration> trunkMigrations() {
  return {{"trunk", 1, "trunk settings and DID map", R"SQL(
CREATE TABLE trunk(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  enabled INTEGER NOT NULL,
  mode TEXT NOT NULL,
  registrar TEXT NOT NULL,
  domain TEXT NOT NULL,
  username TEXT NOT NULL,
  auth_user TEXT NOT NULL,
  password TEXT NOT NULL,
  outbound_proxy TEXT NOT NULL,
  transport TEXT NOT NULL,
  expiry INTEGER NOT NULL,
  default_target TEXT NOT NULL,
  dial_prefix TEXT NOT NULL,
  outbound_pattern TEXT NOT NULL,
  caller_id_mode TEXT NOT NULL,
  default_caller_id TEXT NOT NULL,
  trusted_addresses TEXT NOT NULL);
CREATE TABLE trunk_dids(
  did TEXT PRIMARY KEY,
  target TEXT NOT NULL);
)SQL"}};
}

Result<std::optional<TrunkConfig>> loadTrunk(store::Database& db) {
  auto rows = db.query(
      "SELECT enabled, mode, registrar, domain, username, auth_user, password, outbound_proxy, "
      "transport, expiry, default_target, dial_prefix, outbound_pattern, caller_id_mode, "
      "default_caller_id, trusted_addresses FROM trunk WHERE id = 1");
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<TrunkConfig>{};
  const auto& r = rows->front();
  if (r.size() != 16) return rowError("wrong column count");
  TrunkConfig c;
  auto text = [&](size_t i, std::string& out) -> bool {
    auto v = store::asText(r[i]);
    if (!v) return false;
    out = std::move(*v);
    return true;
  };
  auto enabled = store::asInt(r[0]);
  auto expiry = store::asInt(r[9]);
  std::string mode, transport, callerId, trusted;
  if (!enabled || !expiry || !text(1, mode) || !text(2, c.registrar) || !text(3, c.domain) ||
      !text(4, c.username) || !text(5, c.authUser) || !text(6, c.password) ||
      !text(7, c.outboundProxy) || !text(8, transport) || !text(10, c.defaultTarget) ||
      !text(11, c.dialPrefix) || !text(12, c.outboundPattern) || !text(13, callerId) ||
      !text(14, c.defaultCallerId) || !text(15, trusted))
    return rowError("bad column type");
  c.enabled = *enabled != 0;
  if (*expiry < 0 || *expiry > 0xffffffffLL) return rowError("bad expiry");
  c.expiry = uint32_t(*expiry);
  auto m = trunkModeFromName(mode);
  auto t = trunkTransportFromName(transport);
  auto cid = callerIdModeFromName(callerId);
  if (!m || !t || !cid) return rowError("unknown mode, transport or caller-ID mode");
  c.mode = *m;
  c.transport = *t;
  c.callerIdMode = *cid;
  c.trustedAddresses = splitList(trusted);
  auto dids = db.query("SELECT did, target FROM trunk_dids ORDER BY did");
  if (!dids) return dids.error();
  for (const auto& row : *dids) {
    if (row.size() != 2) return rowError("bad DID row");
    auto did = store::asText(row[0]);
    auto target = store::asText(row[1]);
    if (!did || !target) return rowError("bad DID row");
    c.dids.push_back({std::move(*did), std::move(*target)});
  }
  if (auto v = validateTrunk(c); !v) return rowError(v.error().message);
  return std::optional<TrunkConfig>{std::move(c)};
}

Result<void> saveTrunk(store::Database& db, const TrunkConfig& c) {
  if (auto v = validateTrunk(c); !v) return v;
  return db.transaction([&]() -> Result<void> {
    auto r = db.exec(
        "INSERT OR REPLACE INTO trunk(id, enabled, mode, registrar, domain, username, auth_user, "
        "password, outbound_proxy, transport, expiry, default_target, dial_prefix, "
        "outbound_pattern, caller_id_mode, default_caller_id, trusted_addresses) VALUES "
        "(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        {int64_t(c.enabled), std::string(trunkModeName(c.mode)), c.registrar, c.domain, c.username,
         c.authUser, c.password, c.outboundProxy, std::string(trunkTransportName(c.transport)),
         int64_t(c.expiry), c.defaultTarget, c.dialPrefix, c.outboundPattern,
         std::string(callerIdModeName(c.callerIdMode)), c.defaultCallerId,
         joinList(c.trustedAddresses)});
    if (!r) return r;
    if (auto d = db.exec("DELETE FROM trunk_dids"); !d) return d;
    for (const auto& d : c.dids)
      if (auto i =
              db.exec("INSERT INTO trunk_dids(did, target) VALUES (?1, ?2)", {d.did, d.target});
          !i)
        return i;
    return {};
  });
}

} // namespace verbund::pbx

#include "federation/replication/directory_replica.h"

#include "base/log.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>

namespace verbund::federation {

namespace {

using json = nlohmann::json;

Error invalid(const std::string& field, std::string_view reason) {
  return Error{400, field + ": " + std::string(reason)};
}

// Validators without a field parameter name their own field ("externalNumber: ..."); put the
// path of the element in front.
Error prefixed(const std::string& path, const Error& e) {
  return Error{400, path + "." + e.message};
}

const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

Result<std::string> requiredString(const json& obj, const char* name, const std::string& path) {
  const json* v = field(obj, name);
  if (v == nullptr || !v->is_string()) return invalid(path, "required string");
  return v->get<std::string>();
}

Result<int64_t> requiredSeq(const json& obj, const char* name) {
  const json* v = field(obj, name);
  if (v == nullptr || !v->is_number_integer()) return invalid(name, "required integer");
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      return invalid(name, "out of range");
    return int64_t(v->get<uint64_t>());
  }
  auto n = v->get<int64_t>();
  if (n < 0) return invalid(name, "must not be negative");
  return n;
}

// An optional array member: missing or null is empty.
Result<const json*> optionalArray(const json& obj, const char* name, size_t max) {
  static const json kEmpty = json::array();
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return &kEmpty;
  if (!v->is_array()) return invalid(name, "must be an array");
  if (v->size() > max) return invalid(name, "at most " + std::to_string(max) + " entries");
  return v;
}

Result<std::string> validOwner(const json& j) {
  auto owner = requiredString(j, "owner", "owner");
  if (!owner) return owner;
  if (owner->empty()) return invalid("owner", "required");
  if (auto r = pbx::validateOwner("owner", *owner); !r) return r.error();
  return owner;
}

Result<pbx::Forwarding> forwardFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path, "must be an object");
  pbx::Forwarding f;
  const std::pair<const char*, std::string*> targets[] = {{"always", &f.always},
                                                          {"busy", &f.busy},
                                                          {"noAnswer", &f.noAnswer},
                                                          {"unregistered", &f.unregistered}};
  for (const auto& [name, out] : targets) {
    const json* t = field(j, name);
    if (t == nullptr || t->is_null()) continue;
    std::string tpath = path + "." + name;
    if (!t->is_string()) return invalid(tpath, "must be a string");
    *out = t->get<std::string>();
    if (auto r = pbx::validateForwardTarget(tpath, *out); !r) return r.error();
  }
  if (const json* s = field(j, "noAnswerSeconds"); s != nullptr && !s->is_null()) {
    std::string spath = path + ".noAnswerSeconds";
    if (!s->is_number_integer() || (s->is_number_unsigned() && s->get<uint64_t>() > 1000))
      return invalid(spath, "must be an integer from 5 to 120");
    auto n = s->get<int64_t>();
    if (auto r = pbx::validateNoAnswerSeconds(spath, n); !r) return r.error();
    f.noAnswerSeconds = int(n);
  }
  return f;
}

Result<ReplicaUser> userFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path, "must be an object");
  ReplicaUser u;
  auto ext = requiredString(j, "extension", path + ".extension");
  if (!ext) return ext.error();
  u.extension = std::move(*ext);
  if (auto r = pbx::validateExtension(path + ".extension", u.extension); !r) return r.error();
  auto name = requiredString(j, "displayName", path + ".displayName");
  if (!name) return name.error();
  u.displayName = std::move(*name);
  if (auto r = pbx::validateDisplayName(path + ".displayName", u.displayName); !r) return r.error();
  if (const json* n = field(j, "externalNumber"); n != nullptr && !n->is_null()) {
    if (!n->is_string()) return invalid(path + ".externalNumber", "must be a string");
    u.externalNumber = n->get<std::string>();
    if (auto r = pbx::validateExternalNumber(u.externalNumber); !r)
      return prefixed(path, r.error());
  }
  if (const json* d = field(j, "dnd"); d != nullptr && !d->is_null()) {
    if (!d->is_boolean()) return invalid(path + ".dnd", "must be true or false");
    u.dnd = d->get<bool>();
  }
  if (const json* f = field(j, "forward"); f != nullptr && !f->is_null()) {
    auto fw = forwardFromJson(*f, path + ".forward");
    if (!fw) return fw.error();
    u.forward = std::move(*fw);
  }
  return u;
}

Result<ReplicaGroup> groupFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path, "must be an object");
  ReplicaGroup g;
  auto number = requiredString(j, "number", path + ".number");
  if (!number) return number.error();
  g.number = std::move(*number);
  if (auto r = pbx::validateExtension(path + ".number", g.number); !r) return r.error();
  auto name = requiredString(j, "name", path + ".name");
  if (!name) return name.error();
  g.name = std::move(*name);
  if (auto r = pbx::validateDisplayName(path + ".name", g.name); !r) return r.error();
  const json* members = field(j, "members");
  if (members != nullptr && !members->is_null()) {
    if (!members->is_array()) return invalid(path + ".members", "must be an array");
    if (members->size() > pbx::kMaxGroupMembers)
      return invalid(path + ".members", "at most 100 members");
    std::set<std::pair<std::string, std::string>> seen;
    size_t i = 0;
    for (const auto& m : *members) {
      std::string mpath = path + ".members[" + std::to_string(i++) + "]";
      if (!m.is_object()) return invalid(mpath, "must be an object");
      pbx::GroupMember gm;
      auto owner = requiredString(m, "owner", mpath + ".owner");
      if (!owner) return owner.error();
      gm.owner = std::move(*owner);
      if (gm.owner.empty()) return invalid(mpath + ".owner", "required");
      if (auto r = pbx::validateOwner(mpath + ".owner", gm.owner); !r) return r.error();
      auto ext = requiredString(m, "extension", mpath + ".extension");
      if (!ext) return ext.error();
      gm.extension = std::move(*ext);
      if (auto r = pbx::validateExtension(mpath + ".extension", gm.extension); !r) return r.error();
      if (const json* l = field(m, "loggedIn"); l != nullptr && !l->is_null()) {
        if (!l->is_boolean()) return invalid(mpath + ".loggedIn", "must be true or false");
        gm.loggedIn = l->get<bool>();
      }
      if (!seen.emplace(gm.owner, gm.extension).second)
        return invalid(mpath, "member listed twice");
      g.members.push_back(std::move(gm));
    }
  }
  return g;
}

Result<std::vector<ReplicaUser>> usersFromJson(const json& list, const char* name) {
  std::vector<ReplicaUser> out;
  out.reserve(list.size());
  std::set<std::string> seen;
  size_t i = 0;
  for (const auto& e : list) {
    std::string path = std::string(name) + "[" + std::to_string(i++) + "]";
    auto u = userFromJson(e, path);
    if (!u) return u.error();
    if (!seen.insert(u->extension).second) return invalid(path + ".extension", "listed twice");
    out.push_back(std::move(*u));
  }
  std::sort(out.begin(), out.end(),
            [](const ReplicaUser& a, const ReplicaUser& b) { return a.extension < b.extension; });
  return out;
}

Result<std::vector<ReplicaGroup>> groupsFromJson(const json& list, const char* name) {
  std::vector<ReplicaGroup> out;
  out.reserve(list.size());
  std::set<std::string> seen;
  size_t i = 0;
  for (const auto& e : list) {
    std::string path = std::string(name) + "[" + std::to_string(i++) + "]";
    auto g = groupFromJson(e, path);
    if (!g) return g.error();
    if (!seen.insert(g->number).second) return invalid(path + ".number", "listed twice");
    out.push_back(std::move(*g));
  }
  std::sort(out.begin(), out.end(),
            [](const ReplicaGroup& a, const ReplicaGroup& b) { return a.number < b.number; });
  return out;
}

Result<std::vector<std::string>> numbersFromJson(const json& list, const char* name) {
  std::vector<std::string> out;
  out.reserve(list.size());
  std::set<std::string> seen;
  size_t i = 0;
  for (const auto& e : list) {
    std::string path = std::string(name) + "[" + std::to_string(i++) + "]";
    if (!e.is_string()) return invalid(path, "must be a string");
    auto n = e.get<std::string>();
    if (auto r = pbx::validateExtension(path, n); !r) return r.error();
    if (!seen.insert(n).second) return invalid(path, "listed twice");
    out.push_back(std::move(n));
  }
  return out;
}

json toJson(const ReplicaUser& u) {
  const auto& f = u.forward;
  return json{{"extension", u.extension},
              {"displayName", u.displayName},
              {"externalNumber", u.externalNumber},
              {"dnd", u.dnd},
              {"forward",
               {{"always", f.always},
                {"busy", f.busy},
                {"noAnswer", f.noAnswer},
                {"noAnswerSeconds", f.noAnswerSeconds},
                {"unregistered", f.unregistered}}}};
}

json toJson(const ReplicaGroup& g) {
  json members = json::array();
  for (const auto& m : g.members)
    members.push_back({{"owner", m.owner}, {"extension", m.extension}, {"loggedIn", m.loggedIn}});
  return json{{"number", g.number}, {"name", g.name}, {"members", std::move(members)}};
}

template <typename T> json arrayOf(const std::vector<T>& items) {
  json a = json::array();
  for (const auto& x : items) a.push_back(toJson(x));
  return a;
}

// Dumps without throwing: strings that reach here were validated (or come from the local
// directory, which validates them), but a replacement character beats an exception.
std::string dumpSafe(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

template <typename T, typename Key>
const T* findSorted(const std::vector<T>& v, const std::string& key, Key keyOf) {
  auto it = std::lower_bound(v.begin(), v.end(), key,
                             [&](const T& x, const std::string& k) { return keyOf(x) < k; });
  return it != v.end() && keyOf(*it) == key ? &*it : nullptr;
}

const std::string& userKey(const ReplicaUser& u) {
  return u.extension;
}
const std::string& groupKey(const ReplicaGroup& g) {
  return g.number;
}

// The published view of the local directory.
DirectorySnapshot viewOf(const pbx::Directory& dir, const std::string& localNodeId, int64_t seq) {
  DirectorySnapshot s;
  s.owner = localNodeId;
  s.seq = seq;
  for (const auto& u : dir.users())
    if (u.shared)
      s.users.push_back({u.extension, u.displayName, u.externalNumber, u.dnd, u.forward});
  for (const auto& g : dir.groups()) {
    if (!g.shared) continue;
    ReplicaGroup rg{g.number, g.name, g.members};
    for (auto& m : rg.members)
      if (m.owner.empty()) m.owner = localNodeId;
    s.groups.push_back(std::move(rg));
  }
  std::sort(s.users.begin(), s.users.end(),
            [](const ReplicaUser& a, const ReplicaUser& b) { return a.extension < b.extension; });
  std::sort(s.groups.begin(), s.groups.end(),
            [](const ReplicaGroup& a, const ReplicaGroup& b) { return a.number < b.number; });
  return s;
}

// Added/changed and deleted records between two sorted lists.
template <typename T, typename Key>
void diff(const std::vector<T>& before, const std::vector<T>& after, Key keyOf,
          std::vector<T>& changed, std::vector<std::string>& deleted) {
  size_t i = 0, k = 0;
  while (i < before.size() || k < after.size()) {
    if (k == after.size() || (i < before.size() && keyOf(before[i]) < keyOf(after[k]))) {
      deleted.push_back(keyOf(before[i++]));
    } else if (i == before.size() || keyOf(after[k]) < keyOf(before[i])) {
      changed.push_back(after[k++]);
    } else {
      if (!(before[i] == after[k])) changed.push_back(after[k]);
      ++i, ++k;
    }
  }
}

// Replaces or inserts `item` in the sorted vector.
template <typename T, typename Key> void upsertSorted(std::vector<T>& v, T item, Key keyOf) {
  auto it = std::lower_bound(v.begin(), v.end(), keyOf(item),
                             [&](const T& x, const std::string& k) { return keyOf(x) < k; });
  if (it != v.end() && keyOf(*it) == keyOf(item))
    *it = std::move(item);
  else
    v.insert(it, std::move(item));
}

template <typename T, typename Key>
void eraseSorted(std::vector<T>& v, const std::string& key, Key keyOf) {
  auto it = std::lower_bound(v.begin(), v.end(), key,
                             [&](const T& x, const std::string& k) { return keyOf(x) < k; });
  if (it != v.end() && keyOf(*it) == key) v.erase(it);
}

} // namespace

// ---- JSON ----

json toJson(const DirectorySnapshot& s) {
  return json{{"t", "dir-snapshot"},
              {"owner", s.owner},
              {"seq", s.seq},
              {"users", arrayOf(s.users)},
              {"groups", arrayOf(s.groups)}};
}

json toJson(const DirectoryDelta& d) {
  return json{{"t", "dir-delta"},
              {"owner", d.owner},
              {"from", d.from},
              {"to", d.to},
              {"users", arrayOf(d.users)},
              {"groups", arrayOf(d.groups)},
              {"deletedUsers", d.deletedUsers},
              {"deletedGroups", d.deletedGroups}};
}

Result<DirectorySnapshot> snapshotFromJson(const json& j) {
  if (!j.is_object()) return invalid("dir-snapshot", "must be an object");
  DirectorySnapshot s;
  auto owner = validOwner(j);
  if (!owner) return owner.error();
  s.owner = std::move(*owner);
  auto seq = requiredSeq(j, "seq");
  if (!seq) return seq.error();
  s.seq = *seq;
  auto users = optionalArray(j, "users", kMaxReplicaUsers);
  if (!users) return users.error();
  auto groups = optionalArray(j, "groups", kMaxReplicaGroups);
  if (!groups) return groups.error();
  auto u = usersFromJson(**users, "users");
  if (!u) return u.error();
  s.users = std::move(*u);
  auto g = groupsFromJson(**groups, "groups");
  if (!g) return g.error();
  s.groups = std::move(*g);
  return s;
}

Result<DirectoryDelta> deltaFromJson(const json& j) {
  if (!j.is_object()) return invalid("dir-delta", "must be an object");
  DirectoryDelta d;
  auto owner = validOwner(j);
  if (!owner) return owner.error();
  d.owner = std::move(*owner);
  auto from = requiredSeq(j, "from");
  if (!from) return from.error();
  auto to = requiredSeq(j, "to");
  if (!to) return to.error();
  if (*to <= *from) return invalid("to", "must be greater than from");
  d.from = *from;
  d.to = *to;
  auto users = optionalArray(j, "users", kMaxReplicaUsers);
  if (!users) return users.error();
  auto groups = optionalArray(j, "groups", kMaxReplicaGroups);
  if (!groups) return groups.error();
  auto deletedUsers = optionalArray(j, "deletedUsers", kMaxReplicaUsers);
  if (!deletedUsers) return deletedUsers.error();
  auto deletedGroups = optionalArray(j, "deletedGroups", kMaxReplicaGroups);
  if (!deletedGroups) return deletedGroups.error();
  auto u = usersFromJson(**users, "users");
  if (!u) return u.error();
  d.users = std::move(*u);
  auto g = groupsFromJson(**groups, "groups");
  if (!g) return g.error();
  d.groups = std::move(*g);
  auto du = numbersFromJson(**deletedUsers, "deletedUsers");
  if (!du) return du.error();
  d.deletedUsers = std::move(*du);
  auto dg = numbersFromJson(**deletedGroups, "deletedGroups");
  if (!dg) return dg.error();
  d.deletedGroups = std::move(*dg);
  return d;
}

// ---- Publisher ----

std::vector<store::Migration> DirectoryPublisher::migrations() {
  return {{"federation_publish", 1, "published directory view", R"SQL(
CREATE TABLE federation_published(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  owner TEXT NOT NULL,
  seq INTEGER NOT NULL,
  view TEXT NOT NULL
);
)SQL"}};
}

Result<std::unique_ptr<DirectoryPublisher>> DirectoryPublisher::open(store::Database& db,
                                                                     std::string localNodeId) {
  std::unique_ptr<DirectoryPublisher> p(new DirectoryPublisher(db, localNodeId));
  auto rows = db.query("SELECT owner, seq, view FROM federation_published WHERE id = 1");
  if (!rows) return rows.error();
  if (rows->empty()) return p;
  const auto& row = rows->front();
  auto owner = store::asText(row[0]);
  auto seq = store::asInt(row[1]);
  auto view = store::asText(row[2]);
  if (!owner || *owner != localNodeId) {
    // Another identity published before (left and joined again): a new sequence.
    if (auto r = p->reset(std::move(localNodeId)); !r) return r.error();
    return p;
  }
  std::optional<DirectorySnapshot> parsed;
  if (view) {
    auto s = snapshotFromJson(json::parse(*view, nullptr, false));
    if (s && s->owner == localNodeId) parsed = std::move(*s);
  }
  if (parsed && seq && parsed->seq == *seq) {
    p->current_ = std::move(*parsed);
    return p;
  }
  // The stored view is damaged. Skip one sequence number so that the next delta does not
  // apply anywhere: every replica sees a gap and asks for a snapshot, which is complete.
  int64_t next = (seq && *seq >= 0 ? *seq : 0) + 1;
  logger("federation")->warn("published directory view unreadable; continuing at seq {}", next);
  p->current_.users.clear();
  p->current_.groups.clear();
  p->current_.seq = next;
  if (auto r = p->persist(); !r) return r.error();
  return p;
}

Result<void> DirectoryPublisher::persist() {
  return db_.exec("INSERT OR REPLACE INTO federation_published(id, owner, seq, view) "
                  "VALUES (1, ?1, ?2, ?3)",
                  {current_.owner, current_.seq, dumpSafe(toJson(current_))});
}

Result<std::optional<DirectoryDelta>> DirectoryPublisher::update(const pbx::Directory& dir) {
  DirectorySnapshot next = viewOf(dir, current_.owner, current_.seq + 1);
  DirectoryDelta d;
  d.owner = current_.owner;
  diff(current_.users, next.users, userKey, d.users, d.deletedUsers);
  diff(current_.groups, next.groups, groupKey, d.groups, d.deletedGroups);
  if (d.users.empty() && d.groups.empty() && d.deletedUsers.empty() && d.deletedGroups.empty())
    return std::optional<DirectoryDelta>();
  if (next.users.size() > kMaxReplicaUsers || next.groups.size() > kMaxReplicaGroups)
    logger("federation")
        ->warn("shared directory exceeds what peers accept ({} users, {} groups)",
               next.users.size(), next.groups.size());
  d.from = current_.seq;
  d.to = next.seq;
  auto before = std::move(current_);
  current_ = std::move(next);
  if (auto r = persist(); !r) {
    current_ = std::move(before);
    return r.error();
  }
  return std::optional<DirectoryDelta>(std::move(d));
}

DirectorySnapshot DirectoryPublisher::snapshot() const {
  return current_;
}

Result<void> DirectoryPublisher::reset(std::string localNodeId) {
  auto before = std::move(current_);
  current_ = DirectorySnapshot{};
  current_.owner = std::move(localNodeId);
  if (auto r = persist(); !r) {
    current_ = std::move(before);
    return r;
  }
  return {};
}

// ---- Replica ----

std::vector<store::Migration> DirectoryReplica::migrations() {
  return {{"federation_replica", 1, "replicas of other nodes' directories", R"SQL(
CREATE TABLE federation_replicas(
  owner TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  snapshot TEXT NOT NULL
);
)SQL"}};
}

Result<std::unique_ptr<DirectoryReplica>> DirectoryReplica::open(store::Database& db) {
  std::unique_ptr<DirectoryReplica> r(new DirectoryReplica(db));
  if (auto l = r->load(); !l) return l.error();
  return r;
}

Result<void> DirectoryReplica::load() {
  auto rows = db_.query("SELECT owner, seq, snapshot FROM federation_replicas");
  if (!rows) return rows.error();
  replicas_.clear();
  userOwners_.clear();
  groupOwners_.clear();
  for (const auto& row : *rows) {
    auto owner = store::asText(row[0]);
    auto seq = store::asInt(row[1]);
    auto text = store::asText(row[2]);
    std::optional<DirectorySnapshot> s;
    if (owner && seq && text) {
      auto parsed = snapshotFromJson(json::parse(*text, nullptr, false));
      if (parsed && parsed->owner == *owner && parsed->seq == *seq) s = std::move(*parsed);
    }
    if (!s) {
      // Forget it: the owner sends a snapshot when asked for seq 0.
      logger("federation")
          ->warn("dropping unreadable directory replica of {}", owner.value_or("?"));
      if (owner) (void)db_.exec("DELETE FROM federation_replicas WHERE owner = ?1", {*owner});
      continue;
    }
    index(*s);
    replicas_.emplace(s->owner, std::move(*s));
  }
  return {};
}

void DirectoryReplica::index(const DirectorySnapshot& s) {
  for (const auto& u : s.users) userOwners_[u.extension].insert(s.owner);
  for (const auto& g : s.groups) groupOwners_[g.number].insert(s.owner);
}

void DirectoryReplica::unindex(const DirectorySnapshot& s) {
  for (const auto& u : s.users) {
    auto it = userOwners_.find(u.extension);
    if (it == userOwners_.end()) continue;
    it->second.erase(s.owner);
    if (it->second.empty()) userOwners_.erase(it);
  }
  for (const auto& g : s.groups) {
    auto it = groupOwners_.find(g.number);
    if (it == groupOwners_.end()) continue;
    it->second.erase(s.owner);
    if (it->second.empty()) groupOwners_.erase(it);
  }
}

Result<void> DirectoryReplica::persist(const std::string& owner) {
  auto it = replicas_.find(owner);
  if (it == replicas_.end())
    return db_.exec("DELETE FROM federation_replicas WHERE owner = ?1", {owner});
  return db_.exec("INSERT OR REPLACE INTO federation_replicas(owner, seq, snapshot) "
                  "VALUES (?1, ?2, ?3)",
                  {owner, it->second.seq, dumpSafe(toJson(it->second))});
}

Result<void> DirectoryReplica::replace(DirectorySnapshot s) {
  std::string owner = s.owner;
  std::optional<DirectorySnapshot> before;
  if (auto it = replicas_.find(owner); it != replicas_.end()) {
    before = std::move(it->second);
    replicas_.erase(it);
  }
  replicas_.emplace(owner, std::move(s));
  if (auto r = persist(owner); !r) {
    replicas_.erase(owner);
    if (before) replicas_.emplace(owner, std::move(*before));
    return r;
  }
  if (before) unindex(*before);
  index(replicas_.at(owner));
  return {};
}

int64_t DirectoryReplica::seqOf(const std::string& owner) const {
  auto it = replicas_.find(owner);
  return it == replicas_.end() ? 0 : it->second.seq;
}

Result<void> DirectoryReplica::applySnapshot(const DirectorySnapshot& s) {
  if (s.owner.empty()) return invalid("owner", "required");
  if (s.users.size() > kMaxReplicaUsers) return invalid("users", "too many");
  if (s.groups.size() > kMaxReplicaGroups) return invalid("groups", "too many");
  DirectorySnapshot copy = s;
  // Callers may build snapshots by hand; keep the lookup invariant (sorted, unique).
  std::sort(copy.users.begin(), copy.users.end(),
            [](const ReplicaUser& a, const ReplicaUser& b) { return a.extension < b.extension; });
  std::sort(copy.groups.begin(), copy.groups.end(),
            [](const ReplicaGroup& a, const ReplicaGroup& b) { return a.number < b.number; });
  auto userDup = std::adjacent_find(
      copy.users.begin(), copy.users.end(),
      [](const ReplicaUser& a, const ReplicaUser& b) { return a.extension == b.extension; });
  if (userDup != copy.users.end()) return invalid("users", "extension listed twice");
  auto groupDup = std::adjacent_find(
      copy.groups.begin(), copy.groups.end(),
      [](const ReplicaGroup& a, const ReplicaGroup& b) { return a.number == b.number; });
  if (groupDup != copy.groups.end()) return invalid("groups", "number listed twice");
  return replace(std::move(copy));
}

Result<bool> DirectoryReplica::applyDelta(const DirectoryDelta& d) {
  if (d.owner.empty()) return invalid("owner", "required");
  if (d.to <= d.from) return invalid("to", "must be greater than from");
  if (d.from != seqOf(d.owner)) return false;
  DirectorySnapshot next;
  if (auto it = replicas_.find(d.owner); it != replicas_.end()) next = it->second;
  next.owner = d.owner;
  next.seq = d.to;
  for (const auto& e : d.deletedUsers) eraseSorted(next.users, e, userKey);
  for (const auto& n : d.deletedGroups) eraseSorted(next.groups, n, groupKey);
  for (const auto& u : d.users) upsertSorted(next.users, u, userKey);
  for (const auto& g : d.groups) upsertSorted(next.groups, g, groupKey);
  if (next.users.size() > kMaxReplicaUsers) return invalid("users", "too many");
  if (next.groups.size() > kMaxReplicaGroups) return invalid("groups", "too many");
  if (auto r = replace(std::move(next)); !r) return r.error();
  return true;
}

Result<void> DirectoryReplica::removeOwner(const std::string& owner) {
  auto it = replicas_.find(owner);
  if (auto r = db_.exec("DELETE FROM federation_replicas WHERE owner = ?1", {owner}); !r) return r;
  if (it == replicas_.end()) return {};
  unindex(it->second);
  replicas_.erase(it);
  return {};
}

Result<void> DirectoryReplica::clear() {
  if (auto r = db_.exec("DELETE FROM federation_replicas"); !r) return r;
  replicas_.clear();
  userOwners_.clear();
  groupOwners_.clear();
  return {};
}

std::vector<std::string> DirectoryReplica::owners() const {
  std::vector<std::string> out;
  out.reserve(replicas_.size());
  for (const auto& [owner, s] : replicas_) out.push_back(owner);
  return out;
}

std::vector<RemoteUser> DirectoryReplica::usersByExtension(const std::string& extension) const {
  std::vector<RemoteUser> out;
  auto it = userOwners_.find(extension);
  if (it == userOwners_.end()) return out;
  for (const auto& owner : it->second) {
    auto r = replicas_.find(owner);
    if (r == replicas_.end()) continue;
    if (const auto* u = findSorted(r->second.users, extension, userKey)) out.push_back({owner, *u});
  }
  return out;
}

std::vector<RemoteGroup> DirectoryReplica::groupsByNumber(const std::string& number) const {
  std::vector<RemoteGroup> out;
  auto it = groupOwners_.find(number);
  if (it == groupOwners_.end()) return out;
  for (const auto& owner : it->second) {
    auto r = replicas_.find(owner);
    if (r == replicas_.end()) continue;
    if (const auto* g = findSorted(r->second.groups, number, groupKey)) out.push_back({owner, *g});
  }
  return out;
}

std::optional<RemoteUser> DirectoryReplica::user(const std::string& owner,
                                                 const std::string& extension) const {
  auto r = replicas_.find(owner);
  if (r == replicas_.end()) return std::nullopt;
  if (const auto* u = findSorted(r->second.users, extension, userKey)) return RemoteUser{owner, *u};
  return std::nullopt;
}

std::optional<RemoteGroup> DirectoryReplica::group(const std::string& owner,
                                                   const std::string& number) const {
  auto r = replicas_.find(owner);
  if (r == replicas_.end()) return std::nullopt;
  if (const auto* g = findSorted(r->second.groups, number, groupKey)) return RemoteGroup{owner, *g};
  return std::nullopt;
}

std::vector<RemoteUser> DirectoryReplica::users(const std::string& owner) const {
  std::vector<RemoteUser> out;
  auto r = replicas_.find(owner);
  if (r == replicas_.end()) return out;
  out.reserve(r->second.users.size());
  for (const auto& u : r->second.users) out.push_back({owner, u});
  return out;
}

std::vector<RemoteGroup> DirectoryReplica::groups(const std::string& owner) const {
  std::vector<RemoteGroup> out;
  auto r = replicas_.find(owner);
  if (r == replicas_.end()) return out;
  out.reserve(r->second.groups.size());
  for (const auto& g : r->second.groups) out.push_back({owner, g});
  return out;
}

std::vector<RemoteUser> DirectoryReplica::allUsers() const {
  std::vector<RemoteUser> out;
  for (const auto& [owner, s] : replicas_)
    for (const auto& u : s.users) out.push_back({owner, u});
  return out;
}

std::vector<RemoteGroup> DirectoryReplica::allGroups() const {
  std::vector<RemoteGroup> out;
  for (const auto& [owner, s] : replicas_)
    for (const auto& g : s.groups) out.push_back({owner, g});
  return out;
}

std::vector<RemoteGroup> DirectoryReplica::groupsWithMember(const std::string& memberOwner,
                                                            const std::string& extension) const {
  std::vector<RemoteGroup> out;
  for (const auto& [owner, s] : replicas_)
    for (const auto& g : s.groups)
      for (const auto& m : g.members)
        if (m.owner == memberOwner && m.extension == extension) {
          out.push_back({owner, g});
          break;
        }
  return out;
}

std::vector<NumberConflict> DirectoryReplica::conflicts(const pbx::Directory& local,
                                                        const std::string& localNodeId) const {
  // number -> uses; a number is a conflict when its uses span more than one owner.
  std::map<std::string, std::vector<NumberConflict::Use>> uses;
  for (const auto& u : local.users())
    uses[u.extension].push_back({localNodeId, "user", u.displayName});
  for (const auto& g : local.groups()) uses[g.number].push_back({localNodeId, "group", g.name});
  for (const auto& [owner, s] : replicas_) {
    if (owner == localNodeId) continue; // our own records are given by `local`
    for (const auto& u : s.users) uses[u.extension].push_back({owner, "user", u.displayName});
    for (const auto& g : s.groups) uses[g.number].push_back({owner, "group", g.name});
  }
  std::vector<NumberConflict> out;
  for (auto& [number, list] : uses) {
    if (list.size() < 2) continue;
    std::sort(list.begin(), list.end(),
              [](const NumberConflict::Use& a, const NumberConflict::Use& b) {
                return std::tie(a.owner, a.kind, a.name) < std::tie(b.owner, b.kind, b.name);
              });
    if (list.front().owner == list.back().owner) continue;
    out.push_back({number, std::move(list)});
  }
  return out;
}

} // namespace verbund::federation

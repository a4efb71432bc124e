#include "federation/replication/directory_replica.h"

#include "base/log.h"

#include <algorithm>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

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
)SQL"},
          // One row per published record: a change writes its records, not the whole view.
          // federation_published.view is '' from then on (a non-empty one is the old format,
          // moved into the rows at open).
          {"federation_publish", 2, "published view per record", R"SQL(
CREATE TABLE federation_published_users(
  extension TEXT PRIMARY KEY,
  body TEXT NOT NULL
);
CREATE TABLE federation_published_groups(
  number TEXT PRIMARY KEY,
  body TEXT NOT NULL
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
  if (seq && *seq >= 0 && view && view->empty()) {
    if (auto l = p->loadRows(*seq); l) return p;
  } else if (seq && view) {
    // The old format: the whole view in one row. Moved into the rows once.
    auto s = snapshotFromJson(json::parse(*view, nullptr, false));
    if (s && s->owner == localNodeId && s->seq == *seq) {
      p->seq_ = *seq;
      for (auto& u : s->users) p->users_.emplace(u.extension, std::move(u));
      for (auto& g : s->groups) p->groups_.emplace(g.number, std::move(g));
      if (auto r = p->persistAll(); !r) return r.error();
      return p;
    }
  }
  // The stored view is damaged. Skip one sequence number so that the next delta does not
  // apply anywhere: every replica sees a gap and asks for a snapshot, which is complete.
  int64_t next = (seq && *seq >= 0 ? *seq : 0) + 1;
  logger("federation")->warn("published directory view unreadable; continuing at seq {}", next);
  p->users_.clear();
  p->groups_.clear();
  p->seq_ = next;
  if (auto r = p->persistAll(); !r) return r.error();
  return p;
}

Result<void> DirectoryPublisher::loadRows(int64_t seq) {
  auto users = db_.query("SELECT body FROM federation_published_users");
  if (!users) return users.error();
  auto groups = db_.query("SELECT body FROM federation_published_groups");
  if (!groups) return groups.error();
  std::map<std::string, ReplicaUser> us;
  std::map<std::string, ReplicaGroup> gs;
  for (const auto& row : *users) {
    auto text = store::asText(row[0]);
    if (!text) return Error{500, "published user row: not text"};
    auto u = userFromJson(json::parse(*text, nullptr, false), "user");
    if (!u) return u.error();
    us.emplace(u->extension, std::move(*u));
  }
  for (const auto& row : *groups) {
    auto text = store::asText(row[0]);
    if (!text) return Error{500, "published group row: not text"};
    auto g = groupFromJson(json::parse(*text, nullptr, false), "group");
    if (!g) return g.error();
    gs.emplace(g->number, std::move(*g));
  }
  users_ = std::move(us);
  groups_ = std::move(gs);
  seq_ = seq;
  return {};
}

Result<void> DirectoryPublisher::persistAll() {
  return db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_published(id, owner, seq, view) "
                          "VALUES (1, ?1, ?2, '')",
                          {owner_, seq_});
        !r)
      return r;
    if (auto r = db_.exec("DELETE FROM federation_published_users"); !r) return r;
    if (auto r = db_.exec("DELETE FROM federation_published_groups"); !r) return r;
    for (const auto& [ext, u] : users_)
      if (auto r = db_.exec("INSERT INTO federation_published_users(extension, body) "
                            "VALUES (?1, ?2)",
                            {ext, dumpSafe(toJson(u))});
          !r)
        return r;
    for (const auto& [number, g] : groups_)
      if (auto r = db_.exec("INSERT INTO federation_published_groups(number, body) "
                            "VALUES (?1, ?2)",
                            {number, dumpSafe(toJson(g))});
          !r)
        return r;
    return {};
  });
}

Result<void> DirectoryPublisher::commit(const DirectoryDelta& d) {
  auto tx = db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_published(id, owner, seq, view) "
                          "VALUES (1, ?1, ?2, '')",
                          {owner_, d.to});
        !r)
      return r;
    for (const auto& ext : d.deletedUsers)
      if (auto r = db_.exec("DELETE FROM federation_published_users WHERE extension = ?1", {ext});
          !r)
        return r;
    for (const auto& number : d.deletedGroups)
      if (auto r = db_.exec("DELETE FROM federation_published_groups WHERE number = ?1", {number});
          !r)
        return r;
    for (const auto& u : d.users)
      if (auto r = db_.exec("INSERT OR REPLACE INTO federation_published_users(extension, body) "
                            "VALUES (?1, ?2)",
                            {u.extension, dumpSafe(toJson(u))});
          !r)
        return r;
    for (const auto& g : d.groups)
      if (auto r = db_.exec("INSERT OR REPLACE INTO federation_published_groups(number, body) "
                            "VALUES (?1, ?2)",
                            {g.number, dumpSafe(toJson(g))});
          !r)
        return r;
    return {};
  });
  if (!tx) return tx;
  for (const auto& ext : d.deletedUsers) users_.erase(ext);
  for (const auto& number : d.deletedGroups) groups_.erase(number);
  for (const auto& u : d.users) users_.insert_or_assign(u.extension, u);
  for (const auto& g : d.groups) groups_.insert_or_assign(g.number, g);
  seq_ = d.to;
  return {};
}

Result<std::optional<DirectoryDelta>> DirectoryPublisher::update(const pbx::Directory& dir) {
  DirectorySnapshot next = viewOf(dir, owner_, seq_ + 1);
  DirectorySnapshot now = snapshot();
  DirectoryDelta d;
  d.owner = owner_;
  diff(now.users, next.users, userKey, d.users, d.deletedUsers);
  diff(now.groups, next.groups, groupKey, d.groups, d.deletedGroups);
  if (d.users.empty() && d.groups.empty() && d.deletedUsers.empty() && d.deletedGroups.empty())
    return std::optional<DirectoryDelta>();
  if (next.users.size() > kMaxReplicaUsers || next.groups.size() > kMaxReplicaGroups)
    logger("federation")
        ->warn("shared directory exceeds what peers accept ({} users, {} groups)",
               next.users.size(), next.groups.size());
  d.from = seq_;
  d.to = next.seq;
  if (auto r = commit(d); !r) return r.error();
  return std::optional<DirectoryDelta>(std::move(d));
}

Result<std::optional<DirectoryDelta>>
DirectoryPublisher::update(const pbx::Directory& dir, const std::set<std::string>& users,
                           const std::set<std::string>& groups) {
  DirectoryDelta d;
  d.owner = owner_;
  for (const auto& ext : users) {
    std::optional<ReplicaUser> want;
    if (auto u = dir.userByExtension(ext); u && u->shared)
      want = ReplicaUser{u->extension, u->displayName, u->externalNumber, u->dnd, u->forward};
    auto have = users_.find(ext);
    if (!want) {
      if (have != users_.end()) d.deletedUsers.push_back(ext);
    } else if (have == users_.end() || !(have->second == *want)) {
      d.users.push_back(std::move(*want));
    }
  }
  for (const auto& number : groups) {
    std::optional<ReplicaGroup> want;
    if (auto g = dir.groupByNumber(number); g && g->shared) {
      want = ReplicaGroup{g->number, g->name, g->members};
      for (auto& m : want->members)
        if (m.owner.empty()) m.owner = owner_;
    }
    auto have = groups_.find(number);
    if (!want) {
      if (have != groups_.end()) d.deletedGroups.push_back(number);
    } else if (have == groups_.end() || !(have->second == *want)) {
      d.groups.push_back(std::move(*want));
    }
  }
  if (d.users.empty() && d.groups.empty() && d.deletedUsers.empty() && d.deletedGroups.empty())
    return std::optional<DirectoryDelta>();
  size_t usersAfter = users_.size() + d.users.size(); // at most; a warning only
  if (usersAfter > kMaxReplicaUsers && users_.size() <= kMaxReplicaUsers)
    logger("federation")->warn("shared directory exceeds what peers accept ({} users)", usersAfter);
  d.from = seq_;
  d.to = seq_ + 1;
  if (auto r = commit(d); !r) return r.error();
  return std::optional<DirectoryDelta>(std::move(d));
}

DirectorySnapshot DirectoryPublisher::snapshot() const {
  DirectorySnapshot s;
  s.owner = owner_;
  s.seq = seq_;
  s.users.reserve(users_.size());
  for (const auto& [ext, u] : users_) s.users.push_back(u);
  s.groups.reserve(groups_.size());
  for (const auto& [number, g] : groups_) s.groups.push_back(g);
  return s;
}

Result<void> DirectoryPublisher::reset(std::string localNodeId) {
  std::string owner = std::exchange(owner_, std::move(localNodeId));
  int64_t seq = std::exchange(seq_, 0);
  auto users = std::move(users_);
  auto groups = std::move(groups_);
  users_.clear();
  groups_.clear();
  if (auto r = persistAll(); !r) {
    owner_ = std::move(owner);
    seq_ = seq;
    users_ = std::move(users);
    groups_ = std::move(groups);
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
)SQL"},
          // One row per record: a delta writes its records, not the owner's whole replica.
          // federation_replicas.snapshot is '' from then on (a non-empty one is the old format,
          // moved into the rows at open).
          {"federation_replica", 2, "replica records per row", R"SQL(
CREATE TABLE federation_replica_users(
  owner TEXT NOT NULL,
  extension TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (owner, extension)
);
CREATE TABLE federation_replica_groups(
  owner TEXT NOT NULL,
  number TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (owner, number)
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
    bool oldFormat = false;
    if (owner && seq && text && text->empty()) {
      auto r = loadRows(*owner, *seq);
      if (r) s = std::move(*r);
    } else if (owner && seq && text) {
      auto parsed = snapshotFromJson(json::parse(*text, nullptr, false));
      if (parsed && parsed->owner == *owner && parsed->seq == *seq) s = std::move(*parsed);
      oldFormat = true;
    }
    if (!s) {
      // Forget it: the owner sends a snapshot when asked for seq 0.
      logger("federation")
          ->warn("dropping unreadable directory replica of {}", owner.value_or("?"));
      if (owner) (void)deleteRows(*owner);
      continue;
    }
    if (oldFormat) (void)persistAll(*s); // on failure: moved at the next open or snapshot
    index(*s);
    replicas_.emplace(s->owner, std::move(*s));
  }
  return {};
}

Result<DirectorySnapshot> DirectoryReplica::loadRows(const std::string& owner, int64_t seq) {
  DirectorySnapshot s;
  s.owner = owner;
  s.seq = seq;
  auto userRows = db_.query("SELECT body FROM federation_replica_users WHERE owner = ?1 "
                            "ORDER BY extension",
                            {owner});
  if (!userRows) return userRows.error();
  auto groupRows = db_.query("SELECT body FROM federation_replica_groups WHERE owner = ?1 "
                             "ORDER BY number",
                             {owner});
  if (!groupRows) return groupRows.error();
  for (const auto& row : *userRows) {
    auto text = store::asText(row[0]);
    if (!text) return invalid("users", "row not text");
    auto u = userFromJson(json::parse(*text, nullptr, false), "user");
    if (!u) return u.error();
    s.users.push_back(std::move(*u));
  }
  for (const auto& row : *groupRows) {
    auto text = store::asText(row[0]);
    if (!text) return invalid("groups", "row not text");
    auto g = groupFromJson(json::parse(*text, nullptr, false), "group");
    if (!g) return g.error();
    s.groups.push_back(std::move(*g));
  }
  // ORDER BY uses SQLite's binary collation, the same order as std::string's <.
  return s;
}

Result<void> DirectoryReplica::deleteRows(const std::string& owner) {
  return db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("DELETE FROM federation_replicas WHERE owner = ?1", {owner}); !r)
      return r;
    if (auto r = db_.exec("DELETE FROM federation_replica_users WHERE owner = ?1", {owner}); !r)
      return r;
    return db_.exec("DELETE FROM federation_replica_groups WHERE owner = ?1", {owner});
  });
}

Result<void> DirectoryReplica::persistAll(const DirectorySnapshot& s) {
  return db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_replicas(owner, seq, snapshot) "
                          "VALUES (?1, ?2, '')",
                          {s.owner, s.seq});
        !r)
      return r;
    if (auto r = db_.exec("DELETE FROM federation_replica_users WHERE owner = ?1", {s.owner}); !r)
      return r;
    if (auto r = db_.exec("DELETE FROM federation_replica_groups WHERE owner = ?1", {s.owner}); !r)
      return r;
    return putRows(s.owner, s.users, s.groups);
  });
}

Result<void> DirectoryReplica::putRows(const std::string& owner,
                                       const std::vector<ReplicaUser>& users,
                                       const std::vector<ReplicaGroup>& groups) {
  for (const auto& u : users)
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_replica_users(owner, extension, "
                          "body) VALUES (?1, ?2, ?3)",
                          {owner, u.extension, dumpSafe(toJson(u))});
        !r)
      return r;
  for (const auto& g : groups)
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_replica_groups(owner, number, "
                          "body) VALUES (?1, ?2, ?3)",
                          {owner, g.number, dumpSafe(toJson(g))});
        !r)
      return r;
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

Result<void> DirectoryReplica::replace(DirectorySnapshot s) {
  if (auto r = persistAll(s); !r) return r;
  std::string owner = s.owner;
  if (auto it = replicas_.find(owner); it != replicas_.end()) {
    unindex(it->second);
    replicas_.erase(it);
  }
  index(s);
  replicas_.emplace(owner, std::move(s));
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

// O(records in the delta × log(replica)) work and rows written; the sorted lists move their
// tail on an insert in the middle (a memmove, no copy of the records).
Result<bool> DirectoryReplica::applyDelta(const DirectoryDelta& d) {
  if (d.owner.empty()) return invalid("owner", "required");
  if (d.to <= d.from) return invalid("to", "must be greater than from");
  if (d.from != seqOf(d.owner)) return false;
  static const DirectorySnapshot kEmpty;
  auto it = replicas_.find(d.owner);
  const DirectorySnapshot& cur = it != replicas_.end() ? it->second : kEmpty;
  // Sizes after the delta (deletions first, then additions), checked before anything changes.
  std::set<std::string> goneUsers(d.deletedUsers.begin(), d.deletedUsers.end());
  std::set<std::string> goneGroups(d.deletedGroups.begin(), d.deletedGroups.end());
  size_t nUsers = cur.users.size(), nGroups = cur.groups.size();
  for (const auto& e : goneUsers)
    if (findSorted(cur.users, e, userKey)) --nUsers;
  for (const auto& n : goneGroups)
    if (findSorted(cur.groups, n, groupKey)) --nGroups;
  std::set<std::string> newUsers, newGroups;
  for (const auto& u : d.users)
    if ((!findSorted(cur.users, u.extension, userKey) || goneUsers.contains(u.extension)) &&
        newUsers.insert(u.extension).second)
      ++nUsers;
  for (const auto& g : d.groups)
    if ((!findSorted(cur.groups, g.number, groupKey) || goneGroups.contains(g.number)) &&
        newGroups.insert(g.number).second)
      ++nGroups;
  if (nUsers > kMaxReplicaUsers) return invalid("users", "too many");
  if (nGroups > kMaxReplicaGroups) return invalid("groups", "too many");

  auto tx = db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("INSERT OR REPLACE INTO federation_replicas(owner, seq, snapshot) "
                          "VALUES (?1, ?2, '')",
                          {d.owner, d.to});
        !r)
      return r;
    for (const auto& e : d.deletedUsers)
      if (auto r = db_.exec("DELETE FROM federation_replica_users WHERE owner = ?1 AND "
                            "extension = ?2",
                            {d.owner, e});
          !r)
        return r;
    for (const auto& n : d.deletedGroups)
      if (auto r = db_.exec("DELETE FROM federation_replica_groups WHERE owner = ?1 AND "
                            "number = ?2",
                            {d.owner, n});
          !r)
        return r;
    return putRows(d.owner, d.users, d.groups);
  });
  if (!tx) return tx.error();

  DirectorySnapshot& next = replicas_[d.owner];
  next.owner = d.owner;
  next.seq = d.to;
  auto dropUser = [&](const std::string& ext) {
    auto o = userOwners_.find(ext);
    if (o == userOwners_.end()) return;
    o->second.erase(d.owner);
    if (o->second.empty()) userOwners_.erase(o);
  };
  auto dropGroup = [&](const std::string& number) {
    auto o = groupOwners_.find(number);
    if (o == groupOwners_.end()) return;
    o->second.erase(d.owner);
    if (o->second.empty()) groupOwners_.erase(o);
  };
  for (const auto& e : d.deletedUsers) {
    eraseSorted(next.users, e, userKey);
    dropUser(e);
  }
  for (const auto& n : d.deletedGroups) {
    eraseSorted(next.groups, n, groupKey);
    dropGroup(n);
  }
  for (const auto& u : d.users) {
    userOwners_[u.extension].insert(d.owner);
    upsertSorted(next.users, u, userKey);
  }
  for (const auto& g : d.groups) {
    groupOwners_[g.number].insert(d.owner);
    upsertSorted(next.groups, g, groupKey);
  }
  return true;
}

Result<void> DirectoryReplica::removeOwner(const std::string& owner) {
  auto it = replicas_.find(owner);
  if (auto r = deleteRows(owner); !r) return r;
  if (it == replicas_.end()) return {};
  unindex(it->second);
  replicas_.erase(it);
  return {};
}

Result<void> DirectoryReplica::clear() {
  auto tx = db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("DELETE FROM federation_replicas"); !r) return r;
    if (auto r = db_.exec("DELETE FROM federation_replica_users"); !r) return r;
    return db_.exec("DELETE FROM federation_replica_groups");
  });
  if (!tx) return tx;
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

#include "pbx/directory/directory.h"

#include "base/log.h"
#include "sip/auth/digest.h"

#include <algorithm>
#include <cctype>

namespace verbund::pbx {

namespace {

std::string text(const store::Value& v) {
  return store::asText(v).value_or("");
}
int64_t num(const store::Value& v) {
  return store::asInt(v).value_or(0);
}

Error notFound(std::string_view what) {
  return Error{404, std::string(what) + ": not found"};
}

bool containsFolded(std::string_view hay, std::string_view needle) {
  auto lower = [](char c) { return char(std::tolower(uint8_t(c))); };
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [&](char a, char b) { return lower(a) == lower(b); });
  return it != hay.end();
}

constexpr const char* kUserColumns =
    "id, owner, extension, display_name, external_number, sip_user, ha1_md5, ha1_sha256, "
    "language, shared, version, dnd, forward_always, forward_busy, forward_no_answer, "
    "forward_no_answer_seconds, forward_unregistered";
constexpr size_t kUserColumnCount = 17;

// A forwarding target that is the user's own extension would only ring the user again.
Result<void> checkNotSelf(const User& u) {
  const std::pair<const char*, const std::string*> targets[] = {
      {"forward.always", &u.forward.always},
      {"forward.busy", &u.forward.busy},
      {"forward.noAnswer", &u.forward.noAnswer},
      {"forward.unregistered", &u.forward.unregistered}};
  for (const auto& [field, value] : targets)
    if (!value->empty() && *value == u.extension)
      return Error{400, std::string(field) + ": the user's own extension"};
  return {};
}

} // namespace

std::vector<store::Migration> Directory::migrations() {
  return {{"directory", 1, "users, groups, group members", R"SQL(
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  owner TEXT NOT NULL DEFAULT '',
  extension TEXT NOT NULL,
  display_name TEXT NOT NULL,
  external_number TEXT NOT NULL DEFAULT '',
  sip_user TEXT NOT NULL,
  ha1_md5 TEXT NOT NULL,
  ha1_sha256 TEXT NOT NULL,
  language TEXT NOT NULL DEFAULT 'de',
  shared INTEGER NOT NULL DEFAULT 1,
  version INTEGER NOT NULL DEFAULT 0,
  UNIQUE(owner, extension),
  UNIQUE(owner, sip_user));
CREATE TABLE groups(
  id INTEGER PRIMARY KEY,
  owner TEXT NOT NULL DEFAULT '',
  number TEXT NOT NULL,
  name TEXT NOT NULL,
  shared INTEGER NOT NULL DEFAULT 1,
  version INTEGER NOT NULL DEFAULT 0,
  UNIQUE(owner, number));
CREATE TABLE group_members(
  group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  member_owner TEXT NOT NULL DEFAULT '',
  extension TEXT NOT NULL,
  logged_in INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY(group_id, member_owner, extension));
CREATE INDEX group_members_member ON group_members(member_owner, extension);
CREATE TABLE directory_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO directory_state(key, value) VALUES ('version', 0);
)SQL"},
          {"directory", 2, "do-not-disturb and call forwarding per user", R"SQL(
ALTER TABLE users ADD COLUMN dnd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN forward_always TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN forward_busy TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN forward_no_answer TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN forward_no_answer_seconds INTEGER NOT NULL DEFAULT 20;
ALTER TABLE users ADD COLUMN forward_unregistered TEXT NOT NULL DEFAULT '';
)SQL"}};
}

Result<std::unique_ptr<Directory>> Directory::open(store::Database& db, std::string realm) {
  std::unique_ptr<Directory> d(new Directory(db, std::move(realm)));
  if (auto r = d->load(); !r) return r.error();
  return d;
}

Result<void> Directory::load() {
  auto state = db_.query("SELECT value FROM directory_state WHERE key = 'version'");
  if (!state) return state.error();
  if (!state->empty()) version_ = num(state->at(0)[0]);

  auto rows = db_.query(std::string("SELECT ") + kUserColumns + " FROM users");
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (row.size() < kUserColumnCount) continue;
    UserRecord r;
    r.user.id = num(row[0]);
    r.user.owner = text(row[1]);
    r.user.extension = text(row[2]);
    r.user.displayName = text(row[3]);
    r.user.externalNumber = text(row[4]);
    r.user.sipUser = text(row[5]);
    r.credentials.sipUser = r.user.sipUser;
    r.credentials.ha1Md5 = text(row[6]);
    r.credentials.ha1Sha256 = text(row[7]);
    r.user.language = text(row[8]);
    r.user.shared = num(row[9]) != 0;
    r.user.version = num(row[10]);
    r.user.dnd = num(row[11]) != 0;
    ForwardingInput f{text(row[12]), text(row[13]), text(row[14]), text(row[16]), num(row[15])};
    if (validateForwardingInput(f))
      applyForwarding(r.user.forward, f);
    else
      logger("directory")->warn("user row {}: invalid forwarding ignored", r.user.id);
    // Rows are untrusted: one that breaks the rules is skipped and logged, not served.
    if (r.user.extension.empty() || r.user.sipUser.empty() ||
        userByExtension_.contains(r.user.extension) || userBySipUser_.contains(r.user.sipUser)) {
      logger("directory")->warn("skipping inconsistent user row {}", r.user.id);
      continue;
    }
    version_ = std::max(version_, r.user.version);
    indexUser(r);
    users_.emplace(r.user.id, std::move(r));
  }

  auto grows = db_.query("SELECT id, owner, number, name, shared, version FROM groups");
  if (!grows) return grows.error();
  for (const auto& row : *grows) {
    if (row.size() < 6) continue;
    Group g;
    g.id = num(row[0]);
    g.owner = text(row[1]);
    g.number = text(row[2]);
    g.name = text(row[3]);
    g.shared = num(row[4]) != 0;
    g.version = num(row[5]);
    if (g.number.empty() || groupByNumber_.contains(g.number)) {
      logger("directory")->warn("skipping inconsistent group row {}", g.id);
      continue;
    }
    version_ = std::max(version_, g.version);
    groups_.emplace(g.id, std::move(g));
  }
  auto mrows = db_.query("SELECT group_id, member_owner, extension, logged_in FROM group_members "
                         "ORDER BY group_id, position");
  if (!mrows) return mrows.error();
  for (const auto& row : *mrows) {
    if (row.size() < 4) continue;
    auto it = groups_.find(num(row[0]));
    if (it == groups_.end()) continue;
    it->second.members.push_back(GroupMember{text(row[1]), text(row[2]), num(row[3]) != 0});
  }
  for (const auto& [id, g] : groups_) indexGroup(g);
  pending_ = {}; // loading is no change
  return {};
}

void Directory::indexUser(const UserRecord& r) {
  pending_.users.insert(r.user.extension);
  userByExtension_[r.user.extension] = r.user.id;
  userBySipUser_[r.user.sipUser] = r.user.id;
  if (r.user.dnd) dndExtensions_.insert(r.user.extension);
}
void Directory::unindexUser(const User& u) {
  pending_.users.insert(u.extension);
  userByExtension_.erase(u.extension);
  userBySipUser_.erase(u.sipUser);
  dndExtensions_.erase(u.extension);
}
void Directory::indexGroup(const Group& g) {
  pending_.groups.insert(g.number);
  groupByNumber_[g.number] = g.id;
}
void Directory::unindexGroup(const Group& g) {
  pending_.groups.insert(g.number);
  groupByNumber_.erase(g.number);
}

void Directory::notify() {
  lastChange_ = std::move(pending_);
  pending_ = {};
  for (const auto& l : listeners_) l();
  lastChange_ = {};
}

Result<int64_t> Directory::nextVersion() {
  int64_t v = version_ + 1;
  if (auto r = db_.exec("UPDATE directory_state SET value = ?1 WHERE key = 'version'", {v}); !r)
    return r.error();
  return v;
}

Result<void> Directory::checkNumberFree(std::string_view field, std::string_view number,
                                        int64_t exceptUser, int64_t exceptGroup) const {
  std::string key(number);
  if (auto it = userByExtension_.find(key);
      it != userByExtension_.end() && it->second != exceptUser)
    return Error{409, std::string(field) + ": already used by user '" +
                          users_.at(it->second).user.displayName + "'"};
  if (auto it = groupByNumber_.find(key); it != groupByNumber_.end() && it->second != exceptGroup)
    return Error{409, std::string(field) + ": already used by group '" +
                          groups_.at(it->second).name + "'"};
  return {};
}

Result<void> Directory::checkLocalMembers(const std::vector<GroupMember>& members) const {
  for (const auto& m : members)
    if (m.owner.empty() && !userByExtension_.contains(m.extension))
      return Error{400, "members: no user with extension " + m.extension + " on this node"};
  return {};
}

// ---- users ----

// The record a create would store (validated, hashed), before the checks against other users.
Result<Directory::UserRecord> Directory::buildNewUser(const UserInput& in) const {
  if (auto r = validateUserInput(in, true); !r) return r.error();
  UserRecord r;
  r.user.extension = *in.extension;
  r.user.displayName = *in.displayName;
  r.user.externalNumber = in.externalNumber.value_or("");
  r.user.sipUser = in.sipUser.value_or(*in.extension);
  r.user.language = in.language.value_or("de");
  r.user.shared = in.shared.value_or(true);
  r.user.dnd = in.dnd.value_or(false);
  applyForwarding(r.user.forward, in.forward);
  if (auto c = checkNotSelf(r.user); !c) return c.error();
  return r;
}

Result<void> Directory::hashCredentials(UserRecord& r, const std::string& password) const {
  auto md5 = sip::digestHa1(sip::DigestAlgorithm::Md5, r.user.sipUser, realm_, password);
  auto sha = sip::digestHa1(sip::DigestAlgorithm::Sha256, r.user.sipUser, realm_, password);
  if (!md5 || !sha) return Error{500, "sipPassword: digest hash unavailable"};
  r.credentials = DeviceCredentials{r.user.sipUser, *md5, *sha};
  return {};
}

Result<void> Directory::insertUser(UserRecord& r, int64_t version) {
  auto ins = db_.exec(
      "INSERT INTO users(owner, extension, display_name, external_number, sip_user, ha1_md5, "
      "ha1_sha256, language, shared, version, dnd, forward_always, forward_busy, "
      "forward_no_answer, forward_no_answer_seconds, forward_unregistered) "
      "VALUES ('',?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
      {r.user.extension, r.user.displayName, r.user.externalNumber, r.user.sipUser,
       r.credentials.ha1Md5, r.credentials.ha1Sha256, r.user.language, int64_t(r.user.shared),
       version, int64_t(r.user.dnd), r.user.forward.always, r.user.forward.busy,
       r.user.forward.noAnswer, int64_t(r.user.forward.noAnswerSeconds),
       r.user.forward.unregistered});
  if (!ins) return ins;
  r.user.id = db_.lastInsertId();
  r.user.version = version;
  return {};
}

void Directory::addIndexed(UserRecord r) {
  int64_t id = r.user.id;
  indexUser(r);
  users_.emplace(id, std::move(r));
}

Result<User> Directory::createUser(const UserInput& in) {
  auto built = buildNewUser(in);
  if (!built) return built.error();
  UserRecord& r = *built;
  if (auto c = checkNumberFree("extension", r.user.extension, 0, 0); !c) return c.error();
  if (userBySipUser_.contains(r.user.sipUser))
    return Error{409, "sipUser: already used by another user"};
  if (auto h = hashCredentials(r, *in.sipPassword); !h) return h.error();

  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    return insertUser(r, version);
  });
  if (!tx) return tx.error();
  version_ = version;
  User out = r.user;
  addIndexed(std::move(r));
  notify();
  return out;
}

namespace {
UserRowError rowError(size_t row, const Error& e) {
  // Messages start with the field name: "extension: digits only, ...".
  auto colon = e.message.find(": ");
  if (colon == std::string::npos) return UserRowError{row, "", e.message};
  return UserRowError{row, e.message.substr(0, colon), e.message.substr(colon + 2)};
}
} // namespace

Result<UserImport> Directory::importUsers(const std::vector<UserInput>& rows, bool dryRun) {
  UserImport out;
  std::vector<UserRecord> records;
  records.reserve(rows.size());
  // Numbers and SIP users already claimed by an earlier row: value -> row.
  std::unordered_map<std::string, size_t> extensionRow, sipUserRow;
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t row = i + 1;
    auto built = buildNewUser(rows[i]);
    if (!built) {
      out.errors.push_back(rowError(row, built.error()));
      // Its numbers still count as taken: a later row repeating them is named too.
      if (rows[i].extension) {
        extensionRow.emplace(*rows[i].extension, row);
        sipUserRow.emplace(rows[i].sipUser.value_or(*rows[i].extension), row);
      }
      continue;
    }
    UserRecord& r = *built;
    bool ok = true;
    if (auto c = checkNumberFree("extension", r.user.extension, 0, 0); !c) {
      out.errors.push_back(rowError(row, c.error()));
      ok = false;
    } else if (auto [it, fresh] = extensionRow.emplace(r.user.extension, row); !fresh) {
      out.errors.push_back(
          {row, "extension", "also in row " + std::to_string(it->second), it->second});
      ok = false;
    }
    if (userBySipUser_.contains(r.user.sipUser)) {
      out.errors.push_back({row, "sipUser", "already used by another user"});
      ok = false;
    } else if (auto [it, fresh] = sipUserRow.emplace(r.user.sipUser, row); !fresh) {
      out.errors.push_back(
          {row, "sipUser", "also in row " + std::to_string(it->second), it->second});
      ok = false;
    }
    if (ok && out.errors.empty()) records.push_back(std::move(r));
  }
  if (!out.errors.empty() || dryRun) {
    out.valid = out.errors.empty() ? rows.size() : 0;
    return out;
  }
  for (size_t i = 0; i < records.size(); ++i)
    if (auto h = hashCredentials(records[i], *rows[i].sipPassword); !h) return h.error();

  int64_t first = version_ + 1, last = version_ + int64_t(records.size());
  if (records.empty()) return out;
  auto tx = db_.transaction([&]() -> Result<void> {
    if (auto r = db_.exec("UPDATE directory_state SET value = ?1 WHERE key = 'version'", {last});
        !r)
      return r;
    for (size_t i = 0; i < records.size(); ++i)
      if (auto r = insertUser(records[i], first + int64_t(i)); !r) return r;
    return {};
  });
  if (!tx) return tx.error();
  version_ = last;
  out.valid = records.size();
  out.created.reserve(records.size());
  for (auto& r : records) {
    out.created.push_back(r.user);
    addIndexed(std::move(r));
  }
  notify(); // once for the whole import: one replication publish
  return out;
}

Result<User> Directory::updateUser(int64_t id, const UserInput& in) {
  auto it = users_.find(id);
  if (it == users_.end()) return notFound("user");
  if (auto r = validateUserInput(in, false); !r) return r.error();
  UserRecord next = it->second;
  const User& cur = it->second.user;
  if (in.extension) next.user.extension = *in.extension;
  if (in.displayName) next.user.displayName = *in.displayName;
  if (in.externalNumber) next.user.externalNumber = *in.externalNumber;
  if (in.sipUser) next.user.sipUser = *in.sipUser;
  if (in.language) next.user.language = *in.language;
  if (in.shared) next.user.shared = *in.shared;
  if (in.dnd) next.user.dnd = *in.dnd;
  applyForwarding(next.user.forward, in.forward);
  if (auto c = checkNotSelf(next.user); !c) return c.error();
  if (next.user.extension != cur.extension)
    if (auto c = checkNumberFree("extension", next.user.extension, id, 0); !c) return c.error();
  if (next.user.sipUser != cur.sipUser) {
    if (auto o = userBySipUser_.find(next.user.sipUser);
        o != userBySipUser_.end() && o->second != id)
      return Error{409, "sipUser: already used by another user"};
    if (!in.sipPassword)
      return Error{400, "sipPassword: required when sipUser changes (the digest covers it)"};
  }
  if (in.sipPassword) {
    auto md5 =
        sip::digestHa1(sip::DigestAlgorithm::Md5, next.user.sipUser, realm_, *in.sipPassword);
    auto sha =
        sip::digestHa1(sip::DigestAlgorithm::Sha256, next.user.sipUser, realm_, *in.sipPassword);
    if (!md5 || !sha) return Error{500, "sipPassword: digest hash unavailable"};
    next.credentials = DeviceCredentials{next.user.sipUser, *md5, *sha};
  }
  bool extensionChanged = next.user.extension != cur.extension;
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    const auto& f = next.user.forward;
    auto up = db_.exec("UPDATE users SET extension=?1, display_name=?2, external_number=?3, "
                       "sip_user=?4, ha1_md5=?5, ha1_sha256=?6, language=?7, shared=?8, "
                       "version=?9, dnd=?11, forward_always=?12, forward_busy=?13, "
                       "forward_no_answer=?14, forward_no_answer_seconds=?15, "
                       "forward_unregistered=?16 WHERE id=?10",
                       {next.user.extension, next.user.displayName, next.user.externalNumber,
                        next.user.sipUser, next.credentials.ha1Md5, next.credentials.ha1Sha256,
                        next.user.language, int64_t(next.user.shared), version, id,
                        int64_t(next.user.dnd), f.always, f.busy, f.noAnswer,
                        int64_t(f.noAnswerSeconds), f.unregistered});
    if (!up) return up;
    // Local group memberships follow the user to the new extension.
    if (extensionChanged)
      return db_.exec("UPDATE group_members SET extension=?1 WHERE member_owner='' AND "
                      "extension=?2",
                      {next.user.extension, cur.extension});
    return {};
  });
  if (!tx) return tx.error();
  version_ = version;
  next.user.version = version;
  if (extensionChanged)
    for (auto& [gid, g] : groups_)
      for (auto& m : g.members)
        if (m.owner.empty() && m.extension == cur.extension) {
          m.extension = next.user.extension;
          pending_.groups.insert(g.number);
        }
  unindexUser(cur);
  it->second = std::move(next);
  indexUser(it->second);
  User out = it->second.user;
  notify();
  return out;
}

Result<void> Directory::deleteUser(int64_t id) {
  auto it = users_.find(id);
  if (it == users_.end()) return notFound("user");
  const std::string extension = it->second.user.extension;
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    if (auto d = db_.exec("DELETE FROM users WHERE id=?1", {id}); !d) return d;
    return db_.exec("DELETE FROM group_members WHERE member_owner='' AND extension=?1",
                    {extension});
  });
  if (!tx) return tx.error();
  version_ = version;
  for (auto& [gid, g] : groups_)
    if (std::erase_if(g.members, [&](const GroupMember& m) {
          return m.owner.empty() && m.extension == extension;
        }) > 0)
      pending_.groups.insert(g.number);
  unindexUser(it->second.user);
  users_.erase(it);
  notify();
  return {};
}

std::optional<User> Directory::user(int64_t id) const {
  auto it = users_.find(id);
  if (it == users_.end()) return std::nullopt;
  return it->second.user;
}

std::optional<User> Directory::userByExtension(std::string_view extension) const {
  auto it = userByExtension_.find(extension);
  if (it == userByExtension_.end()) return std::nullopt;
  return users_.at(it->second).user;
}

std::optional<User> Directory::userBySipUser(std::string_view sipUser) const {
  auto it = userBySipUser_.find(sipUser);
  if (it == userBySipUser_.end()) return std::nullopt;
  return users_.at(it->second).user;
}

const DeviceCredentials* Directory::credentials(std::string_view sipUser) const {
  auto it = userBySipUser_.find(sipUser);
  if (it == userBySipUser_.end()) return nullptr;
  return &users_.at(it->second).credentials;
}

std::vector<User> Directory::users() const {
  return searchUsers("");
}

std::vector<User> Directory::searchUsers(std::string_view q) const {
  std::vector<User> out;
  for (const auto& [id, r] : users_)
    if (q.empty() || containsFolded(r.user.extension, q) || containsFolded(r.user.displayName, q) ||
        containsFolded(r.user.sipUser, q))
      out.push_back(r.user);
  std::sort(out.begin(), out.end(),
            [](const User& a, const User& b) { return a.extension < b.extension; });
  return out;
}

// ---- groups ----

Result<void> Directory::writeMembers(int64_t groupId, const std::vector<GroupMember>& members) {
  if (auto d = db_.exec("DELETE FROM group_members WHERE group_id=?1", {groupId}); !d) return d;
  int64_t pos = 0;
  for (const auto& m : members) {
    auto ins = db_.exec("INSERT INTO group_members(group_id, position, member_owner, extension, "
                        "logged_in) VALUES (?1,?2,?3,?4,?5)",
                        {groupId, pos++, m.owner, m.extension, int64_t(m.loggedIn)});
    if (!ins) return ins;
  }
  return {};
}

Result<Group> Directory::createGroup(const GroupInput& in) {
  if (auto r = validateGroupInput(in, true); !r) return r.error();
  Group g;
  g.number = *in.number;
  g.name = *in.name;
  g.shared = in.shared.value_or(true);
  if (in.members) g.members = *in.members;
  if (auto c = checkNumberFree("number", g.number, 0, 0); !c) return c.error();
  if (auto c = checkLocalMembers(g.members); !c) return c.error();
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    auto ins =
        db_.exec("INSERT INTO groups(owner, number, name, shared, version) VALUES ('',?1,?2,?3,?4)",
                 {g.number, g.name, int64_t(g.shared), version});
    if (!ins) return ins;
    g.id = db_.lastInsertId();
    return writeMembers(g.id, g.members);
  });
  if (!tx) return tx.error();
  version_ = version;
  g.version = version;
  indexGroup(g);
  groups_.emplace(g.id, g);
  notify();
  return g;
}

Result<Group> Directory::updateGroup(int64_t id, const GroupInput& in) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return notFound("group");
  if (auto r = validateGroupInput(in, false); !r) return r.error();
  Group next = it->second;
  if (in.number) next.number = *in.number;
  if (in.name) next.name = *in.name;
  if (in.shared) next.shared = *in.shared;
  if (in.members) next.members = *in.members;
  if (next.number != it->second.number)
    if (auto c = checkNumberFree("number", next.number, 0, id); !c) return c.error();
  if (in.members)
    if (auto c = checkLocalMembers(next.members); !c) return c.error();
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    auto up = db_.exec("UPDATE groups SET number=?1, name=?2, shared=?3, version=?4 WHERE id=?5",
                       {next.number, next.name, int64_t(next.shared), version, id});
    if (!up) return up;
    if (in.members) return writeMembers(id, next.members);
    return {};
  });
  if (!tx) return tx.error();
  version_ = version;
  next.version = version;
  unindexGroup(it->second);
  it->second = std::move(next);
  indexGroup(it->second);
  Group out = it->second;
  notify();
  return out;
}

Result<void> Directory::deleteGroup(int64_t id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return notFound("group");
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    if (auto d = db_.exec("DELETE FROM group_members WHERE group_id=?1", {id}); !d) return d;
    return db_.exec("DELETE FROM groups WHERE id=?1", {id});
  });
  if (!tx) return tx.error();
  version_ = version;
  unindexGroup(it->second);
  groups_.erase(it);
  notify();
  return {};
}

Result<Group> Directory::setMemberLoggedIn(int64_t groupId, const std::string& owner,
                                           const std::string& extension, bool loggedIn) {
  auto it = groups_.find(groupId);
  if (it == groups_.end()) return notFound("group");
  auto m =
      std::find_if(it->second.members.begin(), it->second.members.end(), [&](const GroupMember& x) {
        return x.owner == owner && x.extension == extension;
      });
  if (m == it->second.members.end()) return Error{404, "member: not in this group"};
  if (m->loggedIn == loggedIn) return it->second;
  int64_t version = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto v = nextVersion();
    if (!v) return v.error();
    version = *v;
    auto up = db_.exec("UPDATE group_members SET logged_in=?1 WHERE group_id=?2 AND "
                       "member_owner=?3 AND extension=?4",
                       {int64_t(loggedIn), groupId, owner, extension});
    if (!up) return up;
    return db_.exec("UPDATE groups SET version=?1 WHERE id=?2", {version, groupId});
  });
  if (!tx) return tx.error();
  version_ = version;
  m->loggedIn = loggedIn;
  it->second.version = version;
  pending_.groups.insert(it->second.number);
  Group out = it->second;
  notify();
  return out;
}

std::optional<Group> Directory::group(int64_t id) const {
  auto it = groups_.find(id);
  if (it == groups_.end()) return std::nullopt;
  return it->second;
}

std::optional<Group> Directory::groupByNumber(std::string_view number) const {
  auto it = groupByNumber_.find(number);
  if (it == groupByNumber_.end()) return std::nullopt;
  return groups_.at(it->second);
}

std::vector<Group> Directory::groups() const {
  std::vector<Group> out;
  out.reserve(groups_.size());
  for (const auto& [id, g] : groups_) out.push_back(g);
  std::sort(out.begin(), out.end(),
            [](const Group& a, const Group& b) { return a.number < b.number; });
  return out;
}

} // namespace verbund::pbx

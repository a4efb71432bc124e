#include "federation/replication/directory_replica.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace verbund::federation {
namespace {

using json = nlohmann::json;

std::vector<store::Migration> allMigrations() {
  auto m = pbx::Directory::migrations();
  for (auto& x : DirectoryPublisher::migrations()) m.push_back(x);
  for (auto& x : DirectoryReplica::migrations()) m.push_back(x);
  return m;
}

struct Node {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<pbx::Directory> dir;
  std::unique_ptr<DirectoryPublisher> pub;
  std::unique_ptr<DirectoryReplica> replica;
  explicit Node(const std::string& path = ":memory:", const std::string& id = "node-a") {
    auto d = store::Database::open(path, allMigrations());
    EXPECT_TRUE(d.ok()) << d.error().message;
    db = std::move(d.value());
    auto x = pbx::Directory::open(*db, "a.example");
    EXPECT_TRUE(x.ok()) << x.error().message;
    dir = std::move(x.value());
    auto p = DirectoryPublisher::open(*db, id);
    EXPECT_TRUE(p.ok()) << p.error().message;
    pub = std::move(p.value());
    auto r = DirectoryReplica::open(*db);
    EXPECT_TRUE(r.ok()) << r.error().message;
    replica = std::move(r.value());
  }
  int64_t addUser(const std::string& ext, const std::string& name, bool shared = true,
                  const std::string& number = "") {
    pbx::UserInput in;
    in.extension = ext;
    in.displayName = name;
    in.sipPassword = "secret-pass";
    in.shared = shared;
    if (!number.empty()) in.externalNumber = number;
    auto u = dir->createUser(in);
    EXPECT_TRUE(u.ok()) << u.error().message;
    return u.ok() ? u->id : 0;
  }
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("verbund-replica-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

DirectorySnapshot snapshot(const std::string& owner, int64_t seq,
                           std::vector<std::pair<std::string, std::string>> users,
                           std::vector<std::pair<std::string, std::string>> groups = {}) {
  DirectorySnapshot s;
  s.owner = owner;
  s.seq = seq;
  for (auto& [ext, name] : users) s.users.push_back({ext, name, ""});
  for (auto& [num, name] : groups) s.groups.push_back({num, name, {{owner, "201", true}}});
  return s;
}

// ---- Publisher ----

TEST(DirectoryPublisher, SeqOnlyOnSharedChanges) {
  Node n;
  EXPECT_EQ(n.pub->seq(), 0);
  auto none = n.pub->update(*n.dir);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  n.addUser("201", "Alice", true, "+4930123456");
  auto d1 = n.pub->update(*n.dir);
  ASSERT_TRUE(d1.ok()) << d1.error().message;
  ASSERT_TRUE(d1->has_value());
  EXPECT_EQ((*d1)->owner, "node-a");
  EXPECT_EQ((*d1)->from, 0);
  EXPECT_EQ((*d1)->to, 1);
  ASSERT_EQ((*d1)->users.size(), 1u);
  EXPECT_EQ((*d1)->users[0], (ReplicaUser{"201", "Alice", "+4930123456"}));
  EXPECT_EQ(n.pub->seq(), 1);

  // An unshared user: nothing to publish.
  auto hidden = n.addUser("202", "Hidden", false);
  auto d2 = n.pub->update(*n.dir);
  ASSERT_TRUE(d2.ok());
  EXPECT_FALSE(d2->has_value());
  EXPECT_EQ(n.pub->seq(), 1);
  pbx::UserInput rename;
  rename.displayName = "Still Hidden";
  ASSERT_TRUE(n.dir->updateUser(hidden, rename).ok());
  EXPECT_FALSE(n.pub->update(*n.dir)->has_value());

  // Sharing it publishes it.
  pbx::UserInput share;
  share.shared = true;
  ASSERT_TRUE(n.dir->updateUser(hidden, share).ok());
  auto d3 = n.pub->update(*n.dir);
  ASSERT_TRUE(d3.ok() && d3->has_value());
  EXPECT_EQ((*d3)->from, 1);
  EXPECT_EQ((*d3)->to, 2);
  ASSERT_EQ((*d3)->users.size(), 1u);
  EXPECT_EQ((*d3)->users[0].extension, "202");

  // Unsharing again reads as a deletion.
  pbx::UserInput unshare;
  unshare.shared = false;
  ASSERT_TRUE(n.dir->updateUser(hidden, unshare).ok());
  auto d4 = n.pub->update(*n.dir);
  ASSERT_TRUE(d4.ok() && d4->has_value());
  EXPECT_TRUE((*d4)->users.empty());
  EXPECT_EQ((*d4)->deletedUsers, std::vector<std::string>{"202"});
  EXPECT_EQ(n.pub->seq(), 3);
}

TEST(DirectoryPublisher, GroupsMembersAndDeletes) {
  Node n;
  auto alice = n.addUser("201", "Alice");
  n.addUser("202", "Bob");
  pbx::GroupInput g;
  g.number = "600";
  g.name = "Sales";
  g.members = std::vector<pbx::GroupMember>{{"", "201", true}, {"node-b", "301", false}};
  auto group = n.dir->createGroup(g);
  ASSERT_TRUE(group.ok()) << group.error().message;
  pbx::GroupInput hiddenGroup;
  hiddenGroup.number = "601";
  hiddenGroup.name = "Hidden";
  hiddenGroup.shared = false;
  ASSERT_TRUE(n.dir->createGroup(hiddenGroup).ok());

  auto d = n.pub->update(*n.dir);
  ASSERT_TRUE(d.ok() && d->has_value());
  ASSERT_EQ((*d)->groups.size(), 1u);
  const auto& rg = (*d)->groups[0];
  EXPECT_EQ(rg.number, "600");
  ASSERT_EQ(rg.members.size(), 2u);
  EXPECT_EQ(rg.members[0], (pbx::GroupMember{"node-a", "201", true})); // "" became our id
  EXPECT_EQ(rg.members[1], (pbx::GroupMember{"node-b", "301", false}));

  auto snap = n.pub->snapshot();
  EXPECT_EQ(snap.seq, 1);
  EXPECT_EQ(snap.users.size(), 2u);
  EXPECT_EQ(snap.groups.size(), 1u);

  // Deleting a user also changes the group it was in.
  ASSERT_TRUE(n.dir->deleteUser(alice).ok());
  auto d2 = n.pub->update(*n.dir);
  ASSERT_TRUE(d2.ok() && d2->has_value());
  EXPECT_EQ((*d2)->deletedUsers, std::vector<std::string>{"201"});
  ASSERT_EQ((*d2)->groups.size(), 1u);
  EXPECT_EQ((*d2)->groups[0].members.size(), 1u);

  ASSERT_TRUE(n.dir->deleteGroup(group->id).ok());
  auto d3 = n.pub->update(*n.dir);
  ASSERT_TRUE(d3.ok() && d3->has_value());
  EXPECT_EQ((*d3)->deletedGroups, std::vector<std::string>{"600"});
  EXPECT_EQ((*d3)->to, 3);
}

TEST(DirectoryPublisher, PersistsSeqAndViewAcrossReopen) {
  TempDir tmp;
  auto path = (tmp.path / "node.db").string();
  {
    Node n(path);
    n.addUser("201", "Alice");
    ASSERT_TRUE(n.pub->update(*n.dir).ok());
    n.addUser("202", "Bob");
    ASSERT_TRUE(n.pub->update(*n.dir).ok());
    EXPECT_EQ(n.pub->seq(), 2);
  }
  {
    Node n(path);
    EXPECT_EQ(n.pub->seq(), 2);
    EXPECT_EQ(n.pub->snapshot().users.size(), 2u);
    // Nothing changed while down: no delta.
    auto d = n.pub->update(*n.dir);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->has_value());
    n.addUser("203", "Carol");
    auto d2 = n.pub->update(*n.dir);
    ASSERT_TRUE(d2.ok() && d2->has_value());
    EXPECT_EQ((*d2)->from, 2);
    EXPECT_EQ((*d2)->users.size(), 1u);
  }
  {
    // Another identity: a new sequence.
    Node n(path, "node-new");
    EXPECT_EQ(n.pub->seq(), 0);
    EXPECT_EQ(n.pub->snapshot().owner, "node-new");
    auto d = n.pub->update(*n.dir);
    ASSERT_TRUE(d.ok() && d->has_value());
    EXPECT_EQ((*d)->from, 0);
    EXPECT_EQ((*d)->users.size(), 3u);
  }
}

TEST(DirectoryPublisher, DamagedViewForcesGap) {
  Node n;
  n.addUser("201", "Alice");
  ASSERT_TRUE(n.pub->update(*n.dir).ok());
  ASSERT_TRUE(n.db->exec("UPDATE federation_published SET view = 'garbage'").ok());
  auto p = DirectoryPublisher::open(*n.db, "node-a");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->seq(), 2);
  auto d = (*p)->update(*n.dir);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->from, 2); // a replica at seq 1 sees a gap
  DirectoryReplica& r = *n.replica;
  ASSERT_TRUE(r.applySnapshot(snapshot("node-a", 1, {{"201", "Alice"}})).ok());
  EXPECT_FALSE(*r.applyDelta(**d));
}

// The per-change publish (the records the directory names in lastChange()) keeps the same view
// as a full rebuild, through every kind of change, with one delta per change in sequence, and
// writes only the rows of the records changed.
TEST(DirectoryPublisher, PerChangeUpdateMatchesFullRebuild) {
  Node n;
  std::vector<DirectoryDelta> deltas;
  n.dir->onChange([&] {
    const auto& c = n.dir->lastChange();
    auto d = n.pub->update(*n.dir, c.users, c.groups);
    ASSERT_TRUE(d.ok()) << d.error().message;
    if (*d) deltas.push_back(**d);
  });
  auto alice = n.addUser("201", "Alice");
  auto bob = n.addUser("202", "Bob");
  n.addUser("203", "Hidden", false);
  pbx::GroupInput g;
  g.number = "600";
  g.name = "Sales";
  g.members = std::vector<pbx::GroupMember>{{"", "201", true}, {"", "202", true}};
  auto group = n.dir->createGroup(g);
  ASSERT_TRUE(group.ok());
  pbx::UserInput move;
  move.extension = "211"; // the group's member follows: the group changes too
  ASSERT_TRUE(n.dir->updateUser(alice, move).ok());
  ASSERT_EQ(deltas.size(), 4u); // 203 is not shared: no delta
  EXPECT_EQ(deltas.back().deletedUsers, std::vector<std::string>{"201"});
  ASSERT_EQ(deltas.back().users.size(), 1u);
  EXPECT_EQ(deltas.back().users[0].extension, "211");
  ASSERT_EQ(deltas.back().groups.size(), 1u);
  EXPECT_EQ(deltas.back().groups[0].members[0].extension, "211");
  ASSERT_TRUE(n.dir->setMemberLoggedIn(group->id, "", "202", false).ok());
  EXPECT_FALSE(deltas.back().groups.at(0).members.at(1).loggedIn);
  pbx::UserInput dnd;
  dnd.dnd = true;
  ASSERT_TRUE(n.dir->updateUser(bob, dnd).ok());
  EXPECT_TRUE(deltas.back().users.at(0).dnd);
  pbx::UserInput hide;
  hide.shared = false;
  ASSERT_TRUE(n.dir->updateUser(bob, hide).ok());
  EXPECT_EQ(deltas.back().deletedUsers, std::vector<std::string>{"202"});
  ASSERT_TRUE(n.dir->deleteUser(alice).ok()); // leaves the group
  EXPECT_EQ(deltas.back().groups.at(0).members.size(), 1u);
  std::vector<pbx::UserInput> rows(2);
  rows[0].extension = "301", rows[0].displayName = "Imp 1", rows[0].sipPassword = "secret-pass";
  rows[1].extension = "302", rows[1].displayName = "Imp 2", rows[1].sipPassword = "secret-pass";
  ASSERT_TRUE(n.dir->importUsers(rows, false).ok());
  EXPECT_EQ(deltas.back().users.size(), 2u); // one import, one delta
  ASSERT_TRUE(n.dir->deleteGroup(group->id).ok());
  EXPECT_EQ(deltas.back().deletedGroups, std::vector<std::string>{"600"});
  for (size_t i = 0; i < deltas.size(); ++i) {
    EXPECT_EQ(deltas[i].from, int64_t(i));
    EXPECT_EQ(deltas[i].to, int64_t(i + 1));
  }

  // A full rebuild from the directory finds nothing to publish, and a replica that applied
  // every delta holds the publisher's view.
  auto full = n.pub->update(*n.dir);
  ASSERT_TRUE(full.ok());
  EXPECT_FALSE(full->has_value());
  Node b(":memory:", "node-b");
  for (const auto& d : deltas) ASSERT_TRUE(*b.replica->applyDelta(d));
  auto snap = n.pub->snapshot();
  auto users = b.replica->users("node-a");
  ASSERT_EQ(users.size(), snap.users.size());
  for (size_t i = 0; i < users.size(); ++i) EXPECT_EQ(users[i].user, snap.users[i]);
  // Only the records' rows are stored, and they load back.
  auto rows2 = n.db->query("SELECT extension FROM federation_published_users ORDER BY extension");
  ASSERT_TRUE(rows2.ok());
  ASSERT_EQ(rows2->size(), 2u);
  EXPECT_EQ(*store::asText((*rows2)[0][0]), "301");
  auto p = DirectoryPublisher::open(*n.db, "node-a");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->seq(), int64_t(deltas.size()));
  EXPECT_EQ((*p)->snapshot().users, snap.users);
}

// A view stored by an older version (one JSON row) moves into the rows at open, same seq.
TEST(DirectoryPublisher, OldFormatViewMovesIntoRows) {
  Node n;
  auto old = snapshot("node-a", 7, {{"201", "Alice"}, {"202", "Bob"}});
  ASSERT_TRUE(n.db->exec("INSERT OR REPLACE INTO federation_published(id, owner, seq, view) "
                         "VALUES (1, 'node-a', 7, ?1)",
                         {toJson(old).dump()})
                  .ok());
  auto p = DirectoryPublisher::open(*n.db, "node-a");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->seq(), 7);
  EXPECT_EQ((*p)->snapshot().users, old.users);
  auto rows = n.db->query("SELECT view FROM federation_published");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*store::asText((*rows)[0][0]), "");
  auto again = DirectoryPublisher::open(*n.db, "node-a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->seq(), 7);
  EXPECT_EQ((*again)->snapshot().users, old.users);
}

TEST(DirectoryPublisher, DamagedRowForcesGap) {
  Node n;
  n.addUser("201", "Alice");
  ASSERT_TRUE(n.pub->update(*n.dir).ok());
  ASSERT_TRUE(n.db->exec("UPDATE federation_published_users SET body = '{'").ok());
  auto p = DirectoryPublisher::open(*n.db, "node-a");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->seq(), 2);
  auto d = (*p)->update(*n.dir);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->from, 2);
}

TEST(DirectoryPublisher, ResetStartsOver) {
  Node n;
  n.addUser("201", "Alice");
  ASSERT_TRUE(n.pub->update(*n.dir).ok());
  ASSERT_TRUE(n.pub->reset("node-z").ok());
  EXPECT_EQ(n.pub->seq(), 0);
  EXPECT_TRUE(n.pub->snapshot().users.empty());
  auto d = n.pub->update(*n.dir);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->owner, "node-z");
  EXPECT_EQ((*d)->to, 1);
}

// ---- Replica ----

TEST(DirectoryReplica, PublisherToReplicaEndToEnd) {
  Node a, b;
  a.addUser("201", "Alice");
  auto bob = a.addUser("202", "Bob");
  auto d1 = a.pub->update(*a.dir);
  ASSERT_TRUE(d1.ok() && d1->has_value());
  // Through JSON, as on the wire.
  auto wire1 = deltaFromJson(json::parse(toJson(**d1).dump()));
  ASSERT_TRUE(wire1.ok()) << wire1.error().message;
  EXPECT_TRUE(*b.replica->applyDelta(*wire1));
  EXPECT_EQ(b.replica->seqOf("node-a"), 1);
  EXPECT_EQ(b.replica->users("node-a").size(), 2u);

  ASSERT_TRUE(a.dir->deleteUser(bob).ok());
  auto d2 = a.pub->update(*a.dir);
  ASSERT_TRUE(d2.ok() && d2->has_value());
  EXPECT_TRUE(*b.replica->applyDelta(**d2));
  EXPECT_TRUE(b.replica->usersByExtension("202").empty());
  ASSERT_EQ(b.replica->usersByExtension("201").size(), 1u);

  // The replica equals the publisher's snapshot.
  auto snap = a.pub->snapshot();
  auto users = b.replica->users("node-a");
  ASSERT_EQ(users.size(), snap.users.size());
  for (size_t i = 0; i < users.size(); ++i) EXPECT_EQ(users[i].user, snap.users[i]);
}

TEST(DirectoryReplica, FeaturesTravelAndOldPeersStayCompatible) {
  Node a, b;
  auto id = a.addUser("201", "Alice");
  pbx::UserInput ch;
  ch.dnd = true;
  ch.forward = pbx::ForwardingInput{"", "202", "+4930123456", "", 30};
  ASSERT_TRUE(a.dir->updateUser(id, ch).ok());
  auto d1 = a.pub->update(*a.dir);
  ASSERT_TRUE(d1.ok() && d1->has_value());
  auto wire = deltaFromJson(json::parse(toJson(**d1).dump()));
  ASSERT_TRUE(wire.ok()) << wire.error().message;
  ASSERT_TRUE(*b.replica->applyDelta(*wire));
  auto r = b.replica->user("node-a", "201");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->user.dnd);
  EXPECT_EQ(r->user.forward, (pbx::Forwarding{"", "202", "+4930123456", "", 30}));

  // A DND change alone is a change to publish.
  pbx::UserInput off;
  off.dnd = false;
  ASSERT_TRUE(a.dir->updateUser(id, off).ok());
  auto d2 = a.pub->update(*a.dir);
  ASSERT_TRUE(d2.ok() && d2->has_value());
  ASSERT_EQ((*d2)->users.size(), 1u);
  EXPECT_FALSE((*d2)->users[0].dnd);

  // An old peer's user (no dnd, no forward) is off; unknown fields are ignored.
  auto old = snapshotFromJson(json::parse(R"({"owner":"node-c","seq":1,"users":[
      {"extension":"301","displayName":"Carol","externalNumber":"","future":{"x":1}}]})"));
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_FALSE(old->users[0].dnd);
  EXPECT_EQ(old->users[0].forward, pbx::Forwarding{});
  auto partial = snapshotFromJson(json::parse(R"({"owner":"node-c","seq":1,"users":[
      {"extension":"301","displayName":"Carol","forward":{"busy":"302","later":""}}]})"));
  ASSERT_TRUE(partial.ok()) << partial.error().message;
  EXPECT_EQ(partial->users[0].forward.busy, "302");
  EXPECT_EQ(partial->users[0].forward.noAnswerSeconds, 20);

  // Wrong values name their path.
  for (const char* bad : {R"({"dnd":"yes"})", R"({"forward":{"busy":"abc"}})",
                          R"({"forward":{"noAnswerSeconds":3}})", R"({"forward":"202"})"}) {
    json u = json::parse(R"({"extension":"301","displayName":"Carol"})");
    u.update(json::parse(bad));
    auto s = snapshotFromJson(json{{"owner", "node-c"}, {"seq", 1}, {"users", json::array({u})}});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().message.rfind("users[0].", 0), 0u) << s.error().message;
  }
}

TEST(DirectoryReplica, GapReturnsFalseAndChangesNothing) {
  Node n;
  ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-b", 5, {{"301", "Xaver"}})).ok());
  DirectoryDelta gap;
  gap.owner = "node-b";
  gap.from = 6;
  gap.to = 7;
  gap.deletedUsers = {"301"};
  auto r = n.replica->applyDelta(gap);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(n.replica->seqOf("node-b"), 5);
  EXPECT_EQ(n.replica->usersByExtension("301").size(), 1u);

  DirectoryDelta stale = gap;
  stale.from = 4;
  stale.to = 5;
  EXPECT_FALSE(*n.replica->applyDelta(stale));

  // Unknown owner: only a delta from 0 applies.
  DirectoryDelta fresh;
  fresh.owner = "node-c";
  fresh.from = 3;
  fresh.to = 4;
  EXPECT_FALSE(*n.replica->applyDelta(fresh));
  EXPECT_EQ(n.replica->seqOf("node-c"), 0);
  fresh.from = 0;
  fresh.to = 1;
  fresh.users = {{"401", "Yvonne", ""}};
  EXPECT_TRUE(*n.replica->applyDelta(fresh));
  EXPECT_EQ(n.replica->seqOf("node-c"), 1);

  DirectoryDelta backwards = fresh;
  backwards.from = 1;
  backwards.to = 1;
  EXPECT_FALSE(n.replica->applyDelta(backwards).ok());
}

TEST(DirectoryReplica, SnapshotReplacesAndDeltaUpdates) {
  Node n;
  ASSERT_TRUE(n.replica
                  ->applySnapshot(snapshot("node-b", 3, {{"301", "Xaver"}, {"302", "Yuri"}},
                                           {{"700", "Support"}}))
                  .ok());
  EXPECT_EQ(n.replica->groupsByNumber("700").size(), 1u);
  ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-b", 9, {{"303", "Zoe"}})).ok());
  EXPECT_EQ(n.replica->seqOf("node-b"), 9);
  EXPECT_TRUE(n.replica->usersByExtension("301").empty());
  EXPECT_TRUE(n.replica->groupsByNumber("700").empty());
  ASSERT_EQ(n.replica->users("node-b").size(), 1u);

  DirectoryDelta d;
  d.owner = "node-b";
  d.from = 9;
  d.to = 10;
  d.users = {{"303", "Zoe Renamed", "+4940123456"}, {"304", "Anna", ""}};
  d.groups = {{"701", "Night", {{"node-a", "201", true}, {"node-b", "303", false}}}};
  ASSERT_TRUE(*n.replica->applyDelta(d));
  auto zoe = n.replica->user("node-b", "303");
  ASSERT_TRUE(zoe.has_value());
  EXPECT_EQ(zoe->user.displayName, "Zoe Renamed");
  EXPECT_EQ(zoe->user.externalNumber, "+4940123456");
  EXPECT_EQ(n.replica->groupsWithMember("node-a", "201").size(), 1u);
  EXPECT_EQ(n.replica->groupsWithMember("node-b", "303").size(), 1u);
  EXPECT_TRUE(n.replica->groupsWithMember("node-b", "304").empty());
  EXPECT_TRUE(n.replica->group("node-b", "701").has_value());
  EXPECT_EQ(n.replica->allUsers().size(), 2u);
  EXPECT_EQ(n.replica->allGroups().size(), 1u);

  ASSERT_TRUE(n.replica->removeOwner("node-b").ok());
  EXPECT_EQ(n.replica->seqOf("node-b"), 0);
  EXPECT_TRUE(n.replica->usersByExtension("303").empty());
  EXPECT_TRUE(n.replica->owners().empty());
}

TEST(DirectoryReplica, PersistsPerOwnerAcrossReopen) {
  TempDir tmp;
  auto path = (tmp.path / "node.db").string();
  {
    Node n(path);
    ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-b", 3, {{"301", "Xaver"}})).ok());
    ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-c", 7, {{"401", "Yvonne"}})).ok());
    DirectoryDelta d;
    d.owner = "node-b";
    d.from = 3;
    d.to = 4;
    d.users = {{"302", "Walter", ""}};
    ASSERT_TRUE(*n.replica->applyDelta(d));
  }
  {
    Node n(path);
    EXPECT_EQ(n.replica->owners(), (std::vector<std::string>{"node-b", "node-c"}));
    EXPECT_EQ(n.replica->seqOf("node-b"), 4);
    EXPECT_EQ(n.replica->seqOf("node-c"), 7);
    EXPECT_EQ(n.replica->usersByExtension("302").size(), 1u);
    EXPECT_EQ(n.replica->usersByExtension("401").size(), 1u);
    ASSERT_TRUE(n.replica->clear().ok());
  }
  Node n(path);
  EXPECT_TRUE(n.replica->owners().empty());
}

TEST(DirectoryReplica, DropsDamagedRows) {
  Node n;
  ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-b", 3, {{"301", "Xaver"}})).ok());
  ASSERT_TRUE(
      n.db->exec("INSERT INTO federation_replicas VALUES ('node-c', 2, '{\"owner\":1}')").ok());
  ASSERT_TRUE(n.db->exec("INSERT INTO federation_replicas VALUES ('node-d', 2, 'nope')").ok());
  auto r = DirectoryReplica::open(*n.db);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->owners(), std::vector<std::string>{"node-b"});
  auto rows = n.db->query("SELECT count(*) FROM federation_replicas");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(store::asInt((*rows)[0][0]), 1);
}

// A delta writes the rows of its records only; the replica loads back from them. A replica
// stored by an older version (one JSON row per owner) moves into the rows at open.
TEST(DirectoryReplica, RowsPerRecordAndOldFormat) {
  TempDir tmp;
  auto path = (tmp.path / "node.db").string();
  {
    Node n(path);
    ASSERT_TRUE(
        n.replica->applySnapshot(snapshot("node-b", 1, {{"301", "Xaver"}, {"302", "Yvonne"}}))
            .ok());
    DirectoryDelta d;
    d.owner = "node-b", d.from = 1, d.to = 2;
    d.users.push_back({"303", "Zora", ""});
    d.deletedUsers.push_back("301");
    ASSERT_TRUE(*n.replica->applyDelta(d));
    auto rows = n.db->query("SELECT extension FROM federation_replica_users ORDER BY extension");
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 2u);
    EXPECT_EQ(*store::asText((*rows)[0][0]), "302");
    EXPECT_EQ(*store::asText((*rows)[1][0]), "303");
    auto old = snapshot("node-c", 4, {{"401", "Olga"}});
    ASSERT_TRUE(
        n.db->exec("INSERT INTO federation_replicas VALUES ('node-c', 4, ?1)", {toJson(old).dump()})
            .ok());
  }
  Node n(path);
  EXPECT_EQ(n.replica->seqOf("node-b"), 2);
  ASSERT_EQ(n.replica->users("node-b").size(), 2u);
  EXPECT_EQ(n.replica->users("node-b")[1].user.displayName, "Zora");
  EXPECT_FALSE(n.replica->user("node-b", "301"));
  ASSERT_TRUE(n.replica->user("node-c", "401"));
  EXPECT_EQ(n.replica->seqOf("node-c"), 4);
  EXPECT_EQ(n.replica->usersByExtension("303").size(), 1u);
  auto rows = n.db->query("SELECT snapshot FROM federation_replicas WHERE owner = 'node-c'");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*store::asText((*rows)[0][0]), "");
  // A damaged row drops that owner's replica (it sends a snapshot when asked for seq 0).
  ASSERT_TRUE(
      n.db->exec("UPDATE federation_replica_users SET body = 'x' WHERE owner = 'node-c'").ok());
  auto r = DirectoryReplica::open(*n.db);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->owners(), std::vector<std::string>{"node-b"});
}

TEST(DirectoryReplica, ConflictsLocalAndTwoRemotes) {
  Node n;
  n.addUser("201", "Alice");
  n.addUser("202", "Bob");
  pbx::GroupInput g;
  g.number = "600";
  g.name = "Sales";
  ASSERT_TRUE(n.dir->createGroup(g).ok());
  ASSERT_TRUE(n.replica
                  ->applySnapshot(snapshot("node-b", 1, {{"201", "Xaver"}, {"301", "Only B"}},
                                           {{"202", "B-Group"}}))
                  .ok());
  ASSERT_TRUE(n.replica
                  ->applySnapshot(snapshot("node-c", 1, {{"201", "Yvonne"}, {"600", "Carla"}},
                                           {{"301", "C-Group"}}))
                  .ok());
  auto c = n.replica->conflicts(*n.dir, "node-a");
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].number, "201");
  ASSERT_EQ(c[0].uses.size(), 3u);
  EXPECT_EQ(c[0].uses[0].owner, "node-a");
  EXPECT_EQ(c[0].uses[0].kind, "user");
  EXPECT_EQ(c[0].uses[0].name, "Alice");
  EXPECT_EQ(c[0].uses[1].owner, "node-b");
  EXPECT_EQ(c[0].uses[2].owner, "node-c");
  EXPECT_EQ(c[1].number, "202");
  ASSERT_EQ(c[1].uses.size(), 2u);
  EXPECT_EQ(c[1].uses[1].kind, "group");
  EXPECT_EQ(c[2].number, "301"); // between two remote nodes
  EXPECT_EQ(c[2].uses[0].owner, "node-b");
  EXPECT_EQ(c[2].uses[1].owner, "node-c");
  EXPECT_EQ(c[3].number, "600");
  EXPECT_EQ(c[3].uses[0].kind, "group");
  EXPECT_EQ(c[3].uses[1].kind, "user");

  // Two users of one remote node cannot conflict with each other; a replica under our own id is
  // ignored.
  ASSERT_TRUE(n.replica->applySnapshot(snapshot("node-a", 1, {{"999", "Ghost"}})).ok());
  n.addUser("999", "Real");
  auto again = n.replica->conflicts(*n.dir, "node-a");
  EXPECT_EQ(again.size(), 4u);
}

// ---- JSON ----

TEST(DirectoryJson, SnapshotAndDeltaRoundTrip) {
  DirectorySnapshot s = snapshot("node-b", 42, {{"302", "Yuri"}, {"301", "Xäver"}}, {{"700", "S"}});
  s.users[0].externalNumber = "+4940123456";
  auto j = toJson(s);
  EXPECT_EQ(j["t"], "dir-snapshot");
  auto back = snapshotFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->owner, "node-b");
  EXPECT_EQ(back->seq, 42);
  ASSERT_EQ(back->users.size(), 2u);
  EXPECT_EQ(back->users[0].extension, "301"); // sorted
  EXPECT_EQ(back->users[1], s.users[0]);
  ASSERT_EQ(back->groups.size(), 1u);
  EXPECT_EQ(back->groups[0], s.groups[0]);

  DirectoryDelta d;
  d.owner = "node-b";
  d.from = 1;
  d.to = 2;
  d.users = {{"301", "X", ""}};
  d.groups = {{"700", "S", {{"node-b", "301", false}}}};
  d.deletedUsers = {"302"};
  d.deletedGroups = {"701"};
  auto dj = toJson(d);
  EXPECT_EQ(dj["t"], "dir-delta");
  auto dback = deltaFromJson(json::parse(dj.dump()));
  ASSERT_TRUE(dback.ok()) << dback.error().message;
  EXPECT_EQ(dback->from, 1);
  EXPECT_EQ(dback->to, 2);
  EXPECT_EQ(dback->users, d.users);
  EXPECT_EQ(dback->groups, d.groups);
  EXPECT_EQ(dback->deletedUsers, d.deletedUsers);
  EXPECT_EQ(dback->deletedGroups, d.deletedGroups);
}

TEST(DirectoryJson, DefaultsForOptionalMembers) {
  json j = {{"owner", "node-b"},
            {"seq", 1},
            {"users", {{{"extension", "301"}, {"displayName", "X"}}}},
            {"groups",
             {{{"number", "700"},
               {"name", "G"},
               {"members", {{{"owner", "node-b"}, {"extension", "301"}}}}}}},
            {"future", "ignored"}};
  auto s = snapshotFromJson(j);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->users[0].externalNumber, "");
  EXPECT_TRUE(s->groups[0].members[0].loggedIn);
  auto empty = snapshotFromJson(json{{"owner", "node-b"}, {"seq", 0}});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->users.empty());
}

TEST(DirectoryJson, ValidationNamesTheField) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"valid", [](json&) {}, ""},
      {"no owner", [](json& j) { j.erase("owner"); }, "owner"},
      {"empty owner", [](json& j) { j["owner"] = ""; }, "owner"},
      {"owner space", [](json& j) { j["owner"] = "node b"; }, "owner"},
      {"seq negative", [](json& j) { j["seq"] = -1; }, "seq"},
      {"seq string", [](json& j) { j["seq"] = "1"; }, "seq"},
      {"seq float", [](json& j) { j["seq"] = 1.5; }, "seq"},
      {"users object", [](json& j) { j["users"] = json::object(); }, "users"},
      {"user not object", [](json& j) { j["users"][0] = "301"; }, "users[0]"},
      {"ext letters", [](json& j) { j["users"][0]["extension"] = "30x"; }, "users[0].extension"},
      {"ext missing", [](json& j) { j["users"][0].erase("extension"); }, "users[0].extension"},
      {"name control", [](json& j) { j["users"][0]["displayName"] = "X\ty"; },
       "users[0].displayName"},
      {"name empty", [](json& j) { j["users"][0]["displayName"] = ""; }, "users[0].displayName"},
      {"number bad", [](json& j) { j["users"][0]["externalNumber"] = "0301234"; },
       "users[0].externalNumber"},
      {"number int", [](json& j) { j["users"][0]["externalNumber"] = 49301234; },
       "users[0].externalNumber"},
      {"dup user",
       [](json& j) {
         j["users"].push_back({{"extension", "301"}, {"displayName", "Y"}});
       },
       "users[1].extension"},
      {"group number", [](json& j) { j["groups"][0]["number"] = "7"; }, "groups[0].number"},
      {"group name", [](json& j) { j["groups"][0]["name"] = std::string(65, 'g'); },
       "groups[0].name"},
      {"member owner empty", [](json& j) { j["groups"][0]["members"][0]["owner"] = ""; },
       "groups[0].members[0].owner"},
      {"member ext", [](json& j) { j["groups"][0]["members"][0]["extension"] = "x"; },
       "groups[0].members[0].extension"},
      {"member loggedIn", [](json& j) { j["groups"][0]["members"][0]["loggedIn"] = 1; },
       "groups[0].members[0].loggedIn"},
      {"member dup",
       [](json& j) { j["groups"][0]["members"].push_back(j["groups"][0]["members"][0]); },
       "groups[0].members[1]"},
      {"too many members",
       [](json& j) {
         auto& m = j["groups"][0]["members"];
         m = json::array();
         for (int i = 0; i < 101; ++i)
           m.push_back({{"owner", "node-b"}, {"extension", std::to_string(1000 + i)}});
       },
       "groups[0].members"},
  };
  for (const auto& c : cases) {
    json j = toJson(snapshot("node-b", 1, {{"301", "X"}}, {{"700", "G"}}));
    c.edit(j);
    auto r = snapshotFromJson(j);
    if (std::string(c.field).empty()) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.error().message;
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.error().code, 400) << c.name;
      EXPECT_EQ(fieldOf(r.error()), c.field) << c.name << ": " << r.error().message;
    }
  }
  EXPECT_FALSE(snapshotFromJson(json::array()).ok());
  EXPECT_FALSE(snapshotFromJson(json("x")).ok());
}

TEST(DirectoryJson, DeltaValidation) {
  DirectoryDelta d;
  d.owner = "node-b";
  d.from = 1;
  d.to = 2;
  d.deletedUsers = {"301"};
  auto base = toJson(d);
  auto bad = [&](const std::function<void(json&)>& edit, const char* field) {
    json j = base;
    edit(j);
    auto r = deltaFromJson(j);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().code, 400);
    EXPECT_EQ(fieldOf(r.error()), field) << r.error().message;
  };
  bad([](json& j) { j["to"] = 1; }, "to");
  bad([](json& j) { j.erase("from"); }, "from");
  bad([](json& j) { j["deletedUsers"] = {"3x1"}; }, "deletedUsers[0]");
  bad([](json& j) { j["deletedUsers"] = {"301", "301"}; }, "deletedUsers[1]");
  bad([](json& j) { j["deletedGroups"] = {7}; }, "deletedGroups[0]");
  bad([](json& j) { j["deletedGroups"] = "700"; }, "deletedGroups");
  json ok = base;
  ok.erase("users");
  ok.erase("groups");
  EXPECT_TRUE(deltaFromJson(ok).ok());
}

TEST(DirectoryJson, Limits) {
  json j = {{"owner", "node-b"}, {"seq", 1}, {"users", json::array()}};
  for (size_t i = 0; i <= kMaxReplicaUsers; ++i)
    j["users"].push_back({{"extension", std::to_string(100000 + i)}, {"displayName", "U"}});
  auto r = snapshotFromJson(j);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(fieldOf(r.error()), "users");
  j["users"].erase(j["users"].size() - 1);
  EXPECT_TRUE(snapshotFromJson(j).ok());
}

} // namespace
} // namespace verbund::federation

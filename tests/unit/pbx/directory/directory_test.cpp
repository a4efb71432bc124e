#include "pbx/directory/directory.h"

#include "sip/auth/digest.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace verbund::pbx {
namespace {

constexpr const char* kRealm = "site-a.example";

struct Fixture {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<Directory> dir;
  explicit Fixture(const std::string& path = ":memory:") {
    auto d = store::Database::open(path, Directory::migrations());
    EXPECT_TRUE(d.ok()) << d.error().message;
    db = std::move(d.value());
    auto x = Directory::open(*db, kRealm);
    EXPECT_TRUE(x.ok()) << x.error().message;
    dir = std::move(x.value());
  }
};

UserInput alice() {
  UserInput in;
  in.extension = "101";
  in.displayName = "Alice";
  in.sipPassword = "secret-pass";
  return in;
}

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

struct UserCase {
  const char* name;
  std::function<void(UserInput&)> edit;
  int code; // 0: accepted
  const char* field;
};

TEST(DirectoryValidation, UserFields) {
  const std::vector<UserCase> cases = {
      {"valid", [](UserInput&) {}, 0, ""},
      {"ext one digit", [](UserInput& i) { i.extension = "1"; }, 400, "extension"},
      {"ext nine digits", [](UserInput& i) { i.extension = "123456789"; }, 400, "extension"},
      {"ext eight digits", [](UserInput& i) { i.extension = "12345678"; }, 0, ""},
      {"ext letters", [](UserInput& i) { i.extension = "10a"; }, 400, "extension"},
      {"ext missing", [](UserInput& i) { i.extension.reset(); }, 400, "extension"},
      {"e164 ok", [](UserInput& i) { i.externalNumber = "+4930123456"; }, 0, ""},
      {"e164 empty", [](UserInput& i) { i.externalNumber = ""; }, 0, ""},
      {"e164 no plus", [](UserInput& i) { i.externalNumber = "4930123456"; }, 400,
       "externalNumber"},
      {"e164 short", [](UserInput& i) { i.externalNumber = "+12345"; }, 400, "externalNumber"},
      {"e164 long", [](UserInput& i) { i.externalNumber = "+1234567890123456"; }, 400,
       "externalNumber"},
      {"e164 space", [](UserInput& i) { i.externalNumber = "+49 30 1234"; }, 400, "externalNumber"},
      {"sipUser token", [](UserInput& i) { i.sipUser = "alice.w-1"; }, 0, ""},
      {"sipUser at", [](UserInput& i) { i.sipUser = "alice@x"; }, 400, "sipUser"},
      {"sipUser empty", [](UserInput& i) { i.sipUser = ""; }, 400, "sipUser"},
      {"sipUser 33", [](UserInput& i) { i.sipUser = std::string(33, 'a'); }, 400, "sipUser"},
      {"password short", [](UserInput& i) { i.sipPassword = "1234567"; }, 400, "sipPassword"},
      {"password missing", [](UserInput& i) { i.sipPassword.reset(); }, 400, "sipPassword"},
      {"name utf8", [](UserInput& i) { i.displayName = "Jürgen Müller"; }, 0, ""},
      {"name 64 umlauts",
       [](UserInput& i) {
         std::string s;
         for (int k = 0; k < 64; ++k) s += "ä";
         i.displayName = s;
       },
       0, ""},
      {"name 65", [](UserInput& i) { i.displayName = std::string(65, 'x'); }, 400, "displayName"},
      {"name empty", [](UserInput& i) { i.displayName = ""; }, 400, "displayName"},
      {"name control", [](UserInput& i) { i.displayName = "A\nB"; }, 400, "displayName"},
      {"name bad utf8", [](UserInput& i) { i.displayName = "A\xC3"; }, 400, "displayName"},
      {"name overlong", [](UserInput& i) { i.displayName = "A\xC0\xAF"; }, 400, "displayName"},
      {"name surrogate", [](UserInput& i) { i.displayName = "A\xED\xA0\x80"; }, 400, "displayName"},
      {"name C1", [](UserInput& i) { i.displayName = "A\xC2\x85"; }, 400, "displayName"},
      {"lang en", [](UserInput& i) { i.language = "en"; }, 0, ""},
      {"lang fr", [](UserInput& i) { i.language = "fr"; }, 400, "language"},
  };
  for (const auto& c : cases) {
    Fixture f;
    UserInput in = alice();
    c.edit(in);
    auto r = f.dir->createUser(in);
    if (c.code == 0) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.error().message;
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.error().code, c.code) << c.name;
      EXPECT_EQ(fieldOf(r.error()), c.field) << c.name << ": " << r.error().message;
    }
  }
}

TEST(DirectoryValidation, GroupFields) {
  GroupInput g;
  g.number = "600";
  g.name = "Sales";
  EXPECT_TRUE(validateGroupInput(g, true).ok());
  g.members = std::vector<GroupMember>{{"", "101", true}, {"", "101", true}};
  auto r = validateGroupInput(g, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(fieldOf(r.error()), "members");
  g.members = std::vector<GroupMember>{{"node b", "101", true}};
  EXPECT_EQ(fieldOf(validateGroupInput(g, true).error()), "members.owner");
  g.members = std::vector<GroupMember>{{"node-b", "1", true}};
  EXPECT_EQ(fieldOf(validateGroupInput(g, true).error()), "members.extension");
  g.members.reset();
  g.number = "6x";
  EXPECT_EQ(fieldOf(validateGroupInput(g, true).error()), "number");
  GroupInput empty;
  EXPECT_EQ(fieldOf(validateGroupInput(empty, true).error()), "number");
  EXPECT_TRUE(validateGroupInput(empty, false).ok());
}

TEST(Directory, CreateStoresHa1NotPassword) {
  Fixture f;
  auto u = f.dir->createUser(alice());
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->sipUser, "101"); // defaults to the extension
  EXPECT_EQ(u->language, "de");
  auto c = f.dir->credentials("101");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ha1Md5, *sip::digestHa1(sip::DigestAlgorithm::Md5, "101", kRealm, "secret-pass"));
  EXPECT_EQ(c->ha1Sha256,
            *sip::digestHa1(sip::DigestAlgorithm::Sha256, "101", kRealm, "secret-pass"));
  auto rows = f.db->query("SELECT * FROM users");
  ASSERT_TRUE(rows.ok());
  for (const auto& v : rows->at(0)) {
    if (auto s = store::asText(v)) {
      EXPECT_EQ(s->find("secret-pass"), std::string::npos);
    }
  }
}

TEST(Directory, NumbersUniqueAcrossUsersAndGroups) {
  Fixture f;
  ASSERT_TRUE(f.dir->createUser(alice()).ok());
  GroupInput g;
  g.number = "101";
  g.name = "Sales";
  auto r = f.dir->createGroup(g);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 409);
  EXPECT_EQ(r.error().message, "number: already used by user 'Alice'");
  g.number = "600";
  auto grp = f.dir->createGroup(g);
  ASSERT_TRUE(grp.ok());
  UserInput bob = alice();
  bob.extension = "600";
  bob.displayName = "Bob";
  auto b = f.dir->createUser(bob);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, 409);
  EXPECT_EQ(b.error().message, "extension: already used by group 'Sales'");
  bob.extension = "102";
  bob.sipUser = "101"; // Alice's SIP user
  auto c = f.dir->createUser(bob);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, 409);
  EXPECT_EQ(fieldOf(c.error()), "sipUser");
  // Renaming a user onto a group's number is a conflict too.
  UserInput move;
  move.extension = "600";
  auto m = f.dir->updateUser(f.dir->userByExtension("101")->id, move);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, 409);
}

TEST(Directory, UpdateAndIndexes) {
  Fixture f;
  int changes = 0;
  f.dir->onChange([&] { ++changes; });
  auto u = f.dir->createUser(alice());
  ASSERT_TRUE(u.ok());
  int64_t v1 = f.dir->version();
  UserInput up;
  up.extension = "111";
  up.displayName = "Alice W";
  auto r = f.dir->updateUser(u->id, up);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->version, v1);
  EXPECT_EQ(f.dir->version(), r->version);
  EXPECT_FALSE(f.dir->userByExtension("101"));
  EXPECT_EQ(f.dir->userByExtension("111")->displayName, "Alice W");
  EXPECT_EQ(changes, 2);
  // Changing the SIP user needs a password: HA1 covers the user name.
  UserInput rename;
  rename.sipUser = "alice";
  auto bad = f.dir->updateUser(u->id, rename);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(fieldOf(bad.error()), "sipPassword");
  rename.sipPassword = "another-pass";
  ASSERT_TRUE(f.dir->updateUser(u->id, rename).ok());
  EXPECT_FALSE(f.dir->credentials("101"));
  EXPECT_EQ(f.dir->credentials("alice")->ha1Md5,
            *sip::digestHa1(sip::DigestAlgorithm::Md5, "alice", kRealm, "another-pass"));
  EXPECT_EQ(f.dir->updateUser(999, up).error().code, 404);
  EXPECT_EQ(f.dir->searchUsers("alice w").size(), 1u);
  EXPECT_EQ(f.dir->searchUsers("11").size(), 1u);
  EXPECT_TRUE(f.dir->searchUsers("zzz").empty());
}

TEST(Directory, GroupMembersAndUserDeletion) {
  Fixture f;
  auto a = f.dir->createUser(alice());
  UserInput bob = alice();
  bob.extension = "102";
  bob.displayName = "Bob";
  auto b = f.dir->createUser(bob);
  ASSERT_TRUE(a.ok() && b.ok());
  GroupInput g;
  g.number = "600";
  g.name = "Sales";
  g.members = std::vector<GroupMember>{{"", "103", true}};
  auto missing = f.dir->createGroup(g);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(fieldOf(missing.error()), "members");
  g.members =
      std::vector<GroupMember>{{"", "101", true}, {"", "102", true}, {"node-b", "201", true}};
  auto grp = f.dir->createGroup(g);
  ASSERT_TRUE(grp.ok()) << grp.error().message;
  EXPECT_EQ(grp->members.size(), 3u);

  auto out = f.dir->setMemberLoggedIn(grp->id, "", "102", false);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->members[1].loggedIn);
  EXPECT_EQ(f.dir->setMemberLoggedIn(grp->id, "", "109", false).error().code, 404);
  EXPECT_EQ(f.dir->setMemberLoggedIn(77, "", "102", false).error().code, 404);

  // Renumbering a user carries its memberships along.
  UserInput up;
  up.extension = "111";
  ASSERT_TRUE(f.dir->updateUser(a->id, up).ok());
  EXPECT_EQ(f.dir->group(grp->id)->members[0].extension, "111");

  ASSERT_TRUE(f.dir->deleteUser(a->id).ok());
  auto after = f.dir->group(grp->id);
  ASSERT_EQ(after->members.size(), 2u);
  EXPECT_EQ(after->members[0].extension, "102");
  EXPECT_EQ(f.dir->deleteUser(a->id).error().code, 404);

  ASSERT_TRUE(f.dir->deleteGroup(grp->id).ok());
  EXPECT_FALSE(f.dir->groupByNumber("600"));
  // The number is free again for a user.
  UserInput carol = alice();
  carol.extension = "600";
  carol.displayName = "Carol";
  EXPECT_TRUE(f.dir->createUser(carol).ok());
}

TEST(Directory, PersistsAcrossReopen) {
  auto path = std::filesystem::temp_directory_path() /
              ("verbund-dir-test-" + std::to_string(getpid()) + ".db");
  std::filesystem::remove(path);
  int64_t version = 0, groupId = 0;
  {
    Fixture f(path.string());
    ASSERT_TRUE(f.dir->createUser(alice()).ok());
    UserInput bob = alice();
    bob.extension = "102";
    bob.displayName = "Bob";
    bob.sipUser = "bob";
    bob.externalNumber = "+4930123456";
    bob.language = "en";
    bob.shared = false;
    ASSERT_TRUE(f.dir->createUser(bob).ok());
    GroupInput g;
    g.number = "600";
    g.name = "Sales";
    g.members = std::vector<GroupMember>{{"", "101", true}, {"", "102", true}};
    auto grp = f.dir->createGroup(g);
    ASSERT_TRUE(grp.ok());
    groupId = grp->id;
    ASSERT_TRUE(f.dir->setMemberLoggedIn(groupId, "", "101", false).ok());
    // A deletion also moves the version forward, and that survives the restart.
    UserInput tmp = alice();
    tmp.extension = "199";
    tmp.displayName = "Temp";
    tmp.sipUser = "tmp";
    auto t = f.dir->createUser(tmp);
    ASSERT_TRUE(f.dir->deleteUser(t->id).ok());
    version = f.dir->version();
  }
  {
    Fixture f(path.string());
    EXPECT_EQ(f.dir->version(), version);
    EXPECT_EQ(f.dir->userCount(), 2u);
    auto bob = f.dir->userBySipUser("bob");
    ASSERT_TRUE(bob);
    EXPECT_EQ(bob->externalNumber, "+4930123456");
    EXPECT_EQ(bob->language, "en");
    EXPECT_FALSE(bob->shared);
    EXPECT_TRUE(f.dir->credentials("bob"));
    auto g = f.dir->groupByNumber("600");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->id, groupId);
    ASSERT_EQ(g->members.size(), 2u);
    EXPECT_FALSE(g->members[0].loggedIn);
    EXPECT_TRUE(g->members[1].loggedIn);
    // Indexes rebuilt: conflicts still detected.
    EXPECT_EQ(f.dir->createUser(alice()).error().code, 409);
  }
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
}

TEST(DirectoryValidation, ForwardingFields) {
  struct Case {
    const char* name;
    std::function<void(ForwardingInput&)> edit;
    const char* field; // "": accepted
  };
  const std::vector<Case> cases = {
      {"off", [](ForwardingInput& f) { f.always = ""; }, ""},
      {"extension", [](ForwardingInput& f) { f.busy = "202"; }, ""},
      {"e164", [](ForwardingInput& f) { f.noAnswer = "+4930123456"; }, ""},
      {"national", [](ForwardingInput& f) { f.unregistered = "030123456"; }, ""},
      {"32 digits", [](ForwardingInput& f) { f.always = std::string(32, '1'); }, ""},
      {"33 digits", [](ForwardingInput& f) { f.always = std::string(33, '1'); }, "forward.always"},
      {"plus only", [](ForwardingInput& f) { f.busy = "+"; }, "forward.busy"},
      {"letters", [](ForwardingInput& f) { f.noAnswer = "12a"; }, "forward.noAnswer"},
      {"star", [](ForwardingInput& f) { f.unregistered = "*21"; }, "forward.unregistered"},
      {"hash", [](ForwardingInput& f) { f.always = "201#"; }, "forward.always"},
      {"seconds 5", [](ForwardingInput& f) { f.noAnswerSeconds = 5; }, ""},
      {"seconds 120", [](ForwardingInput& f) { f.noAnswerSeconds = 120; }, ""},
      {"seconds 4", [](ForwardingInput& f) { f.noAnswerSeconds = 4; }, "forward.noAnswerSeconds"},
      {"seconds 121", [](ForwardingInput& f) { f.noAnswerSeconds = 121; },
       "forward.noAnswerSeconds"},
  };
  for (const auto& c : cases) {
    UserInput in = alice();
    c.edit(in.forward);
    auto r = validateUserInput(in, true);
    if (*c.field == 0) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << (r.ok() ? "" : r.error().message);
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.error().code, 400) << c.name;
      EXPECT_EQ(fieldOf(r.error()), c.field) << c.name;
    }
  }
}

TEST(Directory, FeaturesUpdateKeepsMissingKeysAndRefusesSelf) {
  Fixture f;
  auto a = f.dir->createUser(alice());
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->dnd);
  EXPECT_EQ(a->forward, Forwarding{});
  UserInput ch;
  ch.dnd = true;
  ch.forward.busy = "202";
  ch.forward.noAnswerSeconds = 15;
  auto u = f.dir->updateUser(a->id, ch);
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_TRUE(u->dnd);
  EXPECT_EQ(u->forward.busy, "202");
  EXPECT_EQ(u->forward.noAnswerSeconds, 15);
  EXPECT_GT(u->version, a->version);
  UserInput ch2;
  ch2.forward.always = "+4930999";
  u = f.dir->updateUser(a->id, ch2);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->dnd);               // not given: stays
  EXPECT_EQ(u->forward.busy, "202"); // not given: stays
  EXPECT_EQ(u->forward.always, "+4930999");
  UserInput self;
  self.forward.noAnswer = "101";
  auto bad = f.dir->updateUser(a->id, self);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(fieldOf(bad.error()), "forward.noAnswer");
  EXPECT_EQ(f.dir->user(a->id)->forward.noAnswer, "");
}

TEST(Directory, FeaturesSurviveReopen) {
  auto path = std::filesystem::temp_directory_path() /
              ("verbund-dir-features-" + std::to_string(getpid()) + ".db");
  std::filesystem::remove(path);
  {
    Fixture f(path.string());
    auto a = f.dir->createUser(alice());
    ASSERT_TRUE(a.ok());
    UserInput ch;
    ch.dnd = true;
    ch.forward = ForwardingInput{"201", "202", "+4930123456", "600", 45};
    ASSERT_TRUE(f.dir->updateUser(a->id, ch).ok());
  }
  {
    Fixture f(path.string());
    auto a = f.dir->userByExtension("101");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->dnd);
    EXPECT_EQ(a->forward, (Forwarding{"201", "202", "+4930123456", "600", 45}));
  }
  std::filesystem::remove(path);
}

UserInput row(const std::string& ext, const std::string& name) {
  UserInput in;
  in.extension = ext;
  in.displayName = name;
  in.sipPassword = "pw-" + ext + "-secret";
  return in;
}

TEST(DirectoryImport, AllRowsInOneChange) {
  Fixture f;
  int changes = 0;
  f.dir->onChange([&] { ++changes; });
  std::vector<UserInput> rows;
  for (int i = 0; i < 100; ++i)
    rows.push_back(row(std::to_string(300 + i), "U" + std::to_string(i)));
  auto dry = f.dir->importUsers(rows, true);
  ASSERT_TRUE(dry.ok());
  EXPECT_TRUE(dry->errors.empty());
  EXPECT_EQ(dry->valid, 100u);
  EXPECT_EQ(f.dir->userCount(), 0u);
  EXPECT_EQ(changes, 0);

  auto r = f.dir->importUsers(rows, false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->created.size(), 100u);
  EXPECT_EQ(f.dir->userCount(), 100u);
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(f.dir->version(), 100);
  auto u = f.dir->userByExtension("342");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->displayName, "U42");
  EXPECT_TRUE(f.dir->credentials("342"));
  // Persisted: a reopened directory has them.
  auto again = Directory::open(*f.db, kRealm);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->userCount(), 100u);
}

TEST(DirectoryImport, ListsEveryInvalidRowAndWritesNothing) {
  Fixture f;
  ASSERT_TRUE(f.dir->createUser(alice()).ok()); // 101
  int changes = 0;
  f.dir->onChange([&] { ++changes; });
  std::vector<UserInput> rows = {row("201", "A"), row("101", "B"), row("2x", "C"), row("201", "D"),
                                 row("205", "E")};
  rows[4].sipUser = "201"; // the SIP user of row 1
  auto r = f.dir->importUsers(rows, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(f.dir->userCount(), 1u);
  EXPECT_EQ(changes, 0);
  EXPECT_TRUE(r->created.empty());
  EXPECT_EQ(r->valid, 0u);
  ASSERT_EQ(r->errors.size(), 6u);
  EXPECT_EQ(r->errors[0], (UserRowError{2, "extension", "already used by user 'Alice'"}));
  EXPECT_EQ(r->errors[1], (UserRowError{2, "sipUser", "already used by another user"}));
  EXPECT_EQ(r->errors[2].row, 3u);
  EXPECT_EQ(r->errors[2].field, "extension");
  EXPECT_EQ(r->errors[3], (UserRowError{4, "extension", "also in row 1", 1}));
  EXPECT_EQ(r->errors[4], (UserRowError{4, "sipUser", "also in row 1", 1}));
  EXPECT_EQ(r->errors[5], (UserRowError{5, "sipUser", "also in row 1", 1}));
}

TEST(Directory, DndSetFollowsChanges) {
  Fixture f;
  auto a = f.dir->createUser(alice());
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(f.dir->dndExtensions().empty());
  UserInput on;
  on.dnd = true;
  ASSERT_TRUE(f.dir->updateUser(a->id, on).ok());
  EXPECT_EQ(f.dir->dndExtensions(), std::set<std::string>{"101"});
  UserInput move;
  move.extension = "111";
  ASSERT_TRUE(f.dir->updateUser(a->id, move).ok());
  EXPECT_EQ(f.dir->dndExtensions(), std::set<std::string>{"111"});
  ASSERT_TRUE(f.dir->deleteUser(a->id).ok());
  EXPECT_TRUE(f.dir->dndExtensions().empty());
}

} // namespace
} // namespace verbund::pbx

#include "federation/membership/member_store.h"

#include "base/manual_timers.h"
#include "federation/trust/certificates.h"
#include "federation/trust/revocation.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

namespace verbund::federation {
namespace {

using json = nlohmann::json;

MemberRecord member(std::string id, std::string name, int64_t updatedMs = 1000) {
  MemberRecord m;
  m.nodeId = std::move(id);
  m.name = std::move(name);
  m.controlAddresses = {"10.0.0.1:3090", "[fd00::1]:3090"};
  m.sipAddress = "10.0.0.1:5061";
  m.productVersion = "0.1.0";
  m.protocolVersion = "1.0";
  m.updatedMs = updatedMs;
  return m;
}

struct Fixture {
  ManualTimers timers;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<MemberStore> store;
  explicit Fixture(const std::string& path = ":memory:") { reopen(path); }
  void reopen(const std::string& path) {
    store.reset();
    db.reset();
    auto d = store::Database::open(path, MemberStore::migrations());
    ASSERT_TRUE(d.ok()) << d.error().message;
    db = std::move(d.value());
    auto s = MemberStore::open(*db, timers);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store = std::move(s.value());
  }
};

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("verbund-members-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

TEST(MemberJson, RoundTrip) {
  auto m = member("node-a", "Berlin");
  auto back = memberFromJson(toJson(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, m);

  auto msg = membersMessage({m, member("node-b", "Hamburg")});
  EXPECT_EQ(msg["t"], "members");
  auto list = membersFromMessage(json::parse(msg.dump()));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0], m);
}

TEST(MemberJson, OptionalFieldsDefault) {
  // A member known only from a bundle: no SIP address or versions yet.
  json j = {{"nodeId", "node-a"}, {"name", "Berlin"}, {"controlAddresses", {"host.example:3090"}}};
  auto m = memberFromJson(j);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->sipAddress, "");
  EXPECT_EQ(m->productVersion, "");
  EXPECT_EQ(m->updatedMs, 0);
}

TEST(MemberJson, ValidationNamesTheField) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* field; // "" = accepted
  };
  const std::vector<Case> cases = {
      {"valid", [](json&) {}, ""},
      {"no node id", [](json& j) { j.erase("nodeId"); }, "nodeId"},
      {"node id number", [](json& j) { j["nodeId"] = 7; }, "nodeId"},
      {"node id space", [](json& j) { j["nodeId"] = "node a"; }, "nodeId"},
      {"node id long", [](json& j) { j["nodeId"] = std::string(65, 'a'); }, "nodeId"},
      {"empty name", [](json& j) { j["name"] = ""; }, "name"},
      {"name control", [](json& j) { j["name"] = "Ber\nlin"; }, "name"},
      {"name long", [](json& j) { j["name"] = std::string(65, 'x'); }, "name"},
      {"no addresses", [](json& j) { j["controlAddresses"] = json::array(); }, "controlAddresses"},
      {"address no port", [](json& j) { j["controlAddresses"] = {"10.0.0.1"}; },
       "controlAddresses"},
      {"address not string", [](json& j) { j["controlAddresses"] = {1}; }, "controlAddresses"},
      {"nine addresses",
       [](json& j) {
         j["controlAddresses"] = json::array();
         for (int i = 1; i <= 9; ++i)
           j["controlAddresses"].push_back("10.0.0." + std::to_string(i) + ":3090");
       },
       "controlAddresses"},
      {"eight addresses",
       [](json& j) {
         j["controlAddresses"] = json::array();
         for (int i = 1; i <= 8; ++i)
           j["controlAddresses"].push_back("10.0.0." + std::to_string(i) + ":3090");
       },
       ""},
      {"duplicate address",
       [](json& j) {
         j["controlAddresses"] = {"a.example:1", "a.example:1"};
       },
       "controlAddresses"},
      {"sip bad port", [](json& j) { j["sipAddress"] = "10.0.0.1:70000"; }, "sipAddress"},
      {"sip number", [](json& j) { j["sipAddress"] = 5061; }, "sipAddress"},
      {"version space", [](json& j) { j["productVersion"] = "0.1 beta"; }, "productVersion"},
      {"version long", [](json& j) { j["protocolVersion"] = std::string(33, '1'); },
       "protocolVersion"},
      {"version control", [](json& j) { j["protocolVersion"] = "1.\x01"; }, "protocolVersion"},
      {"updated negative", [](json& j) { j["updatedMs"] = -1; }, "updatedMs"},
      {"updated float", [](json& j) { j["updatedMs"] = 1.5; }, "updatedMs"},
      {"updated huge", [](json& j) { j["updatedMs"] = uint64_t(1) << 63; }, "updatedMs"},
  };
  for (const auto& c : cases) {
    json j = toJson(member("node-a", "Berlin"));
    c.edit(j);
    auto r = memberFromJson(j);
    if (std::string(c.field).empty()) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.error().message;
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.error().code, 400) << c.name;
      EXPECT_EQ(fieldOf(r.error()), c.field) << c.name << ": " << r.error().message;
    }
  }
}

TEST(MemberJson, MessageRejectsDuplicatesAndJunk) {
  auto a = member("node-a", "Berlin");
  EXPECT_FALSE(membersFromMessage(membersMessage({a, a})).ok());
  EXPECT_FALSE(membersFromMessage(json::array()).ok());
  EXPECT_FALSE(membersFromMessage(json{{"t", "members"}}).ok());
  EXPECT_FALSE(membersFromMessage(json{{"t", "members"}, {"members", {1, 2}}}).ok());
  json big = {{"t", "members"}, {"members", json::array()}};
  for (int i = 0; i < 1001; ++i) big["members"].push_back(toJson(a));
  EXPECT_FALSE(membersFromMessage(big).ok());
  auto empty = membersFromMessage(membersMessage({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(MemberStore, UpsertOrderAndNewestWins) {
  Fixture f;
  auto b = member("node-b", "Berlin", 100);
  auto h = member("node-h", "Hamburg", 100);
  auto a2 = member("node-a", "Berlin", 100); // same name: ordered by node id
  ASSERT_TRUE(*f.store->upsert(h));
  ASSERT_TRUE(*f.store->upsert(b));
  ASSERT_TRUE(*f.store->upsert(a2));
  ASSERT_EQ(f.store->all().size(), 3u);
  EXPECT_EQ(f.store->all()[0].nodeId, "node-a");
  EXPECT_EQ(f.store->all()[1].nodeId, "node-b");
  EXPECT_EQ(f.store->all()[2].nodeId, "node-h");

  EXPECT_FALSE(*f.store->upsert(h)); // unchanged
  auto older = h;
  older.updatedMs = 50;
  older.sipAddress = "10.9.9.9:5061";
  EXPECT_FALSE(*f.store->upsert(older));
  EXPECT_EQ(f.store->get("node-h")->sipAddress, h.sipAddress);
  auto newer = h;
  newer.updatedMs = 200;
  newer.name = "Altona";
  EXPECT_TRUE(*f.store->upsert(newer));
  EXPECT_EQ(f.store->get("node-h")->name, "Altona");
  EXPECT_EQ(f.store->all()[0].nodeId, "node-h"); // re-sorted by name

  auto bad = member("node x", "X");
  auto r = f.store->upsert(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 400);

  EXPECT_TRUE(*f.store->remove("node-b"));
  EXPECT_FALSE(*f.store->remove("node-b"));
  EXPECT_FALSE(f.store->get("node-b").has_value());
}

TEST(MemberStore, PersistsAcrossReopen) {
  TempDir dir;
  auto path = (dir.path / "node.db").string();
  {
    Fixture f(path);
    ASSERT_TRUE(f.store->upsert(member("node-a", "Berlin")).ok());
    ASSERT_TRUE(f.store->upsert(member("node-b", "Hamburg")).ok());
    ASSERT_TRUE(f.store->remove("node-b").ok());
    ASSERT_TRUE(f.store->upsert(member("node-c", "Köln")).ok());
    f.timers.setWallStart(42);
    ASSERT_TRUE(f.store->audit("member-joined", "node-c", "Köln joined").ok());
  }
  Fixture f(path);
  ASSERT_EQ(f.store->all().size(), 2u);
  EXPECT_EQ(f.store->all()[0], member("node-a", "Berlin"));
  EXPECT_EQ(f.store->all()[1], member("node-c", "Köln"));
  auto log = f.store->auditLog();
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].atMs, 42);
  EXPECT_EQ((*log)[0].detail, "Köln joined");
}

TEST(MemberStore, SkipsCorruptRows) {
  Fixture f;
  ASSERT_TRUE(f.store->upsert(member("node-a", "Berlin")).ok());
  ASSERT_TRUE(f.db->exec("INSERT INTO federation_members VALUES ('bad id', 'X', '[]', '', '', "
                         "'', 0, '')")
                  .ok());
  ASSERT_TRUE(f.db->exec("INSERT INTO federation_members VALUES ('node-z', 'Z', 'not json', '', "
                         "'', '', 0, '')")
                  .ok());
  auto s = MemberStore::open(*f.db, f.timers);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ((*s)->all().size(), 1u);
  EXPECT_EQ((*s)->all()[0].nodeId, "node-a");
}

RevocationList revokedList(const FederationCa& ca, const std::string& nodeId) {
  RevocationList list(ca.federationId());
  auto e = signRevocation(ca, nodeId, "", "removed", "node-self");
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  auto added = list.add(*e, ca.cert());
  EXPECT_TRUE(added.ok() && *added);
  return list;
}

TEST(MemberStore, MergeRules) {
  auto ca = FederationCa::create("Nord");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  auto revoked = revokedList(*ca, "node-r");

  Fixture f;
  auto self = member("node-self", "Self", 500);
  ASSERT_TRUE(f.store->upsert(self).ok());
  ASSERT_TRUE(f.store->upsert(member("node-b", "Berlin", 100)).ok());
  ASSERT_TRUE(f.store->upsert(member("node-c", "Köln", 100)).ok());

  auto selfFromPeer = self;
  selfFromPeer.updatedMs = 10'000;
  selfFromPeer.name = "Impostor";
  auto newerB = member("node-b", "Berlin-Mitte", 200);
  auto olderC = member("node-c", "Old Köln", 50);
  auto newD = member("node-d", "Dresden", 1);
  auto revokedR = member("node-r", "Revoked", 9999);

  std::vector<std::string> added;
  auto r =
      f.store->merge({selfFromPeer, newerB, olderC, newD, revokedR}, revoked, "node-self", &added);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, (std::vector<std::string>{"node-b", "node-d"}));
  EXPECT_EQ(added, (std::vector<std::string>{"node-d"}));
  EXPECT_EQ(f.store->get("node-self")->name, "Self");
  EXPECT_EQ(f.store->get("node-b")->name, "Berlin-Mitte");
  EXPECT_EQ(f.store->get("node-c")->name, "Köln");
  EXPECT_TRUE(f.store->get("node-d").has_value());
  EXPECT_FALSE(f.store->get("node-r").has_value());

  // Same again: nothing changes.
  r = f.store->merge({newerB, newD}, revoked, "node-self");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());

  // Any invalid record: nothing changes.
  auto bad = member("node-e", "", 1);
  auto newerD = newD;
  newerD.updatedMs = 99;
  newerD.name = "Dresden-Neustadt";
  r = f.store->merge({newerD, bad}, revoked, "node-self");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 400);
  EXPECT_EQ(f.store->get("node-d")->name, "Dresden");
}

TEST(MemberStore, MergeTieBreakConverges) {
  RevocationList none;
  auto x = member("node-x", "Xanten", 100);
  auto y = x;
  y.name = "Ypsilon";
  Fixture one, two;
  ASSERT_TRUE(one.store->merge({x}, none, "a").ok());
  ASSERT_TRUE(one.store->merge({y}, none, "a").ok());
  ASSERT_TRUE(two.store->merge({y}, none, "b").ok());
  ASSERT_TRUE(two.store->merge({x}, none, "b").ok());
  EXPECT_EQ(one.store->get("node-x"), two.store->get("node-x"));
}

TEST(MemberStore, ClearKeepsAudit) {
  Fixture f;
  ASSERT_TRUE(f.store->upsert(member("node-a", "Berlin")).ok());
  ASSERT_TRUE(f.store->audit("left", "node-self", "left the federation").ok());
  ASSERT_TRUE(f.store->clear().ok());
  EXPECT_TRUE(f.store->all().empty());
  auto s = MemberStore::open(*f.db, f.timers);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->all().empty());
  EXPECT_EQ(f.store->auditLog()->size(), 1u);
}

TEST(MemberStore, AuditNewestFirstCleanedAndCapped) {
  Fixture f;
  f.timers.setWallStart(1000);
  ASSERT_TRUE(f.store->audit("created", "node-a", "first").ok());
  f.timers.advance(std::chrono::milliseconds(1000));
  ASSERT_TRUE(f.store->audit("member-joined", "node-b", "line1\nline2\x7f \xff end").ok());
  auto log = f.store->auditLog();
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].event, "member-joined");
  EXPECT_EQ((*log)[0].atMs, 2000);
  EXPECT_EQ((*log)[0].detail, "line1 line2  ? end");
  EXPECT_EQ((*log)[1].event, "created");
  EXPECT_GT((*log)[0].id, (*log)[1].id);
  EXPECT_EQ(f.store->auditLog(1)->size(), 1u);

  // Long detail is cut at a character boundary.
  std::string longText;
  for (int i = 0; i < 600; ++i) longText += "ä";
  ASSERT_TRUE(f.store->audit("removed", "node-c", longText).ok());
  auto cut = (*f.store->auditLog(1))[0].detail;
  EXPECT_EQ(cut.size(), kMaxAuditDetailBytes);
  EXPECT_NO_THROW((void)json(cut).dump());

  ASSERT_TRUE(f.db->transaction([&]() -> Result<void> {
                    for (int i = 0; i < kMaxAuditEntries + 5; ++i)
                      if (auto r = f.store->audit("refused", "node-z", std::to_string(i)); !r)
                        return r;
                    return {};
                  })
                  .ok());
  auto count = f.db->query("SELECT count(*) FROM federation_audit");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(store::asInt((*count)[0][0]), kMaxAuditEntries);
  auto all = f.store->auditLog(1'000'000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(int64_t(all->size()), kMaxAuditEntries);
  EXPECT_EQ(all->front().detail, std::to_string(kMaxAuditEntries + 4));
}

} // namespace
} // namespace verbund::federation

namespace verbund::federation {
namespace {

TEST(MemberStore, PinnedKeyNeverChangesThroughRecords) {
  Fixture f;
  RevocationList none;
  MemberRecord b = member("node-b", "B");
  b.fingerprint = std::string(64, 'b');
  ASSERT_TRUE(f.store->upsert(b).ok());
  EXPECT_EQ(f.store->pinOf("node-b"), std::string(64, 'b'));
  EXPECT_EQ(f.store->pinOf("node-x"), std::nullopt);
  // Newer gossip naming another key: the other facts are taken, the pin is kept.
  MemberRecord forged = member("node-b", "B renamed", 5000);
  forged.fingerprint = std::string(64, 'c');
  auto changed = f.store->merge({forged}, none, "node-a");
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(f.store->get("node-b")->name, "B renamed");
  EXPECT_EQ(f.store->pinOf("node-b"), std::string(64, 'b'));
  forged.updatedMs = 6000;
  ASSERT_TRUE(f.store->upsert(forged).ok());
  EXPECT_EQ(f.store->pinOf("node-b"), std::string(64, 'b'));
  // A member known without a pin takes the first one; it survives a reload.
  MemberRecord c = member("node-c", "C");
  ASSERT_TRUE(f.store->upsert(c).ok());
  EXPECT_EQ(f.store->pinOf("node-c"), std::string());
  c.fingerprint = std::string(64, 'd');
  c.updatedMs = 2000;
  ASSERT_TRUE(f.store->upsert(c).ok());
  auto reopened = MemberStore::open(*f.db, f.timers);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->pinOf("node-c"), std::string(64, 'd'));
  // Not hex: refused.
  MemberRecord bad = member("node-d", "D");
  bad.fingerprint = "xyz";
  EXPECT_FALSE(f.store->upsert(bad).ok());
  EXPECT_FALSE(memberFromJson(nlohmann::json{{"nodeId", "node-e"},
                                             {"name", "E"},
                                             {"controlAddresses", {"10.0.0.5:3090"}},
                                             {"fingerprint", 5}})
                   .ok());
}

} // namespace
} // namespace verbund::federation

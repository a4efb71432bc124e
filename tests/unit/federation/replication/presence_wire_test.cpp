#include "federation/replication/presence_wire.h"

#include <gtest/gtest.h>

namespace verbund::federation {
namespace {

using json = nlohmann::json;

pbx::DialogInfo ringing(const std::string& id = "d1") {
  pbx::DialogInfo d;
  d.id = id;
  d.callId = "a84b4c76e66710@pc33.example";
  d.localTag = "1928301774";
  d.remoteTag = "a6c85cf";
  d.direction = pbx::DialogDirection::Recipient;
  d.state = pbx::DialogState::Early;
  d.local = {"sip:201@a.example", "Alice", "sip:201@10.0.0.5:5060"};
  d.remote = {"sip:+4930999@a.example", "Müller GmbH", ""};
  return d;
}

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

TEST(PresenceWire, DialogRoundTripKeepsEveryField) {
  auto d = ringing();
  d.state = pbx::DialogState::Terminated;
  d.stateEvent = "cancelled";
  d.stateCode = 487;
  auto back = dialogFromJson(json::parse(toJson(d).dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, d);

  pbx::DialogInfo bare;
  bare.id = "x";
  bare.direction = pbx::DialogDirection::None;
  bare.state = pbx::DialogState::Confirmed;
  auto b = dialogFromJson(toJson(bare));
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, bare);

  for (auto dir : {pbx::DialogDirection::Initiator, pbx::DialogDirection::Recipient}) {
    d.direction = dir;
    EXPECT_EQ(dialogFromJson(toJson(d))->direction, dir);
  }
  for (auto st : {pbx::DialogState::Trying, pbx::DialogState::Proceeding, pbx::DialogState::Early,
                  pbx::DialogState::Confirmed, pbx::DialogState::Terminated}) {
    d.state = st;
    EXPECT_EQ(dialogFromJson(toJson(d))->state, st);
  }
}

TEST(PresenceWire, PresenceRoundTrip) {
  auto msg = presenceMessage("node-a", "201", {ringing("d1"), ringing("d2")});
  EXPECT_EQ(msg["t"], "presence");
  auto u = presenceFromJson(json::parse(msg.dump()));
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->owner, "node-a");
  EXPECT_EQ(u->extension, "201");
  ASSERT_EQ(u->dialogs.size(), 2u);
  EXPECT_EQ(u->dialogs[1], ringing("d2"));

  auto idle = presenceFromJson(presenceMessage("node-a", "201", {}));
  ASSERT_TRUE(idle.ok());
  EXPECT_TRUE(idle->dialogs.empty());
  json noDialogs = {{"t", "presence"}, {"owner", "node-a"}, {"extension", "201"}};
  EXPECT_TRUE(presenceFromJson(noDialogs).ok());
}

TEST(PresenceWire, SyncRoundTrip) {
  pbx::UserPresence p1{{"node-a", "201"}, pbx::LineState::Ringing, {ringing()}};
  pbx::UserPresence p2{{"node-a", "202"}, pbx::LineState::Busy, {}};
  auto msg = presenceSyncMessage("node-a", std::vector<pbx::UserPresence>{p1, p2});
  EXPECT_EQ(msg["t"], "presence-sync");
  auto s = presenceSyncFromJson(json::parse(msg.dump()));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->owner, "node-a");
  ASSERT_EQ(s->users.size(), 2u);
  EXPECT_EQ(s->users[0].extension, "201");
  ASSERT_EQ(s->users[0].dialogs.size(), 1u);
  EXPECT_EQ(s->users[0].dialogs[0], ringing());
  EXPECT_TRUE(s->users[1].dialogs.empty());

  auto again = presenceSyncMessage("node-a", s->users);
  EXPECT_EQ(again, msg);
  auto empty = presenceSyncFromJson(presenceSyncMessage("node-a", std::vector<pbx::UserDialogs>{}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->users.empty());
}

TEST(PresenceWire, Validation) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"valid", [](json&) {}, ""},
      {"owner missing", [](json& j) { j.erase("owner"); }, "owner"},
      {"owner bad", [](json& j) { j["owner"] = "a/b"; }, "owner"},
      {"extension bad", [](json& j) { j["extension"] = "2"; }, "extension"},
      {"dialogs object", [](json& j) { j["dialogs"] = json::object(); }, "dialogs"},
      {"dialog not object", [](json& j) { j["dialogs"][0] = 1; }, "dialogs[0]"},
      {"id missing", [](json& j) { j["dialogs"][0].erase("id"); }, "dialogs[0].id"},
      {"id empty", [](json& j) { j["dialogs"][0]["id"] = ""; }, "dialogs[0].id"},
      {"id long", [](json& j) { j["dialogs"][0]["id"] = std::string(257, 'i'); }, "dialogs[0].id"},
      {"callId control", [](json& j) { j["dialogs"][0]["callId"] = "abc\r\nVia: x"; },
       "dialogs[0].callId"},
      {"tag nul", [](json& j) { j["dialogs"][0]["localTag"] = std::string("a\0b", 3); },
       "dialogs[0].localTag"},
      {"tag number", [](json& j) { j["dialogs"][0]["remoteTag"] = 5; }, "dialogs[0].remoteTag"},
      {"direction bad", [](json& j) { j["dialogs"][0]["direction"] = "sideways"; },
       "dialogs[0].direction"},
      {"state missing", [](json& j) { j["dialogs"][0].erase("state"); }, "dialogs[0].state"},
      {"state bad", [](json& j) { j["dialogs"][0]["state"] = "ringing"; }, "dialogs[0].state"},
      {"code bad", [](json& j) { j["dialogs"][0]["stateCode"] = 42; }, "dialogs[0].stateCode"},
      {"code big", [](json& j) { j["dialogs"][0]["stateCode"] = 700; }, "dialogs[0].stateCode"},
      {"code negative", [](json& j) { j["dialogs"][0]["stateCode"] = -1; }, "dialogs[0].stateCode"},
      {"code float", [](json& j) { j["dialogs"][0]["stateCode"] = 486.5; }, "dialogs[0].stateCode"},
      {"event long", [](json& j) { j["dialogs"][0]["stateEvent"] = std::string(33, 'e'); },
       "dialogs[0].stateEvent"},
      {"remote not object", [](json& j) { j["dialogs"][0]["remote"] = "x"; }, "dialogs[0].remote"},
      {"display C1",
       [](json& j) {
         j["dialogs"][0]["remote"]["display"] = "a\xc2\x85"
                                                "b";
       },
       "dialogs[0].remote.display"},
      {"display LS", [](json& j) { j["dialogs"][0]["remote"]["display"] = "a\xe2\x80\xa8"; },
       "dialogs[0].remote.display"},
      {"identity long",
       [](json& j) { j["dialogs"][0]["local"]["identity"] = "sip:" + std::string(600, 'a'); },
       "dialogs[0].local.identity"},
      {"dup id", [](json& j) { j["dialogs"][1]["id"] = j["dialogs"][0]["id"]; }, "dialogs[1].id"},
      {"17 dialogs",
       [](json& j) {
         j["dialogs"] = json::array();
         for (int i = 0; i < 17; ++i) j["dialogs"].push_back(toJson(ringing(std::to_string(i))));
       },
       "dialogs"},
      {"16 dialogs",
       [](json& j) {
         j["dialogs"] = json::array();
         for (int i = 0; i < 16; ++i) j["dialogs"].push_back(toJson(ringing(std::to_string(i))));
       },
       ""},
  };
  for (const auto& c : cases) {
    json j = presenceMessage("node-a", "201", {ringing("d1"), ringing("d2")});
    c.edit(j);
    auto r = presenceFromJson(j);
    if (std::string(c.field).empty()) {
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.error().message;
    } else {
      ASSERT_FALSE(r.ok()) << c.name;
      EXPECT_EQ(r.error().code, 400) << c.name;
      EXPECT_EQ(fieldOf(r.error()), c.field) << c.name << ": " << r.error().message;
    }
  }
}

TEST(PresenceWire, SyncValidation) {
  auto msg = presenceSyncMessage("node-a",
                                 std::vector<pbx::UserDialogs>{{"201", {ringing()}}, {"202", {}}});
  auto bad = [&](const std::function<void(json&)>& edit, const char* field) {
    json j = msg;
    edit(j);
    auto r = presenceSyncFromJson(j);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().code, 400);
    EXPECT_EQ(fieldOf(r.error()), field) << r.error().message;
  };
  bad([](json& j) { j["users"][1]["extension"] = "201"; }, "users[1].extension");
  bad([](json& j) { j["users"][0]["dialogs"][0]["state"] = 3; }, "users[0].dialogs[0].state");
  bad([](json& j) { j["users"] = "all"; }, "users");
  bad([](json& j) { j["users"][0] = json::array(); }, "users[0]");
  bad([](json& j) { j["owner"] = ""; }, "owner");
  EXPECT_FALSE(presenceSyncFromJson(json(nullptr)).ok());
}

pbx::CallOutcome outcome() {
  pbx::CallOutcome o;
  o.correlationId = "3848276298220188511@node-a";
  o.relatedCorrelationId = "998877@node-b";
  o.caller = "+4930123456";
  o.callerName = "Müller";
  o.callee = "600";
  o.calleeName = "Sales";
  o.calleeOwner = "node-a";
  o.answeredBy = "301";
  o.answeredByName = "Bob";
  o.answeredByOwner = "node-b";
  o.disposition = pbx::Disposition::PickedUp;
  o.answerMs = 1748736000123;
  o.fallbackNumber = "+4932555301";
  o.fallbackCaller = "+4931555101";
  o.fallbackMs = 1748736000001;
  return o;
}

bool same(const pbx::CallOutcome& a, const pbx::CallOutcome& b) {
  return a.correlationId == b.correlationId && a.relatedCorrelationId == b.relatedCorrelationId &&
         a.caller == b.caller && a.callerName == b.callerName && a.callerOwner == b.callerOwner &&
         a.callee == b.callee && a.calleeName == b.calleeName && a.calleeOwner == b.calleeOwner &&
         a.answeredBy == b.answeredBy && a.answeredByName == b.answeredByName &&
         a.answeredByOwner == b.answeredByOwner && a.disposition == b.disposition &&
         a.answerMs == b.answerMs && a.fallbackNumber == b.fallbackNumber &&
         a.fallbackCaller == b.fallbackCaller && a.fallbackMs == b.fallbackMs;
}

TEST(OutcomeWire, RoundTrip) {
  auto o = outcome();
  auto j = toJson(o);
  EXPECT_EQ(j["t"], "call-outcome");
  EXPECT_EQ(j["disposition"], "picked-up");
  auto back = callOutcomeFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(same(*back, o));

  for (auto d : {pbx::Disposition::Answered, pbx::Disposition::Missed, pbx::Disposition::Busy,
                 pbx::Disposition::PickedUp, pbx::Disposition::CompletedElsewhere,
                 pbx::Disposition::Failed}) {
    o.disposition = d;
    auto r = callOutcomeFromJson(toJson(o));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->disposition, d);
  }

  json minimal = {{"correlationId", "c1"}, {"disposition", "missed"}};
  auto m = callOutcomeFromJson(minimal);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->answerMs, 0);
  EXPECT_EQ(m->caller, "");
  EXPECT_EQ(m->fallbackNumber, ""); // from nodes that do not send the fallback fields
  EXPECT_EQ(m->fallbackMs, 0);
}

TEST(OutcomeWire, TransferFieldsAreOptional) {
  auto o = outcome();
  EXPECT_FALSE(toJson(o).contains("transferredBy")); // nodes before transfers see nothing new
  o.transferredBy = "102";
  o.transferTarget = "201";
  o.transferCorrelationId = "abc@nodeA";
  auto back = callOutcomeFromJson(json::parse(toJson(o).dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->transferredBy, "102");
  EXPECT_EQ(back->transferTarget, "201");
  EXPECT_EQ(back->transferCorrelationId, "abc@nodeA");
  json j = toJson(o);
  j["transferCorrelationId"] = "a b";
  EXPECT_FALSE(callOutcomeFromJson(j).ok());
  j["transferCorrelationId"] = 5;
  EXPECT_FALSE(callOutcomeFromJson(j).ok());
}

TEST(OutcomeWire, Validation) {
  auto bad = [](const std::function<void(json&)>& edit, const char* field) {
    json j = toJson(outcome());
    edit(j);
    auto r = callOutcomeFromJson(j);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().code, 400);
    EXPECT_EQ(fieldOf(r.error()), field) << r.error().message;
  };
  bad([](json& j) { j.erase("correlationId"); }, "correlationId");
  bad([](json& j) { j["correlationId"] = "with space"; }, "correlationId");
  bad([](json& j) { j["relatedCorrelationId"] = std::string(300, 'r'); }, "relatedCorrelationId");
  bad([](json& j) { j["callerName"] = "evil\nname"; }, "callerName");
  bad([](json& j) { j["callee"] = 600; }, "callee");
  bad([](json& j) { j["answeredByOwner"] = "node b"; }, "answeredByOwner");
  bad([](json& j) { j["disposition"] = "exploded"; }, "disposition");
  bad([](json& j) { j.erase("disposition"); }, "disposition");
  bad([](json& j) { j["answerMs"] = -5; }, "answerMs");
  bad([](json& j) { j["answerMs"] = "now"; }, "answerMs");
  bad([](json& j) { j["fallbackCaller"] = std::string(300, '1'); }, "fallbackCaller");
  bad([](json& j) { j["fallbackNumber"] = "+49\r\n1"; }, "fallbackNumber");
  bad([](json& j) { j["fallbackMs"] = -1; }, "fallbackMs");
  EXPECT_FALSE(callOutcomeFromJson(json::array()).ok());
}

} // namespace
} // namespace verbund::federation

#include "http/directory_json.h"

#include <gtest/gtest.h>

namespace verbund::http {
namespace {

using nlohmann::json;

std::string fieldOf(const Error& e) {
  return e.message.substr(0, e.message.find(':'));
}

TEST(DirectoryJson, ParsesUserInput) {
  auto in = parseUserInput(json::parse(R"({"extension":"101","displayName":"Alice",
      "sipPassword":"secret-pass","shared":false,"id":5})"));
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(*in->extension, "101");
  EXPECT_EQ(*in->shared, false);
  EXPECT_FALSE(in->language);
}

TEST(DirectoryJson, TypeErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c : std::vector<Case>{{R"({"extension":101})", "extension"},
                                         {R"({"displayName":null})", "displayName"},
                                         {R"({"shared":"yes"})", "shared"},
                                         {R"({"nickname":"x"})", "nickname"},
                                         {R"([1,2])", "body"}}) {
    auto r = parseUserInput(json::parse(c.body));
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().code, 400);
    EXPECT_EQ(fieldOf(r.error()), c.field) << c.body;
  }
  for (const auto& c :
       std::vector<Case>{{R"({"members":{}})", "members"},
                         {R"({"members":[1]})", "members"},
                         {R"({"members":[{"owner":1,"extension":"1"}]})", "members.owner"},
                         {R"({"members":[{"owner":"b"}]})", "members.extension"},
                         {R"({"members":[{"extension":"10","x":1}]})", "members.x"},
                         {R"({"number":600})", "number"}}) {
    auto r = parseGroupInput(json::parse(c.body));
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(fieldOf(r.error()), c.field) << c.body;
  }
}

TEST(DirectoryJson, GroupMembersShorthand) {
  auto in = parseGroupInput(json::parse(
      R"({"number":"600","name":"Sales","members":["101",{"owner":"node-b","extension":"201","loggedIn":false}]})"));
  ASSERT_TRUE(in.ok()) << in.error().message;
  ASSERT_EQ(in->members->size(), 2u);
  EXPECT_EQ((*in->members)[0], (pbx::GroupMember{"", "101", true}));
  EXPECT_EQ((*in->members)[1], (pbx::GroupMember{"node-b", "201", false}));
}

TEST(DirectoryJson, UserJsonHasNoSecrets) {
  pbx::User u;
  u.extension = "101";
  auto j = toJson(u);
  EXPECT_FALSE(j.contains("sipPassword"));
  EXPECT_FALSE(j.contains("ha1Md5"));
  EXPECT_EQ(j["extension"], "101");
}

TEST(DirectoryJson, UserFeatures) {
  auto in = parseUserInput(json::parse(
      R"({"extension":"101","dnd":true,"forward":{"busy":"202","noAnswerSeconds":30,"always":null}})"));
  ASSERT_TRUE(in.ok()) << in.error().message;
  EXPECT_EQ(*in->dnd, true);
  EXPECT_EQ(*in->forward.busy, "202");
  EXPECT_EQ(*in->forward.always, "");
  EXPECT_EQ(*in->forward.noAnswerSeconds, 30);
  EXPECT_FALSE(in->forward.noAnswer);

  pbx::User u;
  u.dnd = true;
  u.forward.unregistered = "+4930123456";
  auto j = toJson(u);
  EXPECT_EQ(j["dnd"], true);
  EXPECT_EQ(j["forward"]["unregistered"], "+4930123456");
  EXPECT_EQ(j["forward"]["noAnswerSeconds"], 20);
  EXPECT_EQ(j["forward"]["always"], "");

  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c :
       std::vector<Case>{{R"({"dnd":"on"})", "dnd"},
                         {R"({"forward":[]})", "forward"},
                         {R"({"forward":{"busy":202}})", "forward.busy"},
                         {R"({"forward":{"later":"1"}})", "forward.later"},
                         {R"({"forward":{"noAnswerSeconds":"20"}})", "forward.noAnswerSeconds"},
                         {R"({"forward":{"noAnswerSeconds":2.5}})", "forward.noAnswerSeconds"},
                         {R"({"extension":"101"})", "extension"}}) {
    auto r = parseUserFeatures(json::parse(c.body));
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(fieldOf(r.error()), c.field) << c.body;
  }
}

} // namespace
} // namespace verbund::http

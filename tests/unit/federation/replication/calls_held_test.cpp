// "calls-held" (calls_held.h): the list of cross-site calls a node sends on link up. Valid
// messages round-trip; malformed ones are refused with an error naming the field.
#include "federation/replication/calls_held.h"

#include <gtest/gtest.h>

namespace verbund::federation {
namespace {

using json = nlohmann::json;

TEST(CallsHeld, RoundTripSortsAndDropsDuplicates) {
  auto msg = callsHeldMessage("node-b", {"c@node-a", "a@node-b", "c@node-a"});
  EXPECT_EQ(msg["t"], "calls-held");
  auto held = callsHeldFromJson(msg);
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_EQ(held->owner, "node-b");
  EXPECT_EQ(held->calls, (std::vector<std::string>{"a@node-b", "c@node-a"}));
  auto empty = callsHeldFromJson(callsHeldMessage("node-b", {}));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->calls.empty());
}

TEST(CallsHeld, MalformedMessagesNameTheField) {
  struct Case {
    json j;
    std::string field;
  };
  const std::vector<Case> cases = {
      {json::array(), "message"},
      {{{"calls", json::array()}}, "owner"},
      {{{"owner", 7}, {"calls", json::array()}}, "owner"},
      {{{"owner", ""}, {"calls", json::array()}}, "owner"},
      {{{"owner", "node-b"}}, "calls"},
      {{{"owner", "node-b"}, {"calls", "x"}}, "calls"},
      {{{"owner", "node-b"}, {"calls", {1}}}, "calls[0]"},
      {{{"owner", "node-b"}, {"calls", {"ok", ""}}}, "calls[1]"},
      {{{"owner", "node-b"}, {"calls", {"a b"}}}, "calls[0]"},
      {{{"owner", "node-b"}, {"calls", {"a\x01"}}}, "calls[0]"},
      {{{"owner", "node-b"}, {"calls", {std::string(kMaxHeldIdBytes + 1, 'a')}}}, "calls[0]"},
  };
  for (const auto& c : cases) {
    auto r = callsHeldFromJson(c.j);
    ASSERT_FALSE(r) << c.j.dump();
    EXPECT_NE(r.error().message.find(c.field), std::string::npos)
        << c.j.dump() << ": " << r.error().message;
  }
  EXPECT_TRUE(callsHeldFromJson(
      {{"owner", "node-b"}, {"calls", {std::string(kMaxHeldIdBytes, 'a')}}, {"future", true}}));
}

TEST(CallsHeld, ListIsBounded) {
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxCallsHeld; ++i) many.push_back("c" + std::to_string(i));
  auto r = callsHeldFromJson(callsHeldMessage("node-b", many));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("calls"), std::string::npos);
  many.pop_back();
  EXPECT_TRUE(callsHeldFromJson(callsHeldMessage("node-b", many)));
}

} // namespace
} // namespace verbund::federation

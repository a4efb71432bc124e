#include "http/api.h"
#include "http/router.h"

#include <gtest/gtest.h>

namespace verbund::http {
namespace {

TEST(Router, MatchesPatternsAndParams) {
  Router<int> r;
  EXPECT_TRUE(r.add(Method::Get, "/api/v1/users", 1));
  EXPECT_TRUE(r.add(Method::Get, "/api/v1/users/{id}", 2));
  EXPECT_TRUE(r.add(Method::Put, "/api/v1/groups/{id}/members/{owner}/{extension}/login", 3));
  EXPECT_FALSE(r.add(Method::Get, "/api/v1/users", 4)); // duplicate
  EXPECT_FALSE(r.add(Method::Get, "/api/v1/{bad", 5));

  auto m = r.match(Method::Get, "/api/v1/users/");
  ASSERT_TRUE(m.entry);
  EXPECT_EQ(*m.entry, 1);
  m = r.match(Method::Get, "/api/v1/users/42");
  ASSERT_TRUE(m.entry);
  EXPECT_EQ(*m.entry, 2);
  EXPECT_EQ(m.params["id"], "42");
  m = r.match(Method::Put, "/api/v1/groups/7/members/local/101/login");
  ASSERT_TRUE(m.entry);
  EXPECT_EQ(m.params["owner"], "local");
  EXPECT_EQ(m.params["extension"], "101");
  m = r.match(Method::Delete, "/api/v1/users/42");
  EXPECT_FALSE(m.entry);
  EXPECT_TRUE(m.pathKnown);
  m = r.match(Method::Get, "/api/v1/nothing");
  EXPECT_FALSE(m.entry);
  EXPECT_FALSE(m.pathKnown);
}

TEST(Api, ErrorBodyNamesField) {
  auto j = errorBody(Error{400, "extension: digits only, 2 to 8 of them"});
  EXPECT_EQ(j["error"]["code"], "invalid");
  EXPECT_EQ(j["error"]["field"], "extension");
  j = errorBody(Error{409, "members.owner: bad"});
  EXPECT_EQ(j["error"]["code"], "conflict");
  EXPECT_EQ(j["error"]["field"], "members.owner");
  j = errorBody(Error{503, "node busy: try again"}); // not an identifier: no field
  EXPECT_FALSE(j["error"].contains("field"));
}

TEST(Api, ParseJsonBody) {
  EXPECT_TRUE(parseJsonBody(R"({"a":[1,2,{"b":"]]]"}]})").ok());
  auto bad = parseJsonBody("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "body: malformed JSON");
  EXPECT_FALSE(parseJsonBody(std::string(100, '[') + std::string(100, ']')).ok());
  EXPECT_FALSE(parseJsonBody("\"\xff\"").ok()); // invalid UTF-8
  EXPECT_EQ(dumpJson(nlohmann::json(std::string("a\xff"))), "\"a\xEF\xBF\xBD\"");
}

TEST(Api, IdParam) {
  RequestContext c;
  c.params["id"] = "12";
  EXPECT_EQ(c.idParam("id").value(), 12);
  for (const char* bad : {"", "0", "-1", "1x", "99999999999999999999"}) {
    c.params["id"] = bad;
    auto r = c.idParam("id");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "id: positive integer expected");
  }
}

} // namespace
} // namespace verbund::http

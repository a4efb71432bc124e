#include "pbx/directory/user_csv.h"

#include <gtest/gtest.h>

namespace verbund::pbx {
namespace {

TEST(Csv, QuotingAndLineEnds) {
  auto r = parseCsv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"x\ny\",,z\n\nlast", 10);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].row, 1u);
  EXPECT_EQ((*r)[0].fields, (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
  EXPECT_EQ((*r)[1].row, 2u);
  EXPECT_EQ((*r)[1].fields, (std::vector<std::string>{"x\ny", "", "z"}));
  EXPECT_EQ((*r)[2].row, 5u); // after the quoted line break and the blank line
  EXPECT_EQ((*r)[2].fields, (std::vector<std::string>{"last"}));
}

TEST(Csv, BomAndUtf8) {
  auto r = parseCsv("\xEF\xBB\xBFname\nM\xC3\xBCller\n", 10);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].fields[0], "name");
  EXPECT_EQ((*r)[1].fields[0], "M\xC3\xBCller");
}

TEST(Csv, Errors) {
  struct Case {
    const char* text;
    const char* message;
    int code = 400;
  };
  for (const auto& c : std::vector<Case>{{"a\n\"open", "row 2: quoted field not closed"},
                                         {"a\nb\"c", "row 2: quote inside an unquoted field"},
                                         {"\"a\"b", "row 1: text after a closing quote"},
                                         {"a\n\nb\xC3\x28", "row 3: not UTF-8"},
                                         {"a\n\xED\xA0\x80", "row 2: not UTF-8"}, // a surrogate
                                         {"a\nb\nc", "row 3: more than 2 records", 413}}) {
    auto r = parseCsv(c.text, 2);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, c.code);
    EXPECT_EQ(r.error().message, c.message);
  }
  EXPECT_FALSE(parseCsv(std::string(kMaxCsvField + 1, 'x'), 2).ok());
  auto big = parseCsv(std::string(kMaxCsvBytes + 1, '\n'), 2);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, 413);
}

TEST(UserCsv, MapsColumnsByHeader) {
  auto r = usersFromCsv("shared,sipPassword,displayName,extension,language\n"
                        "no,pw-201-xx,\"Alt, Anna\",201,\n"
                        ",pw-202-xx,Bernd,202,en\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->errors.empty());
  ASSERT_EQ(r->rows.size(), 2u);
  const auto& a = r->rows[0];
  EXPECT_EQ(a.row, 2u);
  EXPECT_EQ(a.input.extension, "201");
  EXPECT_EQ(a.input.displayName, "Alt, Anna");
  EXPECT_EQ(a.input.sipPassword, "pw-201-xx");
  EXPECT_EQ(a.input.shared, false);
  EXPECT_FALSE(a.input.language); // empty cell: not given
  EXPECT_FALSE(a.input.sipUser);
  EXPECT_FALSE(r->rows[1].input.shared);
  EXPECT_EQ(r->rows[1].input.language, "en");
}

TEST(UserCsv, ListsRowErrors) {
  auto r = usersFromCsv("extension,displayName,sipPassword,shared\n"
                        "201,A,pw-201-xx,\n"
                        "202,B\n"
                        "203,C,pw-203-xx,maybe\n");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->errors, (std::vector<UserRowError>{{3, "", "2 fields, the header has 4"},
                                                  {4, "shared", "true or false expected"}}));
}

TEST(UserCsv, HeaderErrors) {
  auto r = usersFromCsv("extension,name,extension\n201,A,201\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->rows.empty());
  EXPECT_EQ(r->errors, (std::vector<UserRowError>{{1, "name", "unknown column"},
                                                  {1, "extension", "column given twice"},
                                                  {1, "displayName", "required column missing"},
                                                  {1, "sipPassword", "required column missing"}}));
  auto empty = usersFromCsv("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->errors.size(), 1u);
}

TEST(UserCsv, FileRowErrorsNameTheFileRows) {
  // Row 2's record spans two lines, so the records start on rows 2, 4, 5 and 6.
  auto r = usersFromCsv("extension,displayName,sipPassword\n"
                        "201,\"A\nB\",pw-201-xx\n"
                        "202,C,pw-202-xx\n"
                        "203\n"
                        "201,D,pw-204-xx\n");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rows.size(), 3u);
  // importUsers counts r->rows from 1: its row 3 (file row 6) repeats its row 1 (file row 2).
  std::vector<UserRowError> import = {{3, "extension", "also in row 1", 1},
                                      {2, "sipPassword", "too short"}};
  EXPECT_EQ(fileRowErrors(*r, import),
            (std::vector<UserRowError>{{4, "sipPassword", "too short"},
                                       {5, "", "1 fields, the header has 3"},
                                       {6, "extension", "also in row 2", 2}}));
}

} // namespace
} // namespace verbund::pbx

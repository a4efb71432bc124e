// The call-record export (GET /api/v1/calls/export): CSV and JSON forms, filters, paging across
// many pages, and the chunked stream of the admin server.
#include "http/call_export.h"
#include "server_fixture.h"

#include <sstream>

namespace verbund::http {
namespace {

pbx::CallRecord record(int i, int64_t start) {
  pbx::CallRecord r;
  r.correlationId = "call-" + std::to_string(i);
  r.direction = "internal";
  r.caller = i % 2 ? "101" : "102";
  r.callerName = "Anna, \"the boss\"";
  r.dialled = "200";
  r.answeredBy = "200";
  r.disposition = pbx::Disposition::Answered;
  r.startMs = start;
  r.answerMs = start + 2000;
  r.endMs = start + 62000;
  r.parties = {{pbx::PartyRole::Caller, r.caller, "Anna", "", pbx::Disposition::Answered},
               {pbx::PartyRole::Callee, "200", "Desk", "", pbx::Disposition::Answered}};
  return r;
}

std::vector<std::string> lines(const std::string& body) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < body.size()) {
    auto j = body.find("\r\n", i);
    if (j == std::string::npos) j = body.size();
    out.push_back(body.substr(i, j - i));
    i = j + 2;
  }
  return out;
}

TEST(CallCsv, HeaderAndQuoting) {
  EXPECT_EQ(callCsvHeader(),
            "id,correlation_id,start,answer,end,duration_s,direction,caller,caller_name,dialled,"
            "answered_by,disposition,external_line,parties,forwarded,transferred_by,"
            "transfer_target\r\n");
  auto r = record(1, 1767225600000);
  r.id = 7;
  r.parties[1].forwardedFrom = "201";
  r.parties[1].forwardReason = "busy";
  r.parties[1].owner = "nodeB";
  EXPECT_EQ(callCsvRow(r),
            "7,call-1,2026-01-01T00:00:00.000Z,2026-01-01T00:00:02.000Z,2026-01-01T00:01:02.000Z,"
            "60,internal,101,\"Anna, \"\"the boss\"\"\",200,200,answered,no,"
            "caller:101 callee:200@nodeB,201>200@nodeB:busy,,\r\n");
  r.callerName = "=HYPERLINK(\"x\")";
  EXPECT_NE(callCsvRow(r).find(",\"'=HYPERLINK(\"\"x\"\")\","), std::string::npos);
  EXPECT_EQ(isoTime(0), "");
  EXPECT_EQ(isoTime(1767225600123), "2026-01-01T00:00:00.123Z");
}

class CallExportTest : public AdminServerTest {
protected:
  static constexpr int kRecords = 2500; // three pages
  void addRoutes(AdminServer& s) override {
    logDb_ = std::move(store::Database::open(":memory:", pbx::CallLog::migrations()).value());
    log_ = std::make_unique<pbx::CallLog>(*logDb_);
    // Several records share a start time: paging must neither repeat nor skip them.
    for (int i = 0; i < kRecords; ++i)
      ASSERT_TRUE(log_->save(record(i, 1767225600000 + (i / 3) * 1000)).ok());
    addCallExportRoute(s, *log_);
  }
  void TearDown() override {
    AdminServerTest::TearDown();
    log_.reset();
  }
  std::unique_ptr<store::Database> logDb_;
  std::unique_ptr<pbx::CallLog> log_;
};

TEST_F(CallExportTest, CsvHasEveryRecordOnceOldestFirst) {
  login();
  auto r = client_->Get("/api/v1/calls/export?format=csv", session(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/csv; charset=utf-8");
  EXPECT_NE(r->get_header_value("Content-Disposition").find("calls.csv"), std::string::npos);
  auto ls = lines(r->body);
  ASSERT_EQ(ls.size(), size_t(kRecords + 1));
  EXPECT_EQ(ls[0] + "\r\n", callCsvHeader());
  std::set<std::string> ids;
  for (size_t i = 1; i < ls.size(); ++i) {
    auto first = ls[i].find(',');
    auto second = ls[i].find(',', first + 1);
    ids.insert(ls[i].substr(first + 1, second - first - 1));
  }
  EXPECT_EQ(ids.size(), size_t(kRecords));
  EXPECT_NE(ls[1].find(",call-0,"), std::string::npos);
  EXPECT_NE(ls.back().find(",call-2499,"), std::string::npos);
}

TEST_F(CallExportTest, JsonWithFilters) {
  login();
  // Records 300..599 start in [from, to); the odd ones have caller 101.
  int64_t from = 1767225600000 + 100 * 1000, to = 1767225600000 + 200 * 1000;
  auto r =
      client_->Get("/api/v1/calls/export?format=json&extension=101&from=" + std::to_string(from) +
                       "&to=" + std::to_string(to),
                   session(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->body.substr(0, 200);
  ASSERT_EQ(j["calls"].size(), 150u);
  EXPECT_EQ(j["calls"][0]["correlationId"], "call-301");
  EXPECT_EQ(j["calls"][0]["parties"].size(), 2u);
  auto all = client_->Get("/api/v1/calls/export?format=json", session(false));
  EXPECT_EQ(json::parse(all->body)["calls"].size(), size_t(kRecords));
}

TEST_F(CallExportTest, RefusesBadParametersAndStrangers) {
  auto anonymous = client_->Get("/api/v1/calls/export");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  login();
  for (const char* q : {"format=xml", "from=yesterday", "from=5&to=4", "disposition=x"}) {
    auto r = client_->Get(std::string("/api/v1/calls/export?") + q, session(false));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << q << ": " << r->body;
  }
  // An empty range is a header only.
  auto none = client_->Get("/api/v1/calls/export?from=1&to=2", session(false));
  auto ls = lines(none->body);
  EXPECT_TRUE(ls.size() == 1 || (ls.size() == 2 && ls[1].empty())) << none->body.substr(0, 300);
}

} // namespace
} // namespace verbund::http

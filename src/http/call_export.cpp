#include "http/call_export.h"

#include "base/metrics.h"
#include "http/loop_executor.h"

#include <array>
#include <ctime>
#include <memory>

namespace verbund::http {

namespace {

Counter exports("verbund_http_call_exports_total", "Call-record exports started (CSV or JSON)");

constexpr std::array<const char*, 4> kRoleNames{"caller", "callee", "rang", "answered-by"};

const std::array<const char*, 17> kCsvColumns{"id",
                                              "correlation_id",
                                              "start",
                                              "answer",
                                              "end",
                                              "duration_s",
                                              "direction",
                                              "caller",
                                              "caller_name",
                                              "dialled",
                                              "answered_by",
                                              "disposition",
                                              "external_line",
                                              "parties",
                                              "forwarded",
                                              "transferred_by",
                                              "transfer_target"};

std::string csvField(std::string_view v) {
  std::string s(v);
  if (!s.empty() && (s[0] == '=' || s[0] == '@' || s[0] == '\t' || s[0] == '\r')) s.insert(0, "'");
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string partyName(const pbx::CallParty& p) {
  return p.owner.empty() ? p.extension : p.extension + "@" + p.owner;
}

// One export in progress: the pieces of its body.
struct ExportState {
  pbx::CallLog* log;
  LoopExecutor* loop;
  pbx::CallQuery query;
  bool csv = true;
  bool started = false;
  bool any = false;
  std::optional<pbx::CallCursor> cursor;

  Result<bool> next(std::string& out) {
    if (!started) {
      started = true;
      exports.inc();
      out = csv ? callCsvHeader() : std::string("{\"calls\":[");
      return true;
    }
    auto page = loop->run([this] { return log->page(query, cursor); });
    if (!page) return page.error();
    for (const auto& r : *page) {
      if (csv) {
        out += callCsvRow(r);
      } else {
        if (any) out += ',';
        out += dumpJson(callRecordJson(r));
      }
      any = true;
    }
    if (!page->empty()) cursor = pbx::CallCursor{page->back().startMs, page->back().id};
    if (page->size() < size_t(query.limit)) {
      if (!csv) out += "]}\n";
      return false;
    }
    return true;
  }
};

Result<int64_t> msParam(const RequestContext& c, const char* name) {
  auto v = c.queryValue(name);
  if (!v || v->empty()) return int64_t(0);
  try {
    size_t used = 0;
    int64_t out = std::stoll(*v, &used);
    if (used != v->size() || out < 0) throw std::invalid_argument("junk");
    return out;
  } catch (const std::exception&) {
    return Error{400, std::string(name) + ": not a time (Unix milliseconds)"};
  }
}

} // namespace

std::string isoTime(int64_t ms) {
  if (ms <= 0) return {};
  std::time_t secs = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms % 1000));
  return buf;
}

nlohmann::json callRecordJson(const pbx::CallRecord& r) {
  nlohmann::json parties = nlohmann::json::array();
  for (const auto& p : r.parties) {
    parties.push_back({{"role", kRoleNames[size_t(p.role)]},
                       {"extension", p.extension},
                       {"name", p.name},
                       {"node", p.owner},
                       {"disposition", pbx::dispositionName(p.disposition)}});
    // Call forwarding: who forwarded to this party, and why.
    if (!p.forwardReason.empty())
      parties.back()["forwarded"] = {{"from", p.forwardedFrom},
                                     {"fromNode", p.forwardedFromOwner},
                                     {"reason", p.forwardReason}};
  }
  return {{"id", r.id},
          {"correlationId", r.correlationId},
          {"relatedCorrelationId", r.relatedCorrelationId},
          {"direction", r.direction},
          {"caller", r.caller},
          {"callerName", r.callerName},
          {"dialled", r.dialled},
          {"answeredBy", r.answeredBy},
          {"disposition", pbx::dispositionName(r.disposition)},
          {"viaExternalLine", r.viaTrunk},
          {"startMs", r.startMs},
          {"answerMs", r.answerMs},
          {"endMs", r.endMs},
          {"parties", parties},
          // A transferred call: who transferred it to whom, and the other call of the transfer.
          {"transfer", r.transferred() ? nlohmann::json{{"by", r.transferredBy},
                                                        {"target", r.transferTarget},
                                                        {"correlationId", r.transferCorrelationId}}
                                       : nlohmann::json(nullptr)}};
}

std::string callCsvHeader() {
  std::string out;
  for (size_t i = 0; i < kCsvColumns.size(); ++i) {
    if (i) out += ',';
    out += kCsvColumns[i];
  }
  out += "\r\n";
  return out;
}

std::string callCsvRow(const pbx::CallRecord& r) {
  std::string parties, forwarded;
  for (const auto& p : r.parties) {
    if (!parties.empty()) parties += ' ';
    parties += std::string(kRoleNames[size_t(p.role)]) + ":" + partyName(p);
    if (!p.forwardReason.empty()) {
      if (!forwarded.empty()) forwarded += ' ';
      std::string from = p.forwardedFromOwner.empty()
                             ? p.forwardedFrom
                             : p.forwardedFrom + "@" + p.forwardedFromOwner;
      forwarded += from + ">" + partyName(p) + ":" + p.forwardReason;
    }
  }
  int64_t duration = r.answerMs && r.endMs > r.answerMs ? (r.endMs - r.answerMs) / 1000 : 0;
  const std::array<std::string, 17> fields{std::to_string(r.id),
                                           r.correlationId,
                                           isoTime(r.startMs),
                                           isoTime(r.answerMs),
                                           isoTime(r.endMs),
                                           std::to_string(duration),
                                           r.direction,
                                           r.caller,
                                           r.callerName,
                                           r.dialled,
                                           r.answeredBy,
                                           std::string(pbx::dispositionName(r.disposition)),
                                           r.viaTrunk ? "yes" : "no",
                                           parties,
                                           forwarded,
                                           r.transferredBy,
                                           r.transferTarget};
  static_assert(fields.size() == kCsvColumns.size());
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csvField(fields[i]);
  }
  out += "\r\n";
  return out;
}

void addCallExportRoute(AdminServer& server, pbx::CallLog& log) {
  server.route(Method::Get, "/api/v1/calls/export", [&log](RequestContext& c) -> Result<Response> {
    auto st = std::make_shared<ExportState>();
    st->log = &log;
    st->loop = c.loop;
    std::string format = c.queryValue("format").value_or("csv");
    if (format != "csv" && format != "json") return Error{400, "format: csv or json"};
    st->csv = format == "csv";
    if (auto e = c.queryValue("extension"); e && !e->empty()) st->query.extension = *e;
    if (auto d = c.queryValue("disposition"); d && !d->empty()) {
      auto disp = pbx::dispositionFromName(*d);
      if (!disp) return Error{400, "disposition: unknown value '" + *d + "'"};
      st->query.disposition = *disp;
    }
    auto from = msParam(c, "from");
    if (!from) return from.error();
    auto to = msParam(c, "to");
    if (!to) return to.error();
    if (*from && *to && *to <= *from) return Error{400, "to: must be after from"};
    st->query.fromMs = *from;
    st->query.toMs = *to;
    st->query.limit = kExportPage;
    Response r;
    r.contentType = st->csv ? "text/csv; charset=utf-8" : "application/json";
    r.headers.emplace_back("Content-Disposition",
                           std::string("attachment; filename=\"calls.") + format + "\"");
    r.stream = [st](std::string& out) { return st->next(out); };
    return r;
  });
}

} // namespace verbund::http

// The ringing-call journal in SQLite (journal.h).
#include "pbx/calls/journal.h"

#include "base/log.h"

#include <algorithm>
#include <charconv>

namespace verbund::pbx {

namespace {
constexpr char kRecordSep = '\x1e';
constexpr char kFieldSep = '\x1f';

void appendField(std::string& out, std::string_view value) {
  for (char c : value)
    if (c != kRecordSep && c != kFieldSep) out += c;
  out += kFieldSep;
}

std::vector<std::vector<std::string_view>> split(std::string_view text) {
  std::vector<std::vector<std::string_view>> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(kRecordSep, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view rec = text.substr(start, end - start);
    std::vector<std::string_view> fields;
    size_t f = 0;
    while (f < rec.size()) {
      size_t e = rec.find(kFieldSep, f);
      if (e == std::string_view::npos) e = rec.size();
      fields.push_back(rec.substr(f, e - f));
      f = e + 1;
    }
    out.push_back(std::move(fields));
    start = end + 1;
  }
  return out;
}

std::optional<int> toInt(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}
} // namespace

std::string encodeJournalParties(const std::vector<CallParty>& parties) {
  std::string out;
  for (const auto& p : parties) {
    appendField(out, std::to_string(int(p.role)));
    appendField(out, p.extension);
    appendField(out, p.name);
    appendField(out, p.owner);
    out += kRecordSep;
  }
  return out;
}

std::vector<CallParty> decodeJournalParties(std::string_view text) {
  std::vector<CallParty> out;
  for (const auto& f : split(text)) {
    if (f.size() < 4) continue;
    auto role = toInt(f[0]);
    if (!role || *role < 0 || *role > int(PartyRole::AnsweredBy)) continue;
    CallParty p;
    p.role = PartyRole(*role);
    p.extension = std::string(f[1]);
    p.name = std::string(f[2]);
    p.owner = std::string(f[3]);
    out.push_back(std::move(p));
  }
  return out;
}

std::string encodeJournalCancels(const std::vector<RingingCall::Cancel>& cancels) {
  std::string out;
  for (const auto& c : cancels) {
    appendField(out, std::to_string(int(c.target.transport)));
    appendField(out, c.target.remote.toString());
    appendField(out, c.request);
    out += kRecordSep;
  }
  return out;
}

std::vector<RingingCall::Cancel> decodeJournalCancels(std::string_view text) {
  std::vector<RingingCall::Cancel> out;
  for (const auto& f : split(text)) {
    if (f.size() < 3) continue;
    auto transport = toInt(f[0]);
    auto remote = SockAddr::parse(f[1]);
    if (!transport || *transport < 0 || *transport > int(sip::TransportType::Tls) || !remote)
      continue;
    RingingCall::Cancel c;
    c.target.transport = sip::TransportType(*transport);
    c.target.remote = *remote;
    c.request = std::string(f[2]);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<store::Migration> StoredCallJournal::migrations() {
  return {{"calls", 1, "ringing calls (ended by a restarted node)", R"SQL(
CREATE TABLE ringing_calls(
  key TEXT PRIMARY KEY,
  correlation_id TEXT NOT NULL,
  related_correlation_id TEXT NOT NULL,
  direction TEXT NOT NULL,
  caller TEXT NOT NULL,
  caller_name TEXT NOT NULL,
  dialled TEXT NOT NULL,
  via_trunk INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  parties TEXT NOT NULL,
  cancels TEXT NOT NULL
);
)SQL"}};
}

StoredCallJournal::~StoredCallJournal() {
  if (timers_ && flushTimer_) timers_->cancel(flushTimer_);
  flushTimer_ = 0;
  flush();
}

void StoredCallJournal::deferDeletes(Timers& timers, Duration delay) {
  timers_ = &timers;
  delay_ = delay;
}

Result<void> StoredCallJournal::deletePending() {
  for (const auto& key : pending_)
    if (auto d = db_.exec("DELETE FROM ringing_calls WHERE key = ?1", {key}); !d) return d;
  return {};
}

void StoredCallJournal::flush() {
  if (pending_.empty()) return;
  if (auto done = db_.transaction([this] { return deletePending(); }); !done)
    logger("calls")->error("journal: {} deletes failed: {}", pending_.size(), done.error().message);
  pending_.clear();
}

void StoredCallJournal::ringing(const RingingCall& c) {
  const CallRecord& r = c.record;
  // Rows of a call ringing again (forwarding, fallback) replace it; kept deletes ride along.
  pending_.erase(std::remove(pending_.begin(), pending_.end(), c.key), pending_.end());
  auto done = db_.transaction([&]() -> Result<void> {
    if (auto d = deletePending(); !d) return d;
    return db_.exec(
        "INSERT OR REPLACE INTO ringing_calls(key, correlation_id, related_correlation_id, "
        "direction, caller, caller_name, dialled, via_trunk, start_ms, parties, cancels) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        {c.key, r.correlationId, r.relatedCorrelationId, r.direction, r.caller, r.callerName,
         r.dialled, int64_t(r.viaTrunk), r.startMs, encodeJournalParties(r.parties),
         encodeJournalCancels(c.cancels)});
  });
  if (done)
    pending_.clear();
  else
    logger("calls")->error("call {}: journal write failed: {}", r.correlationId,
                           done.error().message);
}

void StoredCallJournal::settled(const std::string& key) {
  pending_.push_back(key);
  if (!timers_) return flush();
  if (pending_.size() >= 512) return flush(); // bounded, also while calls keep ringing
  if (flushTimer_) return;
  flushTimer_ = timers_->after(delay_, [this] {
    flushTimer_ = 0;
    flush();
  });
}

std::vector<RingingCall> StoredCallJournal::interrupted() {
  flush();
  std::vector<RingingCall> out;
  auto rows = db_.query("SELECT key, correlation_id, related_correlation_id, direction, caller, "
                        "caller_name, dialled, via_trunk, start_ms, parties, cancels FROM "
                        "ringing_calls ORDER BY start_ms");
  if (!rows) {
    logger("calls")->error("journal read failed: {}", rows.error().message);
    return out;
  }
  for (const auto& row : *rows) {
    if (row.size() < 11) continue;
    RingingCall c;
    c.key = store::asText(row[0]).value_or("");
    CallRecord& r = c.record;
    r.correlationId = store::asText(row[1]).value_or("");
    r.relatedCorrelationId = store::asText(row[2]).value_or("");
    r.direction = store::asText(row[3]).value_or("internal");
    r.caller = store::asText(row[4]).value_or("");
    r.callerName = store::asText(row[5]).value_or("");
    r.dialled = store::asText(row[6]).value_or("");
    r.viaTrunk = store::asInt(row[7]).value_or(0) != 0;
    r.startMs = store::asInt(row[8]).value_or(0);
    r.parties = decodeJournalParties(store::asText(row[9]).value_or(""));
    c.cancels = decodeJournalCancels(store::asText(row[10]).value_or(""));
    if (c.key.empty() || r.correlationId.empty()) continue;
    out.push_back(std::move(c));
  }
  return out;
}

} // namespace verbund::pbx

#include "pbx/calllog/call_log.h"

#include "base/log.h"

#include <algorithm>
#include <array>
#include <cstdlib>

namespace verbund::pbx {

namespace {
constexpr std::array<std::string_view, 6> kDispositions{
    "answered", "missed", "busy", "picked-up", "completed-elsewhere", "failed"};
constexpr std::array<std::string_view, 4> kRoles{"caller", "callee", "rang", "answered-by"};

std::string text(const store::Value& v) {
  return store::asText(v).value_or("");
}
int64_t num(const store::Value& v) {
  return store::asInt(v).value_or(0);
}
CallRecord recordFromRow(const store::Row& row) {
  CallRecord r;
  r.id = num(row[0]);
  r.correlationId = text(row[1]);
  r.direction = text(row[2]);
  r.caller = text(row[3]);
  r.callerName = text(row[4]);
  r.dialled = text(row[5]);
  r.answeredBy = text(row[6]);
  r.disposition = dispositionFromName(text(row[7])).value_or(Disposition::Failed);
  r.viaTrunk = num(row[8]) != 0;
  r.startMs = num(row[9]);
  r.answerMs = num(row[10]);
  r.endMs = num(row[11]);
  r.relatedCorrelationId = text(row[12]);
  return r;
}
// A row of call_parties from column `first` on: role, extension, name, owner, disposition,
// forwarded_from, forwarded_from_owner, forward_reason.
CallParty partyFromRow(const store::Row& p, size_t first) {
  CallParty cp;
  std::string role = text(p[first]);
  for (size_t i = 0; i < kRoles.size(); ++i)
    if (kRoles[i] == role) cp.role = PartyRole(i);
  cp.extension = text(p[first + 1]);
  cp.name = text(p[first + 2]);
  cp.owner = text(p[first + 3]);
  cp.disposition = dispositionFromName(text(p[first + 4])).value_or(Disposition::Failed);
  cp.forwardedFrom = text(p[first + 5]);
  cp.forwardedFromOwner = text(p[first + 6]);
  cp.forwardReason = text(p[first + 7]);
  return cp;
}
constexpr const char* kColumns =
    "r.id, r.correlation_id, r.direction, r.caller, r.caller_name, r.dialled, r.answered_by, "
    "r.disposition, r.via_trunk, r.start_ms, r.answer_ms, r.end_ms, r.related_id";
} // namespace

std::string_view dispositionName(Disposition d) {
  return kDispositions[size_t(d)];
}

std::optional<Disposition> dispositionFromName(std::string_view s) {
  for (size_t i = 0; i < kDispositions.size(); ++i)
    if (kDispositions[i] == s) return Disposition(i);
  return std::nullopt;
}

std::vector<store::Migration> CallLog::migrations() {
  return {{"calllog", 1, "call records and parties", R"SQL(
CREATE TABLE call_records(
  id INTEGER PRIMARY KEY,
  correlation_id TEXT NOT NULL UNIQUE,
  direction TEXT NOT NULL,
  caller TEXT NOT NULL,
  caller_name TEXT NOT NULL,
  dialled TEXT NOT NULL,
  answered_by TEXT NOT NULL,
  disposition TEXT NOT NULL,
  via_trunk INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  answer_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL);
CREATE INDEX call_records_start ON call_records(start_ms);
CREATE TABLE call_parties(
  call_id INTEGER NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  extension TEXT NOT NULL,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  disposition TEXT NOT NULL);
CREATE INDEX call_parties_ext ON call_parties(extension);
CREATE INDEX call_parties_call ON call_parties(call_id);
)SQL"},
          {"calllog", 2, "related call of a cross-site pickup", R"SQL(
ALTER TABLE call_records ADD COLUMN related_id TEXT NOT NULL DEFAULT '';
)SQL"},
          {"calllog", 3, "forwarded parties", R"SQL(
ALTER TABLE call_parties ADD COLUMN forwarded_from TEXT NOT NULL DEFAULT '';
ALTER TABLE call_parties ADD COLUMN forwarded_from_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE call_parties ADD COLUMN forward_reason TEXT NOT NULL DEFAULT '';
)SQL"},
          // A table of its own (module "calllog_transfer"), so that other additions to the
          // call records number their migrations independently.
          {"calllog_transfer", 1, "transferred calls", R"SQL(
CREATE TABLE call_transfers(
  call_id INTEGER PRIMARY KEY REFERENCES call_records(id) ON DELETE CASCADE,
  transferred_by TEXT NOT NULL,
  target TEXT NOT NULL,
  other_id TEXT NOT NULL);
)SQL"}};
}

CallLog::~CallLog() {
  if (timers_ && flushTimer_) timers_->cancel(flushTimer_);
  flushTimer_ = 0;
  timers_ = nullptr; // no retry timer from here on
  if (auto r = flush(); !r)
    logger("calls")->error("call log: {} records not written: {}", pending_.size(),
                           r.error().message);
}

void CallLog::deferWrites(Timers& timers, Duration delay) {
  timers_ = &timers;
  delay_ = delay;
}

Result<int64_t> CallLog::save(const CallRecord& in) {
  CallRecord folded;
  auto alias = std::find_if(aliases_.begin(), aliases_.end(),
                            [&](const auto& a) { return a.first == in.correlationId; });
  if (alias != aliases_.end()) {
    // A path of a call that foldFallback moved under the call's federation id.
    folded = in;
    folded.correlationId = alias->second;
    if (auto stored = byCorrelation(folded.correlationId)) mergePaths(folded, *stored);
  }
  const CallRecord& record = alias != aliases_.end() ? folded : in;
  bool pending = std::any_of(kept_.begin(), kept_.end(), [&](const CallOutcome& o) {
    return o.correlationId == record.correlationId ||
           o.relatedCorrelationId == record.correlationId;
  });
  if (!pending && !timers_) return write(record);
  CallRecord merged = record;
  for (const auto& o : kept_)
    if (o.correlationId == record.correlationId || o.relatedCorrelationId == record.correlationId)
      mergeOutcome(merged, o);
  if (!timers_) return write(merged);
  defer(std::move(merged));
  return int64_t(0);
}

void CallLog::defer(CallRecord record) {
  auto [it, fresh] = pendingIndex_.try_emplace(record.correlationId, pending_.size());
  if (fresh)
    pending_.push_back(std::move(record));
  else
    pending_[it->second] = std::move(record); // the newer view of the same call
  if (pending_.size() >= kMaxDeferred) {
    if (auto r = flush(); !r)
      logger("calls")->error("call log: writing call records failed: {}", r.error().message);
    return;
  }
  if (!flushTimer_) {
    flushTimer_ = timers_->after(delay_, [this] {
      flushTimer_ = 0;
      if (auto r = flush(); !r)
        logger("calls")->error("call log: writing call records failed: {}", r.error().message);
    });
  }
}

Result<void> CallLog::flush() {
  if (flushTimer_) timers_->cancel(flushTimer_);
  flushTimer_ = 0;
  if (pending_.empty()) return {};
  std::vector<CallRecord> batch = std::move(pending_);
  pending_.clear();
  pendingIndex_.clear();
  auto tx = db_.transaction([&]() -> Result<void> {
    for (const auto& r : batch)
      if (auto w = writeRow(r); !w) return w.error();
    return {};
  });
  if (tx) return {};
  if (tx.error().code == 503 && timers_ && batch.size() < 4 * kMaxDeferred) {
    // The database is locked by another process (a backup, an sqlite3 shell): keep the records
    // and try again in a second instead of losing them or stalling the loop.
    for (auto& r : batch) {
      pendingIndex_.try_emplace(r.correlationId, pending_.size());
      pending_.push_back(std::move(r));
    }
    flushTimer_ = timers_->after(std::chrono::seconds(1), [this] {
      flushTimer_ = 0;
      if (auto r = flush(); !r)
        logger("calls")->warn("call log: writing call records failed: {}", r.error().message);
    });
    return tx.error();
  }
  // One bad record must not cost the others: write them one by one, keep the first error.
  Result<void> first;
  for (const auto& r : batch)
    if (auto w = write(r); !w && first) first = w.error();
  return first;
}

std::string CallLog::ownerHere(const std::string& owner) const {
  return !localNode_.empty() && owner == localNode_ ? std::string() : owner;
}

void CallLog::mergeOutcome(CallRecord& r, const CallOutcome& o) const {
  std::string callerOwner = ownerHere(o.callerOwner);
  std::string calleeOwner = ownerHere(o.calleeOwner);
  std::string answeredOwner = ownerHere(o.answeredByOwner);
  bool answered = !o.answeredBy.empty();
  // A cross-site pickup: this record is the picker's call; it now points at the picked call.
  if (o.relatedCorrelationId == r.correlationId && o.correlationId != r.correlationId)
    r.relatedCorrelationId = o.correlationId;
  if (!o.caller.empty()) {
    r.caller = o.caller;
    r.callerName = o.callerName;
  }
  // A user of a site called: a record of the fallback over the external line is internal.
  if (!callerOwner.empty() && r.direction == "inbound") r.direction = "internal";
  r.disposition = o.disposition;
  if (!o.transferredBy.empty()) {
    r.transferredBy = o.transferredBy;
    r.transferTarget = o.transferTarget;
    r.transferCorrelationId = o.transferCorrelationId;
  }
  if (answered) {
    r.answeredBy = o.answeredBy;
    if (!r.answerMs) r.answerMs = o.answerMs;
  }
  auto& ps = r.parties;
  // The caller as the node that ran the call saw it (a cross-site picker's own record named the
  // picker as caller; the picker is the answerer of the call it joined).
  if (!o.caller.empty()) {
    auto it = std::find_if(ps.begin(), ps.end(),
                           [](const CallParty& p) { return p.role == PartyRole::Caller; });
    if (it == ps.end()) it = ps.insert(ps.begin(), CallParty{PartyRole::Caller});
    it->extension = o.caller;
    it->name = o.callerName;
    it->owner = callerOwner;
  }
  // Who the call rang for.
  if (!o.callee.empty()) {
    auto same = [&](const CallParty& p) {
      return p.role == PartyRole::Callee && p.extension == o.callee && p.owner == calleeOwner;
    };
    if (std::none_of(ps.begin(), ps.end(), same)) {
      auto it = std::find_if(ps.begin(), ps.end(),
                             [](const CallParty& p) { return p.role == PartyRole::Callee; });
      if (it == ps.end()) {
        auto after = std::find_if(ps.begin(), ps.end(),
                                  [](const CallParty& p) { return p.role == PartyRole::Caller; });
        it = ps.insert(after == ps.end() ? ps.begin() : after + 1, CallParty{PartyRole::Callee});
      }
      it->extension = o.callee;
      it->name = o.calleeName;
      it->owner = calleeOwner;
    }
  }
  // Who answered: one AnsweredBy party.
  if (answered) {
    ps.erase(std::remove_if(ps.begin(), ps.end(),
                            [&](const CallParty& p) {
                              return p.role == PartyRole::AnsweredBy &&
                                     !(p.extension == o.answeredBy && p.owner == answeredOwner);
                            }),
             ps.end());
    auto listed = std::any_of(ps.begin(), ps.end(),
                              [](const CallParty& p) { return p.role == PartyRole::AnsweredBy; });
    if (!listed)
      ps.push_back({PartyRole::AnsweredBy, o.answeredBy, o.answeredByName, answeredOwner,
                    Disposition::Answered});
  }
  for (auto& p : ps) {
    switch (p.role) {
    case PartyRole::Caller:
      p.disposition = o.disposition;
      break;
    case PartyRole::AnsweredBy:
      p.disposition = Disposition::Answered;
      break;
    case PartyRole::Callee:
    case PartyRole::Rang:
      if (answered && p.extension == o.answeredBy && p.owner == answeredOwner)
        p.disposition = Disposition::Answered;
      else if (o.disposition == Disposition::Answered)
        p.disposition =
            p.role == PartyRole::Rang ? Disposition::CompletedElsewhere : Disposition::Answered;
      else
        p.disposition = o.disposition;
      break;
    }
  }
}

Result<int> CallLog::applyOutcome(const CallOutcome& o) {
  if (o.correlationId.empty() && o.relatedCorrelationId.empty())
    return Error{1, "call outcome without correlation id"};
  if (auto f = flush(); !f) return f.error();
  if (!o.fallbackNumber.empty())
    if (auto f = foldFallback(o); !f) return f.error();
  // Keep it (replacing an older outcome of the same call): the engine here may save its own
  // view of the call later (at its end), and that save merges the outcome again.
  kept_.erase(std::remove_if(kept_.begin(), kept_.end(),
                             [&](const CallOutcome& k) {
                               return k.correlationId == o.correlationId &&
                                      k.relatedCorrelationId == o.relatedCorrelationId;
                             }),
              kept_.end());
  kept_.push_back(o);
  while (kept_.size() > kKeptOutcomes) kept_.pop_front();
  int changed = 0;
  for (const std::string* id : {&o.correlationId, &o.relatedCorrelationId}) {
    if (id->empty() || (id == &o.relatedCorrelationId && *id == o.correlationId)) continue;
    auto record = byCorrelation(*id);
    if (!record) continue;
    mergeOutcome(*record, o);
    auto w = write(*record);
    if (!w) return w.error();
    ++changed;
  }
  return changed;
}

bool sameNumber(std::string_view a, std::string_view b) {
  // Digits without leading zeros: "00" and "0" are dialling prefixes, never the number.
  auto digits = [](std::string_view s) {
    std::string d;
    for (char c : s)
      if ((c >= '1' && c <= '9') || (c == '0' && !d.empty())) d += c;
    return d;
  };
  std::string x = digits(a), y = digits(b);
  if (x.size() > y.size()) std::swap(x, y);
  if (x.empty()) return false;
  if (x == y) return true;
  return x.size() >= kMinNumberMatchDigits && y.compare(y.size() - x.size(), x.size(), x) == 0;
}

namespace {
bool sameParty(const CallParty& a, const CallParty& b) {
  return a.role == b.role && a.extension == b.extension && a.owner == b.owner;
}
} // namespace

void CallLog::mergePaths(CallRecord& r, const CallRecord& other) {
  if (!r.transferred() && other.transferred()) {
    r.transferredBy = other.transferredBy;
    r.transferTarget = other.transferTarget;
    r.transferCorrelationId = other.transferCorrelationId;
  }
  auto& ps = r.parties;
  // The path that came over the external line knows the caller only by number, and its callee
  // only as the DID's target: the federation path's caller and callee win.
  bool rInbound = r.direction == "inbound" && other.direction == "internal";
  if (rInbound) {
    r.direction = "internal";
    r.caller = other.caller;
    r.callerName = other.callerName;
    r.dialled = other.dialled;
    auto caller = std::find_if(other.parties.begin(), other.parties.end(),
                               [](const CallParty& p) { return p.role == PartyRole::Caller; });
    auto mine = std::find_if(ps.begin(), ps.end(),
                             [](const CallParty& p) { return p.role == PartyRole::Caller; });
    if (caller != other.parties.end()) {
      if (mine != ps.end())
        *mine = *caller;
      else
        ps.insert(ps.begin(), *caller);
    }
  }
  auto isCallee = [](const CallParty& p) { return p.role == PartyRole::Callee; };
  auto otherCallee = std::find_if(other.parties.begin(), other.parties.end(), isCallee);
  auto myCallee = std::find_if(ps.begin(), ps.end(), isCallee);
  bool twoCallees = otherCallee != other.parties.end() && myCallee != ps.end() &&
                    !sameParty(*otherCallee, *myCallee);
  for (const auto& p : other.parties) {
    if (p.role == PartyRole::Caller) continue;
    CallParty q = p;
    // One callee per record: the inbound path's callee (the DID's target) becomes one rung.
    if (twoCallees && &p == &*otherCallee && !rInbound) q.role = PartyRole::Rang;
    if (std::none_of(ps.begin(), ps.end(), [&](const CallParty& x) { return sameParty(x, q); }))
      ps.push_back(std::move(q));
  }
  if (twoCallees && rInbound) {
    myCallee = std::find_if(ps.begin(), ps.end(), isCallee); // ps may have grown
    CallParty demoted = *myCallee;
    demoted.role = PartyRole::Rang;
    ps.erase(myCallee);
    if (std::none_of(ps.begin(), ps.end(),
                     [&](const CallParty& x) { return sameParty(x, demoted); })) {
      auto callee = std::find_if(ps.begin(), ps.end(), isCallee);
      ps.insert(callee == ps.end() ? ps.end() : callee + 1, std::move(demoted));
    }
  }
  if (r.answeredBy.empty() && !other.answeredBy.empty()) {
    r.answeredBy = other.answeredBy;
    r.answerMs = other.answerMs;
    r.disposition = other.disposition;
  }
  if (other.startMs && (!r.startMs || other.startMs < r.startMs)) r.startMs = other.startMs;
  if (r.endMs && other.endMs > r.endMs) r.endMs = other.endMs;
  r.viaTrunk = r.viaTrunk || other.viaTrunk;
  if (other.relatedCorrelationId.size() && r.relatedCorrelationId.empty())
    r.relatedCorrelationId = other.relatedCorrelationId;
  if (r.answeredBy.empty()) return;
  // Answered on one of the paths: nobody it rang here missed it.
  auto answerer = std::find_if(ps.begin(), ps.end(), [&](const CallParty& p) {
    return p.role == PartyRole::AnsweredBy && p.extension == r.answeredBy;
  });
  std::string answeredOwner = answerer == ps.end() ? std::string() : answerer->owner;
  for (auto& p : ps) {
    if (p.role == PartyRole::Caller)
      p.disposition = r.disposition;
    else if (p.extension == r.answeredBy && p.owner == answeredOwner)
      p.disposition = Disposition::Answered;
    else if (p.disposition == Disposition::Missed || p.disposition == Disposition::Failed)
      p.disposition = p.role == PartyRole::Rang ? Disposition::CompletedElsewhere : r.disposition;
  }
}

Result<std::optional<std::string>> CallLog::foldFallback(const CallOutcome& o) {
  using Found = std::optional<std::string>;
  if (o.answeredBy.empty() || localNode_.empty() || o.answeredByOwner != localNode_ ||
      o.fallbackCaller.empty() || !o.fallbackMs)
    return Found{};
  if (auto f = flush(); !f) return f.error();
  // The call's record has its carrier path already (the id was carried, or folded before: an
  // outcome comes again on every link up).
  auto direct = byCorrelation(o.correlationId);
  if (direct && direct->viaTrunk) return Found{};
  // Only records this node made (a carried id of another call is not a candidate).
  const std::string mine = "@" + localNode_;
  auto rows = db_.query(std::string("SELECT ") + kColumns +
                            " FROM call_records r WHERE r.via_trunk = 1 AND "
                            "r.direction = 'inbound' AND r.answered_by = ?1 AND "
                            "r.correlation_id != ?2 AND r.start_ms BETWEEN ?3 AND ?4",
                        {o.answeredBy, o.correlationId, o.fallbackMs - kFallbackMatchMs,
                         o.fallbackMs + kFallbackMatchMs});
  if (!rows) return rows.error();
  // The match nearest to the fallback's time (clock skew between the nodes shifts all alike);
  // two about as near (kFallbackTieMs) are ambiguous.
  struct Match {
    int64_t row = 0, distance = 0;
    std::string id;
  };
  std::vector<Match> matches;
  for (const auto& row : *rows) {
    std::string id = text(row[1]);
    if (!id.ends_with(mine) || !sameNumber(text(row[3]), o.fallbackCaller)) continue;
    matches.push_back({num(row[0]), std::abs(num(row[9]) - o.fallbackMs), std::move(id)});
  }
  std::sort(matches.begin(), matches.end(),
            [](const Match& x, const Match& y) { return x.distance < y.distance; });
  logger("calls")->debug("call {}: {} inbound records answered by {} near its fallback, {} match",
                         o.correlationId, rows->size(), o.answeredBy, matches.size());
  if (matches.empty()) return Found{};
  if (matches.size() > 1 && matches[1].distance - matches[0].distance < kFallbackTieMs) {
    logger("calls")->info("call {}: {} records of this node match its fallback; none merged",
                          o.correlationId, matches.size());
    return Found{};
  }
  const std::string oldId = matches.front().id;
  auto path = byCorrelation(oldId);
  if (!path) return Found{};
  CallRecord merged;
  if (direct) {
    merged = std::move(*direct);
    mergePaths(merged, *path);
  } else {
    merged = std::move(*path);
    merged.id = 0;
  }
  merged.correlationId = o.correlationId;
  int64_t oldRow = matches.front().row;
  auto tx = db_.transaction([&]() -> Result<void> {
    if (auto d = db_.exec("DELETE FROM call_parties WHERE call_id = ?1", {oldRow}); !d)
      return d.error();
    if (auto d = db_.exec("DELETE FROM call_transfers WHERE call_id = ?1", {oldRow}); !d)
      return d.error();
    if (auto d = db_.exec("DELETE FROM call_records WHERE id = ?1", {oldRow}); !d) return d.error();
    if (auto w = writeRow(merged); !w) return w.error();
    return {};
  });
  if (!tx) return tx.error();
  aliases_.emplace_back(oldId, o.correlationId);
  while (aliases_.size() > kKeptAliases) aliases_.pop_front();
  logger("calls")->info("call {}: record {} of its fallback over the external line merged",
                        o.correlationId, oldId);
  return Found{oldId};
}

Result<int64_t> CallLog::write(const CallRecord& r) {
  int64_t id = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto w = writeRow(r);
    if (!w) return w.error();
    id = *w;
    return {};
  });
  if (!tx) return tx.error();
  return id;
}

Result<int64_t> CallLog::writeRow(const CallRecord& r) {
  int64_t id = 0;
  auto existing =
      db_.query("SELECT id FROM call_records WHERE correlation_id = ?1", {r.correlationId});
  if (!existing) return existing.error();
  std::vector<store::Value> v{r.correlationId,
                              r.direction,
                              r.caller,
                              r.callerName,
                              r.dialled,
                              r.answeredBy,
                              std::string(dispositionName(r.disposition)),
                              int64_t(r.viaTrunk),
                              r.startMs,
                              r.answerMs,
                              r.endMs,
                              r.relatedCorrelationId};
  if (existing->empty()) {
    auto ins = db_.exec("INSERT INTO call_records(correlation_id, direction, caller, "
                        "caller_name, dialled, answered_by, disposition, via_trunk, start_ms, "
                        "answer_ms, end_ms, related_id) "
                        "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
                        v);
    if (!ins) return ins.error();
    id = db_.lastInsertId();
  } else {
    id = num(existing->at(0)[0]);
    v.push_back(id);
    auto up = db_.exec("UPDATE call_records SET correlation_id=?1, direction=?2, caller=?3, "
                       "caller_name=?4, dialled=?5, answered_by=?6, disposition=?7, "
                       "via_trunk=?8, start_ms=?9, answer_ms=?10, end_ms=?11, related_id=?12 "
                       "WHERE id=?13",
                       v);
    if (!up) return up.error();
    if (auto d = db_.exec("DELETE FROM call_parties WHERE call_id = ?1", {id}); !d)
      return d.error();
  }
  for (const auto& p : r.parties) {
    auto ins = db_.exec("INSERT INTO call_parties(call_id, role, extension, name, owner, "
                        "disposition, forwarded_from, forwarded_from_owner, forward_reason) "
                        "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                        {id, std::string(kRoles[size_t(p.role)]), p.extension, p.name, p.owner,
                         std::string(dispositionName(p.disposition)), p.forwardedFrom,
                         p.forwardedFromOwner, p.forwardReason});
    if (!ins) return ins.error();
  }
  if (auto t = writeTransfer(id, r); !t) return t.error();
  return id;
}

Result<void> CallLog::writeTransfer(int64_t row, const CallRecord& r) {
  if (!r.transferred()) {
    if (auto d = db_.exec("DELETE FROM call_transfers WHERE call_id = ?1", {row}); !d)
      return d.error();
    return {};
  }
  auto w = db_.exec("INSERT OR REPLACE INTO call_transfers(call_id, transferred_by, target, "
                    "other_id) VALUES (?1,?2,?3,?4)",
                    {row, r.transferredBy, r.transferTarget, r.transferCorrelationId});
  if (!w) return w.error();
  return {};
}

void CallLog::loadParties(CallRecord& r) {
  auto parties = db_.query("SELECT role, extension, name, owner, disposition, forwarded_from, "
                           "forwarded_from_owner, forward_reason FROM call_parties "
                           "WHERE call_id = ?1 ORDER BY rowid",
                           {r.id});
  if (!parties) return;
  for (const auto& p : *parties) r.parties.push_back(partyFromRow(p, 0));
  auto t = db_.query("SELECT transferred_by, target, other_id FROM call_transfers WHERE "
                     "call_id = ?1",
                     {r.id});
  if (t && !t->empty()) {
    r.transferredBy = text(t->at(0)[0]);
    r.transferTarget = text(t->at(0)[1]);
    r.transferCorrelationId = text(t->at(0)[2]);
  }
}

Result<std::vector<CallRecord>> CallLog::find(const CallQuery& q) {
  if (auto f = flush(); !f) return f.error();
  std::string sql = std::string("SELECT ") + kColumns + " FROM call_records r WHERE 1=1";
  std::vector<store::Value> params;
  auto arg = [&](store::Value v) {
    params.push_back(std::move(v));
    return "?" + std::to_string(params.size());
  };
  if (q.extension) {
    sql += " AND r.id IN (SELECT call_id FROM call_parties WHERE extension = " + arg(*q.extension) +
           ")";
  }
  if (q.disposition)
    sql += " AND r.disposition = " + arg(std::string(dispositionName(*q.disposition)));
  if (q.fromMs) sql += " AND r.start_ms >= " + arg(q.fromMs);
  if (q.toMs) sql += " AND r.start_ms < " + arg(q.toMs);
  sql += " ORDER BY r.start_ms DESC, r.id DESC LIMIT " + arg(int64_t(std::clamp(q.limit, 1, 1000)));
  auto rows = db_.query(sql, params);
  if (!rows) return rows.error();
  std::vector<CallRecord> out;
  for (const auto& row : *rows) {
    CallRecord r = recordFromRow(row);
    loadParties(r);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<CallRecord>> CallLog::page(const CallQuery& q,
                                              const std::optional<CallCursor>& after) {
  if (auto f = flush(); !f) return f.error();
  std::string sql = std::string("SELECT ") + kColumns + " FROM call_records r WHERE 1=1";
  std::vector<store::Value> params;
  auto arg = [&](store::Value v) {
    params.push_back(std::move(v));
    return "?" + std::to_string(params.size());
  };
  if (q.extension)
    sql += " AND r.id IN (SELECT call_id FROM call_parties WHERE extension = " + arg(*q.extension) +
           ")";
  if (q.disposition)
    sql += " AND r.disposition = " + arg(std::string(dispositionName(*q.disposition)));
  if (q.fromMs) sql += " AND r.start_ms >= " + arg(q.fromMs);
  if (q.toMs) sql += " AND r.start_ms < " + arg(q.toMs);
  if (after) {
    std::string start = arg(after->startMs);
    sql += " AND (r.start_ms > " + start + " OR (r.start_ms = " + start + " AND r.id > " +
           arg(after->id) + "))";
  }
  sql += " ORDER BY r.start_ms, r.id LIMIT " + arg(int64_t(std::clamp(q.limit, 1, kMaxPage)));
  auto rows = db_.query(sql, params);
  if (!rows) return rows.error();
  std::vector<CallRecord> out;
  out.reserve(rows->size());
  std::string ids = "[";
  std::unordered_map<int64_t, size_t> index;
  for (const auto& row : *rows) {
    out.push_back(recordFromRow(row));
    index[out.back().id] = out.size() - 1;
    ids += (ids.size() > 1 ? "," : "") + std::to_string(out.back().id);
  }
  ids += "]";
  if (out.empty()) return out;
  // The page's parties and transfers in one query each (json_each: one statement for any page
  // size, so the statement cache does not grow per size).
  auto parties = db_.query("SELECT call_id, role, extension, name, owner, disposition, "
                           "forwarded_from, forwarded_from_owner, forward_reason FROM call_parties "
                           "WHERE call_id IN (SELECT value FROM json_each(?1)) ORDER BY rowid",
                           {ids});
  if (!parties) return parties.error();
  for (const auto& p : *parties) {
    auto it = index.find(num(p[0]));
    if (it == index.end()) continue;
    out[it->second].parties.push_back(partyFromRow(p, 1));
  }
  auto transfers = db_.query("SELECT call_id, transferred_by, target, other_id FROM "
                             "call_transfers WHERE call_id IN (SELECT value FROM json_each(?1))",
                             {ids});
  if (!transfers) return transfers.error();
  for (const auto& t : *transfers) {
    auto it = index.find(num(t[0]));
    if (it == index.end()) continue;
    CallRecord& r = out[it->second];
    r.transferredBy = text(t[1]);
    r.transferTarget = text(t[2]);
    r.transferCorrelationId = text(t[3]);
  }
  return out;
}

Result<int64_t> CallLog::deleteStartedBefore(int64_t cutoffMs, int batch) {
  if (auto f = flush(); !f) return f.error();
  int64_t deleted = 0;
  auto tx = db_.transaction([&]() -> Result<void> {
    // Parties and transfers go with their record (ON DELETE CASCADE, foreign keys are on).
    auto d = db_.exec("DELETE FROM call_records WHERE id IN (SELECT id FROM call_records WHERE "
                      "start_ms < ?1 ORDER BY start_ms LIMIT ?2)",
                      {cutoffMs, int64_t(std::max(batch, 1))});
    if (!d) return d.error();
    deleted = db_.changes();
    return {};
  });
  if (!tx) return tx.error();
  return deleted;
}

std::optional<CallRecord> CallLog::byCorrelation(const std::string& correlationId) {
  (void)flush(); // an error is logged by the next flush or the destructor
  auto rows = db_.query(std::string("SELECT ") + kColumns +
                            " FROM call_records r WHERE r.correlation_id = ?1",
                        {correlationId});
  if (!rows || rows->empty()) return std::nullopt;
  CallRecord r = recordFromRow(rows->at(0));
  loadParties(r);
  return r;
}

} // namespace verbund::pbx

#pragma once
// Call lists: one record per call, with every party the call touched. Written by the call
// manager when a call ends (and at answer, so a node killed mid-call still has the record);
// read by the API per user. Records carry a correlation id that the federation makes
// federation-wide, so the records of one call on several nodes can be tied together.
#include "base/clock.h"
#include "base/result.h"
#include "store/database.h"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

enum class Disposition : uint8_t {
  Answered,
  Missed, // nobody answered (caller hung up, or no-answer timeout)
  Busy,
  PickedUp,           // answered by someone the call did not ring for (answeredBy says who)
  CompletedElsewhere, // for a party whose fork was cancelled because another one answered
  Failed,
};
std::string_view dispositionName(Disposition d); // "answered", "missed", "busy", "picked-up", ...
std::optional<Disposition> dispositionFromName(std::string_view s);

enum class PartyRole : uint8_t { Caller, Callee, Rang, AnsweredBy };

struct CallParty {
  PartyRole role = PartyRole::Callee;
  std::string extension; // or external number
  std::string name;
  std::string owner; // node id of the party's user; empty = this node / external
  Disposition disposition = Disposition::Missed; // what the call was for this party
  // Call forwarding (issue 12): the party was rung because user `forwardedFrom` (an extension;
  // its node in forwardedFromOwner, empty = this node) forwards its calls, for `forwardReason`
  // ("always", "busy", "no-answer", "unregistered", "dnd"; "loop" for a target the call was not
  // forwarded to because it had been there already or the hops ran out).
  std::string forwardedFrom, forwardedFromOwner, forwardReason;
};

struct CallRecord {
  int64_t id = 0;
  std::string correlationId; // federation-wide
  // The other call this one is tied to: for a cross-site picker's call, the picked call's id.
  std::string relatedCorrelationId;
  std::string direction; // "internal", "inbound", "outbound"
  std::string caller, callerName;
  std::string dialled;    // what the caller dialled
  std::string answeredBy; // extension of whoever answered; empty if nobody
  Disposition disposition = Disposition::Missed;
  bool viaTrunk = false;                        // went out over the external line (also: fallback)
  int64_t startMs = 0, answerMs = 0, endMs = 0; // Unix epoch ms; 0 = not reached
  std::vector<CallParty> parties;
  // A transferred call (RFC 3515 REFER acted on by the node): the user who transferred it, the
  // target it was transferred to, and the other call of the transfer (the transferred call's
  // record names the call the transfer created and the other way round). Empty: no transfer.
  std::string transferredBy, transferTarget, transferCorrelationId;
  bool transferred() const { return !transferredBy.empty(); }
};

struct CallQuery {
  std::optional<std::string> extension; // calls in which this extension took part
  std::optional<Disposition> disposition;
  int64_t fromMs = 0, toMs = 0; // start time range, 0 = open
  int limit = 100;
};

// Where an export stopped: the last record's start time and row id (export pages come oldest
// first, in (startMs, id) order, so a page after the cursor never repeats or skips a record).
struct CallCursor {
  int64_t startMs = 0;
  int64_t id = 0;
};

// What the node that ran a call tells the other nodes it involved (federation "call-outcome").
struct CallOutcome {
  std::string correlationId;        // the call's id (records of forks to other nodes share it)
  std::string relatedCorrelationId; // cross-site pickup: the picker's call on its node
  std::string caller, callerName, callerOwner;
  std::string callee, calleeName, calleeOwner; // who the call rang for (dialled user or group)
  std::string answeredBy, answeredByName, answeredByOwner;
  Disposition disposition = Disposition::Missed; // of the whole call
  int64_t answerMs = 0;
  // Answered over the external line (federation fallback): the number the fallback INVITE went
  // to (the answering user's external number), the caller number it carried, and when it was
  // sent (the calling node's wall clock). The answering node uses them to find its own record
  // of that inbound call when the carrier did not pass the correlation id on (foldFallback).
  std::string fallbackNumber, fallbackCaller;
  int64_t fallbackMs = 0;
  // A call made by a transfer (CallRecord::transferredBy ...): the other sites' records of it
  // name the transfer too.
  std::string transferredBy, transferTarget, transferCorrelationId;
};

// Whether two phone numbers name the same line: equal digits, or one ends with the other's
// digits and the shorter has at least kMinNumberMatchDigits (carriers rewrite "+49", "0049",
// "0" prefixes). Non-digits and leading zeros are ignored; numbers without digits never match.
bool sameNumber(std::string_view a, std::string_view b);
inline constexpr size_t kMinNumberMatchDigits = 6;

class CallLog {
public:
  explicit CallLog(store::Database& db) : db_(db) {}
  ~CallLog(); // writes what deferWrites() still keeps
  CallLog(const CallLog&) = delete;
  CallLog& operator=(const CallLog&) = delete;
  static std::vector<store::Migration> migrations();

  // Without this, save() writes at once: one database transaction per save, two per call, each
  // a commit on the event loop. With it, save() keeps the record (a newer save of the same call
  // replaces the kept one) and everything kept is written in one transaction `delay` later, or
  // at once when kMaxDeferred records are kept. Every read (find, byCorrelation), applyOutcome
  // and the destructor write the kept records first, so readers never see an older state. The
  // price: a record reaches the database up to `delay` after the answer or end it describes, so
  // a node killed hard (kill -9, power loss) loses the records of that last moment.
  void deferWrites(Timers& timers, Duration delay);
  static constexpr size_t kMaxDeferred = 1000;
  // Writes the kept records now, in one transaction.
  Result<void> flush();
  size_t deferred() const { return pending_.size(); }

  // The node's own id: outcomes name parties by owner node; parties of this node are stored with
  // an empty owner.
  void setLocalNode(std::string nodeId) { localNode_ = std::move(nodeId); }

  // Inserts or replaces the record with this correlation id (a call is saved at answer and again
  // at its end). Outcomes received for this id (or naming it as related) are merged in first, so
  // the call engine saving its own view later does not undo what the other node said. A record
  // whose id foldFallback folded into another goes to that one, merged (mergePaths). Returns
  // the row id, or 0 when the write is deferred (deferWrites).
  Result<int64_t> save(const CallRecord& record);
  Result<std::vector<CallRecord>> find(const CallQuery& query);
  // One page of an export: the records the query's filters select, oldest first, after the
  // cursor (nullopt: from the start); at most query.limit (1..kMaxPage). Parties and transfers
  // are read with one query each per page.
  Result<std::vector<CallRecord>> page(const CallQuery& query,
                                       const std::optional<CallCursor>& after);
  static constexpr int kMaxPage = 5000;
  // Retention: deletes at most `batch` records that started before cutoffMs (their parties and
  // transfer with them) in one transaction; returns how many it deleted.
  Result<int64_t> deleteStartedBefore(int64_t cutoffMs, int batch);
  std::optional<CallRecord> byCorrelation(const std::string& correlationId);
  // Merges an outcome from the node that ran the call into the local record(s) with its
  // correlation id or related id: caller, answeredBy (+ an AnsweredBy party with its owner).
  // Returns how many records changed (0 when none exists yet: the outcome is kept and applied
  // when the record is saved). The last kKeptOutcomes outcomes are kept in memory either way.
  Result<int> applyOutcome(const CallOutcome& outcome);
  // Merges `outcome` into `record` (exposed for tests).
  void mergeOutcome(CallRecord& record, const CallOutcome& outcome) const;
  static constexpr size_t kKeptOutcomes = 1024;
  size_t keptOutcomes() const { return kept_.size(); }

  // One call that reached this node on two paths (the direct federation INVITE and the
  // fallback over the external line, or several forks of one call) is one record. Merges
  // `other` (the stored view) into `r` (the newer view of one path): every party once, one
  // caller; the path that knows the federation caller wins over the external line's number; an
  // answer on either path is the record's answer, so no party of it stays "missed" (the
  // answerer is answered, others rang are completed elsewhere); earliest start, latest end.
  static void mergePaths(CallRecord& r, const CallRecord& other);

  // The fallback of a call answered here over the external line whose carrier dropped the
  // correlation header: the inbound record of this node that matches the outcome (answered by
  // outcome.answeredBy, caller number sameNumber as outcome.fallbackCaller, started within
  // kFallbackMatchMs of outcome.fallbackMs, made here: correlation id "...@<local node>") is
  // folded into the record with the outcome's correlation id (renamed, or merged with the
  // record of the direct path). Of several matches the one that started nearest to the
  // fallback is taken, unless the next is less than kFallbackTieMs farther (ambiguous). Nothing
  // happens when the call's record already has a carrier path (carried id, folded before).
  // Later saves under the old id go to the new one. Returns the folded record's old id, or
  // nullopt.
  Result<std::optional<std::string>> foldFallback(const CallOutcome& outcome);
  static constexpr int64_t kFallbackMatchMs = 15000;
  static constexpr int64_t kFallbackTieMs = 1000;
  static constexpr size_t kKeptAliases = 1024;

private:
  void loadParties(CallRecord& record); // and the record's transfer
  Result<void> writeTransfer(int64_t row, const CallRecord& record);
  Result<int64_t> write(const CallRecord& record);    // in a transaction of its own
  Result<int64_t> writeRow(const CallRecord& record); // inside the caller's transaction
  void defer(CallRecord record);
  std::string ownerHere(const std::string& owner) const;
  store::Database& db_;
  std::string localNode_;
  std::deque<CallOutcome> kept_; // newest last
  // Records folded into another one (foldFallback): old correlation id -> new, oldest first.
  std::deque<std::pair<std::string, std::string>> aliases_;
  // deferWrites(): records not written yet, oldest first, and where each call's record is.
  Timers* timers_ = nullptr;
  Duration delay_{0};
  TimerId flushTimer_ = 0;
  std::vector<CallRecord> pending_;
  std::unordered_map<std::string, size_t> pendingIndex_;
};

} // namespace verbund::pbx

#pragma once
// Calls that ring, kept on disk until they are answered or end, so that a node restarted after a
// crash (kill -9) ends them: it writes their records and cancels the INVITEs it had sent
// (docs/architecture.md "Call engine states", "Calls interrupted by a crash").
#include "base/clock.h"
#include "pbx/calllog/call_log.h"
#include "sip/message/peer.h"
#include "store/database.h"

#include <string>
#include <vector>

namespace verbund::pbx {

struct RingingCall {
  std::string key;   // one entry per call of this node (several may share a correlation id)
  CallRecord record; // the record as it stands if nobody answers (endMs 0)
  struct Cancel {
    sip::Peer target;    // where the fork's INVITE went (connection ids do not survive)
    std::string request; // the CANCEL for that INVITE (RFC 3261 §9.1), wire text
  };
  std::vector<Cancel> cancels;
};

// The call engine's seam; StoredCallJournal below keeps it in the node's database.
class CallJournal {
public:
  virtual ~CallJournal() = default;
  // Inserts or replaces the entry; written before this returns (a kill -9 right after keeps it).
  virtual void ringing(const RingingCall& call) = 0;
  virtual void settled(const std::string& key) = 0;
  // Every entry still kept (at start: the calls a crash interrupted).
  virtual std::vector<RingingCall> interrupted() = 0;
};

// One row per ringing call in SQLite (WAL). The row is committed at ring time; deletes may be
// written behind (deferDeletes): they go out with the next row written, or after `delay`,
// whichever comes first, so a busy node pays about one commit per call. A kill -9 loses at most
// the deletes of that moment: the restarted node then finds the call's stored record and keeps
// it, and the CANCEL it sends reaches an INVITE that has ended (answered 481). Rows are bounded
// by the calls ringing at once.
class StoredCallJournal final : public CallJournal {
public:
  explicit StoredCallJournal(store::Database& db) : db_(db) {}
  ~StoredCallJournal() override; // writes the deletes it still keeps
  StoredCallJournal(const StoredCallJournal&) = delete;
  StoredCallJournal& operator=(const StoredCallJournal&) = delete;
  static std::vector<store::Migration> migrations();
  void deferDeletes(Timers& timers, Duration delay);
  void ringing(const RingingCall& call) override;
  void settled(const std::string& key) override;
  std::vector<RingingCall> interrupted() override;
  void flush(); // writes the kept deletes now
  size_t deferred() const { return pending_.size(); }

private:
  Result<void> deletePending(); // inside the caller's transaction
  store::Database& db_;
  Timers* timers_ = nullptr;
  Duration delay_{0};
  TimerId flushTimer_ = 0;
  std::vector<std::string> pending_;
};

// The encoding of an entry's parties and CANCELs in one text column (exposed for tests):
// records separated by \x1e, fields by \x1f; those two characters are removed from values.
std::string encodeJournalParties(const std::vector<CallParty>& parties);
std::vector<CallParty> decodeJournalParties(std::string_view text);
std::string encodeJournalCancels(const std::vector<RingingCall::Cancel>& cancels);
std::vector<RingingCall::Cancel> decodeJournalCancels(std::string_view text);

} // namespace verbund::pbx

// Fuzzes what peers send to the replication and membership code: bytes -> JSON -> every parser of
// directory_replica.h, member_store.h and presence_wire.h. Nothing may throw or crash; whatever
// parses must render and parse back to the same value, and valid snapshots, deltas and member
// lists must apply to a replica / member store (in memory) without failing.
#include "base/manual_timers.h"
#include "federation/membership/member_store.h"
#include "federation/replication/directory_replica.h"
#include "federation/replication/presence_wire.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund;
using namespace verbund::federation;
using json = nlohmann::json;

namespace {

struct State {
  ManualTimers timers; // the member store's wall clock (audit entries)
  std::unique_ptr<store::Database> db;
  std::unique_ptr<DirectoryReplica> replica;
  std::unique_ptr<MemberStore> members;
  std::unique_ptr<pbx::Directory> dir; // empty: conflicts among replicas only
  int runs = 0;
};

State& state() {
  static State* s = [] {
    auto* st = new State;
    auto migrations = pbx::Directory::migrations();
    for (auto& m : DirectoryReplica::migrations()) migrations.push_back(m);
    for (auto& m : MemberStore::migrations()) migrations.push_back(m);
    st->db = std::move(store::Database::open(":memory:", migrations)).value();
    st->replica = std::move(DirectoryReplica::open(*st->db)).value();
    st->members = std::move(MemberStore::open(*st->db, st->timers)).value();
    st->dir = std::move(pbx::Directory::open(*st->db, "fuzz.example")).value();
    return st;
  }();
  return *s;
}

json reparse(const json& j) {
  return json::parse(j.dump(-1, ' ', false, json::error_handler_t::replace), nullptr, false);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  State& st = state();
  if (++st.runs % 256 == 0) {
    if (!st.replica->clear() || !st.members->clear()) std::abort();
  }

  if (auto s = snapshotFromJson(j)) {
    auto back = snapshotFromJson(reparse(toJson(*s)));
    if (!back || back->users != s->users || back->groups != s->groups || back->seq != s->seq)
      std::abort();
    if (!st.replica->applySnapshot(*s)) std::abort();
    if (st.replica->seqOf(s->owner) != s->seq) std::abort();
    for (const auto& u : s->users)
      if (st.replica->usersByExtension(u.extension).empty()) std::abort();
  }
  if (auto d = deltaFromJson(j)) {
    auto back = deltaFromJson(reparse(toJson(*d)));
    if (!back || back->users != d->users || back->groups != d->groups ||
        back->deletedUsers != d->deletedUsers || back->deletedGroups != d->deletedGroups)
      std::abort();
    auto applied = st.replica->applyDelta(*d);
    if (!applied) std::abort();
    if (*applied && st.replica->seqOf(d->owner) != d->to) std::abort();
  }
  if (auto m = membersFromMessage(j)) {
    auto back = membersFromMessage(reparse(membersMessage(*m)));
    if (!back || *back != *m) std::abort();
    if (!st.members->merge(*m, RevocationList(), "self-node")) std::abort();
  }
  if (auto m = memberFromJson(j)) {
    auto back = memberFromJson(reparse(toJson(*m)));
    if (!back || *back != *m) std::abort();
  }
  if (auto p = presenceFromJson(j)) {
    auto back = presenceFromJson(reparse(presenceMessage(p->owner, p->extension, p->dialogs)));
    if (!back || back->dialogs != p->dialogs) std::abort();
  }
  if (auto p = presenceSyncFromJson(j)) {
    auto back = presenceSyncFromJson(reparse(presenceSyncMessage(p->owner, p->users)));
    if (!back || back->users.size() != p->users.size()) std::abort();
    for (size_t i = 0; i < p->users.size(); ++i)
      if (back->users[i].dialogs != p->users[i].dialogs) std::abort();
  }
  if (auto d = dialogFromJson(j)) {
    auto back = dialogFromJson(reparse(toJson(*d)));
    if (!back || *back != *d) std::abort();
  }
  if (auto o = callOutcomeFromJson(j)) {
    auto back = callOutcomeFromJson(reparse(toJson(*o)));
    if (!back || back->correlationId != o->correlationId || back->disposition != o->disposition ||
        back->answerMs != o->answerMs || back->answeredByOwner != o->answeredByOwner)
      std::abort();
  }
  // Lookups on whatever the replica holds now.
  (void)st.replica->conflicts(*st.dir, "self-node");
  (void)st.replica->groupsWithMember("node-a", "201");
  (void)st.replica->allUsers();
  return 0;
}

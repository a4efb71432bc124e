#pragma once
// Directory replication (federation §5): each node is the only writer of its users and groups
// and publishes the shared ones; every peer keeps a persisted replica of every other node's
// directory, so dialling and fallback work after a restart with links down.
//
// Protocol (docs/federation-protocol.md):
//   publisher → peer  {"t":"dir-snapshot","owner":id,"seq":n,"users":[...],"groups":[...]}
//                     {"t":"dir-delta","owner":id,"from":n,"to":m,"users":[...],"groups":[...],
//                      "deletedUsers":["201"],"deletedGroups":["600"]}
//   peer → publisher  {"t":"dir-want","owner":id,"seq":n}   (hello time, or on a gap)
// A delta applies only when its "from" equals the replica's seq; otherwise the replica asks for
// a snapshot. Sequence numbers are per owner, increase by one per published change, and survive
// restarts (persisted with the published view).
//
// User form: {"extension","displayName","externalNumber","dnd",
//             "forward":{"always","busy","noAnswer","noAnswerSeconds","unregistered"}}
// ("dnd" and "forward" since issue 12: a peer without them sends neither, and they count as off;
// peers without them ignore them.)
// Group form: {"number","name","members":[{"owner":nodeId,"extension","loggedIn"}]}
// (member owners are always explicit node ids on the wire; the local directory's "" becomes the
// publisher's id.)
#include "base/result.h"
#include "pbx/directory/directory.h"
#include "store/database.h"

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace verbund::federation {

inline constexpr size_t kMaxReplicaUsers = 20'000;
inline constexpr size_t kMaxReplicaGroups = 5'000;

struct ReplicaUser {
  std::string extension, displayName, externalNumber;
  bool dnd = false;
  pbx::Forwarding forward;
  friend bool operator==(const ReplicaUser&, const ReplicaUser&) = default;
};
struct ReplicaGroup {
  std::string number, name;
  std::vector<pbx::GroupMember> members; // owners explicit
  friend bool operator==(const ReplicaGroup&, const ReplicaGroup&) = default;
};
struct DirectorySnapshot {
  std::string owner;
  int64_t seq = 0;
  std::vector<ReplicaUser> users;   // sorted by extension
  std::vector<ReplicaGroup> groups; // sorted by number
};
struct DirectoryDelta {
  std::string owner;
  int64_t from = 0, to = 0;
  std::vector<ReplicaUser> users; // added or changed
  std::vector<ReplicaGroup> groups;
  std::vector<std::string> deletedUsers, deletedGroups;
};

nlohmann::json toJson(const DirectorySnapshot& s); // with "t":"dir-snapshot"
nlohmann::json toJson(const DirectoryDelta& d);    // with "t":"dir-delta"
// Validate every field with the directory's validators; limits above. Error code 400, the message
// starts with the path of the field ("users[3].extension: digits only, 2 to 8 of them"). Owners
// (also of group members) must be non-empty node ids. Missing arrays count as empty, a missing
// externalNumber as "", a missing dnd as false, missing forward keys as off (noAnswerSeconds 20),
// a missing loggedIn as true; unknown members are ignored. Duplicates
// (extension, group number, group member) are rejected. Lists come back sorted.
Result<DirectorySnapshot> snapshotFromJson(const nlohmann::json& j);
Result<DirectoryDelta> deltaFromJson(const nlohmann::json& j);

// The local side: turns the local directory's shared records into snapshots and deltas.
class DirectoryPublisher {
public:
  static std::vector<store::Migration> migrations(); // module "federation_publish"
  static Result<std::unique_ptr<DirectoryPublisher>> open(store::Database& db,
                                                          std::string localNodeId);

  // Rebuilds the shared view from `dir` (users/groups with shared=true; members' "" owners
  // become the local node id). When it differs from the last published view: seq+1, persisted,
  // and the delta is returned; nullopt when nothing shared changed. O(directory): for joining,
  // starting and other rare events.
  Result<std::optional<DirectoryDelta>> update(const pbx::Directory& dir);
  // The same for the records named (user extensions, group numbers; e.g. the directory's
  // lastChange()): O(records named × log(directory)), so a change costs the same at 10 and at
  // 10,000 users. Only the changed rows of the view are written. On an error (e.g. a busy
  // database) nothing changed: call again with the same names.
  Result<std::optional<DirectoryDelta>> update(const pbx::Directory& dir,
                                               const std::set<std::string>& users,
                                               const std::set<std::string>& groups);
  DirectorySnapshot snapshot() const; // O(view), for a peer that asks for one
  int64_t seq() const { return seq_; }
  // Leaving/joining: a new node id means a new sequence (seq 0, empty view, persisted). open()
  // with another id than the persisted one does the same.
  Result<void> reset(std::string localNodeId);

private:
  DirectoryPublisher(store::Database& db, std::string id) : db_(db), owner_(std::move(id)) {}
  Result<void> loadRows(int64_t seq);
  // Writes seq and the delta's rows in one transaction, then applies them in memory.
  Result<void> commit(const DirectoryDelta& d);
  // Replaces the whole stored view (a new sequence, a damaged or old-format view).
  Result<void> persistAll();
  store::Database& db_;
  std::string owner_;
  int64_t seq_ = 0;
  // The published view, one row per record in the database (federation_published_users /
  // _groups) so that a change writes only its records.
  std::map<std::string, ReplicaUser> users_;   // by extension
  std::map<std::string, ReplicaGroup> groups_; // by number
};

// A user of another node, as dialling and fallback need it.
struct RemoteUser {
  std::string owner; // node id
  ReplicaUser user;
};
struct RemoteGroup {
  std::string owner;
  ReplicaGroup group;
};

// Two or more nodes use the same number (user extension or group number).
struct NumberConflict {
  std::string number;
  struct Use {
    std::string owner; // node id ("" never: the local node is given by its id)
    std::string kind;  // "user" | "group"
    std::string name;  // display name / group name
  };
  std::vector<Use> uses; // sorted by owner
};

// The remote side: persisted replicas of every other node's directory.
class DirectoryReplica {
public:
  static std::vector<store::Migration> migrations(); // module "federation_replica"
  static Result<std::unique_ptr<DirectoryReplica>> open(store::Database& db);

  int64_t seqOf(const std::string& owner) const; // 0 when unknown
  // Replaces the owner's replica (persisted in one transaction). O(replica).
  Result<void> applySnapshot(const DirectorySnapshot& s);
  // Applies when d.from == seqOf(owner): returns true (an unknown owner is at seq 0, so the
  // first delta from 0 creates it). False (nothing changed) on a gap; the caller then sends
  // dir-want. Deletions apply before additions.
  Result<bool> applyDelta(const DirectoryDelta& d);
  Result<void> removeOwner(const std::string& owner);
  Result<void> clear();

  std::vector<std::string> owners() const;
  // Users with this extension on other nodes (more than one: a conflict among peers).
  std::vector<RemoteUser> usersByExtension(const std::string& extension) const;
  std::vector<RemoteGroup> groupsByNumber(const std::string& number) const;
  std::optional<RemoteUser> user(const std::string& owner, const std::string& extension) const;
  std::optional<RemoteGroup> group(const std::string& owner, const std::string& number) const;
  std::vector<RemoteUser> users(const std::string& owner) const;
  std::vector<RemoteGroup> groups(const std::string& owner) const;
  std::vector<RemoteUser> allUsers() const;
  std::vector<RemoteGroup> allGroups() const;
  // Groups (of any owner) that have member (memberOwner, extension).
  std::vector<RemoteGroup> groupsWithMember(const std::string& memberOwner,
                                            const std::string& extension) const;

  // Numbers used by more than one node, the local directory included (as `localNodeId`; all
  // local users and groups count, shared or not, since a local number always shadows a remote
  // one when dialled here). A replica under localNodeId itself is ignored. Sorted by number.
  std::vector<NumberConflict> conflicts(const pbx::Directory& local,
                                        const std::string& localNodeId) const;

private:
  explicit DirectoryReplica(store::Database& db) : db_(db) {}
  Result<void> load();
  Result<DirectorySnapshot> loadRows(const std::string& owner, int64_t seq);
  // The owner's replica, one row per record (federation_replica_users / _groups) under its
  // seq row in federation_replicas, so that a delta writes only its records.
  Result<void> persistAll(const DirectorySnapshot& s);
  Result<void> deleteRows(const std::string& owner);
  // Writes (inserts or replaces) the owner's user and group rows; inside a transaction.
  Result<void> putRows(const std::string& owner, const std::vector<ReplicaUser>& users,
                       const std::vector<ReplicaGroup>& groups);
  // Stores s (sorted, validated) as its owner's replica: rows first, then memory and indexes.
  Result<void> replace(DirectorySnapshot s);
  void index(const DirectorySnapshot& s);
  void unindex(const DirectorySnapshot& s);
  store::Database& db_;
  std::map<std::string, DirectorySnapshot> replicas_; // by owner; lists sorted by key
  // extension / group number -> owners that use it; the record itself is found by binary
  // search in the owner's sorted list.
  std::unordered_map<std::string, std::set<std::string>> userOwners_, groupOwners_;
};

} // namespace verbund::federation

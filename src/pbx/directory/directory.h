#pragma once
// The directory: users and groups of this node (and, later, replicas of other nodes' records).
// Every record has exactly one owner node, the only one that may change it (federation §5).
// Lives on the node's event loop; backed by the store, with an in-memory index for the lookups
// the SIP path makes per call (by extension, by SIP user name).
#include "base/result.h"
#include "store/database.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

// Call forwarding of a user (issue 12). Each target is "" (off) or a dialled string routed as if
// the user had dialled it: an extension of any site, a group number or an external number.
inline constexpr int kDefaultNoAnswerSeconds = 20;
inline constexpr int kMinNoAnswerSeconds = 5, kMaxNoAnswerSeconds = 120;
inline constexpr size_t kMaxForwardTarget = 32;
struct Forwarding {
  std::string always, busy, noAnswer, unregistered;
  int noAnswerSeconds = kDefaultNoAnswerSeconds;
  friend bool operator==(const Forwarding&, const Forwarding&) = default;
};
// A change of some forwarding settings: present fields replace, missing ones stay.
struct ForwardingInput {
  std::optional<std::string> always, busy, noAnswer, unregistered;
  std::optional<int64_t> noAnswerSeconds;
  bool empty() const { return !always && !busy && !noAnswer && !unregistered && !noAnswerSeconds; }
};

// A user: one person with an extension and zero or more devices sharing one SIP login.
struct User {
  int64_t id = 0;              // local row id
  std::string owner;           // owning node id; empty = this node
  std::string extension;       // digits, 2..8 (unique per node among users and groups)
  std::string displayName;     // shown to callees
  std::string externalNumber;  // E.164 "+4930123456" or empty
  std::string sipUser;         // device login name (unique per node)
  std::string language = "de"; // "de" | "en"
  bool shared = true;          // published to the federation
  bool dnd = false;            // do-not-disturb
  Forwarding forward;
  int64_t version = 0; // bumped on every change (replication sequence)
};

// Secrets of a user's device login, kept apart from User so they never reach the API or logs.
struct DeviceCredentials {
  std::string sipUser;
  std::string ha1Md5; // H(user:realm:password) per RFC 7616, for the node's realm
  std::string ha1Sha256;
};

struct GroupMember {
  std::string owner;     // member's node id; empty = this node
  std::string extension; // the member's extension on its node
  bool loggedIn = true;
  friend bool operator==(const GroupMember&, const GroupMember&) = default;
};

struct Group {
  int64_t id = 0;
  std::string owner;
  std::string number; // dialled number, unique per node among users and groups
  std::string name;
  std::vector<GroupMember> members;
  bool shared = true;
  int64_t version = 0;
};

// Input for create/update; password only on create or when changing it.
struct UserInput {
  std::optional<std::string> extension, displayName, externalNumber, sipUser, sipPassword, language;
  std::optional<bool> shared;
  std::optional<bool> dnd;
  ForwardingInput forward;
};
struct GroupInput {
  std::optional<std::string> number, name;
  std::optional<std::vector<GroupMember>> members;
  std::optional<bool> shared;
};

// Field rules, shared by the API (early 400s) and the directory itself. Each returns an error
// whose message starts with the field name ("extension: digits only, 2 to 8 of them").
inline constexpr size_t kMaxGroupMembers = 100;
inline constexpr size_t kMinPasswordLength = 8;
inline constexpr size_t kMaxPasswordLength = 128;
Result<void> validateExtension(std::string_view field, std::string_view value);
Result<void> validateExternalNumber(std::string_view value);
Result<void> validateSipUser(std::string_view value);
Result<void> validatePassword(std::string_view value);
Result<void> validateDisplayName(std::string_view field, std::string_view value);
Result<void> validateLanguage(std::string_view value);
Result<void> validateOwner(std::string_view field, std::string_view value);
// A forwarding target: "" (off) or up to 32 digits with an optional leading '+'.
Result<void> validateForwardTarget(std::string_view field, std::string_view value);
Result<void> validateNoAnswerSeconds(std::string_view field, int64_t value);
// Every field present, named "forward.<key>".
Result<void> validateForwardingInput(const ForwardingInput& in);
// Applies the present fields of `in` to `f` (validated before).
void applyForwarding(Forwarding& f, const ForwardingInput& in);
// Checks every field present; `create` additionally requires the mandatory ones
// (extension, displayName, sipPassword for users; number, name for groups).
Result<void> validateUserInput(const UserInput& in, bool create);
Result<void> validateGroupInput(const GroupInput& in, bool create);

// One invalid row of a bulk import; rows count from 1 in the order given.
struct UserRowError {
  size_t row = 0;
  std::string field;   // "extension", "sipUser", ... ("" when the error names no field)
  std::string error;   // "already used by user 'Alice'", "also in row 3", ...
  size_t otherRow = 0; // for "also in row N": N
  friend bool operator==(const UserRowError&, const UserRowError&) = default;
};
struct UserImport {
  std::vector<UserRowError> errors; // every invalid row (a row may appear more than once)
  std::vector<User> created;        // empty on errors and on a dry run
  size_t valid = 0;                 // rows that would be / were created (0 when errors)
};
inline constexpr size_t kMaxImportRows = 50'000;

// Errors carry an HTTP-like code (400 invalid, 404 unknown, 409 conflict) and a message that
// starts with the field name: "extension: already used by user 'Alice'".
class Directory {
public:
  static Result<std::unique_ptr<Directory>> open(store::Database& db, std::string realm);
  static std::vector<store::Migration> migrations();

  const std::string& realm() const { return realm_; }
  // Highest version handed out so far; every committed change increases it.
  int64_t version() const { return version_; }

  // sipUser defaults to the extension when not given on create. Changing sipUser needs a new
  // sipPassword too, because HA1 covers the user name.
  Result<User> createUser(const UserInput& in);
  Result<User> updateUser(int64_t id, const UserInput& in);
  // Creates every row (same rules as createUser) in one transaction with one change
  // notification, or none: when any row is invalid, conflicts with an existing user or group, or
  // repeats the extension / SIP user of an earlier row, nothing is written and `errors` lists
  // every such row. A dry run only checks. Error (500) only when the store fails.
  Result<UserImport> importUsers(const std::vector<UserInput>& rows, bool dryRun);
  // Also removes the user from this node's groups.
  Result<void> deleteUser(int64_t id);
  std::optional<User> user(int64_t id) const;
  std::optional<User> userByExtension(std::string_view extension) const;
  std::optional<User> userBySipUser(std::string_view sipUser) const;
  // The device credentials of a SIP user, or null. Not a copy: valid until the next change of the
  // directory, i.e. for the synchronous use of a caller on the directory's event loop (the
  // registrar's and the call engine's digest checks); copy what you keep.
  const DeviceCredentials* credentials(std::string_view sipUser) const;
  std::vector<User> users() const; // ordered by extension
  // Users whose extension, display name or SIP user contains q (case-insensitive for ASCII).
  std::vector<User> searchUsers(std::string_view q) const;
  size_t userCount() const { return users_.size(); }
  // Extensions of the local users with do-not-disturb on (kept with the index: no scan).
  const std::set<std::string>& dndExtensions() const { return dndExtensions_; }

  // Local members must be existing users of this node.
  Result<Group> createGroup(const GroupInput& in);
  Result<Group> updateGroup(int64_t id, const GroupInput& in);
  Result<void> deleteGroup(int64_t id);
  // Logs a member in or out of a group (feature code, API). Persisted.
  Result<Group> setMemberLoggedIn(int64_t groupId, const std::string& owner,
                                  const std::string& extension, bool loggedIn);
  std::optional<Group> group(int64_t id) const;
  std::optional<Group> groupByNumber(std::string_view number) const;
  std::vector<Group> groups() const; // ordered by number
  size_t groupCount() const { return groups_.size(); }

  // Called after every committed change (for presence, replication, caches).
  using ChangeListener = std::function<void()>;
  void onChange(ChangeListener l) { listeners_.push_back(std::move(l)); }
  // What the change being notified touched: extensions of users and numbers of groups whose
  // record was added, changed or removed (an extension change names the old and the new one; a
  // group whose member list followed names the group). Valid while the listeners run, so that
  // a listener's work is O(records changed), not O(directory).
  struct Change {
    std::set<std::string> users, groups;
  };
  const Change& lastChange() const { return lastChange_; }

private:
  struct UserRecord {
    User user;
    DeviceCredentials credentials;
  };

  Directory(store::Database& db, std::string realm) : db_(db), realm_(std::move(realm)) {}
  Result<void> load();
  Result<UserRecord> buildNewUser(const UserInput& in) const;
  Result<void> hashCredentials(UserRecord& r, const std::string& password) const;
  // Inserts r with `version` (inside a transaction); sets its id and version.
  Result<void> insertUser(UserRecord& r, int64_t version);
  void addIndexed(UserRecord r);
  // 409 when `number` is taken by a user or group other than the given ones.
  Result<void> checkNumberFree(std::string_view field, std::string_view number, int64_t exceptUser,
                               int64_t exceptGroup) const;
  Result<void> checkLocalMembers(const std::vector<GroupMember>& members) const;
  Result<int64_t> nextVersion();
  Result<void> writeMembers(int64_t groupId, const std::vector<GroupMember>& members);
  void indexUser(const UserRecord& r);
  void unindexUser(const User& u);
  void indexGroup(const Group& g);
  void unindexGroup(const Group& g);
  void notify();

  store::Database& db_;
  std::string realm_;
  int64_t version_ = 0;
  std::map<int64_t, UserRecord> users_;
  std::map<int64_t, Group> groups_;
  // Transparent: looked up by string_view without building a std::string.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int64_t, KeyHash, std::equal_to<>> userByExtension_,
      userBySipUser_, groupByNumber_;
  std::set<std::string> dndExtensions_;
  std::vector<ChangeListener> listeners_;
  Change pending_, lastChange_; // collected by the (un)index calls; handed over by notify()
};

} // namespace verbund::pbx

#pragma once
// The presence hub: current line state and dialogs of every user this node cares about, local
// (fed by the call engine through callEvent) and remote (fed by the federation through the
// PresenceFeed seam), with listeners for the BLF notifier, the federation's outgoing feed and the
// admin UI's live board. Runs on the SIP loop; no locks.
//
//   PresenceHub hub;
//   auto id = hub.subscribe({"node-a", "201"}, [](const UserPresence& p) { ... });
//   hub.callEvent({"node-a", "201"}, CallEventKind::Ringing, dialog);  // listener runs now
#include "pbx/presence/dialog_info.h"

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

// A user's presence. As a change notification, `dialogs` also holds the dialogs that ended with
// this change (state Terminated, once), so that watchers see the end of a call explicitly.
struct UserPresence {
  UserKey key;
  LineState state = LineState::Idle;
  std::vector<DialogInfo> dialogs;
};

// One user's dialogs in a node's full state.
struct UserDialogs {
  std::string extension;
  std::vector<DialogInfo> dialogs;
};

// The seam through which presence of other nodes arrives (owned here, implemented by the hub,
// fed by the federation).
class PresenceFeed {
public:
  virtual ~PresenceFeed() = default;
  // The complete current dialogs of one user (replaces what was known; empty: idle). Dialogs in
  // state Terminated are reported to watchers as ended and not kept.
  virtual void publish(const UserKey& user, std::vector<DialogInfo> dialogs) = 0;
  // The link to node `owner` is lost: all its users become Unknown (their dialogs are forgotten,
  // not reported as ended), also users nobody has published yet.
  virtual void markUnknown(const std::string& owner) = 0;
  // The full state of node `owner` after (re)connecting: the listed users get their dialogs, every
  // other user of that node is Idle. Ends Unknown for that node.
  virtual void resync(const std::string& owner, std::vector<UserDialogs> users) = 0;
};

// What the call engine reports about one dialog of one user.
enum class CallEventKind : uint8_t {
  Ringing,  // offered to the user or placed by the user, not answered (dialog early)
  Answered, // confirmed
  Ended,    // terminated (dialog.stateEvent may say why: "cancelled", "remote-bye", ...)
};

class PresenceHub final : public PresenceFeed {
public:
  using Listener = std::function<void(const UserPresence&)>;
  using ListenerId = uint64_t; // 0: none

  PresenceHub() = default;
  PresenceHub(const PresenceHub&) = delete;
  PresenceHub& operator=(const PresenceHub&) = delete;

  // ---- PresenceFeed ----
  void publish(const UserKey& user, std::vector<DialogInfo> dialogs) override;
  void markUnknown(const std::string& owner) override;
  void resync(const std::string& owner, std::vector<UserDialogs> users) override;

  // ---- Call engine ----
  // One dialog of `user` changed; dialogs are told apart by DialogInfo::id, so a user may have
  // any number at once (two calls ringing, one held and one active, ...). The line is Busy while
  // any is answered, Ringing while only unanswered incoming ones are left, Idle when all ended.
  void callEvent(const UserKey& user, CallEventKind kind, DialogInfo dialog);

  // ---- Queries ----
  UserPresence get(const UserKey& user) const; // live dialogs only
  LineState lineState(const UserKey& user) const { return get(user).state; }
  // Every user that is not Idle (non-idle or published while its node is unknown), for the admin
  // board and for a full-state resync sent to a peer.
  std::vector<UserPresence> snapshot() const;
  // Just the users of one node (e.g. the local node, for the federation's resync).
  std::vector<UserPresence> snapshot(const std::string& owner) const;
  bool ownerUnknown(const std::string& owner) const { return unknownOwners_.count(owner) != 0; }

  // ---- Listeners ----
  // Called on every change of `user`, synchronously, in the loop iteration of the change.
  // Listeners may subscribe, unsubscribe (also themselves) and feed the hub from the callback.
  ListenerId subscribe(const UserKey& user, Listener fn);
  // Called on every change of every user (federation's outgoing feed, admin board).
  ListenerId subscribeAll(Listener fn);
  void unsubscribe(ListenerId id);
  size_t listenerCount() const { return listeners_.size(); }

private:
  // A user's live dialogs in the order they appeared, found by id in O(1): a user may have
  // thousands at once (a queue, a load test) and every call event looks one up.
  class Entry {
  public:
    Entry() = default;
    Entry(Entry&&) = default; // list nodes stay put: the index's iterators stay valid
    Entry& operator=(Entry&&) = default;
    std::vector<DialogInfo> dialogs() const { return {list_.begin(), list_.end()}; }
    void assign(std::vector<DialogInfo> dialogs);
    DialogInfo* find(const std::string& id);
    void add(DialogInfo d);
    DialogInfo take(const std::string& id); // removes it; the id must be there
    bool empty() const { return list_.empty(); }

  private:
    std::list<DialogInfo> list_;
    std::unordered_map<std::string, std::list<DialogInfo>::iterator> byId_;
  };
  struct ListenerSlot {
    bool all = false;
    UserKey key;
    Listener fn;
  };

  // Replaces a user's entry (nullopt: erase it) and notifies listeners when that changed what is
  // seen.
  void update(const UserKey& user, std::optional<std::vector<DialogInfo>> dialogs,
              const std::vector<DialogInfo>& endedHints);
  void notify(const UserPresence& before, const UserPresence& after,
              const std::vector<DialogInfo>& endedHints);
  void dispatch(const UserPresence& change);
  bool watched(const UserKey& user) const; // any listener for this user's changes
  std::vector<UserKey> keysOf(const std::string& owner) const;
  static std::vector<DialogInfo> liveOnly(std::vector<DialogInfo> dialogs,
                                          std::vector<DialogInfo>* ended);

  std::unordered_map<UserKey, Entry, UserKeyHash> entries_;
  std::set<std::string> unknownOwners_;
  std::map<ListenerId, ListenerSlot> listeners_;
  std::unordered_map<UserKey, std::vector<ListenerId>, UserKeyHash> byKey_;
  std::vector<ListenerId> all_;
  ListenerId nextListener_ = 0;
};

} // namespace verbund::pbx

#include "pbx/presence/presence_hub.h"

#include <algorithm>

namespace verbund::pbx {

namespace {

// A later event about a dialog may carry less than the first (e.g. "answered" without the
// caller's name): keep what is known.
void mergeInto(DialogInfo& next, const DialogInfo& prev) {
  auto keep = [](std::string& a, const std::string& b) {
    if (a.empty()) a = b;
  };
  keep(next.callId, prev.callId);
  keep(next.localTag, prev.localTag);
  keep(next.remoteTag, prev.remoteTag);
  if (next.direction == DialogDirection::None) next.direction = prev.direction;
  for (auto [n, p] : {std::pair{&next.local, &prev.local}, std::pair{&next.remote, &prev.remote}}) {
    keep(n->identity, p->identity);
    keep(n->display, p->display);
    keep(n->target, p->target);
  }
}

} // namespace

void PresenceHub::Entry::assign(std::vector<DialogInfo> dialogs) {
  list_.clear();
  byId_.clear();
  for (DialogInfo& d : dialogs) add(std::move(d));
}

DialogInfo* PresenceHub::Entry::find(const std::string& id) {
  auto it = byId_.find(id);
  return it == byId_.end() ? nullptr : &*it->second;
}

void PresenceHub::Entry::add(DialogInfo d) {
  // Ids are unique per user; should a peer send one twice, the first one is the one found.
  list_.push_back(std::move(d));
  byId_.try_emplace(list_.back().id, std::prev(list_.end()));
}

DialogInfo PresenceHub::Entry::take(const std::string& id) {
  auto it = byId_.find(id);
  auto pos = it->second;
  byId_.erase(it);
  DialogInfo d = std::move(*pos);
  list_.erase(pos);
  return d;
}

std::vector<DialogInfo> PresenceHub::liveOnly(std::vector<DialogInfo> dialogs,
                                              std::vector<DialogInfo>* ended) {
  std::vector<DialogInfo> live;
  live.reserve(dialogs.size());
  for (DialogInfo& d : dialogs) {
    if (d.state != DialogState::Terminated)
      live.push_back(std::move(d));
    else if (ended)
      ended->push_back(std::move(d));
  }
  return live;
}

UserPresence PresenceHub::get(const UserKey& user) const {
  UserPresence p;
  p.key = user;
  if (auto it = entries_.find(user); it != entries_.end()) {
    p.dialogs = it->second.dialogs();
    p.state = deriveLineState(p.dialogs);
  } else if (unknownOwners_.count(user.owner)) {
    p.state = LineState::Unknown;
  }
  return p;
}

void PresenceHub::update(const UserKey& user, std::optional<std::vector<DialogInfo>> dialogs,
                         const std::vector<DialogInfo>& endedHints) {
  UserPresence before = get(user);
  if (dialogs)
    entries_[user].assign(std::move(*dialogs));
  else
    entries_.erase(user);
  notify(before, get(user), endedHints);
}

void PresenceHub::notify(const UserPresence& before, const UserPresence& after,
                         const std::vector<DialogInfo>& endedHints) {
  if (before.state == after.state && before.dialogs == after.dialogs) return;
  UserPresence change = after;
  // Dialogs that were live and are gone ended with this change; say so once (RFC 4235 §3.7.1:
  // "terminated"), unless the user became Unknown, about which nothing is claimed.
  if (after.state != LineState::Unknown) {
    for (const DialogInfo& d : before.dialogs) {
      bool still = std::any_of(after.dialogs.begin(), after.dialogs.end(),
                               [&](const DialogInfo& a) { return a.id == d.id; });
      if (still) continue;
      DialogInfo t = d;
      t.state = DialogState::Terminated;
      for (const DialogInfo& h : endedHints)
        if (h.id == d.id) {
          t.stateEvent = h.stateEvent;
          t.stateCode = h.stateCode;
          if (!h.remoteTag.empty()) t.remoteTag = h.remoteTag;
        }
      change.dialogs.push_back(std::move(t));
    }
  }
  dispatch(change);
}

void PresenceHub::dispatch(const UserPresence& change) {
  std::vector<ListenerId> ids;
  if (auto it = byKey_.find(change.key); it != byKey_.end()) ids = it->second;
  ids.insert(ids.end(), all_.begin(), all_.end());
  for (ListenerId id : ids) {
    auto it = listeners_.find(id);
    if (it == listeners_.end()) continue; // unsubscribed by an earlier listener
    Listener fn = it->second.fn;          // a copy: the listener may unsubscribe itself
    fn(change);
  }
}

void PresenceHub::publish(const UserKey& user, std::vector<DialogInfo> dialogs) {
  std::vector<DialogInfo> ended;
  std::vector<DialogInfo> live = liveOnly(std::move(dialogs), &ended);
  // An explicit entry is kept while the owner is unknown: this user is known, its node's other
  // users are not.
  bool keep = !live.empty() || ownerUnknown(user.owner);
  update(user, keep ? std::optional(std::move(live)) : std::nullopt, ended);
}

std::vector<UserKey> PresenceHub::keysOf(const std::string& owner) const {
  std::set<UserKey> keys;
  for (const auto& [k, e] : entries_)
    if (k.owner == owner) keys.insert(k);
  for (const auto& [k, ids] : byKey_)
    if (k.owner == owner) keys.insert(k);
  return {keys.begin(), keys.end()};
}

void PresenceHub::markUnknown(const std::string& owner) {
  std::vector<UserKey> keys = keysOf(owner);
  std::vector<UserPresence> before;
  before.reserve(keys.size());
  for (const UserKey& k : keys) before.push_back(get(k));
  unknownOwners_.insert(owner);
  for (const UserKey& k : keys) entries_.erase(k);
  for (size_t i = 0; i < keys.size(); ++i) notify(before[i], get(keys[i]), {});
}

void PresenceHub::resync(const std::string& owner, std::vector<UserDialogs> users) {
  std::map<UserKey, std::vector<DialogInfo>> next;
  for (UserDialogs& u : users) {
    std::vector<DialogInfo> live = liveOnly(std::move(u.dialogs), nullptr);
    if (!live.empty()) next[UserKey{owner, u.extension}] = std::move(live);
  }
  std::set<UserKey> keySet;
  for (const UserKey& k : keysOf(owner)) keySet.insert(k);
  for (const auto& [k, d] : next) keySet.insert(k);
  std::vector<UserKey> keys(keySet.begin(), keySet.end());
  std::vector<UserPresence> before;
  before.reserve(keys.size());
  for (const UserKey& k : keys) before.push_back(get(k));
  unknownOwners_.erase(owner);
  for (const UserKey& k : keys) entries_.erase(k);
  for (auto& [k, d] : next) entries_[k].assign(std::move(d));
  for (size_t i = 0; i < keys.size(); ++i) notify(before[i], get(keys[i]), {});
}

// Edits the user's entry in place: a busy user (a queue, a load test) may have thousands of
// dialogs, and every call reports several events for each of its parties, so copying or
// comparing the whole list per event made the cost of a call grow with the number of live calls.
// The change handed to listeners is built only when someone listens.
void PresenceHub::callEvent(const UserKey& user, CallEventKind kind, DialogInfo dialog) {
  auto it = entries_.find(user);
  DialogInfo* existing = it == entries_.end() ? nullptr : it->second.find(dialog.id);
  std::optional<DialogInfo> ended;
  switch (kind) {
  case CallEventKind::Ringing:
  case CallEventKind::Answered:
    if (kind == CallEventKind::Answered)
      dialog.state = DialogState::Confirmed;
    else if (dialog.state != DialogState::Trying && dialog.state != DialogState::Proceeding)
      dialog.state = DialogState::Early;
    dialog.stateEvent.clear();
    dialog.stateCode = 0;
    if (existing) {
      mergeInto(dialog, *existing);
      if (dialog == *existing) return; // nothing a watcher could see changed
      *existing = std::move(dialog);
    } else {
      if (it == entries_.end()) it = entries_.try_emplace(user).first;
      it->second.add(std::move(dialog));
    }
    break;
  case CallEventKind::Ended: {
    if (!existing) return; // never seen live: nothing to end
    // Reported once as terminated, with why it ended (RFC 4235 §3.7.1).
    DialogInfo t = it->second.take(dialog.id);
    t.state = DialogState::Terminated;
    t.stateEvent = std::move(dialog.stateEvent);
    t.stateCode = dialog.stateCode;
    if (!dialog.remoteTag.empty()) t.remoteTag = std::move(dialog.remoteTag);
    if (it->second.empty() && !ownerUnknown(user.owner)) {
      entries_.erase(it);
      it = entries_.end();
    }
    ended = std::move(t);
    break;
  }
  }
  if (!watched(user)) return;
  UserPresence change;
  change.key = user;
  if (it != entries_.end()) {
    change.dialogs = it->second.dialogs();
    change.state = deriveLineState(change.dialogs);
  }
  if (ended) change.dialogs.push_back(std::move(*ended));
  dispatch(change);
}

bool PresenceHub::watched(const UserKey& user) const {
  if (!all_.empty()) return true;
  auto it = byKey_.find(user);
  return it != byKey_.end() && !it->second.empty();
}

std::vector<UserPresence> PresenceHub::snapshot() const {
  std::vector<UserPresence> out;
  for (const auto& [k, e] : entries_) out.push_back(get(k));
  std::sort(out.begin(), out.end(),
            [](const UserPresence& a, const UserPresence& b) { return a.key < b.key; });
  return out;
}

std::vector<UserPresence> PresenceHub::snapshot(const std::string& owner) const {
  std::vector<UserPresence> out;
  for (const auto& [k, e] : entries_)
    if (k.owner == owner) out.push_back(get(k));
  std::sort(out.begin(), out.end(),
            [](const UserPresence& a, const UserPresence& b) { return a.key < b.key; });
  return out;
}

PresenceHub::ListenerId PresenceHub::subscribe(const UserKey& user, Listener fn) {
  ListenerId id = ++nextListener_;
  listeners_.emplace(id, ListenerSlot{false, user, std::move(fn)});
  byKey_[user].push_back(id);
  return id;
}

PresenceHub::ListenerId PresenceHub::subscribeAll(Listener fn) {
  ListenerId id = ++nextListener_;
  listeners_.emplace(id, ListenerSlot{true, {}, std::move(fn)});
  all_.push_back(id);
  return id;
}

void PresenceHub::unsubscribe(ListenerId id) {
  auto it = listeners_.find(id);
  if (it == listeners_.end()) return;
  if (it->second.all) {
    all_.erase(std::remove(all_.begin(), all_.end(), id), all_.end());
  } else if (auto k = byKey_.find(it->second.key); k != byKey_.end()) {
    k->second.erase(std::remove(k->second.begin(), k->second.end(), id), k->second.end());
    if (k->second.empty()) byKey_.erase(k);
  }
  listeners_.erase(it);
}

} // namespace verbund::pbx

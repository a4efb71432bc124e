#pragma once
// The call engine's CallFeatures over the directory (issue 12): do-not-disturb and forwarding of
// the node's users as the user records hold them, changed by feature codes through the directory
// (so the change is persisted, replicated and shown like an API change). Also keeps the presence
// hub in step with do-not-disturb: a user with it on has one confirmed dialog of id kDndDialogId,
// so BLF watchers here and, through the federation's presence feed, on every other site see the
// line busy (src/pbx/presence/README.md "Do-not-disturb"). Runs on the SIP loop. A write the
// database does not take within its busy timeout (locked by another process) changes nothing and
// is reported as Busy: the phone gets 503 with Retry-After (the setting is confirmed only once
// it is committed with synchronous=FULL, so no confirmed setting is lost to kill -9).
#include "pbx/calls/call_manager.h"
#include "pbx/directory/directory.h"
#include "pbx/presence/presence_hub.h"

#include <set>
#include <string>

namespace verbund::app {

inline constexpr const char* kDndDialogId = "dnd";

class DirectoryCallFeatures final : public pbx::CallFeatures {
public:
  // Subscribes to the directory's changes and shows the current do-not-disturb users at once.
  DirectoryCallFeatures(pbx::Directory& directory, pbx::PresenceHub& presence);

  bool doNotDisturb(const pbx::Party& user) override;
  std::optional<std::string> forwardTarget(const pbx::Party& user, pbx::ForwardWhen when) override;
  std::optional<Duration> noAnswerAfter(const pbx::Party& user) override;
  pbx::FeatureWrite setDoNotDisturb(const pbx::Party& user, bool on) override;
  pbx::FeatureWrite setForward(const pbx::Party& user, pbx::ForwardWhen when,
                               const std::string& target) override;

private:
  std::optional<pbx::User> localUser(const pbx::Party& user) const;
  // Adds the do-not-disturb dialog for users that turned it on, ends it for the others.
  void syncPresence();

  pbx::Directory& directory_;
  pbx::PresenceHub& presence_;
  std::set<std::string> shown_; // extensions with the dialog in the hub
};

} // namespace verbund::app

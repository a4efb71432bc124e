#include "app/call_features.h"

#include "base/log.h"

namespace verbund::app {

DirectoryCallFeatures::DirectoryCallFeatures(pbx::Directory& directory, pbx::PresenceHub& presence)
    : directory_(directory), presence_(presence) {
  directory_.onChange([this] { syncPresence(); });
  syncPresence();
}

std::optional<pbx::User> DirectoryCallFeatures::localUser(const pbx::Party& user) const {
  if (!user.owner.empty()) return std::nullopt; // decided at the user's home node
  return directory_.userByExtension(user.extension);
}

bool DirectoryCallFeatures::doNotDisturb(const pbx::Party& user) {
  auto u = localUser(user);
  return u && u->dnd;
}

std::optional<std::string> DirectoryCallFeatures::forwardTarget(const pbx::Party& user,
                                                                pbx::ForwardWhen when) {
  auto u = localUser(user);
  if (!u) return std::nullopt;
  const pbx::Forwarding& f = u->forward;
  const std::string& t = when == pbx::ForwardWhen::Always     ? f.always
                         : when == pbx::ForwardWhen::Busy     ? f.busy
                         : when == pbx::ForwardWhen::NoAnswer ? f.noAnswer
                                                              : f.unregistered;
  if (t.empty()) return std::nullopt;
  return t;
}

std::optional<Duration> DirectoryCallFeatures::noAnswerAfter(const pbx::Party& user) {
  auto u = localUser(user);
  if (!u) return std::nullopt;
  return Duration(int64_t(u->forward.noAnswerSeconds) * 1000);
}

namespace {
pbx::FeatureWrite outcome(const Result<pbx::User>& r) {
  if (r) return pbx::FeatureWrite::Done;
  return r.error().code == 503 ? pbx::FeatureWrite::Busy : pbx::FeatureWrite::Refused;
}
} // namespace

pbx::FeatureWrite DirectoryCallFeatures::setDoNotDisturb(const pbx::Party& user, bool on) {
  auto u = localUser(user);
  if (!u) return pbx::FeatureWrite::Refused;
  pbx::UserInput in;
  in.dnd = on;
  auto r = directory_.updateUser(u->id, in);
  if (!r) logger("calls")->info("do-not-disturb of {}: {}", user.extension, r.error().message);
  return outcome(r);
}

pbx::FeatureWrite DirectoryCallFeatures::setForward(const pbx::Party& user, pbx::ForwardWhen when,
                                                    const std::string& target) {
  auto u = localUser(user);
  if (!u) return pbx::FeatureWrite::Refused;
  pbx::UserInput in;
  switch (when) {
  case pbx::ForwardWhen::Always:
    in.forward.always = target;
    break;
  case pbx::ForwardWhen::Busy:
    in.forward.busy = target;
    break;
  case pbx::ForwardWhen::NoAnswer:
    in.forward.noAnswer = target;
    break;
  case pbx::ForwardWhen::Unregistered:
    in.forward.unregistered = target;
    break;
  }
  auto r = directory_.updateUser(u->id, in);
  if (!r) logger("calls")->info("forwarding of {}: {}", user.extension, r.error().message);
  return outcome(r);
}

void DirectoryCallFeatures::syncPresence() {
  // The directory keeps the do-not-disturb set: a change costs O(users with DND), not O(users).
  const std::set<std::string>& want = directory_.dndExtensions();
  pbx::DialogInfo d;
  d.id = kDndDialogId;
  d.direction = pbx::DialogDirection::Recipient;
  d.remote.identity = "urn:verbund:dnd";
  d.remote.display = "Do not disturb";
  for (const auto& ext : shown_)
    if (!want.contains(ext)) {
      pbx::DialogInfo end = d;
      end.stateEvent = "local-bye";
      presence_.callEvent(pbx::UserKey{"", ext}, pbx::CallEventKind::Ended, std::move(end));
    }
  for (const auto& ext : want)
    if (!shown_.contains(ext))
      presence_.callEvent(pbx::UserKey{"", ext}, pbx::CallEventKind::Answered, d);
  shown_ = want;
}

} // namespace verbund::app

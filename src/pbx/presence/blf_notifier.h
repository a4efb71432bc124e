#pragma once
// BLF: the notifier of the dialog event package (RFC 4235) for the node's users, on top of the
// dialog layer's RFC 6665 server subscriptions and fed by the PresenceHub.
//
//   BlfNotifier blf(dm, hub, {.authorize = ..., .resolve = ...});
//   dm.setServerSubscriptionHandler(&blf);
//
// A SUBSCRIBE to sip:<extension>@<node> with Event: dialog is checked in this order:
//   event package "dialog"          else 489 (RFC 6665 §4.2.1)
//   Accept allows dialog-info+xml   else 406 (RFC 6665 §4.2.1, RFC 4235 §3.3)
//   authorize(subscribe)            else 403 (RFC 4235 §6: the PBX decides who may watch)
//   resolve(extension)              else 404
// then it is accepted: 200 and at once a NOTIFY with the full state (RFC 4235 §4.2, version 0).
// Every change of the user in the hub sends a full-state NOTIFY with the next version
// synchronously, in the same loop iteration. Refresh, expiry and unsubscribe are handled by the
// ServerSubscription (RFC 6665 §4.2.1.2, §4.2.2, §4.2.1.4).
//
// Lifetime: the DialogManager's usages call back into this handler, so destroy the DialogManager
// (or end all subscriptions with endAll() and let them finish) before the notifier; the hub must
// outlive the notifier.
#include "pbx/presence/dialog_info_xml.h"
#include "pbx/presence/presence_hub.h"
#include "sip/dialog/subscription.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace verbund::pbx {

struct BlfNotifierConfig {
  // May the sender of this SUBSCRIBE watch? (e.g. a digest-authenticated local device). Without a
  // hook everyone is refused.
  std::function<bool(const sip::Message& subscribe)> authorize;
  // The user behind the Request-URI's user part (unescaped), or nullopt (404).
  std::function<std::optional<UserKey>(std::string_view extension)> resolve;
};

class BlfNotifier final : public sip::ServerSubscriptionHandler {
public:
  BlfNotifier(sip::DialogManager& dm, PresenceHub& hub, BlfNotifierConfig config);
  ~BlfNotifier() override;
  BlfNotifier(const BlfNotifier&) = delete;
  BlfNotifier& operator=(const BlfNotifier&) = delete;

  // Ends every subscription with a terminated NOTIFY (RFC 6665 §4.2.2; "deactivated": the
  // subscriber may subscribe again at once), e.g. before shutdown.
  void endAll(std::string_view reason = "deactivated");
  size_t watcherCount() const { return watchers_.size(); }

  // ---- ServerSubscriptionHandler ----
  void onNewSubscription(sip::ServerSubscription& sub, const sip::Message& subscribe) override;
  void onTerminated(sip::ServerSubscription& sub, std::string_view reason) override;

private:
  struct Watcher {
    UserKey key;
    std::string entity;   // the URI subscribed to, for <dialog-info entity>
    uint32_t version = 0; // of the next document
    PresenceHub::ListenerId listener = 0;
  };
  void onChange(sip::UsageId id, const UserPresence& change);
  std::string document(Watcher& w, const UserPresence& p);
  void forget(sip::UsageId id);

  sip::DialogManager& dm_;
  PresenceHub& hub_;
  BlfNotifierConfig config_;
  std::unordered_map<sip::UsageId, Watcher> watchers_;
};

} // namespace verbund::pbx

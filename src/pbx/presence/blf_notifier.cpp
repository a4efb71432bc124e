#include "pbx/presence/blf_notifier.h"

#include "base/log.h"
#include "base/metrics.h"
#include "sip/message/headers.h"
#include "sip/message/text.h"

namespace verbund::pbx {

namespace {

Counter gSubscriptions("verbund_blf_subscriptions_total",
                       "Dialog-event (BLF) subscriptions accepted");
Counter gRejected("verbund_blf_subscriptions_rejected_total",
                  "Dialog-event (BLF) subscriptions refused (403, 404, 406, 489)");
Counter gNotifies("verbund_blf_notifies_total", "Dialog-event NOTIFYs handed to the dialog layer");

// RFC 3261 §20.1, RFC 6665 §4.2.1: without Accept the package's default type is fine; otherwise
// one media range must cover application/dialog-info+xml. An empty Accept is taken as no Accept
// (phones send it; refusing them helps nobody).
bool acceptsDialogInfo(const sip::Message& subscribe) {
  bool any = false, ok = false;
  for (const sip::Header& h : subscribe.headers()) {
    if (h.id != sip::HeaderId::Accept) continue;
    sip::forEachListElement(h.value, [&](std::string_view range) {
      std::string_view type = sip::text::trim(range.substr(0, range.find(';')));
      if (type.empty()) return true;
      any = true;
      if (sip::text::iequals(type, kDialogInfoContentType) ||
          sip::text::iequals(type, "application/*") || type == "*/*")
        ok = true;
      return !ok;
    });
  }
  return ok || !any;
}

// The URI subscribed to, without parameters: <dialog-info entity> (RFC 4235 §4.1).
std::string entityOf(const sip::Uri& uri) {
  std::string e(uri.schemeText.empty() ? std::string_view("sip") : uri.schemeText);
  e.push_back(':');
  if (uri.scheme == sip::UriScheme::Tel) return e.append(uri.user);
  if (!uri.user.empty()) e.append(uri.user).push_back('@');
  e.append(uri.host);
  if (uri.port) e.append(":").append(std::to_string(uri.port));
  return e;
}

} // namespace

BlfNotifier::BlfNotifier(sip::DialogManager& dm, PresenceHub& hub, BlfNotifierConfig config)
    : dm_(dm), hub_(hub), config_(std::move(config)) {}

BlfNotifier::~BlfNotifier() {
  for (auto& [id, w] : watchers_) hub_.unsubscribe(w.listener);
}

void BlfNotifier::onNewSubscription(sip::ServerSubscription& sub, const sip::Message& subscribe) {
  auto refuse = [&](int status) {
    gRejected.inc();
    (void)sub.reject(status);
  };
  // RFC 6665 §4.2.1: an event package we do not serve here.
  if (!sip::text::iequals(sub.event().type, "dialog")) return refuse(489);
  if (!acceptsDialogInfo(subscribe)) return refuse(406);
  // RFC 4235 §6: dialog state reveals who calls whom; only those the PBX allows may watch.
  if (!config_.authorize || !config_.authorize(subscribe)) return refuse(403);
  std::optional<UserKey> key;
  if (auto ext = sip::unescape(subscribe.requestUri().user);
      ext && !ext->empty() && config_.resolve)
    key = config_.resolve(*ext);
  if (!key) return refuse(404);

  sip::UsageId id = sub.id();
  Watcher& w = watchers_[id];
  w.key = *key;
  w.entity = entityOf(subscribe.requestUri());
  std::string body = document(w, hub_.get(w.key));
  std::string extension = key->extension; // `w` may be gone after accept()
  // RFC 4235 §4.2 / RFC 6665 §4.2.1.1: 200, then at once a NOTIFY with the full state. Accepting
  // may end the subscription right away (NOTIFY not sendable), which erases the watcher.
  auto r = sub.accept(sip::SubState::Active, kDialogInfoContentType, body);
  if (!r) {
    logger("pbx")->info("BLF subscription to {}: not accepted: {}", extension, r.error().message);
    forget(id);
    if (sub.state() == sip::ServerSubscription::State::Initial) (void)sub.end();
    return;
  }
  gSubscriptions.inc();
  gNotifies.inc();
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  it->second.listener = hub_.subscribe(
      it->second.key, [this, id](const UserPresence& change) { onChange(id, change); });
}

void BlfNotifier::onTerminated(sip::ServerSubscription& sub, std::string_view reason) {
  forget(sub.id());
}

void BlfNotifier::forget(sip::UsageId id) {
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  if (it->second.listener) hub_.unsubscribe(it->second.listener);
  watchers_.erase(it);
}

std::string BlfNotifier::document(Watcher& w, const UserPresence& p) {
  DialogInfoDocument doc;
  doc.version = w.version++; // RFC 4235 §4.1: 0 first, then +1 per document
  doc.full = true;           // RFC 4235 §4.2: we always send the full state
  doc.entity = w.entity;
  doc.line = p.state;
  // Unknown: no dialogs (see dialog_info_xml.h); the hub reports none then anyway.
  if (p.state != LineState::Unknown) doc.dialogs = p.dialogs;
  for (DialogInfo& d : doc.dialogs)
    if (d.local.identity.empty()) d.local.identity = w.entity;
  return buildDialogInfo(doc);
}

void BlfNotifier::onChange(sip::UsageId id, const UserPresence& change) {
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  sip::ServerSubscription* sub = dm_.serverSubscription(id);
  if (!sub || sub->state() == sip::ServerSubscription::State::Terminated) return;
  std::string body = document(it->second, change);
  // RFC 6665 §4.2.2: the new state now. This may end the subscription (and erase the watcher).
  if (auto r = sub->notify(sip::SubState::Active, kDialogInfoContentType, body); !r) {
    logger("pbx")->debug("BLF NOTIFY for {} not sent: {}", change.key.extension, r.error().message);
    return;
  }
  gNotifies.inc();
}

void BlfNotifier::endAll(std::string_view reason) {
  std::vector<sip::UsageId> ids;
  ids.reserve(watchers_.size());
  for (const auto& [id, w] : watchers_) ids.push_back(id);
  for (sip::UsageId id : ids)
    if (sip::ServerSubscription* sub = dm_.serverSubscription(id)) (void)sub->end(reason);
}

} // namespace verbund::pbx

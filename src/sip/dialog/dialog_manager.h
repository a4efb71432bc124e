#pragma once
// The dialog layer (RFC 3261 §12-§14, RFC 6665): the transaction user that owns every dialog
// usage, routes in-dialog requests to them by dialog id (one hash lookup), answers requests for
// unknown dialogs with 481, and hands new INVITEs and SUBSCRIBEs to the application's handlers.
//
// Runs on one event loop. The manager owns its usages; the application keeps UsageIds.
//
//   ManualTimers timers; FakeTransport tp;
//   DialogManager dm(timers, config);
//   TransactionLayer txl(tp, timers, dm, {.retransmitInvite2xx = false});
//   dm.attach(txl);
#include "base/clock.h"
#include "sip/dialog/dialog.h"
#include "sip/dialog/dialog_usage.h"
#include "sip/dialog/uac_request.h"
#include "sip/transaction/transaction_layer.h"

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

namespace verbund::sip {

class InviteSession;
class ClientInvite;
class InviteHandler;
class ClientSubscription;
class ClientSubscriptionHandler;
class ServerSubscription;
class ServerSubscriptionHandler;

// RFC 4028 session timers of INVITE sessions (both sides), in seconds.
struct SessionTimerConfig {
  // The interval we ask for (UAC) and the largest we accept (UAS); 0 disables session timers:
  // no Session-Expires, Min-SE or "Supported: timer", no 422, no refreshes.
  uint32_t sessionExpires = 1800;
  // The smallest interval we accept (RFC 4028 §5). The RFC's floor is 90 seconds; a smaller
  // value is allowed here on purpose, so that tests can run a whole refresh cycle in a few
  // simulated seconds. Production configurations should keep >= 90.
  uint32_t minSE = 90;
};

struct DialogConfig {
  // Our Contact URI for dialogs the application does not give one for ("sip:pbx@192.0.2.1").
  std::string contact;
  // Contact for a dialog created by an incoming INVITE, chosen by the request (e.g. a
  // sips/transport=tls Contact for requests that arrived over TLS); empty answer or unset: contact.
  std::function<std::string(const Message& request)> contactFor;
  // RFC 3263 resolution of next hops; the default understands numeric hosts only.
  Resolver resolve = resolveNumeric;
  // RFC 3261 §14.1: random source for the 491 retry timer; returns a value in [lo, hi].
  std::function<uint32_t(uint32_t lo, uint32_t hi)> random;
  // RFC 6665 §4.2.1.1: limits for incoming subscriptions (seconds).
  uint32_t subscriptionMinExpires = 60;
  uint32_t subscriptionMaxExpires = 3600;
  uint32_t subscriptionDefaultExpires = 3600; // when SUBSCRIBE has no Expires
  // Subscriptions are refreshed this long before they expire (half the time when shorter).
  Duration subscriptionRefreshMargin{30000};
  SessionTimerConfig sessionTimer;
  // Session timers for a dialog created by an incoming INVITE, chosen by the request (e.g. a
  // shorter interval for calls from another node of the federation); nullopt or unset:
  // sessionTimer. The UAC side chooses with InviteParams::sessionTimer.
  std::function<std::optional<SessionTimerConfig>(const Message& request)> sessionTimerFor;
};

class DialogManager final : public TransactionUser {
public:
  explicit DialogManager(Timers& timers, DialogConfig config = {});
  ~DialogManager() override;
  DialogManager(const DialogManager&) = delete;
  DialogManager& operator=(const DialogManager&) = delete;

  // The transaction layer, which is built with this manager as its TU. Must be called before any
  // message arrives or any usage is started.
  void attach(TransactionLayer& txl) { txl_ = &txl; }

  void setInviteHandler(InviteHandler* h) { inviteHandler_ = h; }
  void setServerSubscriptionHandler(ServerSubscriptionHandler* h) { subscriptionHandler_ = h; }
  // New requests outside any dialog that are neither INVITE nor SUBSCRIBE (OPTIONS, REGISTER,
  // MESSAGE, ...). Without a handler they are answered 501 (405 for NOTIFY/PUBLISH-like methods).
  using RequestHandler = std::function<void(ServerTxId, const Message&)>;
  // Called for every new out-of-dialog request (no To tag) before it is dispatched; returns
  // false when it has answered the request itself (e.g. a 407 digest challenge).
  using RequestGate = std::function<bool(ServerTxId, const Message&)>;
  void setNewRequestGate(RequestGate g) { gate_ = std::move(g); }
  void setOutOfDialogHandler(RequestHandler h) { outOfDialog_ = std::move(h); }

  // ---- Starting usages ----
  struct InviteParams {
    std::string requestUri;
    std::string from;                // name-addr, without tag
    std::string to;                  // name-addr
    std::string contact;             // URI; empty: config contact
    std::string callId;              // empty: a new one
    std::vector<std::string> routes; // pre-loaded route set (Route values)
    std::optional<Peer> target;      // destination; default: resolve the first route or the R-URI
    std::string contentType, body;
    ExtraHeaders headers;
    AuthCallback auth; // answers 401/407 to the INVITE (once per challenge)
    // RFC 4028 session timers of this INVITE's dialogs; nullopt: the configured ones.
    std::optional<SessionTimerConfig> sessionTimer;
  };
  // RFC 3261 §13.2.1: sends an INVITE. Returns the ClientInvite's id.
  Result<UsageId> invite(InviteParams params);

  struct SubscribeParams {
    std::string requestUri;
    std::string from, to; // name-addrs (from without tag)
    std::string contact;
    std::string event;  // Event header value ("dialog", "presence;id=1")
    std::string accept; // Accept header value; empty: none
    uint32_t expires = 3600;
    std::vector<std::string> routes;
    std::optional<Peer> target;
    std::string contentType, body;
    ExtraHeaders headers;
    AuthCallback auth;
  };
  // RFC 6665 §4.1.2.1: starts a subscription; `handler` must outlive it.
  Result<UsageId> subscribe(SubscribeParams params, ClientSubscriptionHandler& handler);

  // ---- Lookup (null when unknown or finished) ----
  InviteSession* inviteSession(UsageId id);
  ClientInvite* clientInvite(UsageId id);
  ClientSubscription* clientSubscription(UsageId id);
  ServerSubscription* serverSubscription(UsageId id);
  Usage* usage(UsageId id);
  // The usage of a dialog, if any.
  DialogUsage* findDialog(const DialogId& id);
  size_t usageCount() const { return usages_.size(); }
  size_t dialogCount() const { return dialogs_.size(); }

  // ---- TransactionUser ----
  void onRequest(ServerTxId tx, const Message& request) override;
  void onAck(const Message& ack) override;
  void onCancel(ServerTxId inviteTx, const Message& cancel) override;
  void onServerTxTerminated(ServerTxId tx, ServerTxEnd how) override;
  void onStrayResponse(const Message& response) override;

  // ---- For the usages ----
  TransactionLayer& txl() { return *txl_; }
  Timers& timers() { return timers_; }
  const DialogConfig& config() const { return config_; }
  InviteHandler* inviteHandler() { return inviteHandler_; }
  uint32_t random(uint32_t lo, uint32_t hi);
  std::optional<Peer> resolve(std::string_view uriText);
  // Where an out-of-dialog request goes (RFC 3261 §8.1.2): the given target, else the first
  // pre-loaded route, else the Request-URI, resolved with the configured resolver.
  Result<Peer> firstHop(const std::string& requestUri, const std::vector<std::string>& routes,
                        const std::optional<Peer>& target);
  // Routes the dialog's id to `usage` (replacing a previous owner).
  void bindDialog(DialogUsage& usage);
  void unbindDialog(const DialogId& id, UsageId owner);
  void bindServerTx(ServerTxId tx, UsageId owner) { serverTxOwner_[tx] = owner; }
  // Client subscriptions waiting for their first NOTIFY or 2xx (RFC 6665 §4.1.2.4).
  void bindPendingSubscription(const std::string& callId, const std::string& localTag,
                               UsageId owner);
  void unbindPendingSubscription(const std::string& callId, const std::string& localTag);
  // Ends a usage: it no longer receives anything and is destroyed from a zero-delay timer.
  void retire(Usage& usage);
  UsageId nextId() { return ++nextId_; }
  template <typename T, typename... Args> T& create(Args&&... args) {
    UsageId id = nextId();
    auto u = std::unique_ptr<T>(new T(*this, id, std::forward<Args>(args)...));
    T& ref = *u;
    usages_.emplace(id, std::move(u));
    return ref;
  }
  // Wraps a client transaction callback so it is dropped once usage `id` is retired.
  ClientTxCallbacks guard(UsageId id, std::function<void(const Message&)> onResponse,
                          std::function<void(ClientTxFailure)> onFailure);
  // RFC 4028 §9: answers 422 (and returns true) to an INVITE or UPDATE whose Session-Expires is
  // below our Min-SE.
  bool sessionIntervalTooSmall(ServerTxId tx, const Message& request, const SessionTimerConfig& st);
  // The session timers of a dialog that `request` (a new INVITE) creates.
  SessionTimerConfig sessionTimerFor(const Message& request) const;
  // Parses built text and starts a client transaction for it.
  Result<ClientTxId> send(std::string bytes, const Peer& target, ClientTxCallbacks cb);

private:
  void newInvite(ServerTxId tx, const Message& request);
  void newSubscribe(ServerTxId tx, const Message& request);
  void respond(ServerTxId tx, int status, std::string_view reason = {});
  void reap();

  Timers& timers_;
  DialogConfig config_;
  TransactionLayer* txl_ = nullptr;
  InviteHandler* inviteHandler_ = nullptr;
  ServerSubscriptionHandler* subscriptionHandler_ = nullptr;
  RequestHandler outOfDialog_;
  RequestGate gate_;
  std::mt19937 rng_{std::random_device{}()};
  UsageId nextId_ = 0;
  std::unordered_map<UsageId, std::unique_ptr<Usage>> usages_;
  std::unordered_map<DialogId, UsageId, DialogIdHash> dialogs_;
  std::unordered_map<ServerTxId, UsageId> serverTxOwner_;
  std::unordered_map<std::string, UsageId> pendingSubs_; // Call-ID '\n' local tag
  std::vector<UsageId> retiring_;
  TimerId reapTimer_ = 0;
};

} // namespace verbund::sip

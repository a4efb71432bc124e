#pragma once
// Subscriptions (RFC 6665), the base of BLF: the subscriber side (ClientSubscription) and the
// notifier side (ServerSubscription), one usage per dialog. Event package bodies are opaque here:
// callbacks hand over body and content type.
#include "sip/dialog/dialog_manager.h"
#include "sip/dialog/dialog_usage.h"

#include <optional>
#include <string>
#include <string_view>

namespace verbund::sip {

enum class SubState : uint8_t { Pending, Active, Terminated };
std::string_view subStateName(SubState s); // "pending", "active", "terminated"

// RFC 6665 §8.2.3 Subscription-State.
struct SubscriptionStateValue {
  SubState state = SubState::Active;
  std::optional<uint32_t> expires;
  std::optional<uint32_t> retryAfter;
  std::string reason; // "timeout", "noresource", ... (terminated only)
};
Result<SubscriptionStateValue> parseSubscriptionState(std::string_view value);

// RFC 6665 §8.2.1 Event: type and id; matching compares both (type case-insensitively, §7.2.1).
struct EventValue {
  std::string type;
  std::string id;
};
Result<EventValue> parseEvent(std::string_view value);
bool sameEvent(const EventValue& a, const EventValue& b);

class ClientSubscription;
class ServerSubscription;

class ClientSubscriptionHandler {
public:
  virtual ~ClientSubscriptionHandler() = default;
  // A NOTIFY (already answered 200). Terminated states are followed by onTerminated().
  virtual void onNotify(ClientSubscription& sub, const SubscriptionStateValue& state,
                        const Message& notify) = 0;
  // A 2xx to our SUBSCRIBE (initial or refresh); sub.expires() holds the granted time.
  virtual void onAccepted(ClientSubscription& sub, const Message& response) {}
  // The subscription is over: `reason` from the terminating NOTIFY ("timeout", "noresource",
  // ...), or "rejected" with the failing status, or "expired" when it ran out locally. The usage
  // is destroyed after this call.
  virtual void onTerminated(ClientSubscription& sub, std::string_view reason, int status,
                            std::optional<uint32_t> retryAfter) {}
};

// Subscriber side (RFC 6665 §4.1).
class ClientSubscription final : public DialogUsage {
public:
  enum class State : uint8_t { Subscribing, Pending, Active, Unsubscribing, Terminated };
  ~ClientSubscription() override;

  State state() const { return state_; }
  const EventValue& event() const { return event_; }
  uint32_t expires() const { return expires_; } // last granted, seconds
  // RFC 6665 §4.1.2.2: refreshes now (this also happens by itself before expiry).
  Result<void> refresh();
  // RFC 6665 §4.1.2.3: SUBSCRIBE with Expires: 0; ends with the terminated NOTIFY.
  Result<void> unsubscribe();

private:
  friend class DialogManager;
  ClientSubscription(DialogManager& m, UsageId id, DialogManager::SubscribeParams params,
                     ClientSubscriptionHandler& handler);
  Result<void> start();
  Result<void> sendInitial(std::optional<std::pair<std::string, std::string>> auth);
  Result<void> sendInDialogSubscribe(uint32_t expires,
                                     std::optional<std::pair<std::string, std::string>> auth);
  void onSubscribeResponse(const Message& response, uint32_t requested);
  void onSubscribeFailure(ClientTxFailure why);
  void onDialogCreatingNotify(ServerTxId tx, const Message& notify);
  void onRequest(ServerTxId tx, const Message& request) override;
  void handleNotify(ServerTxId tx, const Message& notify);
  void scheduleRefresh(uint32_t seconds);
  void finish(std::string_view reason, int status, std::optional<uint32_t> retryAfter);

  DialogManager::SubscribeParams params_;
  ClientSubscriptionHandler& handler_;
  EventValue event_;
  State state_ = State::Subscribing;
  std::string callId_, fromTag_;
  uint32_t cseq_ = 1;
  MessagePtr request_; // the initial SUBSCRIBE as sent
  Peer target_;
  uint32_t expires_ = 0;
  int authAttempts_ = 0;
  TimerId refreshTimer_ = 0;
  TimerId expiryTimer_ = 0;
};

class ServerSubscriptionHandler {
public:
  virtual ~ServerSubscriptionHandler() = default;
  // A new SUBSCRIBE (Event and Expires already checked). Call sub.accept() or sub.reject(), now
  // or later.
  virtual void onNewSubscription(ServerSubscription& sub, const Message& subscribe) = 0;
  // A refresh was accepted (a NOTIFY with the current state has been sent).
  virtual void onRefresh(ServerSubscription& sub, const Message& subscribe) {}
  // The subscription is over (expired, unsubscribed, ended, or the NOTIFY failed). The usage is
  // destroyed after this call.
  virtual void onTerminated(ServerSubscription& sub, std::string_view reason) {}
};

// Notifier side (RFC 6665 §4.2).
class ServerSubscription final : public DialogUsage {
public:
  enum class State : uint8_t { Initial, Pending, Active, Terminated };
  ~ServerSubscription() override;

  State state() const { return state_; }
  const EventValue& event() const { return event_; }
  uint32_t expires() const { return expires_; } // granted by the last 2xx, seconds
  // Answers the SUBSCRIBE with 200 and sends the first NOTIFY at once (RFC 6665 §4.2.1.1).
  Result<void> accept(SubState state, std::string_view contentType, std::string_view body);
  Result<void> reject(int status, std::string_view reason = {});
  // RFC 6665 §4.2.2: a NOTIFY with the new state; queued while one is in flight (only the newest
  // queued content is sent).
  Result<void> notify(SubState state, std::string_view contentType, std::string_view body);
  // Ends the subscription with a terminated NOTIFY (RFC 6665 §4.1.3 reasons).
  Result<void> end(std::string_view reason = "noresource", std::string_view contentType = {},
                   std::string_view body = {});

private:
  friend class DialogManager;
  ServerSubscription(DialogManager& m, UsageId id, Dialog dialog,
                     ServerSubscriptionHandler& handler, EventValue event, std::string eventText,
                     ServerTxId tx, uint32_t expires);
  static void start(DialogManager& m, ServerSubscriptionHandler& handler, ServerTxId tx,
                    const Message& subscribe);
  // Expires of a SUBSCRIBE against the limits: the granted value, or 423 (already answered).
  static std::optional<uint32_t> grantExpires(DialogManager& m, ServerTxId tx,
                                              const Message& subscribe);
  void onRequest(ServerTxId tx, const Message& request) override;
  Result<void> answer(ServerTxId tx, int status, uint32_t expires);
  void armExpiry();
  void sendNotify();
  void onNotifyDone(bool ok);
  void finish(std::string_view reason);

  struct Content {
    SubState state = SubState::Active;
    std::string reason;
    std::string contentType, body;
  };
  ServerSubscriptionHandler& handler_;
  EventValue event_;
  std::string eventText_;
  State state_ = State::Initial;
  ServerTxId initialTx_ = 0;
  uint32_t expires_ = 0;
  TimePoint expiresAt_{};
  Content current_;               // the latest state handed to us (resent on refresh)
  std::optional<Content> queued_; // waiting for the NOTIFY in flight
  bool inFlight_ = false;
  bool terminatedSent_ = false;
  std::string endReason_;
  TimerId expiryTimer_ = 0;
};

} // namespace verbund::sip

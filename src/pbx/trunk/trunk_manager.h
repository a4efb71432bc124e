#pragma once
// The external line at run time, on the node's event loop: keeps the trunk registered (register
// mode) through the dialog layer's RegistrationClient with digest answers from DigestClient,
// resolves the carrier with RFC 3263 (SipLocator) and tries its addresses in turn, reports
// {disabled, registering, registered, failing} with the last error, and answers the questions of
// the call engine: is this request from the carrier, does this dialled string go out, where does
// an outbound call go and as whom, which local target does an inbound DID ring.
//
//   TrunkManager trunk(dm, transport, timers, &locator, {.isInternalNumber = ...});
//   trunk.configure(loadTrunk(db)->value_or(TrunkConfig{}));
//
// Secrets: the password is read from the config when a challenge is answered; it is never
// logged and never part of status(), view() or errors.
#include "base/clock.h"
#include "base/result.h"
#include "pbx/trunk/trunk_config.h"
#include "sip/auth/digest.h"
#include "sip/dialog/dialog_manager.h"
#include "sip/dialog/registration.h"
#include "sip/dns/server_locator.h"
#include "sip/transport/transport.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::store {
class Database;
}

namespace verbund::pbx {

enum class TrunkState : uint8_t {
  Disabled,    // not enabled (or not configured)
  Registering, // resolving the carrier or waiting for the registrar's answer
  Registered,  // register mode: bound at the registrar; ip mode: carrier resolved, ready
  Failing,     // the last attempt failed; retrying with backoff (lastError says why)
};
std::string_view trunkStateName(TrunkState s); // "disabled", "registering", ...

struct TrunkStatus {
  TrunkState state = TrunkState::Disabled;
  std::string reason;               // of the last change ("200 OK", "408 Request Timeout", ...)
  int64_t sinceMs = 0;              // wall clock of the last state change
  std::string lastError;            // the last failure, kept after recovery
  int64_t lastErrorMs = 0;          // 0: none yet
  uint32_t grantedExpires = 0;      // seconds, register mode
  std::vector<std::string> targets; // resolved carrier addresses, "UDP 192.0.2.7:5060"
  std::string activeTarget;         // the one in use
};

struct TrunkManagerOptions {
  // Whether a dialled string is an internal extension or group (those never go out).
  std::function<bool(const std::string&)> isInternalNumber;
  Duration retryMin{30000}; // first retry after a failure, doubling up to retryMax
  Duration retryMax{600000};
  Duration refreshMargin{30000};
  std::string userAgent = "Verbund";
  // Wall clock for TrunkStatus times (ms since the epoch); default: the injected timers'.
  std::function<int64_t()> wallClockMs;
  // Where configure() persists (update()); may be null.
  store::Database* db = nullptr;
};

// The caller of an outbound call, as far as the trunk needs it.
struct CallerIdentity {
  std::string externalNumber; // E.164 or national; empty: the trunk's default caller ID
  std::string displayName;
};

// Everything needed to send an outbound INVITE over the trunk.
struct OutboundTarget {
  std::string number;                           // as sent to the carrier (prefix stripped)
  std::string requestUri;                       // "sip:<number>@<domain>"
  std::string from;                             // name-addr, without tag
  std::string to;                               // name-addr
  std::optional<std::string> pAssertedIdentity; // header value (RFC 3325)
  std::vector<std::string> routes;              // outbound proxy, if any
  sip::Peer peer;                               // next hop
  sip::AuthCallback auth;                       // answers 401/407 with the trunk credentials
};

// An inbound call's DID and the local target it maps to.
struct InboundRoute {
  std::string did;
  std::string target; // extension or group number
};

class TrunkManager {
public:
  using Listener = std::function<void(const TrunkStatus&)>;
  using ListenerId = uint64_t;

  // `locator` may be null: then only numeric registrar / proxy addresses work.
  TrunkManager(sip::DialogManager& dm, sip::Transport& transport, Timers& timers,
               sip::SipLocator* locator, TrunkManagerOptions options = {});
  ~TrunkManager();
  TrunkManager(const TrunkManager&) = delete;
  TrunkManager& operator=(const TrunkManager&) = delete;

  // Validates and applies settings: an existing registration is removed (unregistered) and a
  // new one started when enabled. Invalid settings change nothing.
  Result<void> configure(TrunkConfig config);
  // Same, after saving to options.db (when set). An empty password keeps the current one.
  Result<void> update(TrunkConfig config);
  // Unregisters (shutdown); state becomes Disabled.
  void stop();

  const TrunkConfig& config() const { return config_; } // includes the password: not for the API
  TrunkView view() const { return redacted(config_); }
  const TrunkStatus& status() const { return status_; }
  ListenerId addListener(Listener l);
  void removeListener(ListenerId id);

  // IP-based trust: the request came from one of the carrier's resolved addresses (registrar,
  // outbound proxy) or a configured trusted address. Ports are not compared (carriers send from
  // several). False while disabled.
  bool isTrunkPeer(const sip::Peer& peer) const;

  // Whether `dialled` goes out over the trunk: enabled, not internal, and the dial-out rule
  // accepts it.
  bool isExternalNumber(std::string_view dialled) const;
  // The outbound INVITE's addressing for `dialled`. Errors: not external, trunk disabled, not
  // registered (register mode) or carrier not resolved.
  Result<OutboundTarget> targetFor(std::string_view dialled, const CallerIdentity& caller) const;
  // Fills an INVITE's parameters (Request-URI, From, To, routes, target, auth, P-Asserted-
  // Identity) for the call engine; body and content type are left alone.
  Result<void> prepareInvite(std::string_view dialled, const CallerIdentity& caller,
                             sip::DialogManager::InviteParams& params) const;
  // The DID of an inbound request from the carrier (Request-URI user when it is a known DID,
  // else the To user) and its local target. nullopt: unknown DID and no default target.
  std::optional<InboundRoute> inboundDid(const sip::Message& request) const;

  // Answers 401/407 to a request for `requestUri` with the trunk credentials (any method; the
  // method comes from the response's CSeq). Safe to call after the manager is gone (then it
  // answers nothing).
  sip::AuthCallback authCallback(std::string requestUri) const;

private:
  void start();
  void resolve();
  // Resolves `uri` (numeric hosts at once); background answers only refresh the address list,
  // registrarOnly ones only the trusted addresses.
  void locateUri(const std::string& uri, bool background, bool registrarOnly);
  void onResolved(Result<std::vector<sip::SipTarget>> r, bool background);
  void rebuildTrust();
  void startRegistration();
  void onRegistration(uint64_t clientId, sip::RegistrationClient::State s,
                      const std::string& reason);
  void retireClient();
  void scheduleReap();
  void scheduleRetry();
  void setState(TrunkState s, std::string reason);
  void noteError(const std::string& error);
  void notify();
  std::optional<sip::Peer> currentTarget() const;
  std::optional<std::string> answer(const sip::Message& challenge, const std::string& uri) const;
  int64_t nowMs() const;

  sip::DialogManager& dm_;
  sip::Transport& transport_;
  Timers& timers_;
  sip::SipLocator* locator_;
  TrunkManagerOptions options_;
  TrunkConfig config_;
  std::unique_ptr<DialPlan> plan_;
  std::unique_ptr<DidMap> dids_;
  TrunkStatus status_;
  std::map<ListenerId, Listener> listeners_;
  ListenerId nextListener_ = 0;

  uint64_t gen_ = 0; // bumped by configure/stop: stale DNS answers and timers are ignored
  std::vector<sip::SipTarget> targets_;
  size_t targetIndex_ = 0;
  std::vector<IpAddress> trusted_;
  std::vector<IpAddress> registrarIps_; // with an outbound proxy: the registrar's addresses
  std::unique_ptr<sip::RegistrationClient> client_;
  uint64_t clientId_ = 0, clientSeq_ = 0;
  std::vector<std::unique_ptr<sip::RegistrationClient>> retiring_; // unregistering
  TimerId retryTimer_ = 0;
  TimerId reapTimer_ = 0;
  int dnsFailures_ = 0;
  mutable sip::DigestClient digest_; // keeps nonce counts
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

} // namespace verbund::pbx

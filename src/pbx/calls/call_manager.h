#pragma once
// The call engine of a node: a back-to-back user agent. Every call is an inbound leg (the
// caller's INVITE, an InviteSession on the UAS side) and one or more outbound forks (one
// ClientInvite per device rung). Every SDP that crosses it goes through the media relay first
// (media_anchor.h; media_anchor.cpp), unless the call's media are direct (anchoring off, the
// "remote" mode between two local phones, or the relay unavailable at the call's first offer).
// A call and each fork are explicit state machines (call_state.h); routing is an ordered list of
// small stages that answer continue, stop or pending. Everything runs on the node's event loop.
//
// The implementation is split by concern: call_manager.cpp (dialog events, transitions, ending),
// routing.cpp (the stages), forking.cpp (forks, federation fallback, answer), offer_answer.cpp
// (in-dialog offers relayed between the legs), pickup.cpp, records.cpp (call list, outcomes),
// transfer.cpp (REFER acted on by the node: blind and attended transfer, recall).
#include "base/clock.h"
#include "pbx/calllog/call_log.h"
#include "pbx/calls/call_state.h"
#include "pbx/calls/journal.h"
#include "pbx/calls/media_anchor.h"
#include "sip/dialog/dialog_manager.h"
#include "sip/dialog/invite_session.h"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

// ---- Seams owned by the call engine (implemented by registrar, directory, presence, trunk) ----

// A registered device of a user: where to send its INVITE.
struct DeviceTarget {
  std::string contactUri;          // Request-URI for the fork
  sip::Peer peer;                  // the device's flow (NAT / connection reuse), or its first route
  std::vector<std::string> routes; // RFC 3327: the registration's Path, sent as Route headers
};

// A party that can be called: a local user (with its devices) or a group's member.
struct Party {
  std::string owner; // node id; empty = this node
  std::string extension;
  std::string displayName;
  std::string sipUser;
  std::string externalNumber;
};

struct GroupTarget {
  std::string number, name;
  std::vector<Party> loggedInMembers;
};

// Outcome of a feature code that changes stored settings (do-not-disturb, forwarding, group
// login). Busy: the database did not take the write within its busy timeout (another process
// holds its lock); nothing changed, in memory or on disk, and the phone gets 503 with
// Retry-After, so a setting is never confirmed that a kill -9 could lose.
enum class FeatureWrite : uint8_t { Done, Refused, Busy };

// What the engine needs to know about the node's users and devices.
class CallDirectory {
public:
  virtual ~CallDirectory() = default;
  virtual std::optional<Party> userByExtension(const std::string& extension) = 0;
  virtual std::optional<Party> userBySipUser(const std::string& sipUser) = 0;
  virtual std::optional<GroupTarget> groupByNumber(const std::string& number) = 0;
  virtual std::vector<DeviceTarget> devices(const std::string& sipUser) = 0;
  // Groups whose member `extension` is (for group pickup).
  virtual std::vector<std::string> groupsOf(const std::string& extension) = 0;
  // Feature-code group login/logout; Refused when the group or member is unknown.
  virtual FeatureWrite setGroupLogin(const std::string& groupNumber, const std::string& extension,
                                     bool loggedIn) = 0;
};

// Line-state changes for BLF (RFC 4235 dialog states), per party.
struct LineEvent {
  enum class State : uint8_t { Early, Confirmed, Terminated };
  std::string owner, extension; // whose line
  std::string dialogId;         // stable id of this dialog for this party
  State state = State::Early;
  bool initiator = false; // the party placed the call
  std::string remoteUri, remoteName;
  std::string callId, localTag, remoteTag; // for pickup by INVITE with Replaces
};
class LineObserver {
public:
  virtual ~LineObserver() = default;
  virtual void lineEvent(const LineEvent& e) = 0;
};

// Who is calling: the engine asks before routing a new INVITE.
struct Caller {
  enum class Kind : uint8_t {
    LocalUser,
    Trunk,
    Federation, // another node of the federation (mutual TLS), calling on behalf of `party`
  } kind = Kind::LocalUser;
  Party party;        // for LocalUser; for Federation the remote caller (owner = its node id)
  std::string number; // for Trunk: the caller's number as received
  std::string name;
  // Federation: the calling node's correlation id (kept for this call's record). Trunk: the id
  // a site's fallback INVITE carried through the carrier (kCorrelationHeader), when the node
  // checked that it names a member; the records of both sites then share it. And what
  // the calling node asks for (X-Verbund-Call "mode" parameter, docs/federation-protocol.md):
  // User  ring exactly the user of the Request-URI (a fork of a call routed elsewhere);
  // Route route the Request-URI's user like a local caller's dialled string (direct calls,
  //       feature codes such as *8<ext> and *41<group>, BLF pickup with Replaces).
  std::string correlationId;
  CallMode mode = CallMode::Route;
};

// The other nodes of the federation, as the engine sees them (implemented by the federation
// service from its directory replica and links).
struct RemoteCall {
  Party caller;              // the calling party; owner empty = this node
  std::string callerNumber;  // for callers from the external line
  std::string correlationId; // federation-wide id of the call
  CallMode mode = CallMode::Route;
};
class RemoteNodes {
public:
  virtual ~RemoteNodes() = default;
  // A user of another node (replica) by extension; nullopt when no other node shares one, or
  // when more than one does (conflict: not routable by extension).
  virtual std::optional<Party> userByExtension(const std::string& extension) = 0;
  // The node that owns group `number`, when it is another node's.
  virtual std::optional<std::string> groupOwner(const std::string& number) = 0;
  // Groups of other nodes that `extension` (a local user) is a member of (for *9 across sites).
  virtual std::vector<std::pair<std::string, std::string>>
  remoteGroupsOf(const std::string& extension) = 0; // (owner, group number)
  // Calls to `owner` may go direct now (link up and protocol compatible).
  virtual bool reachable(const std::string& owner) = 0;
  // Fills an INVITE to node `owner` whose Request-URI user is `requestUser` (an extension, a
  // group number, "*8201", ...): Request-URI and target (SIP over TLS to the node), From/P-
  // Asserted-Identity of the caller, the X-Verbund-Call header. False when not possible.
  virtual bool prepareInvite(const std::string& owner, const std::string& requestUser,
                             const RemoteCall& call, sip::DialogManager::InviteParams& params) = 0;
  // Logs a local user in or out of another node's group (feature code). False when the group's
  // node is unknown or not reachable; the change is otherwise confirmed asynchronously.
  virtual bool setGroupLogin(const std::string& owner, const std::string& groupNumber,
                             const std::string& extension, bool loggedIn) = 0;
  // Counts a call that went over the external line because `owner` was not reachable in time.
  virtual void countFallback(const std::string& owner) = 0;
  // A call that involved other nodes ended (or was answered): its outcome goes to those nodes so
  // that their records with the same correlation id (or `outcome.relatedCorrelationId`, the
  // picker's call of a cross-site pickup) name the same caller, callee and answerer.
  virtual void shareOutcome(const std::vector<std::string>& nodes, const CallOutcome& outcome) = 0;
};
// Returns the caller, or nullopt when it has answered the INVITE itself (407 challenge, 403).
using CallerCheck = std::function<std::optional<Caller>(sip::InviteSession&, const sip::Message&)>;

// The external line, as the engine sees it.
class ExternalLine {
public:
  virtual ~ExternalLine() = default;
  // Whether a dialled string should go out over the trunk.
  virtual bool isExternalNumber(const std::string& dialled) = 0;
  // Fills the outbound INVITE for calling `number` with caller `from` (its external number as
  // caller ID). False when the trunk cannot take calls now.
  virtual bool prepareOutbound(const std::string& number, const Party& from,
                               sip::DialogManager::InviteParams& params) = 0;
  // Maps an inbound call's DID to a local extension or group number.
  virtual std::optional<std::string> inboundTarget(const sip::Message& invite) = 0;
};

// Per-user call features the routing stages ask about (do-not-disturb and call forwarding; their
// settings live with the users, issue 12). The default has none of them. Only local users are
// asked: forwarding is decided at the user's home node.
enum class ForwardWhen : uint8_t { Always, Busy, NoAnswer, Unregistered };
class CallFeatures {
public:
  virtual ~CallFeatures() = default;
  // Do-not-disturb: the user's devices are not rung; the no-answer forwarding applies at once,
  // else the busy forwarding, else the caller hears busy (486).
  virtual bool doNotDisturb(const Party& user) { return false; }
  // Where calls to `user` go in case `when`: a string routed as if the caller had dialled it.
  virtual std::optional<std::string> forwardTarget(const Party& user, ForwardWhen when) {
    return std::nullopt;
  }
  // How long a call rings the user before its no-answer forwarding applies (nullopt: the node's
  // no-answer time).
  virtual std::optional<Duration> noAnswerAfter(const Party& user) { return std::nullopt; }
  // Feature codes of the user themself. Refused e.g. for a target the rules refuse.
  virtual FeatureWrite setDoNotDisturb(const Party& user, bool on) { return FeatureWrite::Refused; }
  virtual FeatureWrite setForward(const Party& user, ForwardWhen when, const std::string& target) {
    return FeatureWrite::Refused;
  }
};

// Codes a local user dials. None uses '#': phones take it as the send key. The forwarding codes
// take the target after the code ("*21201": forward every call to 201); the "*0.." codes clear.
struct FeatureCodes {
  std::string pickup = "*8";       // *8<ext>: directed pickup
  std::string groupPickup = "*9";  // *9: pick up a call ringing in one of my groups
  std::string groupLogin = "*41";  // *41<group>
  std::string groupLogout = "*42"; // *42<group>
  std::string forwardAlways = "*21", forwardAlwaysOff = "*021";
  std::string forwardBusy = "*67", forwardBusyOff = "*067";
  std::string forwardNoAnswer = "*61", forwardNoAnswerOff = "*061";
  std::string forwardUnregistered = "*62", forwardUnregisteredOff = "*062";
  std::string dndOn = "*76", dndOff = "*076";
};

struct CallManagerConfig {
  std::string domain; // host part of the identities the node writes ("pbx.example" or an IP)
  std::string nodeId; // owner id of local parties
  Duration noAnswer{30000};
  // A fork to another node that has no provisional answer within this bound is cancelled and
  // the call goes over the external line (federation §"Fallback"; never SIP's 32 s Timer B).
  Duration federationFallback{1000};
  FeatureCodes features;
  // Forwarding hops one call may take, across nodes too (the hops so far travel in Diversion
  // headers). A target the call has visited already (a forwards to b forwards to a) or a hop
  // beyond this bound ends the call with 482 Loop Detected.
  int maxForwards = 5;
  // Blind transfer: how long the target rings before the call comes back to the transferring
  // user (recall; at once when the target is busy or fails). 0: no recall, the transferee is
  // hung up when the transfer fails after the transferring phone left.
  Duration transferRecall{30000};
  // Re-anchoring after a relay loss (reanchor.cpp): at most `reanchorBatch` calls start their
  // exchange per loop turn, turns `reanchorPace` apart; a call waits at most `reanchorWait` for a
  // relay to answer again, then falls back to direct media.
  size_t reanchorBatch = 50;
  Duration reanchorPace{20};
  Duration reanchorWait{5000};
};

// Federation §"Fallback": whether a fork to another node that failed with `status` goes out over
// the external line instead (timeout or transport error before any provisional answer; never
// busy, decline, unknown number or other final answers).
bool shouldFallBack(int status, bool gotProvisional);
// RFC 3326: whether a Reason header value says "SIP;cause=200" (call completed elsewhere).
bool isCompletedElsewhere(std::string_view reason);

// docs/federation-protocol.md "Fallback": a fallback INVITE over the external line carries the
// call's federation id in this header, so that the answering site's record shares it. A carrier
// may drop unknown headers; then the call-outcome's fallback fields match the records.
inline constexpr std::string_view kCorrelationHeader = "X-Verbund-Correlation";
struct CarriedCorrelation {
  std::string id;   // the correlation id ("<hex>@<node id>")
  std::string node; // the node that made it
};
// The header's value from an untrusted INVITE: one token "<id>@<node>" of at most
// kMaxCarriedCorrelation bytes of letters, digits, '-', '.', '_' and one '@'; else nullopt.
std::optional<CarriedCorrelation> parseCarriedCorrelation(std::string_view value);
inline constexpr size_t kMaxCarriedCorrelation = 128;

struct CallStats {
  uint64_t started = 0, answered = 0, failed = 0, pickedUp = 0, active = 0;
  uint64_t remoteForks = 0, fallbacks = 0, forwarded = 0;
  uint64_t offersRelayed = 0, offersRefused = 0; // in-dialog offers (re-INVITE, UPDATE)
  uint64_t badTransitions = 0;                   // bugs: a transition the tables forbid
  uint64_t endedByPeer = 0;  // ended after a relink: the other node no longer held them
  uint64_t forksLost = 0;    // forks failed because their node went away (nodeLost)
  uint64_t staleInvites = 0; // late INVITEs from other nodes refused (call answered or ended)
  uint64_t interrupted = 0;  // ringing calls of a crashed run ended at start (endInterrupted)
  // Transfers (REFER): accepted, joined (target and transferee talk), failed, recalls.
  uint64_t transfers = 0, transfersDone = 0, transfersFailed = 0, recalls = 0;
  // Media (media_anchor.h): calls holding a relay session now; calls that went direct because
  // the relay was unavailable; relay commands that failed on an anchored call.
  uint64_t anchoredLive = 0, anchorFallbacks = 0, anchorFailures = 0;
  // Relay losses (reanchor.cpp): anchored calls whose relay went away; of those, calls
  // re-anchored on a relay, calls that fell back to direct media, and re-anchorings that failed
  // (a leg refused; the call is left as it is, never torn down).
  uint64_t relayLostCalls = 0, reanchored = 0, reanchorDirect = 0, reanchorFailed = 0;
};

class CallManager final : public sip::InviteHandler {
public:
  CallManager(sip::DialogManager& dm, Timers& timers, CallDirectory& directory, CallLog& log,
              CallManagerConfig config);
  ~CallManager() override;

  void setCallerCheck(CallerCheck check) { callerCheck_ = std::move(check); }
  void setLineObserver(LineObserver* o) { observer_ = o; }
  void setExternalLine(ExternalLine* line) { externalLine_ = line; }
  void setRemoteNodes(RemoteNodes* nodes) { remote_ = nodes; }
  void setCallFeatures(CallFeatures* f) { features_ = f ? f : &noFeatures_; }
  // Ringing calls are written there at ring time and removed at answer or end (null: none).
  void setJournal(CallJournal* j) { journal_ = j; }
  // The media relay (null: none, SDP passes through) and which calls use it.
  // The engine watches the relay for losses (relayLost/relayBack).
  void setMediaAnchor(MediaAnchor* anchor, AnchorMode mode = AnchorMode::Always);
  // Node shutdown: every relay session of a call still up is deleted (the calls are not ended).
  void releaseAllMedia();
  // The relay that held sessions `keys` is gone (MediaAnchor::Watcher; reanchor.cpp): each such
  // anchored call's media are Lost; answered calls are re-anchored in batches (a new relay
  // session and a re-INVITE of each leg), ringing ones once they are answered; when no relay
  // answers within reanchorWait the legs are re-INVITEd with each other's SDP (direct media).
  void relayLost(const std::vector<std::string>& keys);
  // A relay answers again: the calls waiting for one are re-anchored now.
  void relayBack();

  // Federation: node `owner` is gone or cut off: its control link went down (`via` null), or the
  // SIP-over-TLS connection to `*via` was closed by the peer or failed. Every fork to it that
  // has not been answered fails at once, also after a 180 (a ringing node that died is not
  // "there"): it falls back to the callee's external number when it may, otherwise the other
  // forks ring on and the call fails when none is left. On a link loss, calls that node placed
  // here end too (their caller is gone): nothing keeps ringing for them.
  void nodeLost(const std::string& owner, std::string_view why, const SockAddr* via = nullptr);
  // At start, before any call: ends the calls a crash (kill -9) left ringing, from the journal:
  // writes their records (missed, ended now) and sends the CANCELs of their forks' INVITEs.
  // Returns how many it ended.
  size_t endInterrupted();

  // InviteHandler
  void onNewSession(sip::InviteSession& session, const sip::Message& invite) override;
  void onProvisional(sip::ClientInvite& invite, sip::InviteSession* session,
                     const sip::Message& response) override;
  void onConnected(sip::InviteSession& session, const sip::Message& message) override;
  void onFailure(sip::ClientInvite& invite, int status, const sip::Message* response) override;
  void onOffer(sip::InviteSession& session, sip::ServerTxId tx,
               const sip::Message& request) override;
  void onOfferAnswered(sip::InviteSession& session, sip::Method method,
                       const sip::Message& response) override;
  void onTerminated(sip::InviteSession& session, sip::InviteEnd why,
                    const sip::Message* message) override;
  // REFER inside a call (transfer.cpp); other requests are answered 501 by the dialog layer.
  bool onRequest(sip::InviteSession& session, sip::ServerTxId tx,
                 const sip::Message& request) override;

  struct ActiveCall {
    std::string correlationId, caller, callerName, dialled, answeredBy, state;
    int64_t startMs = 0, answerMs = 0;
  };
  std::vector<ActiveCall> activeCalls() const;
  const CallStats& stats() const { return stats_; }

  // ---- Cross-site calls after a relink (reconcile.cpp; docs/federation-protocol.md
  // "Calls across a cut") ----
  // The ids under which node `node` knows the calls this node holds with it, in any state (its
  // correlation ids; for a cross-site pickup also the picker's): what "calls-held" lists.
  std::vector<std::string> callsHeldWith(const std::string& node) const;
  // The control link to `node` is up (again): remembers which calls are connected with it now
  // (only those may be ended by its answer) and returns callsHeldWith(node) to send it.
  std::vector<std::string> linkUp(const std::string& node);
  // The link is down: the remembered calls are forgotten until the next linkUp.
  void linkDown(const std::string& node);
  // `node` sent the ids it holds. Every call that was connected with it when the link came up,
  // is still connected with it and that it no longer holds ended there during the cut (its BYE
  // was lost): it ends here too — BYE to both legs, the record gets its end, BLF terminated.
  // Returns how many calls ended.
  size_t peerHolds(const std::string& node, const std::vector<std::string>& ids);

private:
  struct Call;
  struct Fork;
  struct Transfer;
  using CallId = uint64_t;
  enum class StageResult : uint8_t { Continue, Stop, Pending };
  using Stage = StageResult (CallManager::*)(Call&);
  static const Stage kStages[];

  // ---- Media anchoring (media_anchor.cpp; docs/architecture.md "Media") ----
  // `next` gets the relay's SDP for `sdp` (offer or answer from leg ref.fromTag), or `sdp`
  // itself when the call's media are direct, or the relay's error on an anchored call. It runs
  // now (direct) or later with the call looked up again by id (not at all once it ended).
  using RelayStep = std::function<void(Call&, Result<std::string>)>;
  void viaRelay(Call& call, bool offer, AnchorRef ref, std::string sdp, RelayStep next);
  // Whether a new fork of `kind` gets its offer from the relay (mode, media state).
  bool anchorsFork(const Call& call, ForkKind kind) const;
  void goDirect(Call& call, std::string_view why);
  // The relay tag of leg `leg` ("caller" or the answering leg's tag).
  std::string relayTag(const Call& call, sip::UsageId leg) const;
  AnchorRef relayRef(const Call& call, sip::UsageId from, sip::UsageId to) const;
  // Deletes the call's relay session (at its end, on every path).
  void releaseMedia(Call& call);
  // A new relay session key for the call / the key forgotten (its relay is gone); both keep
  // verbund_media_anchored_calls.
  void newRelayKey(Call& call);
  void forgetRelayKey(Call& call);
  // Forks whose offer went to the relay and that will not answer: their branch is deleted.
  void releaseBranches(Call& call, const Fork* except);

  // ---- Re-anchoring after a relay loss (reanchor.cpp) ----
  // Queues a connected call whose media are Lost (entered Connected, or its offer exchange
  // ended); the pump starts the exchanges in batches.
  void reanchorLater(Call& call);
  void scheduleReanchor(Duration after);
  void pumpReanchor();
  // Starts the exchange (OfferState::ReanchorAsking); `relay`: a relay answers (else direct).
  void startReanchor(Call& call, bool relay);
  void reanchorOffered(Call& call, sip::InviteSession& s, const sip::Message& response);
  // The offer (relay's or raw) to the other leg; false when it could not be sent.
  void reanchorToOther(Call& call, const std::string& body);
  void reanchorAnswered(Call& call, sip::InviteSession& s, sip::Method method,
                        const sip::Message& response);
  // The answer for the inbound leg's held ACK; the exchange ends.
  void reanchorDone(Call& call, const std::string& answer);
  // The relay failed (or refused) during the exchange: the other leg gets the raw offer.
  void reanchorDirect(Call& call, std::string_view why);
  // The exchange cannot complete: the held ACK goes out without an answer; the call stays up.
  void reanchorFailed(Call& call, std::string_view why);
  void enterMedia(Call& call, MediaState to);

  // ---- Transitions (call_manager.cpp): the only places states change ----
  void enter(Call& call, CallState to);
  void enter(Call& call, Fork& fork, ForkState to);
  void enterOffer(Call& call, OfferState to);
  void enter(Call& call, Transfer& t, TransferState to);

  // ---- Routing (routing.cpp) ----
  void route(Call& call);
  StageResult stageUserMode(Call& call);
  StageResult stageReplaces(Call& call);
  StageResult stageFeatureCode(Call& call);
  StageResult stageLocalUser(Call& call);
  StageResult stageGroup(Call& call);
  StageResult stageOtherNode(Call& call);
  StageResult stageExternalLine(Call& call);
  StageResult stageNotFound(Call& call);
  // Do-not-disturb and forwarding of the callee `user`; Stop when the call went elsewhere.
  StageResult userFeatures(Call& call, const Party& user);
  // Sends the call to `target` (the callee's forwarding for `why`). True when the call is taken
  // care of: forwarded, or ended as a loop (482); false when there is nothing to forward to.
  bool forwardTo(Call& call, const std::string& target, uint8_t why);
  bool forwardOn(Call& call, ForwardWhen when);
  // Do-not-disturb and no registered device: the no-answer forwarding, else the busy forwarding.
  bool forwardUnreachable(Call& call, uint8_t why);
  // The forwarding and do-not-disturb feature codes; Continue when `call.dialled` is none of them.
  StageResult forwardingCode(Call& call);
  void answerFeatureCode(Call& call);
  // A party the stages add as the callee (or, after forwarding, as rung) of the call.
  void addCallee(Call& call, const std::string& ext, const std::string& name,
                 const std::string& owner);
  // The caller as the external line should show it on a forwarded call.
  Party originalCaller(const Call& call) const;
  // RFC 5806 Diversion headers of the call's forwarding hops, for an INVITE to `host` (forwarding
  // users named by extension, or by external number towards the external line).
  void addDiversions(const Call& call, sip::DialogManager::InviteParams& p, bool external) const;

  // ---- Forking (forking.cpp) ----
  void ringParties(Call& call, const std::vector<Party>& parties);
  void startFork(Call& call, const Party& party, const DeviceTarget& device);
  void startTrunkFork(Call& call, const std::string& number);
  // Federation: a fork to node `party.owner` whose Request-URI user is `requestUser`.
  void startRemoteFork(Call& call, const Party& party, const std::string& requestUser,
                       CallMode mode, const std::string& replaces, bool mayFallBack);
  // Forwards the whole call to the node of `party` (mode Route): cross-site pickup.
  void forwardToNode(Call& call, const Party& party, const std::string& requestUser,
                     const std::string& replaces);
  // The external-line fork that replaces a fork to `party`'s node (federation fallback).
  bool startFallbackFork(Call& call, const Party& party);
  // Adds `fork` and sends its INVITE, after the relay prepared its offer when the call is
  // anchored (the fork waits in ForkState::Anchoring). False when the INVITE could not be sent
  // at once (the fork is not added).
  bool launchFork(Call& call, Fork fork, sip::DialogManager::InviteParams p);
  void forkAnchored(Call& call, uint32_t branch, Result<std::string> sdp);
  // Sends the INVITE of the fork with `branch`; false when the dialog layer refused it.
  bool sendFork(Call& call, uint32_t branch, sip::DialogManager::InviteParams p);
  Fork* forkByBranch(Call& call, uint32_t branch);
  // The answer of a fork, through the relay, delivered to the caller (2xx) or the transferee.
  void deliverAnswer(Call& call, sip::UsageId fork, Result<std::string> sdp, std::string type,
                     bool offerInAnswer);
  void deliverEarlyMedia(Call& call, uint32_t branch, Result<std::string> sdp, std::string type);
  // The rest of an answer once it reached the caller (`delivered`), or the call ends.
  void connectedTo(Call& call, uint32_t branch, sip::InviteSession& s, bool delivered);
  void onFallbackTimer(CallId id, sip::UsageId invite);
  void afterForksStarted(Call& call);
  void forksSettled(Call& call, int lastStatus);
  void answered(Call& call, Fork& fork, sip::InviteSession& session, const sip::Message& answer);
  void cancelForks(Call& call, const Fork* except, bool completedElsewhere);
  // A fork whose node went away (nodeLost).
  void forkLost(Call& call, sip::UsageId invite);
  bool isRemote(const Party& p) const;
  // A late INVITE from another node for a call already answered, or ended longer than the
  // fallback bound ago, here: the reason to refuse it with, or empty.
  std::string staleFederationInvite(const std::string& correlationId);
  // The journal entry of a ringing call (journal.h): written at ring time, removed when settled.
  void journalRinging(Call& call);
  void journalSettled(Call& call);
  void addNode(Call& call, const std::string& owner);

  // ---- Pickup (pickup.cpp) ----
  // Connects `picker`'s call to the ringing call `target`.
  bool pickUp(Call& picker, Call& target);
  // The answers of an anchored pickup, through the relay (OfferState::AnchoringAnswer).
  void anchorPickup(Call& target, const std::string& pickerOffer);
  void pickupFailed(Call& call);
  Call* findRingingFor(const std::string& extension);
  Call* findRingingInGroups(const std::vector<std::string>& groups);
  Call* findByForkCallId(const std::string& callId);

  // ---- Offer/answer relay (offer_answer.cpp) ----
  void relayOffer(Call& call, sip::InviteSession& from, sip::ServerTxId tx,
                  const sip::Message& request);
  void relayAnswer(Call& call, sip::InviteSession& s, sip::Method method,
                   const sip::Message& response);
  void relayAck(Call& call, sip::InviteSession& s, const sip::Message& ack);
  // Sends the offer (relayed or the relay's) to leg `to`; answers the offerer on failure.
  void sendOffer(Call& call, sip::UsageId to, sip::Method method, const std::string& type,
                 const std::string& body);
  // Sends the answer (or failure) of leg `answerer` back to the offerer.
  void answerOffer(Call& call, sip::UsageId answerer, int status, const std::string& type,
                   const std::string& body, bool offerInAnswer);
  // Music on hold after an accepted in-dialog offer (offer_answer.cpp).
  void holdChanged(Call& call, sip::UsageId answerer);
  // The leg that relays to `s` (the other leg of an answered call; the early fork or the caller
  // for an UPDATE before the answer), or null.
  sip::InviteSession* peerLeg(Call& call, sip::InviteSession& s);

  // ---- Transfer (transfer.cpp; docs/architecture.md "Call transfer") ----
  // The local user whose phone is leg `leg` of `call` (who may transfer), or nullopt.
  std::optional<Party> transferorOf(const Call& call, sip::UsageId leg) const;
  // The party on leg `leg` of `call`, as the caller of a call the transfer creates.
  Caller callerOfLeg(const Call& call, sip::UsageId leg) const;
  void startBlindTransfer(Call& x, sip::UsageId transferor, uint32_t cseq, const Party& by,
                          const std::string& target);
  // RFC 3891 Replaces in the Refer-To: joins the transferee with the other party of the
  // transferor's call that the Replaces names (one of this node's calls). Answers the REFER.
  void startAttendedTransfer(Call& x1, sip::InviteSession& t1, sip::ServerTxId tx, uint32_t cseq,
                             const Party& by, const std::string& callId, const std::string& toTag,
                             const std::string& fromTag);
  void notifyTransferor(Transfer& t, int status, std::string_view reason = {});
  void transferRinging(Call& y);
  // A transfer's call failed (failCall): NOTIFY; the transferee stays with the transferor, is
  // recalled to the transferring user, or is hung up.
  void transferFailed(Call& y, int status, std::string_view reason);
  // The target answered: the transferred call ends, the transferee is re-INVITEd.
  bool joinTransferee(Call& y, sip::InviteSession& target, const sip::Message& answer);
  // The offer of leg `offerer` (the target) to the transferee through the relay (anchored join).
  void relayJoin(Call& y, sip::UsageId offerer, std::string type, std::string offer);
  // Ends the transferred call without its transferee leg (NOTIFY 200, BYE to the transferor).
  void detachTransferred(Call& y);
  // Final answers to the transfer's re-INVITEs; true when the answer was the transfer's.
  bool transferOfferAnswered(Call& y, sip::InviteSession& s, sip::Method method,
                             const sip::Message& response);
  // A leg of a call whose transfer runs ended: the transferor (the transfer goes on) or the
  // transferee (the transfer is over).
  void transferredLegEnded(Call& x, sip::UsageId gone);
  void addCallerParty(Call& call);

  // ---- Records (records.cpp) ----
  void saveRecord(Call& call);
  void mergeWithStored(Call& call, CallRecord& r);
  void shareOutcome(Call& call);

  // ---- Cross-site reconciliation (reconcile.cpp) ----
  // The legs of a call to other nodes: (node, the id that node knows the call by).
  std::vector<std::pair<std::string, std::string>> crossSiteLegs(const Call& call) const;

  // ---- Ending (call_manager.cpp) ----
  void failCall(Call& call, int status, std::string_view reason,
                const sip::ExtraHeaders& headers = {});
  // 503 with Retry-After for a feature code whose write the database did not take in time.
  void failFeatureBusy(Call& call);
  void endCall(Call& call);
  // Ends the call and hangs up the leg other than `gone` (0: both legs).
  void hangUp(Call& call, sip::UsageId gone);
  void finish(CallId id);
  void line(Call& call, const Party& party, LineEvent::State state, bool initiator,
            const std::string& callId = {}, const std::string& localTag = {},
            const std::string& remoteTag = {});

  Call* callOf(uint64_t appData);
  Fork* forkOf(Call& call, sip::UsageId clientInvite);
  sip::InviteSession* session(sip::UsageId id) { return dm_.inviteSession(id); }
  int64_t nowMs() const { return timers_.wallMs(); }

  sip::DialogManager& dm_;
  Timers& timers_;
  CallDirectory& directory_;
  CallLog& log_;
  CallManagerConfig config_;
  CallerCheck callerCheck_;
  LineObserver* observer_ = nullptr;
  ExternalLine* externalLine_ = nullptr;
  RemoteNodes* remote_ = nullptr;
  CallFeatures noFeatures_;
  CallFeatures* features_ = &noFeatures_;
  CallJournal* journal_ = nullptr;
  MediaAnchor* anchor_ = nullptr;
  AnchorMode anchorMode_ = AnchorMode::Always;
  bool relayDown_ = false; // the last relay attempt failed (one warning until it works again)
  // Connected calls waiting for their re-anchoring (ids; stale entries are skipped), with the
  // time they started waiting.
  struct ReanchorWait {
    CallId id;
    TimePoint since;
  };
  std::deque<ReanchorWait> reanchorQueue_;
  TimerId reanchorTimer_ = 0;
  // Relay callbacks that arrive after the engine is gone do nothing.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  CallId nextCall_ = 0;
  std::unordered_map<CallId, std::unique_ptr<Call>> calls_;
  // Per node whose link came up: the calls connected with it then (call, id the node knows).
  std::unordered_map<std::string, std::vector<std::pair<CallId, std::string>>> relinked_;
  CallStats stats_;
};

} // namespace verbund::pbx

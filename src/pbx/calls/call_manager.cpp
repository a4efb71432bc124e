#include "pbx/calls/call_manager.h"

#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/sdp.h"
#include "sip/message/builder.h"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace verbund::pbx {

using sip::InviteEnd;
using sip::InviteSession;
using sip::Message;

namespace {
Counter g_calls("verbund_calls_total", "Calls started (inbound INVITEs routed)");
Counter g_callsAnswered("verbund_calls_answered_total", "Calls answered");
Counter g_callsFailed("verbund_calls_failed_total", "Calls that ended without an answer");
Counter g_pickups("verbund_call_pickups_total", "Calls picked up by another user");
Counter g_remoteForks("verbund_call_remote_forks_total", "INVITEs sent to other federation nodes");
Counter g_fallbacks("verbund_call_fallbacks_total",
                    "Forks to other nodes that went over the external line instead");

// RFC 3326 Reason for forks cancelled because another one answered.
const sip::HeaderField kCompletedElsewhere[] = {
    {"Reason", "SIP;cause=200;text=\"Call completed elsewhere\""}};

std::string quoted(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

// Dialled digits: the Request-URI user without visual separators (RFC 3966 §5.1.1).
std::string dialledOf(const Message& invite) {
  std::string out;
  auto user = sip::unescape(invite.requestUri().user).value_or("");
  for (char c : user)
    if (c != '-' && c != '.' && c != '(' && c != ')' && c != ' ') out += c;
  return out;
}

bool isFederation(const Caller& c) {
  return c.kind == Caller::Kind::Federation;
}
// The caller as shown to others: extension of a user (local or of another node) or number.
const std::string& callerIdOf(const Caller& c) {
  return c.kind == Caller::Kind::Trunk ? c.number : c.party.extension;
}
const std::string& callerNameOf(const Caller& c) {
  if (c.kind == Caller::Kind::Trunk) return c.name;
  return c.party.displayName.empty() && c.kind == Caller::Kind::Federation ? c.name
                                                                           : c.party.displayName;
}
} // namespace

bool shouldFallBack(int status, bool gotProvisional) {
  // RFC 3261 §8.1.3.1: 408 is a timeout, 503 a transport error (or an overloaded node).
  return !gotProvisional && (status == 408 || status == 503);
}

bool isCompletedElsewhere(std::string_view reason) {
  // RFC 3326 §2: Reason = protocol *(";" cause / text / ext), several values comma-separated.
  std::string compact;
  bool inQuotes = false;
  for (char c : reason) {
    if (c == '"') inQuotes = !inQuotes;
    if (inQuotes || c == ' ' || c == '\t') continue;
    compact += char(std::tolower(static_cast<unsigned char>(c)));
  }
  size_t start = 0;
  while (start <= compact.size()) {
    size_t end = compact.find(',', start);
    if (end == std::string::npos) end = compact.size();
    std::string_view value(compact.data() + start, end - start);
    if (value.substr(0, 4) == "sip;") {
      for (size_t pos = 3; pos < value.size();) {
        size_t next = value.find(';', pos + 1);
        std::string_view param = value.substr(
            pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
        if (param == "cause=200") return true;
        if (next == std::string_view::npos) break;
        pos = next;
      }
    }
    start = end + 1;
  }
  return false;
}

struct CallManager::Fork {
  sip::UsageId invite = 0;
  Party party;
  bool trunk = false;
  bool ringing = false;
  bool done = false;
  int status = 0;
  std::string callId;
  // Federation.
  bool remote = false;      // to another node
  bool provisional = false; // any provisional answer (incl. 100 Trying when reported)
  bool mayFallBack = false; // a fork to another node that may go over the external line
  bool fellBack = false;    // replaced by an external-line fork
  bool fallback = false;    // this is that external-line fork
  TimerId fallbackTimer = 0;
};

struct CallManager::Call {
  CallId id = 0;
  std::string correlationId;
  sip::UsageId inbound = 0;
  Caller caller;
  std::string dialled;
  std::optional<Party> callee;
  std::optional<GroupTarget> group;
  std::vector<Fork> forks;
  sip::UsageId other = 0; // the answered leg: a UAC fork session, or a picker's UAS session
  Party answeredBy;
  bool answered = false, ended = false, ringingSent = false, pickedUp = false;
  TimerId noAnswer = 0;
  std::string offerType, offer;
  int64_t startMs = 0, answerMs = 0;
  // An in-dialog offer relayed to the other leg, waiting for its answer.
  sip::ServerTxId pendingOfferTx = 0;
  sip::UsageId pendingOfferFrom = 0;
  std::vector<CallParty> parties; // for the call list
  // Federation: the other nodes involved (outcomes go to them).
  std::vector<std::string> nodes;
  std::string relatedCorrelationId; // pickup by a caller of another node: the picker's call
  bool answeredRemotely = false;    // a fork to another node answered (that node tells who)
  bool answeredExternal = false;    // an external-line fork to a dialled number answered
  bool completedElsewhere = false;  // the caller cancelled with Reason cause=200
};

CallManager::CallManager(sip::DialogManager& dm, Timers& timers, CallDirectory& directory,
                         CallLog& log, CallManagerConfig config)
    : dm_(dm), timers_(timers), directory_(directory), log_(log), config_(std::move(config)) {
  log_.setLocalNode(config_.nodeId);
}

CallManager::~CallManager() {
  for (auto& [id, call] : calls_) {
    timers_.cancel(call->noAnswer);
    for (auto& f : call->forks)
      if (f.fallbackTimer) timers_.cancel(f.fallbackTimer);
  }
}

bool CallManager::isRemote(const Party& p) const {
  return !p.owner.empty() && p.owner != config_.nodeId;
}

void CallManager::addNode(Call& call, const std::string& owner) {
  if (owner.empty() || owner == config_.nodeId) return;
  if (std::find(call.nodes.begin(), call.nodes.end(), owner) == call.nodes.end())
    call.nodes.push_back(owner);
}

int64_t CallManager::nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

CallManager::Call* CallManager::callOf(uint64_t appData) {
  auto it = calls_.find(appData);
  return it == calls_.end() ? nullptr : it->second.get();
}

CallManager::Fork* CallManager::forkOf(Call& call, sip::UsageId clientInvite) {
  for (auto& f : call.forks)
    if (f.invite == clientInvite) return &f;
  return nullptr;
}

void CallManager::line(Call& call, const Party& party, LineEvent::State state, bool initiator,
                       const std::string& callId, const std::string& localTag,
                       const std::string& remoteTag) {
  // Parties of other nodes: their own node reports their line state.
  if (!observer_ || party.extension.empty() || isRemote(party)) return;
  LineEvent e;
  e.owner = party.owner;
  e.extension = party.extension;
  e.dialogId = call.correlationId + "-" + party.extension;
  e.state = state;
  e.initiator = initiator;
  if (initiator) {
    e.remoteUri = "sip:" + call.dialled + "@" + config_.domain;
    e.remoteName = call.callee ? call.callee->displayName : (call.group ? call.group->name : "");
  } else {
    e.remoteUri = "sip:" + callerIdOf(call.caller) + "@" + config_.domain;
    e.remoteName = callerNameOf(call.caller);
  }
  e.callId = callId;
  e.localTag = localTag;
  e.remoteTag = remoteTag;
  observer_->lineEvent(e);
}

void CallManager::onNewSession(InviteSession& session, const Message& invite) {
  std::optional<Caller> caller;
  if (callerCheck_) {
    caller = callerCheck_(session, invite);
    if (!caller) return; // the check answered (challenge or refusal)
  } else {
    caller = Caller{};
    caller->party.extension = std::string(invite.from().uri.user);
  }
  auto call = std::make_unique<Call>();
  call->id = ++nextCall_;
  call->inbound = session.id();
  call->caller = *caller;
  // A call from another node keeps that node's id, so both nodes' records share it.
  call->correlationId = isFederation(*caller) && !caller->correlationId.empty()
                            ? caller->correlationId
                            : sip::newCallId(config_.nodeId);
  if (isFederation(*caller)) addNode(*call, caller->party.owner);
  call->startMs = nowMs();
  if (auto ct = invite.header(sip::HeaderId::ContentType)) call->offerType = std::string(*ct);
  call->offer = std::string(invite.body());
  session.appData = call->id;
  Call& c = *call;
  calls_.emplace(c.id, std::move(call));
  ++stats_.started;
  ++stats_.active;
  g_calls.inc();
  if (c.caller.kind != Caller::Kind::Trunk) {
    c.parties.push_back({PartyRole::Caller, c.caller.party.extension, c.caller.party.displayName,
                         isRemote(c.caller.party) ? c.caller.party.owner : "",
                         Disposition::Missed});
  } else {
    c.parties.push_back(
        {PartyRole::Caller, c.caller.number, c.caller.name, "", Disposition::Missed});
  }
  route(c, invite);
}

void CallManager::route(Call& call, const Message& invite) {
  InviteSession* in = session(call.inbound);
  if (!in) {
    endCall(call, nullptr);
    return;
  }
  call.dialled = dialledOf(invite);
  if (call.caller.kind == Caller::Kind::Trunk && externalLine_) {
    if (auto t = externalLine_->inboundTarget(invite)) call.dialled = *t;
  }
  bool federated = isFederation(call.caller);

  // A fork of a call routed on another node: ring exactly this local user, nothing else.
  if (federated && call.caller.mode == "user") {
    auto user = directory_.userByExtension(call.dialled);
    if (!user || isRemote(*user)) {
      failCall(call, 404, "Not Found");
      return;
    }
    call.callee = user;
    call.parties.push_back(
        {PartyRole::Rang, user->extension, user->displayName, "", Disposition::Missed});
    ringParties(call, {*user});
    return;
  }

  // RFC 3891: an INVITE with Replaces naming the early dialog of one of our forks is a pickup
  // from a BLF key.
  if (auto rep = invite.header(sip::HeaderId::Replaces)) {
    std::string callId(rep->substr(0, rep->find(';')));
    while (!callId.empty() && callId.back() == ' ') callId.pop_back();
    Call* target = findByForkCallId(callId);
    if (target && !target->answered && !target->ended && target != &call) {
      if (!pickUp(call, *target)) failCall(call, 481, "Replaced dialog does not exist");
      return;
    }
    // The dialog may be a call ringing on the node of the user the BLF key watches.
    if (!target && !federated && remote_ && !directory_.userByExtension(call.dialled)) {
      if (auto user = remote_->userByExtension(call.dialled)) {
        forwardToNode(call, *user, call.dialled, std::string(*rep));
        return;
      }
    }
    failCall(call, 481, "Replaced dialog does not exist");
    return;
  }
  if (routeFeatureCode(call, call.dialled)) return;
  if (auto user = directory_.userByExtension(call.dialled)) {
    call.callee = user;
    call.parties.push_back({PartyRole::Callee, user->extension, user->displayName,
                            isRemote(*user) ? user->owner : "", Disposition::Missed});
    if (federated && isRemote(*user)) {
      failCall(call, 404, "Not Found"); // no calls from node to node to node
      return;
    }
    ringParties(call, {*user});
    return;
  }
  if (auto group = directory_.groupByNumber(call.dialled)) {
    call.group = group;
    call.parties.push_back(
        {PartyRole::Callee, group->number, group->name, "", Disposition::Missed});
    ringParties(call, group->loggedInMembers);
    return;
  }
  // Other nodes of the federation; never for calls that came from another node (no loops).
  if (remote_ && !federated) {
    if (auto user = remote_->userByExtension(call.dialled)) {
      call.callee = user;
      call.parties.push_back({PartyRole::Callee, user->extension, user->displayName, user->owner,
                              Disposition::Missed});
      ringParties(call, {*user});
      return;
    }
    if (auto owner = remote_->groupOwner(call.dialled); owner && *owner != config_.nodeId) {
      // The group's node rings its members (first answer wins there) and says who answered.
      Party g;
      g.owner = *owner;
      g.extension = call.dialled;
      call.callee = g;
      call.parties.push_back({PartyRole::Callee, g.extension, "", g.owner, Disposition::Missed});
      startRemoteFork(call, g, call.dialled, "route", {}, false);
      afterForksStarted(call);
      return;
    }
  }
  if (externalLine_ && call.caller.kind == Caller::Kind::LocalUser &&
      externalLine_->isExternalNumber(call.dialled)) {
    call.parties.push_back({PartyRole::Callee, call.dialled, "", "", Disposition::Missed});
    startTrunkFork(call, call.dialled);
    return;
  }
  failCall(call, 404, "Not Found");
}

bool CallManager::routeFeatureCode(Call& call, const std::string& dialled) {
  const FeatureCodes& fc = config_.features;
  auto starts = [&](const std::string& code) {
    return !code.empty() && dialled.size() >= code.size() &&
           dialled.compare(0, code.size(), code) == 0;
  };
  if (dialled.empty() || dialled[0] != '*') return false;
  bool federated = isFederation(call.caller);
  if (call.caller.kind == Caller::Kind::Trunk) {
    failCall(call, 403, "Feature codes are for local users");
    return true;
  }
  const std::string& me = call.caller.party.extension;
  // Longest codes first so that "*41" is not read as "*4" + "1".
  if (starts(fc.groupLogin) || starts(fc.groupLogout)) {
    if (federated) {
      // A member of another node logs in through the federation link (group-login), not SIP.
      failCall(call, 403, "Group login goes over the federation link");
      return true;
    }
    bool login = starts(fc.groupLogin);
    std::string group = dialled.substr((login ? fc.groupLogin : fc.groupLogout).size());
    bool ok = false;
    if (directory_.groupByNumber(group)) {
      ok = directory_.setGroupLogin(group, me, login);
    } else if (remote_) {
      if (auto owner = remote_->groupOwner(group); owner && *owner != config_.nodeId)
        ok = remote_->setGroupLogin(*owner, group, me, login);
    }
    if (!ok) {
      failCall(call, 404, "No such group membership");
      return true;
    }
    // Confirm by answering and hanging up at once; there is no media to play.
    if (InviteSession* in = session(call.inbound)) {
      std::string sdp = "v=0\r\no=verbund 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 "
                        "0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\n";
      (void)in->accept("application/sdp", sdp);
      call.answered = true;
      CallId id = call.id;
      timers_.after(Duration(300), [this, id] {
        Call* c = callOf(id);
        if (!c || c->ended) return;
        sip::UsageId inbound = c->inbound;
        endCall(*c, nullptr);
        if (InviteSession* leg = session(inbound)) (void)leg->end();
      });
    }
    return true;
  }
  if (starts(fc.groupPickup) && dialled.size() == fc.groupPickup.size()) {
    // Group pickup stays on this node: the picker's groups are known here only for local users.
    Call* target = federated ? nullptr : findRingingInGroups(directory_.groupsOf(me));
    if (!target || !pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
    return true;
  }
  if (starts(fc.pickup)) {
    std::string ext = dialled.substr(fc.pickup.size());
    if (Call* target = findRingingFor(ext)) {
      if (!pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
      return true;
    }
    // The user may be another node's: that node picks up with our caller as the picker.
    if (!federated && remote_ && !directory_.userByExtension(ext)) {
      if (auto user = remote_->userByExtension(ext)) {
        forwardToNode(call, *user, dialled, {});
        return true;
      }
    }
    failCall(call, 404, "Nothing to pick up");
    return true;
  }
  failCall(call, 404, "Unknown feature code");
  return true;
}

void CallManager::ringParties(Call& call, const std::vector<Party>& parties) {
  bool federated = isFederation(call.caller);
  for (const auto& p : parties) {
    // A user calling a group they are in does not ring themselves.
    if (call.group && call.caller.kind != Caller::Kind::Trunk &&
        p.extension == call.caller.party.extension &&
        (p.owner == call.caller.party.owner || (!isRemote(p) && !isRemote(call.caller.party))))
      continue;
    if (isRemote(p)) {
      // A member of a local group on another node (mode "user": that node rings exactly them),
      // or a direct call to another node's user (mode "route").
      if (remote_)
        startRemoteFork(call, p, p.extension, call.group ? "user" : "route", {}, !federated);
    } else {
      auto devices = directory_.devices(p.sipUser);
      for (const auto& d : devices) startFork(call, p, d);
    }
    if (call.group)
      call.parties.push_back({PartyRole::Rang, p.extension, p.displayName,
                              isRemote(p) ? p.owner : "", Disposition::Missed});
  }
  afterForksStarted(call);
}

void CallManager::afterForksStarted(Call& call) {
  if (call.ended) return;
  if (call.forks.empty()) {
    failCall(call, 480, "Temporarily Unavailable");
    return;
  }
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Early, true);
  CallId id = call.id;
  call.noAnswer = timers_.after(config_.noAnswer, [this, id] {
    Call* c = callOf(id);
    if (!c || c->answered || c->ended) return;
    c->noAnswer = 0;
    cancelForks(*c, nullptr, false);
    failCall(*c, 480, "No Answer");
  });
}

void CallManager::forwardToNode(Call& call, const Party& party, const std::string& requestUser,
                                const std::string& replaces) {
  call.callee = party;
  call.parties.push_back(
      {PartyRole::Callee, party.extension, party.displayName, party.owner, Disposition::Missed});
  startRemoteFork(call, party, requestUser, "route", replaces, false);
  afterForksStarted(call);
}

void CallManager::startRemoteFork(Call& call, const Party& party, const std::string& requestUser,
                                  const std::string& mode, const std::string& replaces,
                                  bool mayFallBack) {
  const std::string owner = party.owner;
  addNode(call, owner);
  bool fallBackAllowed = mayFallBack && !isFederation(call.caller);
  auto viaExternalLine = [&] {
    if (fallBackAllowed) (void)startFallbackFork(call, party);
  };
  if (!remote_ || !remote_->reachable(owner)) {
    viaExternalLine();
    return;
  }
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  RemoteCall rc;
  rc.caller = call.caller.party;
  if (call.caller.kind == Caller::Kind::Trunk) {
    rc.caller = Party{};
    rc.caller.displayName = call.caller.name;
    rc.callerNumber = call.caller.number;
  }
  rc.correlationId = call.correlationId;
  rc.mode = mode;
  if (!remote_->prepareInvite(owner, requestUser, rc, p)) {
    logger("calls")->info("call {}: no INVITE to node {} possible", call.correlationId, owner);
    viaExternalLine();
    return;
  }
  if (!replaces.empty()) p.headers.emplace_back("Replaces", replaces);
  auto id = dm_.invite(std::move(p));
  if (!id) {
    logger("calls")->warn("call {}: INVITE to node {} for {} failed: {}", call.correlationId, owner,
                          requestUser, id.error().message);
    viaExternalLine();
    return;
  }
  Fork f;
  f.invite = *id;
  f.party = party;
  f.remote = true;
  f.mayFallBack = fallBackAllowed;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
  }
  if (fallBackAllowed) {
    CallId cid = call.id;
    sip::UsageId inv = *id;
    f.fallbackTimer =
        timers_.after(config_.federationFallback, [this, cid, inv] { onFallbackTimer(cid, inv); });
  }
  call.forks.push_back(std::move(f));
  ++stats_.remoteForks;
  g_remoteForks.inc();
}

bool CallManager::startFallbackFork(Call& call, const Party& party) {
  if (party.externalNumber.empty() || !externalLine_) return false;
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  if (!externalLine_->prepareOutbound(party.externalNumber, call.caller.party, p)) return false;
  auto id = dm_.invite(std::move(p));
  if (!id) return false;
  Fork f;
  f.invite = *id;
  f.trunk = true;
  f.fallback = true;
  f.party = party; // the records name the user, reached at their external number
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
  }
  call.forks.push_back(std::move(f));
  ++stats_.fallbacks;
  g_fallbacks.inc();
  if (remote_) remote_->countFallback(party.owner);
  logger("calls")->info("call {}: {} of node {} over the external line", call.correlationId,
                        party.extension, party.owner);
  return true;
}

void CallManager::onFallbackTimer(CallId id, sip::UsageId invite) {
  Call* call = callOf(id);
  if (!call || call->ended || call->answered) return;
  Fork* fork = forkOf(*call, invite);
  if (!fork) return;
  fork->fallbackTimer = 0;
  if (fork->done || fork->provisional || fork->fellBack) return;
  // Federation §"Fallback": no provisional answer in time: cancel, go over the external line.
  fork->done = true;
  fork->fellBack = true;
  Party party = fork->party;
  if (sip::ClientInvite* ci = dm_.clientInvite(invite)) (void)ci->cancel();
  if (!startFallbackFork(*call, party)) forksSettled(*call, 480);
}

void CallManager::startFork(Call& call, const Party& party, const DeviceTarget& device) {
  sip::DialogManager::InviteParams p;
  p.requestUri = device.contactUri;
  const std::string& fromUser = callerIdOf(call.caller);
  const std::string& fromName = callerNameOf(call.caller);
  p.from = (fromName.empty() ? std::string() : quoted(fromName) + " ") + "<sip:" + fromUser + "@" +
           config_.domain + ">";
  p.to = quoted(party.displayName) + " <sip:" + party.extension + "@" + config_.domain + ">";
  p.callId = sip::newCallId(config_.domain);
  p.target = device.peer;
  p.contentType = call.offerType;
  p.body = call.offer;
  p.headers.emplace_back("P-Asserted-Identity", p.from);
  if (call.group) p.headers.emplace_back("Alert-Info", "<urn:alert:service:group>");
  auto id = dm_.invite(std::move(p));
  if (!id) {
    logger("calls")->warn("call {}: INVITE to {} failed: {}", call.correlationId, party.extension,
                          id.error().message);
    return;
  }
  Fork f;
  f.invite = *id;
  f.party = party;
  std::string ourTag;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
    ourTag = ci->localTag();
  }
  call.forks.push_back(std::move(f));
  // RFC 4235 §4.1 from the callee's side: our From tag is its remote tag; its own tag (local)
  // is known once it answers provisionally.
  line(call, party, LineEvent::State::Early, false, call.forks.back().callId, {}, ourTag);
}

void CallManager::startTrunkFork(Call& call, const std::string& number) {
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  if (!externalLine_ || !externalLine_->prepareOutbound(number, call.caller.party, p)) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  auto id = dm_.invite(std::move(p));
  if (!id) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  Fork f;
  f.invite = *id;
  f.trunk = true;
  f.party.extension = number;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
  }
  call.forks.push_back(std::move(f));
  line(call, call.caller.party, LineEvent::State::Early, true);
}

void CallManager::onProvisional(sip::ClientInvite& invite, InviteSession* s,
                                const Message& response) {
  Call* call = callOf(invite.appData);
  if (!call || call->ended) return;
  if (s) s->appData = call->id;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork) return;
  // Any provisional answer (also 100 Trying) shows the node is there: no fallback any more.
  fork->provisional = true;
  if (fork->fallbackTimer) {
    timers_.cancel(fork->fallbackTimer);
    fork->fallbackTimer = 0;
  }
  if (response.statusCode() == 100) return;
  if (s && !fork->ringing && !fork->trunk)
    line(*call, fork->party, LineEvent::State::Early, false, fork->callId,
         s->dialog().id().remoteTag, s->dialog().id().localTag);
  fork->ringing = true;
  if (call->answered || call->ringingSent) return;
  if (InviteSession* in = session(call->inbound)) {
    // Early media (183 with SDP) passes through; otherwise a plain 180.
    bool early = response.statusCode() == 183 && !response.body().empty();
    auto ct = response.header(sip::HeaderId::ContentType);
    if (early)
      (void)in->provisional(183, ct ? *ct : "application/sdp", response.body());
    else
      (void)in->provisional(180);
    call->ringingSent = !early;
  }
}

void CallManager::onConnected(InviteSession& s, const Message& message) {
  if (!s.isUac()) return; // the inbound leg got its ACK: nothing to do
  sip::ClientInvite* ci = dm_.clientInvite(s.clientInvite());
  Call* call = callOf(s.appData ? s.appData : (ci ? ci->appData : 0));
  if (!call || call->ended || call->answered) {
    // A late answer from another fork (or after the caller left): RFC 3261 §13.2.2.4 ACK+BYE.
    (void)s.end();
    return;
  }
  Fork* fork = forkOf(*call, s.clientInvite());
  if (!fork) {
    (void)s.end();
    return;
  }
  answered(*call, *fork, s, message);
}

void CallManager::answered(Call& call, Fork& fork, InviteSession& s, const Message& answer) {
  call.answered = true;
  call.other = s.id();
  s.appData = call.id;
  call.answeredBy = fork.party;
  call.answeredRemotely = fork.remote;
  call.answeredExternal = fork.trunk && !fork.fallback;
  call.answerMs = nowMs();
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  if (fork.fallbackTimer) {
    timers_.cancel(fork.fallbackTimer);
    fork.fallbackTimer = 0;
  }
  ++stats_.answered;
  g_callsAnswered.inc();
  cancelForks(call, &fork, true);
  InviteSession* in = session(call.inbound);
  auto ct = answer.header(sip::HeaderId::ContentType);
  if (!in || !in->accept(ct ? *ct : std::string_view{}, answer.body())) {
    // The caller is gone (its INVITE can no longer be answered): without this the answered
    // leg would stay up and the call listed as active until the callee hangs up.
    logger("calls")->info("call {}: answered after the caller left", call.correlationId);
    sip::UsageId other = call.other;
    endCall(call, nullptr);
    if (InviteSession* o = session(other)) (void)o->end();
    return;
  }
  for (auto& f : call.forks)
    if (&f != &fork && !f.trunk) line(call, f.party, LineEvent::State::Terminated, false);
  if (!fork.trunk)
    line(call, fork.party, LineEvent::State::Confirmed, false, fork.callId,
         s.dialog().id().remoteTag, s.dialog().id().localTag);
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Confirmed, true);
  saveRecord(call);
  // A fork to another node: that node knows who answered there and tells.
  if (!call.answeredRemotely) shareOutcome(call);
}

void CallManager::cancelForks(Call& call, const Fork* except, bool completedElsewhere) {
  for (auto& f : call.forks) {
    if (f.fallbackTimer) {
      timers_.cancel(f.fallbackTimer);
      f.fallbackTimer = 0;
    }
    if (&f == except || f.done) continue;
    f.done = true;
    if (sip::ClientInvite* ci = dm_.clientInvite(f.invite)) {
      if (completedElsewhere)
        (void)ci->cancel(kCompletedElsewhere);
      else
        (void)ci->cancel();
    }
  }
}

void CallManager::onFailure(sip::ClientInvite& invite, int status, const Message*) {
  Call* call = callOf(invite.appData);
  if (!call || call->ended || call->answered) return;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork) return;
  if (fork->fallbackTimer) {
    timers_.cancel(fork->fallbackTimer);
    fork->fallbackTimer = 0;
  }
  if (fork->remote && fork->mayFallBack && !fork->done && !fork->fellBack &&
      shouldFallBack(status, fork->provisional)) {
    fork->done = true;
    fork->fellBack = true;
    fork->status = status;
    Party party = fork->party; // startFallbackFork adds a fork: `fork` may move
    if (startFallbackFork(*call, party)) return;
    fork = forkOf(*call, invite.id());
    if (!fork) return;
  }
  fork->done = true;
  fork->status = status;
  if (!fork->trunk) line(*call, fork->party, LineEvent::State::Terminated, false);
  forksSettled(*call, status);
}

void CallManager::forksSettled(Call& call, int status) {
  if (call.ended || call.answered) return;
  bool allDone =
      std::all_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.done; });
  if (!allDone) return;
  // RFC 3261 §16.7 in spirit: a busy anywhere means busy; a single fork's answer is passed on;
  // otherwise the callee is temporarily unavailable. Forks replaced by the external line do not
  // count.
  bool busy = std::any_of(call.forks.begin(), call.forks.end(),
                          [](const Fork& f) { return f.status == 486 || f.status == 600; });
  size_t live = size_t(std::count_if(call.forks.begin(), call.forks.end(),
                                     [](const Fork& f) { return !f.fellBack; }));
  if (busy) {
    failCall(call, 486, "Busy Here");
  } else if (live == 1 && status >= 400 && status != 487 && status != 408) {
    failCall(call, status, {});
  } else {
    failCall(call, 480, "Temporarily Unavailable");
  }
}

void CallManager::failCall(Call& call, int status, std::string_view reason) {
  if (call.ended) return;
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  Disposition d = status == 486 || status == 600   ? Disposition::Busy
                  : status == 404 || status >= 500 ? Disposition::Failed
                                                   : Disposition::Missed;
  for (auto& p : call.parties) p.disposition = d;
  if (InviteSession* in = session(call.inbound)) (void)in->reject(status, reason);
  ++stats_.failed;
  g_callsFailed.inc();
  endCall(call, nullptr);
}

void CallManager::onOffer(InviteSession& s, sip::ServerTxId tx, const Message& request) {
  Call* call = callOf(s.appData);
  InviteSession* other = nullptr;
  if (call && call->answered && !call->ended) {
    sip::UsageId otherId = s.id() == call->inbound ? call->other : call->inbound;
    other = session(otherId);
  }
  if (!other || call->pendingOfferTx) {
    // RFC 3261 §14.2: 491 while another offer is pending; 488 when there is no other leg.
    (void)s.respond(tx, other ? 491 : 488);
    return;
  }
  auto ct = request.header(sip::HeaderId::ContentType);
  std::string_view type = ct ? *ct : std::string_view{};
  Result<void> sent = request.method() == sip::Method::Update
                          ? other->update(type, request.body())
                          : other->reinvite(type, request.body());
  if (!sent) {
    (void)s.respond(tx, 500);
    return;
  }
  call->pendingOfferTx = tx;
  call->pendingOfferFrom = s.id();
}

void CallManager::onOfferAnswered(InviteSession& s, sip::Method, const Message& response) {
  Call* call = callOf(s.appData);
  if (!call || !call->pendingOfferTx) return;
  InviteSession* from = session(call->pendingOfferFrom);
  sip::ServerTxId tx = call->pendingOfferTx;
  call->pendingOfferTx = 0;
  call->pendingOfferFrom = 0;
  if (!from) return;
  auto ct = response.header(sip::HeaderId::ContentType);
  int status = response.statusCode() >= 200 ? response.statusCode() : 200;
  (void)from->respond(tx, status, ct ? *ct : std::string_view{}, response.body());
}

void CallManager::onTerminated(InviteSession& s, InviteEnd why, const Message* message) {
  Call* call = callOf(s.appData);
  if (!call || call->ended) return;
  // Mark the call ended before touching the other leg: ending it may call back into
  // onTerminated for that leg from inside end().
  if (s.id() == call->inbound) {
    sip::UsageId other = call->answered ? call->other : 0;
    if (!call->answered) {
      // RFC 3326: a CANCEL saying the call was answered elsewhere (another node's member, or
      // the caller's side forked) is passed on, and nobody here missed the call.
      std::optional<std::string_view> reason;
      if (why == InviteEnd::Cancelled && message) reason = message->header("Reason");
      call->completedElsewhere = reason && isCompletedElsewhere(*reason);
      if (call->completedElsewhere)
        for (auto& p : call->parties) p.disposition = Disposition::CompletedElsewhere;
      cancelForks(*call, nullptr, call->completedElsewhere);
    }
    endCall(*call, &s);
    if (InviteSession* o = other ? session(other) : nullptr) (void)o->end();
  } else if (call->answered && s.id() == call->other) {
    sip::UsageId inbound = call->inbound;
    endCall(*call, &s);
    if (InviteSession* in = session(inbound)) (void)in->end();
  }
  // Other forks' early sessions end as they are cancelled: nothing to do.
}

void CallManager::endCall(Call& call, InviteSession*) {
  if (call.ended) return;
  call.ended = true;
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Terminated, true);
  for (auto& f : call.forks)
    if (!f.trunk) line(call, f.party, LineEvent::State::Terminated, false);
  if (call.pickedUp) line(call, call.answeredBy, LineEvent::State::Terminated, false);
  saveRecord(call);
  if (call.answered && !call.answeredRemotely) shareOutcome(call);
  if (stats_.active) --stats_.active;
  finish(call.id);
}

void CallManager::finish(CallId id) {
  // Erased from the event loop, never inside a callback that may still hold the Call.
  timers_.after(Duration(0), [this, id] { calls_.erase(id); });
}

void CallManager::saveRecord(Call& call) {
  CallRecord r;
  r.correlationId = call.correlationId;
  r.relatedCorrelationId = call.relatedCorrelationId;
  bool local = call.caller.kind == Caller::Kind::LocalUser;
  bool fromTrunk = call.caller.kind == Caller::Kind::Trunk;
  // Dialled external numbers; a fallback for a user of another node is still an internal call.
  bool outbound = std::any_of(call.forks.begin(), call.forks.end(),
                              [](const Fork& f) { return f.trunk && !f.fallback; });
  bool anyTrunk =
      std::any_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.trunk; });
  r.direction = fromTrunk ? "inbound" : (local && outbound) ? "outbound" : "internal";
  r.caller = callerIdOf(call.caller);
  r.callerName = callerNameOf(call.caller);
  r.dialled = call.dialled;
  r.viaTrunk = anyTrunk || fromTrunk;
  r.startMs = call.startMs;
  r.answerMs = call.answerMs;
  r.endMs = call.ended ? nowMs() : 0;
  std::string answeredOwner = isRemote(call.answeredBy) ? call.answeredBy.owner : "";
  if (call.answered && !call.answeredBy.extension.empty()) {
    r.answeredBy = call.answeredBy.extension;
    r.disposition = call.pickedUp ? Disposition::PickedUp : Disposition::Answered;
    bool listed = false;
    for (auto& p : call.parties) {
      if (p.role == PartyRole::Caller) p.disposition = r.disposition;
      if ((p.role == PartyRole::Rang || p.role == PartyRole::Callee) && p.owner == answeredOwner &&
          p.extension == call.answeredBy.extension)
        p.disposition = Disposition::Answered;
      else if (p.role == PartyRole::Rang)
        p.disposition = call.pickedUp ? Disposition::PickedUp : Disposition::CompletedElsewhere;
      else if (p.role == PartyRole::Callee && call.pickedUp)
        p.disposition = Disposition::PickedUp;
      else if (p.role == PartyRole::Callee)
        p.disposition = Disposition::Answered;
      if (p.role == PartyRole::AnsweredBy) listed = true;
    }
    if (!listed)
      call.parties.push_back({PartyRole::AnsweredBy, call.answeredBy.extension,
                              call.answeredBy.displayName, answeredOwner, Disposition::Answered});
  } else if (!call.parties.empty()) {
    r.disposition = call.parties.front().disposition;
  }
  r.parties = call.parties;
  if (isFederation(call.caller)) mergeWithStored(call, r);
  if (auto s = log_.save(r); !s)
    logger("calls")->error("call {}: saving the call record failed: {}", call.correlationId,
                           s.error().message);
}

// Several forks of one call on another node may ring several users here: each is a call of its
// own, all with that call's correlation id, so they share one record.
void CallManager::mergeWithStored(Call& call, CallRecord& r) {
  auto old = log_.byCorrelation(call.correlationId);
  if (!old) return;
  for (const auto& p : old->parties) {
    bool present = std::any_of(r.parties.begin(), r.parties.end(), [&](const CallParty& q) {
      return q.role == p.role && q.extension == p.extension && q.owner == p.owner;
    });
    if (!present && p.role != PartyRole::Caller) r.parties.push_back(p);
  }
  if (old->startMs && (!r.startMs || old->startMs < r.startMs)) r.startMs = old->startMs;
  if (!call.answered && !old->answeredBy.empty()) {
    // Another leg of the same call answered here: that stays the record's answer.
    r.answeredBy = old->answeredBy;
    r.answerMs = old->answerMs;
    r.disposition = old->disposition;
    for (auto& p : r.parties)
      if (p.role == PartyRole::Caller) p.disposition = old->disposition;
  }
  if (r.endMs && old->endMs > r.endMs) r.endMs = old->endMs;
}

void CallManager::shareOutcome(Call& call) {
  if (!remote_ || call.nodes.empty()) return;
  auto ownerOf = [&](const Party& p) { return isRemote(p) ? p.owner : config_.nodeId; };
  CallOutcome o;
  o.correlationId = call.correlationId;
  o.relatedCorrelationId = call.relatedCorrelationId;
  o.caller = callerIdOf(call.caller);
  o.callerName = callerNameOf(call.caller);
  if (call.caller.kind != Caller::Kind::Trunk) o.callerOwner = ownerOf(call.caller.party);
  if (call.callee) {
    o.callee = call.callee->extension;
    o.calleeName = call.callee->displayName;
    o.calleeOwner = ownerOf(*call.callee);
  } else if (call.group) {
    o.callee = call.group->number;
    o.calleeName = call.group->name;
    o.calleeOwner = config_.nodeId;
  } else {
    o.callee = call.dialled;
  }
  if (call.answered && !call.answeredBy.extension.empty()) {
    o.answeredBy = call.answeredBy.extension;
    o.answeredByName = call.answeredBy.displayName;
    if (!call.answeredExternal) o.answeredByOwner = ownerOf(call.answeredBy);
    o.disposition = call.pickedUp ? Disposition::PickedUp : Disposition::Answered;
  } else if (call.completedElsewhere) {
    o.disposition = Disposition::CompletedElsewhere;
  } else if (!call.parties.empty()) {
    o.disposition = call.parties.front().disposition;
  }
  o.answerMs = call.answerMs;
  remote_->shareOutcome(call.nodes, o);
}

// ---- Pickup ----

CallManager::Call* CallManager::findRingingFor(const std::string& extension) {
  for (auto& [id, c] : calls_) {
    if (c->answered || c->ended) continue;
    for (const auto& f : c->forks)
      if (!f.done && !f.trunk && f.party.extension == extension && f.party.owner.empty())
        return c.get();
  }
  return nullptr;
}

CallManager::Call* CallManager::findRingingInGroups(const std::vector<std::string>& groups) {
  for (auto& [id, c] : calls_) {
    if (c->answered || c->ended || !c->group) continue;
    if (std::find(groups.begin(), groups.end(), c->group->number) != groups.end()) return c.get();
  }
  return nullptr;
}

CallManager::Call* CallManager::findByForkCallId(const std::string& callId) {
  for (auto& [id, c] : calls_)
    for (const auto& f : c->forks)
      if (f.callId == callId) return c.get();
  return nullptr;
}

bool CallManager::pickUp(Call& picker, Call& target) {
  InviteSession* pickerLeg = session(picker.inbound);
  InviteSession* callerLeg = session(target.inbound);
  // The picker is a local user or, across sites, a user of another node (Federation caller).
  if (!pickerLeg || !callerLeg || picker.caller.kind == Caller::Kind::Trunk) return false;
  // Both phones sent offers: answer each with the other's media (address, common codecs).
  auto pickerSdp = sdp::parse(picker.offer);
  auto callerSdp = sdp::parse(target.offer);
  if (!pickerSdp || !callerSdp) return false;
  uint64_t version = uint64_t(nowMs());
  auto toPicker = sdp::answerFrom(*pickerSdp, *callerSdp, version);
  auto toCaller = sdp::answerFrom(*callerSdp, *pickerSdp, version);
  if (!toPicker || !toCaller) return false;

  Party by = picker.caller.party;
  // The picker's call merges into the target: its inbound leg becomes the target's other leg.
  target.answered = true;
  target.pickedUp = true;
  target.other = pickerLeg->id();
  target.answeredBy = by;
  target.answerMs = nowMs();
  timers_.cancel(target.noAnswer);
  target.noAnswer = 0;
  if (isFederation(picker.caller)) {
    // The picker's node keeps its own record of the picker's call: the outcome names it.
    addNode(target, by.owner);
    target.relatedCorrelationId = picker.caller.correlationId;
  }
  pickerLeg->appData = target.id;
  cancelForks(target, nullptr, true);
  for (auto& f : target.forks)
    if (!f.trunk) line(target, f.party, LineEvent::State::Terminated, false);
  (void)callerLeg->accept("application/sdp", *toCaller);
  (void)pickerLeg->accept("application/sdp", *toPicker);
  target.parties.push_back({PartyRole::AnsweredBy, by.extension, by.displayName,
                            isRemote(by) ? by.owner : "", Disposition::Answered});
  line(target, by, LineEvent::State::Confirmed, false);
  if (target.caller.kind == Caller::Kind::LocalUser)
    line(target, target.caller.party, LineEvent::State::Confirmed, true);
  ++stats_.pickedUp;
  ++stats_.answered;
  g_pickups.inc();
  g_callsAnswered.inc();
  saveRecord(target);
  shareOutcome(target);
  // The picker's own call object is done; it was never a call of its own.
  picker.ended = true;
  if (stats_.active) --stats_.active;
  --stats_.started;
  finish(picker.id);
  return true;
}

std::vector<CallManager::ActiveCall> CallManager::activeCalls() const {
  std::vector<ActiveCall> out;
  for (const auto& [id, c] : calls_) {
    if (c->ended) continue;
    ActiveCall a;
    a.correlationId = c->correlationId;
    a.caller = callerIdOf(c->caller);
    a.callerName = callerNameOf(c->caller);
    a.dialled = c->dialled;
    a.answeredBy = c->answeredBy.extension;
    a.state = c->answered ? "connected" : "ringing";
    a.startMs = c->startMs;
    a.answerMs = c->answerMs;
    out.push_back(std::move(a));
  }
  return out;
}

} // namespace verbund::pbx

// Routing: an ordered list of small stages (reSIProcate's processor chain). Each looks at the
// call and answers Continue (not mine), Stop (the call is handled: forks started, answered or
// refused) or Pending (it resumes the chain itself later). The order is the policy:
//
//   user mode (federation forks) → Replaces pickup → feature codes (also forwarding and
//   do-not-disturb codes) → local user (with the user's forward-always and do-not-disturb) →
//   local group → other node → external line → not found
//
// Forwarding on busy, no answer and unregistered hooks in where those happen (forking.cpp) and
// sends the call through the chain again with the forward target as the dialled string. A call
// this node forwarded may go on to other nodes and the external line whoever called; hops are
// bounded across nodes (Diversion, diversion.h) and a loop ends with 482.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"
#include "pbx/calls/refer.h"

#include <algorithm>

namespace verbund::pbx {

using sip::InviteSession;

namespace {
Counter g_forwarded("verbund_calls_forwarded_total", "Calls forwarded (always, busy, no answer, "
                                                     "unregistered)");

DiversionReason reasonFor(ForwardWhen when) {
  switch (when) {
  case ForwardWhen::Always:
    return DiversionReason::Unconditional;
  case ForwardWhen::Busy:
    return DiversionReason::UserBusy;
  case ForwardWhen::NoAnswer:
    return DiversionReason::NoAnswer;
  case ForwardWhen::Unregistered:
    return DiversionReason::Unavailable;
  }
  return DiversionReason::Unknown;
}

// The call list's name of a forwarding reason.
std::string reasonText(DiversionReason r) {
  switch (r) {
  case DiversionReason::Unconditional:
    return "always";
  case DiversionReason::UserBusy:
    return "busy";
  case DiversionReason::NoAnswer:
    return "no-answer";
  case DiversionReason::Unavailable:
    return "unregistered";
  case DiversionReason::DoNotDisturb:
    return "dnd";
  case DiversionReason::Unknown:
    break;
  }
  return "unknown";
}

const char kConfirmSdp[] = "v=0\r\no=verbund 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 "
                           "0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\n";
} // namespace

const CallManager::Stage CallManager::kStages[] = {
    &CallManager::stageUserMode,     &CallManager::stageReplaces, &CallManager::stageFeatureCode,
    &CallManager::stageLocalUser,    &CallManager::stageGroup,    &CallManager::stageOtherNode,
    &CallManager::stageExternalLine, &CallManager::stageNotFound,
};

void CallManager::route(Call& call) {
  if (!session(call.inbound)) {
    endCall(call);
    return;
  }
  for (Stage stage : kStages) {
    if (call.ended()) return;
    if ((this->*stage)(call) != StageResult::Continue) return;
  }
}

// A fork of a call routed on another node: ring exactly this local user, nothing else.
CallManager::StageResult CallManager::stageUserMode(Call& call) {
  if (!isFederation(call.caller) || call.caller.mode != CallMode::User)
    return StageResult::Continue;
  auto user = directory_.userByExtension(call.dialled);
  if (!user || isRemote(*user)) {
    failCall(call, 404, "Not Found");
    return StageResult::Stop;
  }
  call.callee = user;
  call.parties.push_back(
      {PartyRole::Rang, user->extension, user->displayName, "", Disposition::Missed});
  if (features_->doNotDisturb(*user)) {
    // A group's call to a member: the group rings the others; no forwarding.
    failCall(call, 486, "Busy Here (do not disturb)");
    return StageResult::Stop;
  }
  ringParties(call, {*user});
  return StageResult::Stop;
}

// RFC 3891: an INVITE with Replaces naming the early dialog of one of our forks is a pickup from
// a BLF key.
CallManager::StageResult CallManager::stageReplaces(Call& call) {
  if (call.replaces.empty()) return StageResult::Continue;
  auto replaces = parseReplaces(call.replaces); // shared with attended transfer (refer.h)
  if (!replaces) {
    failCall(call, 400, "Bad Replaces header");
    return StageResult::Stop;
  }
  Call* target = findByForkCallId(replaces->callId);
  if (target && target->unanswered() && target != &call) {
    if (!pickUp(call, *target)) failCall(call, 481, "Replaced dialog does not exist");
    return StageResult::Stop;
  }
  // The dialog may be a call ringing on the node of the user the BLF key watches.
  if (!target && !isFederation(call.caller) && remote_ &&
      !directory_.userByExtension(call.dialled)) {
    if (auto user = remote_->userByExtension(call.dialled)) {
      forwardToNode(call, *user, call.dialled, call.replaces);
      return StageResult::Stop;
    }
  }
  failCall(call, 481, "Replaced dialog does not exist");
  return StageResult::Stop;
}

CallManager::StageResult CallManager::stageFeatureCode(Call& call) {
  const std::string& dialled = call.dialled;
  if (dialled.empty() || dialled[0] != '*') return StageResult::Continue;
  const FeatureCodes& fc = config_.features;
  auto starts = [&](const std::string& code) {
    return !code.empty() && dialled.size() >= code.size() &&
           dialled.compare(0, code.size(), code) == 0;
  };
  bool federated = isFederation(call.caller);
  if (call.caller.kind == Caller::Kind::Trunk || call.transfer) {
    failCall(call, 403, "Feature codes are for local users");
    return StageResult::Stop;
  }
  if (StageResult r = forwardingCode(call); r != StageResult::Continue) return r;
  const std::string& me = call.caller.party.extension;
  // Longest codes first so that "*41" is not read as "*4" + "1".
  if (starts(fc.groupLogin) || starts(fc.groupLogout)) {
    if (federated) {
      // A member of another node logs in through the federation link (group-login), not SIP.
      failCall(call, 403, "Group login goes over the federation link");
      return StageResult::Stop;
    }
    bool login = starts(fc.groupLogin);
    std::string group = dialled.substr((login ? fc.groupLogin : fc.groupLogout).size());
    FeatureWrite w = FeatureWrite::Refused;
    if (directory_.groupByNumber(group)) {
      w = directory_.setGroupLogin(group, me, login);
    } else if (remote_) {
      if (auto owner = remote_->groupOwner(group); owner && *owner != config_.nodeId)
        w = remote_->setGroupLogin(*owner, group, me, login) ? FeatureWrite::Done
                                                             : FeatureWrite::Refused;
    }
    if (w == FeatureWrite::Busy)
      failFeatureBusy(call);
    else if (w == FeatureWrite::Refused)
      failCall(call, 404, "No such group membership");
    else
      answerFeatureCode(call);
    return StageResult::Stop;
  }
  if (starts(fc.groupPickup) && dialled.size() == fc.groupPickup.size()) {
    // Group pickup stays on this node: the picker's groups are known here only for local users.
    Call* target = federated ? nullptr : findRingingInGroups(directory_.groupsOf(me));
    if (!target || !pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
    return StageResult::Stop;
  }
  if (starts(fc.pickup)) {
    std::string ext = dialled.substr(fc.pickup.size());
    if (Call* target = findRingingFor(ext)) {
      if (!pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
      return StageResult::Stop;
    }
    // The user may be another node's: that node picks up with our caller as the picker.
    if (!federated && remote_ && !directory_.userByExtension(ext)) {
      if (auto user = remote_->userByExtension(ext)) {
        forwardToNode(call, *user, dialled, {});
        return StageResult::Stop;
      }
    }
    failCall(call, 404, "Nothing to pick up");
    return StageResult::Stop;
  }
  failCall(call, 404, "Unknown feature code");
  return StageResult::Stop;
}

// *21<target> / *021 and the like, *76 / *076: the caller's own forwarding and do-not-disturb.
CallManager::StageResult CallManager::forwardingCode(Call& call) {
  const FeatureCodes& fc = config_.features;
  const std::string& dialled = call.dialled;
  struct Code {
    const std::string* code;
    std::optional<ForwardWhen> when; // nullopt: do-not-disturb
    bool on;
  };
  const Code codes[] = {
      {&fc.forwardAlwaysOff, ForwardWhen::Always, false},
      {&fc.forwardBusyOff, ForwardWhen::Busy, false},
      {&fc.forwardNoAnswerOff, ForwardWhen::NoAnswer, false},
      {&fc.forwardUnregisteredOff, ForwardWhen::Unregistered, false},
      {&fc.dndOff, std::nullopt, false},
      {&fc.forwardAlways, ForwardWhen::Always, true},
      {&fc.forwardBusy, ForwardWhen::Busy, true},
      {&fc.forwardNoAnswer, ForwardWhen::NoAnswer, true},
      {&fc.forwardUnregistered, ForwardWhen::Unregistered, true},
      {&fc.dndOn, std::nullopt, true},
  };
  const Code* match = nullptr;
  for (const auto& c : codes) {
    const std::string& code = *c.code;
    if (code.empty() || dialled.compare(0, code.size(), code) != 0) continue;
    // Codes without a target must be dialled exactly; the longest match wins ("*021" over "*0").
    if ((!c.on || !c.when) && dialled.size() != code.size()) continue;
    if (!match || code.size() > match->code->size()) match = &c;
  }
  if (!match) return StageResult::Continue;
  if (isFederation(call.caller)) {
    failCall(call, 403, "Feature codes are for local users");
    return StageResult::Stop;
  }
  const Party& me = call.caller.party;
  FeatureWrite w = FeatureWrite::Refused;
  if (!match->when) {
    w = features_->setDoNotDisturb(me, match->on);
  } else {
    std::string target = match->on ? dialled.substr(match->code->size()) : std::string();
    if (match->on && target.empty()) {
      failCall(call, 484, "Address Incomplete");
      return StageResult::Stop;
    }
    w = features_->setForward(me, *match->when, target);
  }
  logger("calls")->info("call {}: feature code {} of {}: {}", call.correlationId, *match->code,
                        me.extension,
                        w == FeatureWrite::Done   ? "done"
                        : w == FeatureWrite::Busy ? "database busy (503)"
                                                  : "refused");
  if (w == FeatureWrite::Done)
    answerFeatureCode(call);
  else if (w == FeatureWrite::Busy)
    failFeatureBusy(call);
  else
    failCall(call, 403, "Feature code refused");
  return StageResult::Stop;
}

// Nothing was changed: the phone may dial the code again after Retry-After.
void CallManager::failFeatureBusy(Call& call) {
  failCall(call, 503, "Database busy", {{"Retry-After", "5"}});
}

// Confirms a feature code by answering and hanging up at once; there is no media to play.
void CallManager::answerFeatureCode(Call& call) {
  InviteSession* in = session(call.inbound);
  if (!in || !in->accept("application/sdp", kConfirmSdp)) {
    endCall(call);
    return;
  }
  call.answer = AnswerKind::Feature;
  enter(call, CallState::Connected);
  CallId id = call.id;
  timers_.after(Duration(300), [this, id] {
    Call* c = callOf(id);
    if (c && !c->ended()) hangUp(*c, 0);
  });
}

CallManager::StageResult CallManager::stageLocalUser(Call& call) {
  auto user = directory_.userByExtension(call.dialled);
  if (!user) return StageResult::Continue;
  call.callee = user;
  addCallee(call, user->extension, user->displayName, isRemote(*user) ? user->owner : "");
  if (call.fromOtherNode() && isRemote(*user)) {
    failCall(call, 404, "Not Found"); // no calls from node to node to node
    return StageResult::Stop;
  }
  if (userFeatures(call, *user) == StageResult::Stop) return StageResult::Stop;
  ringParties(call, {*user});
  return StageResult::Stop;
}

// Do-not-disturb and forward-always of a local callee.
CallManager::StageResult CallManager::userFeatures(Call& call, const Party& user) {
  if (isRemote(user)) return StageResult::Continue;
  if (auto target = features_->forwardTarget(user, ForwardWhen::Always))
    if (forwardTo(call, *target, uint8_t(DiversionReason::Unconditional))) return StageResult::Stop;
  if (features_->doNotDisturb(user)) {
    if (!forwardUnreachable(call, uint8_t(DiversionReason::DoNotDisturb)))
      failCall(call, 486, "Busy Here (do not disturb)");
    return StageResult::Stop;
  }
  return StageResult::Continue;
}

void CallManager::addCallee(Call& call, const std::string& ext, const std::string& name,
                            const std::string& owner) {
  // The first callee of a call is its Callee; forward targets are parties that were rung.
  bool first = std::none_of(call.parties.begin(), call.parties.end(),
                            [](const CallParty& p) { return p.role == PartyRole::Callee; });
  CallParty p{first ? PartyRole::Callee : PartyRole::Rang, ext, name, owner, Disposition::Missed};
  if (call.pendingForward) {
    p.forwardedFrom = call.pendingForward->diversion.user;
    p.forwardedFromOwner = call.pendingForward->owner;
    p.forwardReason = reasonText(call.pendingForward->diversion.reason);
    call.pendingForward.reset();
  }
  call.parties.push_back(std::move(p));
}

CallManager::StageResult CallManager::stageGroup(Call& call) {
  auto group = directory_.groupByNumber(call.dialled);
  if (!group) return StageResult::Continue;
  addCallee(call, group->number, group->name, "");
  call.group = std::move(group);
  // Members on do-not-disturb are not rung.
  std::vector<Party> members;
  for (auto& m : call.group->loggedInMembers)
    if (isRemote(m) || !features_->doNotDisturb(m)) members.push_back(m);
  ringParties(call, members);
  return StageResult::Stop;
}

// Other nodes of the federation; never for calls that came from another node (no loops).
// A call this node forwarded (forwardsHere) goes on wherever its target is, whoever called.
CallManager::StageResult CallManager::stageOtherNode(Call& call) {
  if (!remote_ || (call.fromOtherNode() && call.forwardsHere == 0)) return StageResult::Continue;
  if (auto user = remote_->userByExtension(call.dialled)) {
    call.callee = user;
    addCallee(call, user->extension, user->displayName, user->owner);
    ringParties(call, {*user});
    return StageResult::Stop;
  }
  if (auto owner = remote_->groupOwner(call.dialled); owner && *owner != config_.nodeId) {
    // The group's node rings its members (first answer wins there) and says who answered.
    Party g;
    g.owner = *owner;
    g.extension = call.dialled;
    call.callee = g;
    addCallee(call, g.extension, "", g.owner);
    startRemoteFork(call, g, call.dialled, CallMode::Route, {}, false);
    afterForksStarted(call);
    return StageResult::Stop;
  }
  return StageResult::Continue;
}

CallManager::StageResult CallManager::stageExternalLine(Call& call) {
  if (!externalLine_ || (!call.dialledHere() && call.forwardsHere == 0) ||
      !externalLine_->isExternalNumber(call.dialled))
    return StageResult::Continue;
  addCallee(call, call.dialled, "", "");
  startTrunkFork(call, call.dialled);
  return StageResult::Stop;
}

CallManager::StageResult CallManager::stageNotFound(Call& call) {
  if (call.pendingForward) { // a forwarding target that is nobody: on the call list too
    addCallee(call, call.dialled, "", "");
    call.parties.back().disposition = Disposition::Failed;
  }
  failCall(call, 404, "Not Found");
  return StageResult::Stop;
}

// ---- Forwarding ----

bool CallManager::forwardOn(Call& call, ForwardWhen when) {
  // Only calls for one local user forward (a group's members do not forward the group's call).
  if (!call.callee || call.group || isRemote(*call.callee)) return false;
  auto target = features_->forwardTarget(*call.callee, when);
  return target && forwardTo(call, *target, uint8_t(reasonFor(when)));
}

// Seed PBX behaviour: do-not-disturb or no registered device take the no-answer forwarding at
// once; without one, the busy forwarding.
bool CallManager::forwardUnreachable(Call& call, uint8_t why) {
  if (!call.callee || call.group || isRemote(*call.callee)) return false;
  for (ForwardWhen when : {ForwardWhen::NoAnswer, ForwardWhen::Busy})
    if (auto target = features_->forwardTarget(*call.callee, when))
      if (forwardTo(call, *target, why)) return true;
  return false;
}

bool CallManager::forwardTo(Call& call, const std::string& target, uint8_t why) {
  if (target.empty()) return false;
  Call::Hop hop;
  hop.diversion.user = call.callee ? call.callee->extension : call.dialled;
  hop.diversion.reason = DiversionReason(why);
  if (call.callee) hop.externalNumber = call.callee->externalNumber;
  const std::string& from = hop.diversion.user;
  bool visited = target == from || call.dialled == target ||
                 std::find(call.visited.begin(), call.visited.end(), target) != call.visited.end();
  if (visited || call.forwards >= config_.maxForwards) {
    // The target is not rung: the call ends here with a clear answer, and the call list says why.
    logger("calls")->info("call {}: {} not forwarded to {}: {}", call.correlationId, from, target,
                          visited ? "forwarding loop" : "too many forwards");
    CallParty p{PartyRole::Rang, target, "", "", Disposition::Failed};
    p.forwardedFrom = from;
    p.forwardReason = "loop";
    call.parties.push_back(std::move(p));
    for (auto& f : call.forks)
      if (!f.external()) line(call, f.party, LineEvent::State::Terminated, false);
    failCall(call, 482, "Loop Detected (call forwarding)");
    return true;
  }
  ++call.forwards;
  ++call.forwardsHere;
  ++stats_.forwarded;
  g_forwarded.inc();
  logger("calls")->info("call {}: {} forwarded to {} ({})", call.correlationId, from, target,
                        diversionReasonName(hop.diversion.reason));
  call.visited.push_back(from);
  hop.diversion.counter = 1;
  call.hops.insert(call.hops.begin(), hop);
  call.pendingForward = std::move(hop);
  // Line state of the devices rung so far ends; the record keeps them.
  for (auto& f : call.forks)
    if (!f.external()) line(call, f.party, LineEvent::State::Terminated, false);
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  enter(call, CallState::Routing);
  if (call.dialledFirst.empty()) call.dialledFirst = call.dialled;
  call.dialled = target;
  call.callee.reset();
  call.group.reset();
  call.replaces.clear();
  route(call);
  return true;
}

Party CallManager::originalCaller(const Call& call) const {
  if (call.caller.kind != Caller::Kind::Trunk) return call.caller.party;
  Party p;
  p.externalNumber = call.caller.number;
  p.displayName = call.caller.name;
  return p;
}

void CallManager::addDiversions(const Call& call, sip::DialogManager::InviteParams& p,
                                bool external) const {
  for (const auto& hop : call.hops) {
    if (p.headers.size() >= kMaxDiversions + 16) break;
    Diversion d = hop.diversion;
    if (external && !hop.owner.empty()) continue; // another node's hop: its own numbering
    if (external) {
      // The carrier knows the forwarding user by their number; without one, no Diversion.
      if (hop.externalNumber.empty()) continue;
      d.user = hop.externalNumber;
    }
    p.headers.emplace_back("Diversion", formatDiversion(d, config_.domain));
  }
}

} // namespace verbund::pbx

// Routing: an ordered list of small stages (reSIProcate's processor chain). Each looks at the
// call and answers Continue (not mine), Stop (the call is handled: forks started, answered or
// refused) or Pending (it resumes the chain itself later). The order is the policy:
//
//   user mode (federation forks) → Replaces pickup → feature codes → local user (with the
//   user's do-not-disturb and forward-always) → local group → other node → external line →
//   not found
//
// Forwarding on busy, no answer and unregistered hooks in where those happen (forking.cpp) and
// sends the call through the chain again with the forward target as the dialled string.
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

// The first callee of a call is its Callee; forward targets are parties that were rung.
void addCallee(std::vector<CallParty>& parties, const std::string& ext, const std::string& name,
               const std::string& owner) {
  bool first = std::none_of(parties.begin(), parties.end(),
                            [](const CallParty& p) { return p.role == PartyRole::Callee; });
  parties.push_back(
      {first ? PartyRole::Callee : PartyRole::Rang, ext, name, owner, Disposition::Missed});
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
    bool ok = false;
    if (directory_.groupByNumber(group)) {
      ok = directory_.setGroupLogin(group, me, login);
    } else if (remote_) {
      if (auto owner = remote_->groupOwner(group); owner && *owner != config_.nodeId)
        ok = remote_->setGroupLogin(*owner, group, me, login);
    }
    if (!ok)
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
  addCallee(call.parties, user->extension, user->displayName, isRemote(*user) ? user->owner : "");
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
    if (forwardTo(call, *target)) return StageResult::Stop;
  if (features_->doNotDisturb(user)) {
    if (!forwardOn(call, ForwardWhen::Busy)) failCall(call, 486, "Busy Here (do not disturb)");
    return StageResult::Stop;
  }
  return StageResult::Continue;
}

CallManager::StageResult CallManager::stageGroup(Call& call) {
  auto group = directory_.groupByNumber(call.dialled);
  if (!group) return StageResult::Continue;
  addCallee(call.parties, group->number, group->name, "");
  call.group = std::move(group);
  // Members on do-not-disturb are not rung.
  std::vector<Party> members;
  for (auto& m : call.group->loggedInMembers)
    if (isRemote(m) || !features_->doNotDisturb(m)) members.push_back(m);
  ringParties(call, members);
  return StageResult::Stop;
}

// Other nodes of the federation; never for calls that came from another node (no loops).
CallManager::StageResult CallManager::stageOtherNode(Call& call) {
  if (!remote_ || call.fromOtherNode()) return StageResult::Continue;
  if (auto user = remote_->userByExtension(call.dialled)) {
    call.callee = user;
    addCallee(call.parties, user->extension, user->displayName, user->owner);
    ringParties(call, {*user});
    return StageResult::Stop;
  }
  if (auto owner = remote_->groupOwner(call.dialled); owner && *owner != config_.nodeId) {
    // The group's node rings its members (first answer wins there) and says who answered.
    Party g;
    g.owner = *owner;
    g.extension = call.dialled;
    call.callee = g;
    addCallee(call.parties, g.extension, "", g.owner);
    startRemoteFork(call, g, call.dialled, CallMode::Route, {}, false);
    afterForksStarted(call);
    return StageResult::Stop;
  }
  return StageResult::Continue;
}

CallManager::StageResult CallManager::stageExternalLine(Call& call) {
  if (!externalLine_ || !call.dialledHere() || !externalLine_->isExternalNumber(call.dialled))
    return StageResult::Continue;
  addCallee(call.parties, call.dialled, "", "");
  startTrunkFork(call, call.dialled);
  return StageResult::Stop;
}

CallManager::StageResult CallManager::stageNotFound(Call& call) {
  failCall(call, 404, "Not Found");
  return StageResult::Stop;
}

// ---- Forwarding ----

bool CallManager::forwardOn(Call& call, ForwardWhen when) {
  // Only calls for one local user forward (a group's members do not forward the group's call).
  if (!call.callee || call.group || isRemote(*call.callee)) return false;
  auto target = features_->forwardTarget(*call.callee, when);
  return target && forwardTo(call, *target);
}

bool CallManager::forwardTo(Call& call, const std::string& target) {
  if (target.empty() || target == call.dialled) return false;
  if (call.forwards >= config_.maxForwards) {
    logger("calls")->info("call {}: not forwarded to {}: {} forwards already", call.correlationId,
                          target, call.forwards);
    return false;
  }
  ++call.forwards;
  ++stats_.forwarded;
  g_forwarded.inc();
  logger("calls")->info("call {}: {} forwarded to {}", call.correlationId, call.dialled, target);
  // Line state of the devices rung so far ends; the record keeps them.
  for (auto& f : call.forks)
    if (!f.external()) line(call, f.party, LineEvent::State::Terminated, false);
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  enter(call, CallState::Routing);
  call.dialled = target;
  call.callee.reset();
  call.group.reset();
  call.replaces.clear();
  route(call);
  return true;
}

} // namespace verbund::pbx

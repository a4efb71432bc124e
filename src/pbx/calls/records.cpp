// Call records (the call list) and the outcomes shared with the other nodes a call involved.
#include "base/log.h"
#include "pbx/calls/call.h"

#include <algorithm>

namespace verbund::pbx {

void CallManager::saveRecord(Call& call) {
  CallRecord r;
  r.correlationId = call.correlationId;
  r.relatedCorrelationId = call.relatedCorrelationId;
  bool local = call.caller.kind == Caller::Kind::LocalUser;
  bool fromTrunk = call.caller.kind == Caller::Kind::Trunk;
  // Dialled external numbers; a fallback for a user of another node is still an internal call.
  bool outbound = std::any_of(call.forks.begin(), call.forks.end(),
                              [](const Fork& f) { return f.kind == ForkKind::Trunk; });
  bool anyTrunk =
      std::any_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.external(); });
  r.direction = fromTrunk ? "inbound" : (local && outbound) ? "outbound" : "internal";
  r.caller = callerIdOf(call.caller);
  r.callerName = callerNameOf(call.caller);
  r.dialled = call.dialledByCaller();
  r.viaTrunk = anyTrunk || fromTrunk;
  r.startMs = call.startMs;
  r.answerMs = call.answerMs;
  r.endMs = call.ended() ? nowMs() : 0;
  bool pickedUp = call.answer == AnswerKind::PickedUp;
  std::string answeredOwner = isRemote(call.answeredBy) ? call.answeredBy.owner : "";
  if (call.answer != AnswerKind::None && !call.answeredBy.extension.empty()) {
    r.answeredBy = call.answeredBy.extension;
    r.disposition = pickedUp ? Disposition::PickedUp : Disposition::Answered;
    bool listed = false;
    for (auto& p : call.parties) {
      if (p.role == PartyRole::Caller) p.disposition = r.disposition;
      if ((p.role == PartyRole::Rang || p.role == PartyRole::Callee) && p.owner == answeredOwner &&
          p.extension == call.answeredBy.extension)
        p.disposition = Disposition::Answered;
      else if (p.role == PartyRole::Rang)
        p.disposition = pickedUp ? Disposition::PickedUp : Disposition::CompletedElsewhere;
      else if (p.role == PartyRole::Callee && pickedUp)
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
  r.transferredBy = call.transferredBy;
  r.transferTarget = call.transferTarget;
  r.transferCorrelationId = call.transferCorrelationId;
  // Other paths of the same call on this node: further forks of one call of another node, or the
  // direct INVITE and the fallback over the external line (carried id).
  bool carried = call.caller.kind == Caller::Kind::Trunk && !call.caller.correlationId.empty();
  if (isFederation(call.caller) || carried) {
    mergeWithStored(call, r);
  } else if (!call.nodes.empty()) {
    // A call another node forwarded back here (b -> a -> b): the leg it sent here may have
    // been recorded first, with who forwarded to whom; this record must not replace that one.
    if (auto old = log_.byCorrelation(call.correlationId);
        old && std::any_of(old->parties.begin(), old->parties.end(),
                           [](const CallParty& p) { return !p.forwardReason.empty(); }))
      CallLog::mergePaths(r, *old);
  }
  logger("calls")->debug("call {}: record {} {} answered by '{}' (via the external line: {})",
                         r.correlationId, r.direction, dispositionName(r.disposition), r.answeredBy,
                         r.viaTrunk);
  if (auto s = log_.save(r); !s)
    logger("calls")->error("call {}: saving the call record failed: {}", call.correlationId,
                           s.error().message);
}

// Several forks of one call on another node may ring several users here, and a call may reach
// this node both direct and over the external line: each is a call of its own, all with that
// call's correlation id, so they share one record (CallLog::mergePaths).
void CallManager::mergeWithStored(Call& call, CallRecord& r) {
  auto old = log_.byCorrelation(call.correlationId);
  if (!old) return;
  CallLog::mergePaths(r, *old);
}

std::optional<CarriedCorrelation> parseCarriedCorrelation(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty() || v.size() > kMaxCarriedCorrelation) return std::nullopt;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '@';
    if (!ok) return std::nullopt;
  }
  auto at = v.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == v.size() ||
      v.find('@', at + 1) != std::string_view::npos)
    return std::nullopt;
  return CarriedCorrelation{std::string(v), std::string(v.substr(at + 1))};
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
  auto firstCallee = std::find_if(call.parties.begin(), call.parties.end(),
                                  [](const CallParty& p) { return p.role == PartyRole::Callee; });
  if (call.forwards > call.forwardsHere) {
    // Forwarded to here by another node: that node's record names who the call was for.
  } else if (call.forwardsHere > 0 && firstCallee != call.parties.end()) {
    // Forwarded here: the call was for the user dialled first, not for the forwarding target.
    o.callee = firstCallee->extension;
    o.calleeName = firstCallee->name;
    o.calleeOwner = firstCallee->owner.empty() ? config_.nodeId : firstCallee->owner;
  } else if (call.callee) {
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
  if (call.answer != AnswerKind::None && !call.answeredBy.extension.empty()) {
    o.answeredBy = call.answeredBy.extension;
    o.answeredByName = call.answeredBy.displayName;
    if (call.answer != AnswerKind::External) o.answeredByOwner = ownerOf(call.answeredBy);
    o.disposition =
        call.answer == AnswerKind::PickedUp ? Disposition::PickedUp : Disposition::Answered;
  } else if (call.endCause == EndCause::CompletedElsewhere) {
    o.disposition = Disposition::CompletedElsewhere;
  } else if (!call.parties.empty()) {
    o.disposition = call.parties.front().disposition;
  }
  o.answerMs = call.answerMs;
  o.transferredBy = call.transferredBy;
  o.transferTarget = call.transferTarget;
  o.transferCorrelationId = call.transferCorrelationId;
  // Answered over the external line: what the answering site needs to find its record of that
  // inbound call when the carrier dropped the correlation header (CallLog::foldFallback).
  for (const auto& f : call.forks)
    if (f.kind == ForkKind::Fallback && f.state == ForkState::Answered) {
      o.fallbackNumber = f.party.externalNumber;
      o.fallbackCaller = f.sentCaller;
      o.fallbackMs = f.sentMs;
    }
  remote_->shareOutcome(call.nodes, o);
}

} // namespace verbund::pbx

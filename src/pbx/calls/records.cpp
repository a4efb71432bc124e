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
  r.dialled = call.dialled;
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
  if (call.answer == AnswerKind::None && !old->answeredBy.empty()) {
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
  remote_->shareOutcome(call.nodes, o);
}

} // namespace verbund::pbx

// Calls and INVITEs that a failure left behind: the journal of ringing calls (written at ring
// time, ended by the next start after a crash) and late INVITEs from other nodes for calls that
// were already answered or had ended.
#include "base/log.h"
#include "pbx/calls/call.h"
#include "sip/transaction/transaction_layer.h"

#include <algorithm>

namespace verbund::pbx {

void CallManager::journalRinging(Call& call) {
  if (!journal_ || !call.unanswered()) return;
  RingingCall r;
  if (call.journalKey.empty())
    call.journalKey =
        call.correlationId + "#" + std::to_string(call.startMs) + "#" + std::to_string(call.id);
  r.key = call.journalKey;
  CallRecord& rec = r.record;
  rec.correlationId = call.correlationId;
  rec.relatedCorrelationId = call.relatedCorrelationId;
  bool outbound = std::any_of(call.forks.begin(), call.forks.end(),
                              [](const Fork& f) { return f.kind == ForkKind::Trunk; });
  rec.direction = call.caller.kind == Caller::Kind::Trunk                   ? "inbound"
                  : call.caller.kind == Caller::Kind::LocalUser && outbound ? "outbound"
                                                                            : "internal";
  rec.caller = callerIdOf(call.caller);
  rec.callerName = callerNameOf(call.caller);
  rec.dialled = call.dialledByCaller();
  rec.viaTrunk =
      call.caller.kind == Caller::Kind::Trunk ||
      std::any_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.external(); });
  rec.startMs = call.startMs;
  rec.parties = call.parties;
  for (const auto& f : call.forks) {
    if (!f.live() || !f.target) continue;
    sip::ClientInvite* ci = dm_.clientInvite(f.invite);
    const sip::Message* invite = ci ? dm_.txl().clientRequest(ci->transaction()) : nullptr;
    if (!invite) continue;
    auto cancel = sip::TransactionLayer::buildCancel(*invite);
    if (!cancel) continue;
    r.cancels.push_back({*f.target, std::string((*cancel)->raw())});
  }
  journal_->ringing(r);
}

void CallManager::journalSettled(Call& call) {
  if (!journal_ || call.journalKey.empty()) return;
  journal_->settled(call.journalKey);
  call.journalKey.clear();
}

size_t CallManager::endInterrupted() {
  if (!journal_) return 0;
  auto entries = journal_->interrupted();
  for (auto& e : entries) {
    CallRecord r = std::move(e.record);
    auto stored = log_.byCorrelation(r.correlationId);
    // A record written before the crash (answered, or ended) stays as it is.
    if (!stored || (stored->answerMs == 0 && stored->endMs == 0)) {
      r.endMs = nowMs();
      r.disposition = Disposition::Missed;
      for (auto& p : r.parties) p.disposition = Disposition::Missed;
      if (auto s = log_.save(r); !s)
        logger("calls")->error("call {}: record of the interrupted call: {}", r.correlationId,
                               s.error().message);
    }
    // RFC 3261 §9.1: the CANCEL has the INVITE's top Via (its branch), Call-ID, From, To and CSeq
    // number, so the phone that still rings matches it to its INVITE and stops.
    for (auto& c : e.cancels) {
      auto parsed = sip::parseMessage(std::move(c.request));
      if (!parsed.ok()) continue;
      if (auto sent = dm_.txl().sendRequest(std::move(parsed.message), c.target, {}); !sent)
        logger("calls")->info("call {}: CANCEL to {} not sent: {}", r.correlationId,
                              c.target.remote.toString(), sent.error().message);
    }
    journal_->settled(e.key);
    ++stats_.interrupted;
    logger("calls")->warn("call {} was ringing when the node stopped: ended ({} CANCEL)",
                          r.correlationId, e.cancels.size());
  }
  return entries.size();
}

std::string CallManager::staleFederationInvite(const std::string& correlationId) {
  for (const auto& [id, c] : calls_)
    if (c->correlationId == correlationId && c->connected()) return "answered";
  auto r = log_.byCorrelation(correlationId);
  if (!r) return {};
  if (r->answerMs > 0 || r->disposition == Disposition::Answered ||
      r->disposition == Disposition::PickedUp || r->disposition == Disposition::CompletedElsewhere)
    return "answered";
  // The calling node gives up on a fork without a provisional answer after the fallback bound:
  // an INVITE for a call that ended here longer ago than that is one it no longer waits for.
  if (r->endMs > 0 && nowMs() - r->endMs > config_.federationFallback.count()) return "ended";
  return {};
}

} // namespace verbund::pbx

// Pickup: a picker's call (by *8<ext>, *9, or INVITE with Replaces from a BLF key) takes over a
// ringing call. The picker's call object merges into the target: its inbound leg becomes the
// target's other leg.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"
#include "pbx/calls/sdp.h"

#include <algorithm>

namespace verbund::pbx {

using sip::InviteSession;

namespace {
Counter g_pickups("verbund_call_pickups_total", "Calls picked up by another user");
} // namespace

CallManager::Call* CallManager::findRingingFor(const std::string& extension) {
  for (auto& [id, c] : calls_) {
    if (!c->unanswered()) continue;
    for (const auto& f : c->forks)
      if (f.live() && !f.external() && f.party.extension == extension && f.party.owner.empty())
        return c.get();
  }
  return nullptr;
}

CallManager::Call* CallManager::findRingingInGroups(const std::vector<std::string>& groups) {
  for (auto& [id, c] : calls_) {
    if (!c->unanswered() || !c->group) continue;
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
  // Both phones sent offers: answer each with the other's media (address, common codecs). A
  // delayed offer on either side cannot be picked up this way.
  auto pickerSdp = sdp::parse(picker.offer);
  auto callerSdp = sdp::parse(target.offer);
  if (!pickerSdp || !callerSdp) return false;
  uint64_t version = uint64_t(nowMs());
  auto toPicker = sdp::answerFrom(*pickerSdp, *callerSdp, version);
  auto toCaller = sdp::answerFrom(*callerSdp, *pickerSdp, version);
  if (!toPicker || !toCaller) return false;
  // Anchored (always; "remote" mode: unless caller and picker are both phones of this site):
  // the picker joins the target's relay session as a new branch.
  bool anchored =
      target.media != MediaState::Direct && target.media != MediaState::Lost && anchor_ &&
      anchorMode_ != AnchorMode::Off &&
      !(anchorMode_ == AnchorMode::Remote && !isFederation(picker.caller) &&
        target.caller.kind == Caller::Kind::LocalUser && !isRemote(target.caller.party));

  Party by = picker.caller.party;
  enter(target, CallState::Connected);
  journalSettled(target);
  target.answer = AnswerKind::PickedUp;
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
  releaseBranches(target, nullptr);
  for (auto& f : target.forks)
    if (!f.external()) line(target, f.party, LineEvent::State::Terminated, false);
  if (anchored) {
    anchorPickup(target, picker.offer);
  } else {
    (void)callerLeg->accept("application/sdp", *toCaller);
    (void)pickerLeg->accept("application/sdp", *toPicker);
  }
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
  enter(picker, CallState::Ended);
  if (stats_.active) --stats_.active;
  --stats_.started;
  finish(picker.id);
  return true;
}

void CallManager::anchorPickup(Call& target, const std::string& pickerOffer) {
  // The relay gets the caller's offer as a new branch "picker" (its SDP: the relay's side for
  // the picker), then, as the answer to it, the picker's media: its SDP is the relay's side for
  // the caller. Each phone's answer is built from the relay's SDP for it (sdp::answerFrom).
  enterOffer(target, OfferState::AnchoringAnswer);
  target.offerFrom = target.inbound;
  target.otherTag = "picker";
  AnchorRef ref{{}, "caller", {}, "picker"};
  std::string picker = pickerOffer;
  viaRelay(target, true, ref, target.offer, [this, picker](Call& c, Result<std::string> x) {
    if (c.offerState != OfferState::AnchoringAnswer) return;
    auto relaySide = x ? sdp::parse(*x) : std::nullopt;
    auto pickerSdp = sdp::parse(picker);
    uint64_t version = uint64_t(nowMs());
    auto toPicker =
        relaySide && pickerSdp ? sdp::answerFrom(*pickerSdp, *relaySide, version) : std::nullopt;
    auto fromPicker =
        relaySide && pickerSdp ? sdp::answerFrom(*relaySide, *pickerSdp, version) : std::nullopt;
    if (!toPicker || !fromPicker) return pickupFailed(c);
    AnchorRef ans{{}, "caller", "picker", "picker"};
    std::string forPicker = *toPicker;
    viaRelay(c, false, ans, *fromPicker, [this, forPicker](Call& c2, Result<std::string> y) {
      if (c2.offerState != OfferState::AnchoringAnswer) return;
      if (!y) return pickupFailed(c2);
      auto callerSdp = sdp::parse(c2.offer);
      auto relayForCaller = sdp::parse(*y);
      auto toCaller = callerSdp && relayForCaller
                          ? sdp::answerFrom(*callerSdp, *relayForCaller, uint64_t(nowMs()))
                          : std::nullopt;
      if (!toCaller) return pickupFailed(c2);
      enterOffer(c2, OfferState::Idle);
      InviteSession* callerLeg = session(c2.inbound);
      InviteSession* pickerLeg = session(c2.other);
      if (!callerLeg || !pickerLeg) return hangUp(c2, 0);
      (void)callerLeg->accept("application/sdp", *toCaller);
      (void)pickerLeg->accept("application/sdp", forPicker);
    });
  });
}

void CallManager::pickupFailed(Call& call) {
  logger("calls")->warn("call {}: pickup not anchored (media relay failed): ending the call",
                        call.correlationId);
  enterOffer(call, OfferState::Idle);
  if (InviteSession* p = session(call.other)) (void)p->reject(503, "Media Relay Unavailable");
  if (InviteSession* c = session(call.inbound)) (void)c->reject(503, "Media Relay Unavailable");
  hangUp(call, 0);
}

} // namespace verbund::pbx

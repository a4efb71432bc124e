// Media anchoring: every SDP that crosses the B2BUA goes through the media relay (media_anchor.h)
// before it is sent to the other leg. The engine's objects wait in explicit states meanwhile
// (ForkState::Anchoring, OfferState::Anchoring*); a reply that comes late looks its call up again
// by id and does nothing when the call has ended (the end released the relay session).
//
// Per call, the first reply of the relay decides (MediaState): anchored, or direct when it failed
// (the call connects with SDP passed through, logged and counted). A relay command that fails
// later on an anchored call fails that step only (a relayed re-INVITE or UPDATE gets 500 and the
// media stay as they were; a fork is given up as failed; the call's first answer or a pickup
// ends the call), so a call is never half-anchored.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"
#include "sip/message/builder.h"

namespace verbund::pbx {

namespace {
Gauge g_anchored("verbund_media_anchored_calls", "Calls holding a media relay session now");
Counter g_anchorFallbacks("verbund_media_direct_fallbacks_total",
                          "Calls that went direct because the media relay was unavailable");
Counter g_anchorFailures("verbund_media_relay_failures_total",
                         "Relay commands that failed on an anchored call (the step failed)");
} // namespace

std::optional<AnchorMode> parseAnchorMode(std::string_view text) {
  if (text == "always") return AnchorMode::Always;
  if (text == "off") return AnchorMode::Off;
  if (text == "remote") return AnchorMode::Remote;
  return std::nullopt;
}

std::string_view anchorModeName(AnchorMode m) {
  switch (m) {
  case AnchorMode::Always:
    return "always";
  case AnchorMode::Off:
    return "off";
  case AnchorMode::Remote:
    return "remote";
  }
  return "?";
}

bool CallManager::anchorsFork(const Call& call, ForkKind kind) const {
  // A call whose relay was lost (MediaState::Lost) forks directly until it is re-anchored.
  if (!anchor_ || anchorMode_ == AnchorMode::Off || call.media == MediaState::Direct ||
      call.media == MediaState::Lost)
    return false;
  if (anchorMode_ == AnchorMode::Remote && kind == ForkKind::Device &&
      call.caller.kind == Caller::Kind::LocalUser && !isRemote(call.caller.party))
    return false; // two phones of this site
  return true;
}

void CallManager::goDirect(Call& call, std::string_view why) {
  if (call.media == MediaState::Direct) return;
  enterMedia(call, MediaState::Direct);
  ++stats_.anchorFallbacks;
  g_anchorFallbacks.inc();
  // A warning when the relay is first found missing; the calls after it while it stays away
  // are counted and logged at debug (a node without rtpengine would warn on every call).
  auto level = relayDown_ ? spdlog::level::debug : spdlog::level::warn;
  relayDown_ = true;
  logger("calls")->log(level, "call {}: media relay unavailable ({}): direct media",
                       call.correlationId, why);
}

std::string CallManager::relayTag(const Call& call, sip::UsageId leg) const {
  return leg == call.inbound ? std::string("caller") : call.otherTag;
}

AnchorRef CallManager::relayRef(const Call& call, sip::UsageId from, sip::UsageId to) const {
  return AnchorRef{call.relayKey, relayTag(call, from), relayTag(call, to), {}};
}

void CallManager::viaRelay(Call& call, bool offer, AnchorRef ref, std::string sdp, RelayStep next) {
  // Lost: the call's relay is gone; SDP passes through until the call is re-anchored
  // (reanchor.cpp).
  bool direct = call.media == MediaState::Direct || call.media == MediaState::Lost || !anchor_ ||
                anchorMode_ == AnchorMode::Off;
  if (sdp.empty() || direct) return next(call, std::move(sdp));
  if (call.media == MediaState::Pending && !anchor_->available()) {
    goDirect(call, "no relay answers");
    return next(call, std::move(sdp));
  }
  if (call.relayKey.empty()) newRelayKey(call);
  ref.key = call.relayKey;
  CallId id = call.id;
  std::weak_ptr<int> alive = alive_;
  auto done = [this, alive, id, raw = sdp, next = std::move(next)](Result<std::string> r) {
    if (!alive.lock()) return;
    Call* c = callOf(id);
    if (!c || c->ended()) return; // its end released the session
    // The relay was lost while this step was at it: its reply (if any) names a session that is
    // gone; the SDP passes through like every other until the call is re-anchored.
    if (c->media == MediaState::Lost) return next(*c, raw);
    if (r && c->media != MediaState::Direct) {
      relayDown_ = false;
      enterMedia(*c, MediaState::Anchored);
      return next(*c, std::move(*r));
    }
    if (c->media != MediaState::Anchored) {
      // The call's first reply failed (or an earlier one did): the whole call goes direct.
      if (!r) goDirect(*c, r.error().message);
      return next(*c, raw);
    }
    ++stats_.anchorFailures;
    g_anchorFailures.inc();
    logger("calls")->warn("call {}: media relay failed on an anchored call: {}", c->correlationId,
                          r.error().message);
    next(*c, r.error());
  };
  if (offer)
    anchor_->offer(ref, sdp, std::move(done));
  else
    anchor_->answer(ref, sdp, std::move(done));
}

void CallManager::newRelayKey(Call& call) {
  call.relayKey = "vb-" + sip::newCallId(config_.nodeId);
  ++stats_.anchoredLive;
  g_anchored.set(double(stats_.anchoredLive));
}

void CallManager::forgetRelayKey(Call& call) {
  if (call.relayKey.empty()) return;
  call.relayKey.clear();
  if (stats_.anchoredLive) --stats_.anchoredLive;
  g_anchored.set(double(stats_.anchoredLive));
}

void CallManager::releaseMedia(Call& call) {
  if (call.relayKey.empty() || !anchor_) return;
  anchor_->release(AnchorRef{call.relayKey, {}, {}, {}});
  forgetRelayKey(call);
}

void CallManager::releaseBranches(Call& call, const Fork* except) {
  if (call.relayKey.empty() || !anchor_) return;
  for (auto& f : call.forks) {
    if (&f == except || !f.anchored) continue;
    f.anchored = false;
    anchor_->release(AnchorRef{call.relayKey, "caller", "fork" + std::to_string(f.branch),
                               "b" + std::to_string(f.branch)});
  }
}

void CallManager::releaseAllMedia() {
  for (auto& [id, c] : calls_) releaseMedia(*c);
}

} // namespace verbund::pbx

// Re-anchoring after a relay loss (docs/architecture.md "Media" > "Relay failure"). When the
// relay that held anchored calls goes away (the own rtpengine died and is restarted, or an
// external instance stopped answering and the client fails over), rtpengine's sessions are gone
// with it and both phones of such a call send RTP to ports nobody reads. The seam reports the
// lost sessions (relayLost); each call's media become Lost and, once it is answered and no other
// offer is in progress, the call runs one more offer/answer exchange with the node as offerer
// on both legs (RFC 3725 flow I, as the attended transfer's join):
//
//   Idle -> ReanchorAsking  offerless re-INVITE to the inbound leg; its 2xx brings a fresh offer
//        -> ReanchorOffer   that offer goes to the relay (a new session)          [relay only]
//        -> ReanchorOther   re-INVITE with the relay's offer to the other leg
//        -> ReanchorAnswer  the other leg's answer goes to the relay              [relay only]
//        -> Idle            the relay's answer goes in the inbound leg's held ACK
//
// The phones' own offers meanwhile get 491 (one offer at a time). When no relay answers within
// reanchorWait, or the relay fails a step, the same exchange runs without it (the raw offer to
// the other leg, its raw answer in the ACK): direct media, warned and counted. A leg that
// refuses leaves the call as it is (counted); a leg that is gone ends the call as always. Work
// is bounded: at most reanchorBatch exchanges start per loop turn.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"

#include <unordered_set>

namespace verbund::pbx {

using sip::InviteSession;
using sip::Message;

namespace {
Counter g_relayLost("verbund_media_relay_lost_calls_total",
                    "Anchored calls whose media relay went away (died or failed over)");
Counter g_reanchored("verbund_media_reanchored_total",
                     "Calls re-anchored in a media relay after their relay was lost");
Counter g_reanchorDirect("verbund_media_reanchor_direct_total",
                         "Calls that fell back to direct media after their relay was lost");
Counter g_reanchorFailed("verbund_media_reanchor_failed_total",
                         "Re-anchorings a leg refused (the call is left as it is)");

std::string_view contentTypeOf(const Message& m) {
  auto ct = m.header(sip::HeaderId::ContentType);
  return ct ? *ct : std::string_view{};
}

// A leg that is busy with an offer of its own (or waits for an ACK) refuses ours at once; the
// exchange is tried again after this.
constexpr Duration kRetryBusyLeg{200};
} // namespace

void CallManager::setMediaAnchor(MediaAnchor* anchor, AnchorMode mode) {
  anchor_ = anchor;
  anchorMode_ = mode;
  if (!anchor_) return;
  std::weak_ptr<int> alive = alive_;
  anchor_->watch({[this, alive](const std::vector<std::string>& keys) {
                    if (alive.lock()) relayLost(keys);
                  },
                  [this, alive] {
                    if (alive.lock()) relayBack();
                  }});
}

void CallManager::enterMedia(Call& call, MediaState to) {
  if (call.media == to) return;
  if (!allowed(call.media, to)) {
    ++stats_.badTransitions;
    logger("calls")->error("bug: media {} -> {} is not a transition (refused)",
                           stateName(call.media), stateName(to));
    return;
  }
  call.media = to;
}

void CallManager::relayLost(const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::unordered_set<std::string> lost(keys.begin(), keys.end());
  size_t answered = 0, ringing = 0;
  for (auto& [id, c] : calls_) {
    Call& call = *c;
    if (call.ended() || call.media != MediaState::Anchored || !lost.count(call.relayKey)) continue;
    // The relay took the session with it: nothing to delete (an external instance that comes
    // back drops it by its own RTP timeout).
    forgetRelayKey(call);
    for (auto& f : call.forks) f.anchored = false;
    enterMedia(call, MediaState::Lost);
    ++stats_.relayLostCalls;
    g_relayLost.inc();
    if (call.connected()) {
      ++answered;
      reanchorLater(call);
    } else {
      ++ringing; // re-anchored once answered (enter Connected)
    }
  }
  if (answered + ringing)
    logger("calls")->warn("media relay lost with {} anchored call(s): {} answered to re-anchor, "
                          "{} ringing (re-anchored when answered)",
                          answered + ringing, answered, ringing);
}

void CallManager::relayBack() {
  if (!reanchorQueue_.empty()) scheduleReanchor(Duration(0));
}

void CallManager::reanchorLater(Call& call) {
  if (call.ended() || !call.connected() || call.media != MediaState::Lost) return;
  reanchorQueue_.push_back({call.id, timers_.now()});
  if (!reanchorTimer_) scheduleReanchor(Duration(0));
}

void CallManager::scheduleReanchor(Duration after) {
  if (reanchorTimer_) timers_.cancel(reanchorTimer_);
  std::weak_ptr<int> alive = alive_;
  reanchorTimer_ = timers_.after(after, [this, alive] {
    if (!alive.lock()) return;
    reanchorTimer_ = 0;
    pumpReanchor();
  });
}

void CallManager::pumpReanchor() {
  bool relay = anchor_ && anchor_->available();
  size_t work = 0;
  while (!reanchorQueue_.empty() && work < config_.reanchorBatch) {
    ReanchorWait w = reanchorQueue_.front();
    Call* c = callOf(w.id);
    // Stale entries: ended, re-anchored already, or an exchange of its own in progress (it is
    // queued again when that ends).
    if (!c || c->ended() || c->media != MediaState::Lost || c->offerState != OfferState::Idle) {
      reanchorQueue_.pop_front();
      continue;
    }
    // No relay yet: wait for it (relayBack) up to reanchorWait, then go direct.
    if (!relay && timers_.now() - w.since < config_.reanchorWait) break;
    reanchorQueue_.pop_front();
    ++work;
    bool transferRuns =
        c->transferTo || (c->transfer && c->transfer->state != TransferState::Done &&
                          c->transfer->state != TransferState::Failed);
    if (transferRuns) {
      // The transfer re-INVITEs these legs itself; try again once it is over.
      CallId id = c->id;
      timers_.after(kRetryBusyLeg * 5, [this, id, alive = std::weak_ptr<int>(alive_)] {
        if (!alive.lock()) return;
        if (Call* again = callOf(id)) reanchorLater(*again);
      });
      continue;
    }
    startReanchor(*c, relay);
  }
  if (reanchorQueue_.empty()) return;
  if (relay || work == config_.reanchorBatch) return scheduleReanchor(config_.reanchorPace);
  auto waited = timers_.now() - reanchorQueue_.front().since;
  auto left = std::chrono::duration_cast<Duration>(config_.reanchorWait - waited);
  scheduleReanchor(std::max(left, Duration(0)));
}

void CallManager::startReanchor(Call& call, bool relay) {
  InviteSession* in = session(call.inbound);
  InviteSession* other = session(call.other);
  if (!in || !other) return; // a leg is ending: the call ends with it
  // RFC 3725 flow I: ask the inbound phone for a fresh offer (its current ports and direction).
  sip::OfferOptions opts; // a 491 is retried by the dialog layer (RFC 3261 §14.1)
  if (auto r = in->reinvite({}, {}, {}, opts); !r) {
    // The leg has an INVITE of its own in progress or waits for an ACK: try again shortly.
    logger("calls")->debug("call {}: re-anchoring waits: {}", call.correlationId,
                           r.error().message);
    CallId id = call.id;
    timers_.after(kRetryBusyLeg, [this, id, alive = std::weak_ptr<int>(alive_)] {
      if (!alive.lock()) return;
      if (Call* c = callOf(id)) reanchorLater(*c);
    });
    return;
  }
  if (!relay) {
    enterMedia(call, MediaState::Direct);
    reanchorDirect(call, "no relay answered within the wait");
    // reanchorDirect counted; the exchange itself starts below in direct mode.
  }
  enterOffer(call, OfferState::ReanchorAsking);
  call.offerFrom = call.inbound;
}

void CallManager::reanchorAnswered(Call& call, InviteSession& s, sip::Method method,
                                   const Message& response) {
  if (method != sip::Method::Invite) return;
  if (call.offerState == OfferState::ReanchorAsking && s.id() == call.inbound)
    return reanchorOffered(call, s, response);
  if (call.offerState != OfferState::ReanchorOther || s.id() != call.other) return;
  int status = response.statusCode();
  if (status >= 300 || response.body().empty()) {
    if (call.media == MediaState::Anchored)
      return reanchorDirect(call, "the other leg refused the relay's offer (" +
                                      std::to_string(status) + ")");
    return reanchorFailed(call, "the other leg refused the offer (" + std::to_string(status) + ")");
  }
  if (call.media != MediaState::Anchored) return reanchorDone(call, std::string(response.body()));
  enterOffer(call, OfferState::ReanchorAnswer);
  CallId id = call.id;
  std::weak_ptr<int> alive = alive_;
  anchor_->answer(relayRef(call, call.inbound, call.other), std::string(response.body()),
                  [this, alive, id](Result<std::string> r) {
                    if (!alive.lock()) return;
                    Call* c = callOf(id);
                    if (!c || c->ended() || c->offerState != OfferState::ReanchorAnswer) return;
                    if (!r) return reanchorDirect(*c, "relay answer failed: " + r.error().message);
                    reanchorDone(*c, *r);
                  });
}

void CallManager::reanchorOffered(Call& call, InviteSession& s, const Message& response) {
  if (response.statusCode() >= 300 || !s.ackPending() || response.body().empty())
    return reanchorFailed(call, "the inbound leg gave no offer (" +
                                    std::to_string(response.statusCode()) + ")");
  call.reanchorType = std::string(contentTypeOf(response));
  call.reanchorOffer = std::string(response.body());
  if (call.media == MediaState::Direct) {
    enterOffer(call, OfferState::ReanchorOther);
    return reanchorToOther(call, call.reanchorOffer);
  }
  enterOffer(call, OfferState::ReanchorOffer);
  newRelayKey(call);
  CallId id = call.id;
  std::weak_ptr<int> alive = alive_;
  anchor_->offer(relayRef(call, call.inbound, call.other), call.reanchorOffer,
                 [this, alive, id](Result<std::string> r) {
                   if (!alive.lock()) return;
                   Call* c = callOf(id);
                   if (!c || c->ended() || c->offerState != OfferState::ReanchorOffer) return;
                   if (!r) return reanchorDirect(*c, "relay offer failed: " + r.error().message);
                   enterMedia(*c, MediaState::Anchored);
                   enterOffer(*c, OfferState::ReanchorOther);
                   reanchorToOther(*c, *r);
                 });
}

void CallManager::reanchorToOther(Call& call, const std::string& body) {
  InviteSession* other = session(call.other);
  sip::OfferOptions opts; // glare with the other phone: the dialog layer retries (§14.1)
  auto r = other ? other->reinvite(call.reanchorType, body, {}, opts)
                 : Result<void>(Error{481, "other leg gone"});
  if (r) return;
  if (call.media == MediaState::Anchored)
    return reanchorDirect(call, "re-INVITE of the other leg not sent: " + r.error().message);
  reanchorFailed(call, "re-INVITE of the other leg not sent: " + r.error().message);
}

void CallManager::reanchorDone(Call& call, const std::string& answer) {
  InviteSession* in = session(call.inbound);
  bool anchored = call.media == MediaState::Anchored;
  if (in && in->ackPending()) (void)in->ack(call.reanchorType, answer);
  call.reanchorOffer.clear();
  enterOffer(call, OfferState::Idle);
  if (!anchored) {
    logger("calls")->info("call {}: direct media after the relay loss", call.correlationId);
    return;
  }
  ++stats_.reanchored;
  g_reanchored.inc();
  relayDown_ = false;
  logger("calls")->info("call {}: re-anchored in the media relay (session {})", call.correlationId,
                        call.relayKey);
  // Music on hold went with the old session: the held party hears it again.
  if (call.heldLeg) anchor_->playHold(AnchorRef{call.relayKey, relayTag(call, call.heldLeg)});
}

void CallManager::reanchorDirect(Call& call, std::string_view why) {
  ++stats_.reanchorDirect;
  g_reanchorDirect.inc();
  auto level = relayDown_ ? spdlog::level::debug : spdlog::level::warn;
  relayDown_ = true;
  logger("calls")->log(level, "call {}: not re-anchored ({}): direct media", call.correlationId,
                       why);
  if (call.offerState == OfferState::Idle) return; // startReanchor: the exchange begins now
  // The relay failed mid-exchange: its session goes, the other leg gets the raw offer.
  releaseMedia(call);
  if (call.media != MediaState::Direct) enterMedia(call, MediaState::Direct);
  enterOffer(call, OfferState::ReanchorOther);
  reanchorToOther(call, call.reanchorOffer);
}

void CallManager::reanchorFailed(Call& call, std::string_view why) {
  ++stats_.reanchorFailed;
  g_reanchorFailed.inc();
  logger("calls")->warn("call {}: re-anchoring failed ({}); the call stays up as it is",
                        call.correlationId, why);
  InviteSession* in = session(call.inbound);
  if (in && in->ackPending()) (void)in->ack({}, {});
  releaseMedia(call);
  if (call.media != MediaState::Direct) enterMedia(call, MediaState::Direct);
  call.reanchorOffer.clear();
  enterOffer(call, OfferState::Idle);
}

} // namespace verbund::pbx

// Forks: the outbound INVITEs of a call (devices of local users, other nodes, the external line),
// their answers, the federation fallback, and the decision when every fork has failed.
#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"
#include "sip/message/builder.h"
#include "sip/message/headers.h"

#include <algorithm>

namespace verbund::pbx {

using sip::InviteSession;
using sip::Message;

Counter g_callsAnswered("verbund_calls_answered_total", "Calls answered");

namespace {
Counter g_remoteForks("verbund_call_remote_forks_total", "INVITEs sent to other federation nodes");
Counter g_fallbacks("verbund_call_fallbacks_total",
                    "Forks to other nodes that went over the external line instead");
Counter g_forksLost("verbund_call_forks_lost_total",
                    "Forks to other nodes failed at once because the node went away (link down, "
                    "SIP-over-TLS connection closed)");

// RFC 3326 Reason for forks cancelled because another one answered.
const sip::HeaderField kCompletedElsewhere[] = {
    {"Reason", "SIP;cause=200;text=\"Call completed elsewhere\""}};
} // namespace

void CallManager::ringParties(Call& call, const std::vector<Party>& parties) {
  bool federated = call.fromOtherNode();
  for (const auto& p : parties) {
    // A user calling a group they are in does not ring themselves.
    if (call.group && call.caller.kind != Caller::Kind::Trunk &&
        p.extension == call.caller.party.extension &&
        (p.owner == call.caller.party.owner || (!isRemote(p) && !isRemote(call.caller.party))))
      continue;
    if (isRemote(p)) {
      // A member of a local group on another node (mode User: that node rings exactly them),
      // or a direct call to another node's user (mode Route).
      if (remote_)
        startRemoteFork(call, p, p.extension, call.group ? CallMode::User : CallMode::Route, {},
                        !federated || call.forwardsHere > 0);
    } else {
      for (const auto& d : directory_.devices(p.sipUser)) startFork(call, p, d);
    }
    if (call.group)
      call.parties.push_back({PartyRole::Rang, p.extension, p.displayName,
                              isRemote(p) ? p.owner : "", Disposition::Missed});
  }
  afterForksStarted(call);
}

void CallManager::afterForksStarted(Call& call) {
  if (call.ended()) return;
  if (std::none_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.live(); })) {
    // A single user with no registered device: their forwarding on "unregistered" applies, else
    // (seed PBX behaviour) the no-answer forwarding at once, else the busy one.
    if (!forwardOn(call, ForwardWhen::Unregistered) &&
        !forwardUnreachable(call, uint8_t(DiversionReason::Unavailable)))
      failCall(call, 480, "Temporarily Unavailable");
    return;
  }
  enter(call, CallState::Ringing);
  journalRinging(call);
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Early, true);
  CallId id = call.id;
  timers_.cancel(call.noAnswer);
  // A blind transfer's target rings for the recall time (the recall itself rings as long as
  // any call); a user who forwards on no answer chose how long their phones ring first.
  Duration ring = config_.noAnswer;
  if (call.transfer && call.transfer->state != TransferState::Recalling &&
      config_.transferRecall.count() > 0) {
    ring = config_.transferRecall;
  } else if (call.callee && !call.group && !isRemote(*call.callee) &&
             features_->forwardTarget(*call.callee, ForwardWhen::NoAnswer)) {
    ring = features_->noAnswerAfter(*call.callee).value_or(ring);
  }
  call.noAnswer = timers_.after(ring, [this, id] {
    Call* c = callOf(id);
    if (!c || !c->unanswered()) return;
    c->noAnswer = 0;
    cancelForks(*c, nullptr, false);
    if (!forwardOn(*c, ForwardWhen::NoAnswer)) failCall(*c, 480, "No Answer");
  });
}

void CallManager::startFork(Call& call, const Party& party, const DeviceTarget& device) {
  sip::DialogManager::InviteParams p;
  p.requestUri = device.contactUri;
  const std::string& fromUser = callerIdOf(call.caller);
  std::string fromName = sip::quotedDisplayName(callerNameOf(call.caller));
  p.from = (fromName.empty() ? std::string() : fromName + " ") + "<sip:" + fromUser + "@" +
           config_.domain + ">";
  p.to = sip::quotedDisplayName(party.displayName) + " <sip:" + party.extension + "@" +
         config_.domain + ">";
  p.callId = sip::newCallId(config_.domain);
  p.routes = device.routes;
  p.target = device.peer;
  p.contentType = call.offerType;
  p.body = call.offer;
  p.headers.emplace_back("P-Asserted-Identity", p.from);
  if (call.group) p.headers.emplace_back("Alert-Info", "<urn:alert:service:group>");
  Fork f;
  f.kind = ForkKind::Device;
  f.party = party;
  f.target = device.peer;
  if (!launchFork(call, std::move(f), std::move(p)))
    logger("calls")->warn("call {}: INVITE to {} failed", call.correlationId, party.extension);
}

CallManager::Fork* CallManager::forkByBranch(Call& call, uint32_t branch) {
  for (auto& f : call.forks)
    if (f.branch == branch) return &f;
  return nullptr;
}

bool CallManager::launchFork(Call& call, Fork fork, sip::DialogManager::InviteParams p) {
  fork.branch = ++call.branches;
  uint32_t branch = fork.branch;
  if (p.body.empty() || !anchorsFork(call, fork.kind)) {
    call.forks.push_back(std::move(fork));
    if (sendFork(call, branch, std::move(p))) return true;
    call.forks.pop_back(); // the last one: sendFork adds none
    return false;
  }
  // Each fork gets its own relay branch (its own relay ports); its INVITE waits for them.
  fork.state = ForkState::Anchoring;
  fork.pending = std::make_shared<sip::DialogManager::InviteParams>(std::move(p));
  std::string offer = fork.pending->body;
  call.forks.push_back(std::move(fork));
  AnchorRef ref{{}, "caller", {}, "b" + std::to_string(branch)};
  viaRelay(call, true, ref, std::move(offer), [this, branch](Call& c, Result<std::string> sdp) {
    forkAnchored(c, branch, std::move(sdp));
  });
  return true;
}

void CallManager::forkAnchored(Call& call, uint32_t branch, Result<std::string> sdp) {
  Fork* f = forkByBranch(call, branch);
  if (!f || f->state != ForkState::Anchoring || !f->pending) return; // given up meanwhile
  auto p = std::move(*f->pending);
  f->pending.reset();
  bool sent = false;
  if (sdp) {
    f->anchored = call.media == MediaState::Anchored;
    p.body = std::move(*sdp);
    sent = sendFork(call, branch, std::move(p));
  }
  f = forkByBranch(call, branch);
  if (sent || !f) return;
  logger("calls")->warn("call {}: fork to {} not sent ({})", call.correlationId, f->party.extension,
                        sdp ? "INVITE refused" : "media relay failed");
  f->status = 503;
  if (call.state == CallState::Routing) {
    // Still inside the routing stages: afterForksStarted decides when no fork is left.
    enter(call, *f, ForkState::Failed);
    return;
  }
  if (f->kind == ForkKind::Remote && f->mayFallBack) {
    enter(call, *f, ForkState::FellBack);
    Party party = f->party; // startFallbackFork adds a fork: `f` may move
    if (startFallbackFork(call, party)) return;
  } else {
    enter(call, *f, ForkState::Failed);
  }
  forksSettled(call, 503);
}

bool CallManager::sendFork(Call& call, uint32_t branch, sip::DialogManager::InviteParams p) {
  auto id = dm_.invite(std::move(p));
  Fork* f = forkByBranch(call, branch);
  if (!id || !f) return false;
  bool wasAnchoring = f->state == ForkState::Anchoring;
  if (wasAnchoring) enter(call, *f, ForkState::Calling);
  f->invite = *id;
  std::string ourTag;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f->callId = ci->callId();
    ourTag = ci->localTag();
  }
  switch (f->kind) {
  case ForkKind::Device:
    // RFC 4235 §4.1 from the callee's side: our From tag is its remote tag; its own tag (local)
    // is known once it answers provisionally.
    line(call, f->party, LineEvent::State::Early, false, f->callId, {}, ourTag);
    break;
  case ForkKind::Remote:
    if (f->mayFallBack) {
      CallId cid = call.id;
      sip::UsageId inv = *id;
      f->fallbackTimer = timers_.after(config_.federationFallback,
                                       [this, cid, inv] { onFallbackTimer(cid, inv); });
    }
    ++stats_.remoteForks;
    g_remoteForks.inc();
    break;
  case ForkKind::Fallback:
    f->sentMs = nowMs();
    break;
  case ForkKind::Trunk:
    break;
  }
  // A fork sent after the relay answered: the journal gets its CANCEL.
  if (wasAnchoring && call.state == CallState::Ringing) journalRinging(call);
  return true;
}

void CallManager::startTrunkFork(Call& call, const std::string& number) {
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  // A forwarded call shows the original caller (From / P-Asserted-Identity as the trunk's caller-ID
  // mode writes them) and names the forwarding users in Diversion headers (RFC 5806). A transfer
  // of a caller who is not a local user shows the transferring user's number (the carrier takes
  // only the site's numbers).
  bool forwarded = call.forwardsHere > 0;
  Party from = call.transfer && call.caller.kind != Caller::Kind::LocalUser ? call.transfer->by
               : forwarded                                                  ? originalCaller(call)
                                                                            : call.caller.party;
  if (!externalLine_ || !externalLine_->prepareOutbound(number, from, p)) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  if (forwarded) addDiversions(call, p, true);
  Fork f;
  f.kind = ForkKind::Trunk;
  f.party.extension = number;
  if (!launchFork(call, std::move(f), std::move(p))) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  if (call.ended()) return;
  enter(call, CallState::Ringing);
  journalRinging(call);
  line(call, call.caller.party, LineEvent::State::Early, true);
}

void CallManager::forwardToNode(Call& call, const Party& party, const std::string& requestUser,
                                const std::string& replaces) {
  call.callee = party;
  call.parties.push_back(
      {PartyRole::Callee, party.extension, party.displayName, party.owner, Disposition::Missed});
  startRemoteFork(call, party, requestUser, CallMode::Route, replaces, false);
  afterForksStarted(call);
}

void CallManager::startRemoteFork(Call& call, const Party& party, const std::string& requestUser,
                                  CallMode mode, const std::string& replaces, bool mayFallBack) {
  const std::string owner = party.owner;
  addNode(call, owner);
  bool fallBackAllowed = mayFallBack && (!call.fromOtherNode() || call.forwardsHere > 0);
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
  addDiversions(call, p, false);
  if (!replaces.empty()) p.headers.emplace_back("Replaces", replaces);
  Fork f;
  f.kind = ForkKind::Remote;
  f.party = party;
  f.target = p.target;
  f.mayFallBack = fallBackAllowed;
  if (!launchFork(call, std::move(f), std::move(p))) {
    logger("calls")->warn("call {}: INVITE to node {} for {} failed", call.correlationId, owner,
                          requestUser);
    viaExternalLine();
  }
}

bool CallManager::startFallbackFork(Call& call, const Party& party) {
  if (party.externalNumber.empty() || !externalLine_) return false;
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  bool forwarded = call.forwardsHere > 0;
  Party caller = call.transfer && call.caller.kind != Caller::Kind::LocalUser ? call.transfer->by
                 : forwarded                                                  ? originalCaller(call)
                                                                              : call.caller.party;
  if (!externalLine_->prepareOutbound(party.externalNumber, caller, p)) return false;
  // The call's federation id, for the answering site's record (carriers may drop it).
  p.headers.emplace_back(std::string(kCorrelationHeader), call.correlationId);
  if (forwarded) addDiversions(call, p, true);
  auto from = sip::parseNameAddr(p.from);
  // The records name the user, reached at their external number.
  Fork fork;
  fork.kind = ForkKind::Fallback;
  fork.party = party;
  fork.sentCaller = from ? sip::unescape(from->uri.user).value_or("") : std::string();
  if (!launchFork(call, std::move(fork), std::move(p))) return false;
  ++stats_.fallbacks;
  g_fallbacks.inc();
  if (remote_) remote_->countFallback(party.owner);
  logger("calls")->info("call {}: {} of node {} over the external line", call.correlationId,
                        party.extension, party.owner);
  if (call.state == CallState::Ringing) journalRinging(call); // the new fork's CANCEL
  return true;
}

void CallManager::onFallbackTimer(CallId id, sip::UsageId invite) {
  Call* call = callOf(id);
  if (!call || !call->unanswered()) return;
  Fork* fork = forkOf(*call, invite);
  if (!fork) return;
  fork->fallbackTimer = 0;
  if (fork->state != ForkState::Calling) return;
  // Federation §"Fallback": no provisional answer in time: cancel, go over the external line.
  enter(*call, *fork, ForkState::FellBack);
  Party party = fork->party; // startFallbackFork adds a fork: `fork` may move
  if (sip::ClientInvite* ci = dm_.clientInvite(invite)) (void)ci->cancel();
  if (!startFallbackFork(*call, party)) forksSettled(*call, 480);
}

// ---- Answers of forks (InviteHandler, UAC side) ----

void CallManager::onProvisional(sip::ClientInvite& invite, InviteSession* s,
                                const Message& response) {
  Call* call = callOf(invite.appData);
  if (!call || call->ended()) return;
  if (s) s->appData = call->id;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork || !fork->live()) return;
  // Any provisional answer (also 100 Trying) shows the node is there: no fallback any more.
  if (response.statusCode() == 100) {
    if (fork->state == ForkState::Calling) enter(*call, *fork, ForkState::Proceeding);
    if (fork->fallbackTimer) {
      timers_.cancel(fork->fallbackTimer);
      fork->fallbackTimer = 0;
    }
    return;
  }
  if (fork->fallbackTimer) {
    timers_.cancel(fork->fallbackTimer);
    fork->fallbackTimer = 0;
  }
  if (s && fork->state != ForkState::Ringing && !fork->external())
    line(*call, fork->party, LineEvent::State::Early, false, fork->callId,
         s->dialog().id().remoteTag, s->dialog().id().localTag);
  enter(*call, *fork, ForkState::Ringing);
  if (call->transfer) {
    // The transferee's leg is answered already: the transferor hears of the ringing instead.
    if (call->unanswered()) transferRinging(*call);
    return;
  }
  if (!call->unanswered() || call->alerting == Alerting::Ringing) return;
  if (InviteSession* in = session(call->inbound)) {
    // Early media (183 with SDP) goes to the caller (through the relay when the fork's offer
    // did); otherwise a plain 180.
    bool early = response.statusCode() == 183 && !response.body().empty();
    auto ct = response.header(sip::HeaderId::ContentType);
    call->alerting = early ? Alerting::EarlyMedia : Alerting::Ringing;
    if (!early) {
      (void)in->provisional(180);
      return;
    }
    std::string type(ct ? *ct : "application/sdp");
    uint32_t branch = fork->branch;
    if (!fork->anchored)
      return deliverEarlyMedia(*call, branch, std::string(response.body()), type);
    AnchorRef ref{{}, "caller", "fork" + std::to_string(branch), "b" + std::to_string(branch)};
    viaRelay(*call, false, ref, std::string(response.body()),
             [this, branch, type](Call& c, Result<std::string> sdp) {
               deliverEarlyMedia(c, branch, std::move(sdp), type);
             });
  }
}

void CallManager::deliverEarlyMedia(Call& call, uint32_t branch, Result<std::string> sdp,
                                    std::string type) {
  Fork* fork = forkByBranch(call, branch);
  InviteSession* in = session(call.inbound);
  if (!call.unanswered() || !fork || !fork->live() || !in) return;
  if (sdp)
    (void)in->provisional(183, type, *sdp);
  else
    (void)in->provisional(180); // the relay failed: the caller hears its own ringback
}

void CallManager::onConnected(InviteSession& s, const Message& message) {
  if (!s.isUac()) {
    // The caller's ACK for our 2xx: with a delayed offer it carries the answer.
    if (Call* call = callOf(s.appData); call && call->connected()) relayAck(*call, s, message);
    return;
  }
  sip::ClientInvite* ci = dm_.clientInvite(s.clientInvite());
  Call* call = callOf(s.appData ? s.appData : (ci ? ci->appData : 0));
  Fork* fork = call && call->unanswered() ? forkOf(*call, s.clientInvite()) : nullptr;
  if (!fork || !fork->live()) {
    // A late answer from another fork (or after the caller left): RFC 3261 §13.2.2.4 ACK+BYE.
    (void)s.end();
    return;
  }
  answered(*call, *fork, s, message);
}

void CallManager::onFailure(sip::ClientInvite& invite, int status, const Message*) {
  Call* call = callOf(invite.appData);
  if (!call || !call->unanswered()) return;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork) return;
  fork->status = status;
  if (fork->kind == ForkKind::Remote && fork->mayFallBack && fork->live() &&
      shouldFallBack(status, fork->heard())) {
    enter(*call, *fork, ForkState::FellBack);
    Party party = fork->party; // startFallbackFork adds a fork: `fork` may move
    if (startFallbackFork(*call, party)) return;
    fork = forkOf(*call, invite.id());
    if (!fork) return;
  }
  if (fork->live()) enter(*call, *fork, ForkState::Failed);
  if (!fork->external()) line(*call, fork->party, LineEvent::State::Terminated, false);
  forksSettled(*call, status);
}

void CallManager::forksSettled(Call& call, int status) {
  if (!call.unanswered()) return;
  if (std::any_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.live(); }))
    return;
  // RFC 3261 §16.7 in spirit: a busy anywhere means busy; a single fork's answer is passed on;
  // otherwise the callee is temporarily unavailable. Forks replaced by the external line do not
  // count.
  bool busy = std::any_of(call.forks.begin(), call.forks.end(),
                          [](const Fork& f) { return f.status == 486 || f.status == 600; });
  size_t counted = size_t(std::count_if(call.forks.begin(), call.forks.end(), [](const Fork& f) {
    return f.state != ForkState::FellBack;
  }));
  if (busy) {
    if (!forwardOn(call, ForwardWhen::Busy)) failCall(call, 486, "Busy Here");
  } else if (counted == 1 && status >= 400 && status != 487 && status != 408) {
    failCall(call, status, {});
  } else {
    failCall(call, 480, "Temporarily Unavailable");
  }
}

void CallManager::answered(Call& call, Fork& fork, InviteSession& s, const Message& answer) {
  enter(call, fork, ForkState::Answered);
  enter(call, CallState::Connected);
  call.other = s.id();
  s.appData = call.id;
  call.answeredBy = fork.party;
  call.answer = fork.kind == ForkKind::Remote  ? AnswerKind::Remote
                : fork.kind == ForkKind::Trunk ? AnswerKind::External
                                               : AnswerKind::Fork;
  call.answerMs = nowMs();
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  ++stats_.answered;
  g_callsAnswered.inc();
  cancelForks(call, &fork, true);
  releaseBranches(call, &fork);
  journalSettled(call);
  call.otherTag = "fork" + std::to_string(fork.branch);
  auto ct = answer.header(sip::HeaderId::ContentType);
  std::string type(ct ? *ct : std::string_view{});
  // A 2xx with an offer (our INVITE had none: delayed offer) waits for the caller's ACK.
  bool offerInAnswer = s.ackPending() && !answer.body().empty();
  bool viaAnchor =
      !answer.body().empty() && (fork.anchored || (offerInAnswer && anchorsFork(call, fork.kind)));
  if (call.transfer || !viaAnchor) {
    bool delivered = false;
    InviteSession* in = session(call.inbound);
    if (call.transfer)
      delivered = joinTransferee(call, s, answer);
    else
      delivered = in && in->accept(type, answer.body());
    connectedTo(call, fork.branch, s, delivered);
    return;
  }
  // Through the relay first: the caller's 2xx waits (OfferState::AnchoringAnswer).
  enterOffer(call, OfferState::AnchoringAnswer);
  call.offerFrom = call.inbound;
  sip::UsageId leg = s.id();
  AnchorRef ref = offerInAnswer
                      ? AnchorRef{{}, call.otherTag, "caller", {}}
                      : AnchorRef{{}, "caller", call.otherTag, "b" + std::to_string(fork.branch)};
  viaRelay(call, offerInAnswer, ref, std::string(answer.body()),
           [this, leg, type, offerInAnswer](Call& c, Result<std::string> sdp) {
             deliverAnswer(c, leg, std::move(sdp), type, offerInAnswer);
           });
}

void CallManager::deliverAnswer(Call& call, sip::UsageId leg, Result<std::string> sdp,
                                std::string type, bool offerInAnswer) {
  if (call.offerState != OfferState::AnchoringAnswer || call.other != leg) return;
  enterOffer(call, offerInAnswer ? OfferState::AwaitingAck : OfferState::Idle);
  if (offerInAnswer) call.offerFrom = call.inbound;
  InviteSession* in = session(call.inbound);
  InviteSession* s = session(leg);
  Fork* fork = nullptr;
  for (auto& f : call.forks)
    if (f.state == ForkState::Answered) fork = &f;
  if (!sdp) {
    // The relay failed on an anchored call: its first answer cannot be given; the call ends.
    if (in) (void)in->reject(503, "Media Relay Unavailable");
    hangUp(call, 0);
    return;
  }
  bool delivered = in && s && fork && in->accept(type, *sdp);
  if (!fork || !s) return hangUp(call, 0);
  connectedTo(call, fork->branch, *s, delivered);
}

void CallManager::connectedTo(Call& call, uint32_t branch, InviteSession& s, bool delivered) {
  Fork* found = forkByBranch(call, branch);
  if (!found) return;
  Fork& fork = *found;
  if (!delivered) {
    // The caller is gone (its INVITE can no longer be answered): without this the answered
    // leg would stay up and the call listed as active until the callee hangs up.
    logger("calls")->info("call {}: answered after the caller left", call.correlationId);
    hangUp(call, 0);
    return;
  }
  for (auto& f : call.forks)
    if (&f != &fork && !f.external()) line(call, f.party, LineEvent::State::Terminated, false);
  if (!fork.external())
    line(call, fork.party, LineEvent::State::Confirmed, false, fork.callId,
         s.dialog().id().remoteTag, s.dialog().id().localTag);
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Confirmed, true);
  saveRecord(call);
  // A fork to another node: that node knows who answered there and tells (a transfer's call
  // tells too: only this node knows the transfer).
  if (call.answer != AnswerKind::Remote || call.transfer) shareOutcome(call);
}

void CallManager::nodeLost(const std::string& owner, std::string_view why, const SockAddr* via) {
  std::vector<CallId> ids;
  for (const auto& [id, c] : calls_)
    if (c->unanswered()) ids.push_back(id);
  for (CallId id : ids) {
    Call* call = callOf(id);
    if (!call || !call->unanswered()) continue;
    if (!via && isFederation(call->caller) && call->caller.party.owner == owner) {
      logger("calls")->info("call {}: the calling node {} is gone ({}): ending it",
                            call->correlationId, owner, why);
      cancelForks(*call, nullptr, false);
      failCall(*call, 480, "Calling node lost");
      continue;
    }
    std::vector<sip::UsageId> lost;
    for (const auto& f : call->forks)
      if (f.kind == ForkKind::Remote && f.live() && f.party.owner == owner &&
          (!via || (f.target && f.target->remote == *via)))
        lost.push_back(f.invite);
    for (sip::UsageId invite : lost) {
      logger("calls")->info("call {}: node {} is gone ({}): its fork fails", call->correlationId,
                            owner, why);
      forkLost(*call, invite);
    }
  }
}

void CallManager::forkLost(Call& call, sip::UsageId invite) {
  if (!call.unanswered()) return;
  Fork* fork = forkOf(call, invite);
  if (!fork || !fork->live()) return;
  ++stats_.forksLost;
  g_forksLost.inc();
  fork->status = 480;
  bool fallBack = fork->mayFallBack;
  enter(call, *fork, fallBack ? ForkState::FellBack : ForkState::Failed);
  Party party = fork->party; // startFallbackFork adds a fork: `fork` may move
  // The CANCEL is held until a provisional answer (RFC 3261 §9.1), so after a 180 it goes out; a
  // node that is gone never sees it, one that was cut off answers 481 at worst.
  if (sip::ClientInvite* ci = dm_.clientInvite(invite)) (void)ci->cancel();
  if (fallBack && startFallbackFork(call, party)) return;
  forksSettled(call, 480);
}

void CallManager::cancelForks(Call& call, const Fork* except, bool completedElsewhere) {
  for (auto& f : call.forks) {
    if (f.fallbackTimer) {
      timers_.cancel(f.fallbackTimer);
      f.fallbackTimer = 0;
    }
    if (&f == except || !f.live()) continue;
    enter(call, f, ForkState::Cancelled);
    f.pending.reset(); // an INVITE still waiting for the relay is never sent
    if (sip::ClientInvite* ci = dm_.clientInvite(f.invite)) {
      if (completedElsewhere)
        (void)ci->cancel(kCompletedElsewhere);
      else
        (void)ci->cancel();
    }
  }
}

} // namespace verbund::pbx

// The call engine's core: calls are created from new INVITEs, change state only through the
// transition functions below, and end in one place (endCall) that writes the record and
// terminates the line state. Routing, forking, offer relay, pickup and records live in their own
// files (see call_manager.h).
#include "pbx/calls/call_manager.h"

#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/call.h"

#include <algorithm>
#include <cctype>

namespace verbund::pbx {

using sip::InviteEnd;
using sip::InviteSession;
using sip::Message;

namespace {
Counter g_calls("verbund_calls_total", "Calls started (inbound INVITEs routed)");
Counter g_callsFailed("verbund_calls_failed_total", "Calls that ended without an answer");
Counter g_legsLost("verbund_call_legs_lost_total",
                   "Calls ended because a leg failed (session timer expiry, no ACK, timeout, "
                   "transport error)");
Counter g_staleInvites("verbund_call_stale_invites_total",
                       "Late INVITEs from other nodes refused: the call was answered or had ended");
Counter g_badTransitions("verbund_call_bad_transitions_total",
                         "Bugs: call state changes the transition tables forbid (refused)");

// Dialled digits: the Request-URI user without visual separators (RFC 3966 §5.1.1).
std::string dialledOf(const Message& invite) {
  std::string out;
  auto user = sip::unescape(invite.requestUri().user).value_or("");
  for (char c : user)
    if (c != '-' && c != '.' && c != '(' && c != ')' && c != ' ') out += c;
  return out;
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

CallManager::CallManager(sip::DialogManager& dm, Timers& timers, CallDirectory& directory,
                         CallLog& log, CallManagerConfig config)
    : dm_(dm), timers_(timers), directory_(directory), log_(log), config_(std::move(config)) {
  log_.setLocalNode(config_.nodeId);
}

CallManager::~CallManager() {
  if (reanchorTimer_) timers_.cancel(reanchorTimer_);
  for (auto& [id, call] : calls_) {
    timers_.cancel(call->noAnswer);
    for (auto& f : call->forks)
      if (f.fallbackTimer) timers_.cancel(f.fallbackTimer);
  }
}

// ---- Transitions ----

namespace {
template <typename S> void refuse(uint64_t& counter, std::string_view what, S from, S to) {
  ++counter;
  g_badTransitions.inc();
  logger("calls")->error("bug: {} {} -> {} is not a transition (refused)", what, stateName(from),
                         stateName(to));
}
} // namespace

void CallManager::enter(Call& call, CallState to) {
  if (call.state == to) return;
  if (!allowed(call.state, to)) return refuse(stats_.badTransitions, "call", call.state, to);
  call.state = to;
  // A call answered after its relay was lost is re-anchored now (reanchor.cpp).
  if (to == CallState::Connected && call.media == MediaState::Lost) reanchorLater(call);
}

void CallManager::enter(Call&, Fork& fork, ForkState to) {
  if (fork.state == to) return;
  if (!allowed(fork.state, to)) return refuse(stats_.badTransitions, "fork", fork.state, to);
  fork.state = to;
  if (!fork.live() && fork.fallbackTimer) {
    timers_.cancel(fork.fallbackTimer);
    fork.fallbackTimer = 0;
  }
}

void CallManager::enterOffer(Call& call, OfferState to) {
  if (call.offerState == to) return;
  if (!allowed(call.offerState, to))
    return refuse(stats_.badTransitions, "offer", call.offerState, to);
  call.offerState = to;
  if (to == OfferState::Idle) {
    call.offerTx = 0;
    call.offerFrom = 0;
    // An exchange that ended while the call's relay was lost: its re-anchoring may start.
    if (call.media == MediaState::Lost) reanchorLater(call);
  }
}

// ---- Lookup ----

CallManager::Call* CallManager::callOf(uint64_t appData) {
  auto it = calls_.find(appData);
  return it == calls_.end() ? nullptr : it->second.get();
}

CallManager::Fork* CallManager::forkOf(Call& call, sip::UsageId clientInvite) {
  for (auto& f : call.forks)
    if (f.invite == clientInvite) return &f;
  return nullptr;
}

bool CallManager::isRemote(const Party& p) const {
  return !p.owner.empty() && p.owner != config_.nodeId;
}

void CallManager::addNode(Call& call, const std::string& owner) {
  if (owner.empty() || owner == config_.nodeId) return;
  if (std::find(call.nodes.begin(), call.nodes.end(), owner) == call.nodes.end())
    call.nodes.push_back(owner);
}

// ---- A new call ----

void CallManager::onNewSession(InviteSession& session, const Message& invite) {
  std::optional<Caller> caller;
  if (callerCheck_) {
    caller = callerCheck_(session, invite);
    if (!caller) return; // the check answered (challenge or refusal)
  } else {
    caller = Caller{};
    caller->party.extension = std::string(invite.from().uri.user);
  }
  if (isFederation(*caller) && !caller->correlationId.empty()) {
    // A late INVITE (queued while a link was cut, delivered when it returned) must not ring a
    // phone for a call the federation already answered or ended.
    if (std::string why = staleFederationInvite(caller->correlationId); !why.empty()) {
      ++stats_.staleInvites;
      g_staleInvites.inc();
      logger("calls")->info("call {}: late INVITE from node {} refused: {}", caller->correlationId,
                            caller->party.owner, why);
      (void)session.reject(why == "answered" ? 487 : 481,
                           why == "answered" ? "Call Completed Elsewhere" : "Call Already Ended");
      return;
    }
  }
  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.id = ++nextCall_;
  call.inbound = session.id();
  call.caller = std::move(*caller);
  // A call from another node keeps that node's id, so both nodes' records share it; so does its
  // fallback over the external line when the carrier passed the id on.
  call.correlationId =
      !call.caller.correlationId.empty() &&
              (isFederation(call.caller) || call.caller.kind == Caller::Kind::Trunk)
          ? call.caller.correlationId
          : sip::newCallId(config_.nodeId);
  if (isFederation(call.caller)) addNode(call, call.caller.party.owner);
  call.startMs = nowMs();
  if (auto ct = invite.header(sip::HeaderId::ContentType)) call.offerType = std::string(*ct);
  call.offer = std::string(invite.body());
  call.dialled = dialledOf(invite);
  if (call.caller.kind == Caller::Kind::Trunk && externalLine_)
    if (auto t = externalLine_->inboundTarget(invite)) call.dialled = *t;
  if (auto rep = invite.header(sip::HeaderId::Replaces)) call.replaces = std::string(*rep);
  // RFC 5806: forwarding hops taken before this node (another node's, or seen by the carrier).
  // They bound the hops here too, and the users they name are not forwarded to again.
  if (call.caller.kind != Caller::Kind::LocalUser) {
    for (auto& d : diversionsOf(invite)) {
      Call::Hop hop;
      hop.owner = isFederation(call.caller) ? call.caller.party.owner : std::string();
      if (!isFederation(call.caller)) hop.externalNumber = d.user;
      call.visited.push_back(d.user);
      hop.diversion = std::move(d);
      call.hops.push_back(std::move(hop));
    }
    call.forwards = int(call.hops.size());
  }
  session.appData = call.id;
  calls_.emplace(call.id, std::move(owned));
  ++stats_.started;
  ++stats_.active;
  g_calls.inc();
  addCallerParty(call);
  route(call);
}

// ---- Ending ----

void CallManager::onTerminated(InviteSession& s, InviteEnd why, const Message* message) {
  Call* call = callOf(s.appData);
  if (!call || call->ended()) return;
  bool inbound = s.id() == call->inbound;
  bool otherLeg = call->connected() && s.id() == call->other;
  if (!inbound && !otherLeg) return; // an early fork session: its ClientInvite reports the fork
  if (call->transferTo && call->connected()) {
    transferredLegEnded(*call, s.id()); // its transfer runs: the transferee's leg may stay
    return;
  }
  if (why == InviteEnd::SessionExpired || why == InviteEnd::NoAck ||
      why == InviteEnd::DialogError) {
    // A dead leg (RFC 4028 §10, RFC 3261 §13.3.1.4, §12.2.1.2): the other phone gets its BYE.
    g_legsLost.inc();
    logger("calls")->info("call {}: {} leg lost ({}), ending the call", call->correlationId,
                          inbound ? "caller's" : "answering", sip::inviteEndName(why));
  }
  if (inbound && call->unanswered()) {
    // RFC 3326: a CANCEL saying the call was answered elsewhere (another node's member, or the
    // caller's side forked) is passed on, and nobody here missed the call.
    std::optional<std::string_view> reason;
    if (why == InviteEnd::Cancelled && message) reason = message->header("Reason");
    bool elsewhere = reason && isCompletedElsewhere(*reason);
    if (elsewhere) {
      call->endCause = EndCause::CompletedElsewhere;
      for (auto& p : call->parties) p.disposition = Disposition::CompletedElsewhere;
    }
    cancelForks(*call, nullptr, elsewhere);
  }
  hangUp(*call, s.id());
}

void CallManager::hangUp(Call& call, sip::UsageId gone) {
  // Mark the call ended before touching the other leg: ending it calls back into
  // onTerminated for that leg from inside end().
  sip::UsageId legs[] = {call.inbound, call.connected() ? call.other : 0};
  if (call.endCause == EndCause::None) call.endCause = EndCause::Hangup;
  endCall(call);
  for (sip::UsageId id : legs)
    if (id && id != gone)
      if (InviteSession* leg = session(id)) (void)leg->end();
}

void CallManager::failCall(Call& call, int status, std::string_view reason,
                           const sip::ExtraHeaders& headers) {
  if (call.ended()) return;
  if (call.transfer) {
    // The transfer's call: its inbound leg is the transferee's, answered long ago.
    transferFailed(call, status, reason);
    return;
  }
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  Disposition d = status == 486 || status == 600   ? Disposition::Busy
                  : status == 404 || status >= 500 ? Disposition::Failed
                                                   : Disposition::Missed;
  for (auto& p : call.parties) p.disposition = d;
  call.endCause = EndCause::Failed;
  if (InviteSession* in = session(call.inbound)) (void)in->reject(status, reason, headers);
  ++stats_.failed;
  g_callsFailed.inc();
  endCall(call);
}

void CallManager::endCall(Call& call) {
  if (call.ended()) return;
  enter(call, CallState::Ended);
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  for (auto& f : call.forks)
    if (f.fallbackTimer) {
      timers_.cancel(f.fallbackTimer);
      f.fallbackTimer = 0;
    }
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Terminated, true);
  for (auto& f : call.forks)
    if (!f.external()) line(call, f.party, LineEvent::State::Terminated, false);
  if (call.answer == AnswerKind::PickedUp)
    line(call, call.answeredBy, LineEvent::State::Terminated, false);
  for (auto& f : call.forks) f.pending.reset();
  releaseMedia(call); // on every path: the relay keeps no session of an ended call
  saveRecord(call);
  journalSettled(call);
  if (call.answer != AnswerKind::None && (call.answer != AnswerKind::Remote || call.transfer))
    shareOutcome(call);
  if (call.transfer)
    if (Call* x = callOf(call.transfer->from); x && x->transferTo == call.id) x->transferTo = 0;
  if (stats_.active) --stats_.active;
  finish(call.id);
}

void CallManager::finish(CallId id) {
  // Erased from the event loop, never inside a callback that may still hold the Call.
  timers_.after(Duration(0), [this, id] { calls_.erase(id); });
}

// ---- Line state (BLF) ----

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

std::vector<CallManager::ActiveCall> CallManager::activeCalls() const {
  std::vector<ActiveCall> out;
  for (const auto& [id, c] : calls_) {
    if (c->ended()) continue;
    ActiveCall a;
    a.correlationId = c->correlationId;
    a.caller = callerIdOf(c->caller);
    a.callerName = callerNameOf(c->caller);
    a.dialled = c->dialledByCaller();
    a.answeredBy = c->answeredBy.extension;
    a.state = c->connected() ? "connected" : "ringing";
    a.startMs = c->startMs;
    a.answerMs = c->answerMs;
    out.push_back(std::move(a));
  }
  return out;
}

} // namespace verbund::pbx

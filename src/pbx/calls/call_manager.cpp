#include "pbx/calls/call_manager.h"

#include "base/log.h"
#include "base/metrics.h"
#include "pbx/calls/sdp.h"
#include "sip/message/builder.h"

#include <algorithm>
#include <chrono>

namespace verbund::pbx {

using sip::InviteEnd;
using sip::InviteSession;
using sip::Message;

namespace {
Counter g_calls("verbund_calls_total", "Calls started (inbound INVITEs routed)");
Counter g_callsAnswered("verbund_calls_answered_total", "Calls answered");
Counter g_callsFailed("verbund_calls_failed_total", "Calls that ended without an answer");
Counter g_pickups("verbund_call_pickups_total", "Calls picked up by another user");

// RFC 3326 Reason for forks cancelled because another one answered.
const sip::HeaderField kCompletedElsewhere[] = {
    {"Reason", "SIP;cause=200;text=\"Call completed elsewhere\""}};

std::string quoted(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

// Dialled digits: the Request-URI user without visual separators (RFC 3966 §5.1.1).
std::string dialledOf(const Message& invite) {
  std::string out;
  auto user = sip::unescape(invite.requestUri().user).value_or("");
  for (char c : user)
    if (c != '-' && c != '.' && c != '(' && c != ')' && c != ' ') out += c;
  return out;
}
} // namespace

struct CallManager::Fork {
  sip::UsageId invite = 0;
  Party party;
  bool trunk = false;
  bool ringing = false;
  bool done = false;
  int status = 0;
  std::string callId;
};

struct CallManager::Call {
  CallId id = 0;
  std::string correlationId;
  sip::UsageId inbound = 0;
  Caller caller;
  std::string dialled;
  std::optional<Party> callee;
  std::optional<GroupTarget> group;
  std::vector<Fork> forks;
  sip::UsageId other = 0; // the answered leg: a UAC fork session, or a picker's UAS session
  Party answeredBy;
  bool answered = false, ended = false, ringingSent = false, pickedUp = false;
  TimerId noAnswer = 0;
  std::string offerType, offer;
  int64_t startMs = 0, answerMs = 0;
  // An in-dialog offer relayed to the other leg, waiting for its answer.
  sip::ServerTxId pendingOfferTx = 0;
  sip::UsageId pendingOfferFrom = 0;
  std::vector<CallParty> parties; // for the call list
};

CallManager::CallManager(sip::DialogManager& dm, Timers& timers, CallDirectory& directory,
                         CallLog& log, CallManagerConfig config)
    : dm_(dm), timers_(timers), directory_(directory), log_(log), config_(std::move(config)) {}

CallManager::~CallManager() {
  for (auto& [id, call] : calls_) timers_.cancel(call->noAnswer);
}

int64_t CallManager::nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

CallManager::Call* CallManager::callOf(uint64_t appData) {
  auto it = calls_.find(appData);
  return it == calls_.end() ? nullptr : it->second.get();
}

CallManager::Fork* CallManager::forkOf(Call& call, sip::UsageId clientInvite) {
  for (auto& f : call.forks)
    if (f.invite == clientInvite) return &f;
  return nullptr;
}

void CallManager::line(Call& call, const Party& party, LineEvent::State state, bool initiator,
                       const std::string& callId, const std::string& localTag,
                       const std::string& remoteTag) {
  if (!observer_ || party.extension.empty()) return;
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
    const std::string& who = call.caller.kind == Caller::Kind::LocalUser
                                 ? call.caller.party.extension
                                 : call.caller.number;
    e.remoteUri = "sip:" + who + "@" + config_.domain;
    e.remoteName = call.caller.kind == Caller::Kind::LocalUser ? call.caller.party.displayName
                                                               : call.caller.name;
  }
  e.callId = callId;
  e.localTag = localTag;
  e.remoteTag = remoteTag;
  observer_->lineEvent(e);
}

void CallManager::onNewSession(InviteSession& session, const Message& invite) {
  std::optional<Caller> caller;
  if (callerCheck_) {
    caller = callerCheck_(session, invite);
    if (!caller) return; // the check answered (challenge or refusal)
  } else {
    caller = Caller{};
    caller->party.extension = std::string(invite.from().uri.user);
  }
  auto call = std::make_unique<Call>();
  call->id = ++nextCall_;
  call->correlationId = sip::newCallId(config_.nodeId);
  call->inbound = session.id();
  call->caller = *caller;
  call->startMs = nowMs();
  if (auto ct = invite.header(sip::HeaderId::ContentType)) call->offerType = std::string(*ct);
  call->offer = std::string(invite.body());
  session.appData = call->id;
  Call& c = *call;
  calls_.emplace(c.id, std::move(call));
  ++stats_.started;
  ++stats_.active;
  g_calls.inc();
  if (c.caller.kind == Caller::Kind::LocalUser) {
    c.parties.push_back({PartyRole::Caller, c.caller.party.extension, c.caller.party.displayName,
                         c.caller.party.owner, Disposition::Missed});
  } else {
    c.parties.push_back(
        {PartyRole::Caller, c.caller.number, c.caller.name, "", Disposition::Missed});
  }
  route(c, invite);
}

void CallManager::route(Call& call, const Message& invite) {
  InviteSession* in = session(call.inbound);
  if (!in) return;
  call.dialled = dialledOf(invite);
  if (call.caller.kind == Caller::Kind::Trunk && externalLine_) {
    if (auto t = externalLine_->inboundTarget(invite)) call.dialled = *t;
  }

  // RFC 3891: an INVITE with Replaces naming the early dialog of one of our forks is a pickup
  // from a BLF key.
  if (auto rep = invite.header(sip::HeaderId::Replaces)) {
    std::string callId(rep->substr(0, rep->find(';')));
    while (!callId.empty() && callId.back() == ' ') callId.pop_back();
    Call* target = findByForkCallId(callId);
    if (!target || target->answered || target->ended || target == &call) {
      failCall(call, 481, "Replaced dialog does not exist");
      return;
    }
    if (!pickUp(call, *target)) failCall(call, 481, "Replaced dialog does not exist");
    return;
  }
  if (routeFeatureCode(call, call.dialled)) return;
  if (auto user = directory_.userByExtension(call.dialled)) {
    call.callee = user;
    call.parties.push_back(
        {PartyRole::Callee, user->extension, user->displayName, user->owner, Disposition::Missed});
    ringParties(call, {*user});
    return;
  }
  if (auto group = directory_.groupByNumber(call.dialled)) {
    call.group = group;
    call.parties.push_back(
        {PartyRole::Callee, group->number, group->name, "", Disposition::Missed});
    ringParties(call, group->loggedInMembers);
    return;
  }
  if (externalLine_ && call.caller.kind == Caller::Kind::LocalUser &&
      externalLine_->isExternalNumber(call.dialled)) {
    call.parties.push_back({PartyRole::Callee, call.dialled, "", "", Disposition::Missed});
    startTrunkFork(call, call.dialled);
    return;
  }
  failCall(call, 404, "Not Found");
}

bool CallManager::routeFeatureCode(Call& call, const std::string& dialled) {
  const FeatureCodes& fc = config_.features;
  auto starts = [&](const std::string& code) {
    return !code.empty() && dialled.size() >= code.size() &&
           dialled.compare(0, code.size(), code) == 0;
  };
  if (dialled.empty() || dialled[0] != '*') return false;
  if (call.caller.kind != Caller::Kind::LocalUser) {
    failCall(call, 403, "Feature codes are for local users");
    return true;
  }
  const std::string& me = call.caller.party.extension;
  // Longest codes first so that "*41" is not read as "*4" + "1".
  if (starts(fc.groupLogin) || starts(fc.groupLogout)) {
    bool login = starts(fc.groupLogin);
    std::string group = dialled.substr((login ? fc.groupLogin : fc.groupLogout).size());
    if (!directory_.setGroupLogin(group, me, login)) {
      failCall(call, 404, "No such group membership");
      return true;
    }
    // Confirm by answering and hanging up at once; there is no media to play.
    if (InviteSession* in = session(call.inbound)) {
      std::string sdp = "v=0\r\no=verbund 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 "
                        "0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\n";
      (void)in->accept("application/sdp", sdp);
      call.answered = true;
      CallId id = call.id;
      timers_.after(Duration(300), [this, id] {
        if (Call* c = callOf(id)) endCall(*c, nullptr);
      });
    }
    return true;
  }
  if (starts(fc.groupPickup) && dialled.size() == fc.groupPickup.size()) {
    Call* target = findRingingInGroups(directory_.groupsOf(me));
    if (!target || !pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
    return true;
  }
  if (starts(fc.pickup)) {
    std::string ext = dialled.substr(fc.pickup.size());
    Call* target = findRingingFor(ext);
    if (!target || !pickUp(call, *target)) failCall(call, 404, "Nothing to pick up");
    return true;
  }
  failCall(call, 404, "Unknown feature code");
  return true;
}

void CallManager::ringParties(Call& call, const std::vector<Party>& parties) {
  for (const auto& p : parties) {
    // A user calling a group they are in does not ring themselves.
    if (call.group && call.caller.kind == Caller::Kind::LocalUser &&
        p.extension == call.caller.party.extension && p.owner == call.caller.party.owner)
      continue;
    auto devices = directory_.devices(p.sipUser);
    for (const auto& d : devices) startFork(call, p, d);
    if (call.group)
      call.parties.push_back(
          {PartyRole::Rang, p.extension, p.displayName, p.owner, Disposition::Missed});
  }
  if (call.forks.empty()) {
    failCall(call, 480, "Temporarily Unavailable");
    return;
  }
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Early, true);
  CallId id = call.id;
  call.noAnswer = timers_.after(config_.noAnswer, [this, id] {
    Call* c = callOf(id);
    if (!c || c->answered || c->ended) return;
    c->noAnswer = 0;
    cancelForks(*c, nullptr, false);
    failCall(*c, 480, "No Answer");
  });
}

void CallManager::startFork(Call& call, const Party& party, const DeviceTarget& device) {
  sip::DialogManager::InviteParams p;
  p.requestUri = device.contactUri;
  std::string fromUser, fromName;
  if (call.caller.kind == Caller::Kind::LocalUser) {
    fromUser = call.caller.party.extension;
    fromName = call.caller.party.displayName;
  } else {
    fromUser = call.caller.number;
    fromName = call.caller.name;
  }
  p.from = (fromName.empty() ? std::string() : quoted(fromName) + " ") + "<sip:" + fromUser + "@" +
           config_.domain + ">";
  p.to = quoted(party.displayName) + " <sip:" + party.extension + "@" + config_.domain + ">";
  p.callId = sip::newCallId(config_.domain);
  p.target = device.peer;
  p.contentType = call.offerType;
  p.body = call.offer;
  p.headers.emplace_back("P-Asserted-Identity", p.from);
  if (call.group) p.headers.emplace_back("Alert-Info", "<urn:alert:service:group>");
  auto id = dm_.invite(std::move(p));
  if (!id) {
    logger("calls")->warn("call {}: INVITE to {} failed: {}", call.correlationId, party.extension,
                          id.error().message);
    return;
  }
  Fork f;
  f.invite = *id;
  f.party = party;
  std::string ourTag;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
    ourTag = ci->localTag();
  }
  call.forks.push_back(std::move(f));
  // RFC 4235 §4.1 from the callee's side: our From tag is its remote tag; its own tag (local)
  // is known once it answers provisionally.
  line(call, party, LineEvent::State::Early, false, call.forks.back().callId, {}, ourTag);
}

void CallManager::startTrunkFork(Call& call, const std::string& number) {
  sip::DialogManager::InviteParams p;
  p.contentType = call.offerType;
  p.body = call.offer;
  if (!externalLine_ || !externalLine_->prepareOutbound(number, call.caller.party, p)) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  auto id = dm_.invite(std::move(p));
  if (!id) {
    failCall(call, 503, "External line unavailable");
    return;
  }
  Fork f;
  f.invite = *id;
  f.trunk = true;
  f.party.extension = number;
  if (auto* ci = dm_.clientInvite(*id)) {
    ci->appData = call.id;
    f.callId = ci->callId();
  }
  call.forks.push_back(std::move(f));
  line(call, call.caller.party, LineEvent::State::Early, true);
}

void CallManager::onProvisional(sip::ClientInvite& invite, InviteSession* s,
                                const Message& response) {
  Call* call = callOf(invite.appData);
  if (!call || call->ended) return;
  if (s) s->appData = call->id;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork || response.statusCode() == 100) return;
  if (s && !fork->ringing && !fork->trunk)
    line(*call, fork->party, LineEvent::State::Early, false, fork->callId,
         s->dialog().id().remoteTag, s->dialog().id().localTag);
  fork->ringing = true;
  if (call->answered || call->ringingSent) return;
  if (InviteSession* in = session(call->inbound)) {
    // Early media (183 with SDP) passes through; otherwise a plain 180.
    bool early = response.statusCode() == 183 && !response.body().empty();
    auto ct = response.header(sip::HeaderId::ContentType);
    if (early)
      (void)in->provisional(183, ct ? *ct : "application/sdp", response.body());
    else
      (void)in->provisional(180);
    call->ringingSent = !early;
  }
}

void CallManager::onConnected(InviteSession& s, const Message& message) {
  if (!s.isUac()) return; // the inbound leg got its ACK: nothing to do
  sip::ClientInvite* ci = dm_.clientInvite(s.clientInvite());
  Call* call = callOf(s.appData ? s.appData : (ci ? ci->appData : 0));
  if (!call || call->ended || call->answered) {
    // A late answer from another fork (or after the caller left): RFC 3261 §13.2.2.4 ACK+BYE.
    (void)s.end();
    return;
  }
  Fork* fork = forkOf(*call, s.clientInvite());
  if (!fork) {
    (void)s.end();
    return;
  }
  answered(*call, *fork, s, message);
}

void CallManager::answered(Call& call, Fork& fork, InviteSession& s, const Message& answer) {
  call.answered = true;
  call.other = s.id();
  s.appData = call.id;
  call.answeredBy = fork.party;
  call.answerMs = nowMs();
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  ++stats_.answered;
  g_callsAnswered.inc();
  cancelForks(call, &fork, true);
  if (InviteSession* in = session(call.inbound)) {
    auto ct = answer.header(sip::HeaderId::ContentType);
    (void)in->accept(ct ? *ct : std::string_view{}, answer.body());
  }
  for (auto& f : call.forks)
    if (&f != &fork && !f.trunk) line(call, f.party, LineEvent::State::Terminated, false);
  if (!fork.trunk)
    line(call, fork.party, LineEvent::State::Confirmed, false, fork.callId,
         s.dialog().id().remoteTag, s.dialog().id().localTag);
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Confirmed, true);
  saveRecord(call);
}

void CallManager::cancelForks(Call& call, const Fork* except, bool completedElsewhere) {
  for (auto& f : call.forks) {
    if (&f == except || f.done) continue;
    f.done = true;
    if (sip::ClientInvite* ci = dm_.clientInvite(f.invite)) {
      if (completedElsewhere)
        (void)ci->cancel(kCompletedElsewhere);
      else
        (void)ci->cancel();
    }
  }
}

void CallManager::onFailure(sip::ClientInvite& invite, int status, const Message*) {
  Call* call = callOf(invite.appData);
  if (!call || call->ended || call->answered) return;
  Fork* fork = forkOf(*call, invite.id());
  if (!fork) return;
  fork->done = true;
  fork->status = status;
  if (!fork->trunk) line(*call, fork->party, LineEvent::State::Terminated, false);
  bool allDone =
      std::all_of(call->forks.begin(), call->forks.end(), [](const Fork& f) { return f.done; });
  if (!allDone) return;
  // RFC 3261 §16.7 in spirit: a busy anywhere means busy; a single fork's answer is passed on;
  // otherwise the callee is temporarily unavailable.
  bool busy = std::any_of(call->forks.begin(), call->forks.end(),
                          [](const Fork& f) { return f.status == 486 || f.status == 600; });
  if (busy) {
    failCall(*call, 486, "Busy Here");
  } else if (call->forks.size() == 1 && status >= 400 && status != 487 && status != 408) {
    failCall(*call, status, {});
  } else {
    failCall(*call, 480, "Temporarily Unavailable");
  }
}

void CallManager::failCall(Call& call, int status, std::string_view reason) {
  if (call.ended) return;
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  Disposition d = status == 486 || status == 600   ? Disposition::Busy
                  : status == 404 || status >= 500 ? Disposition::Failed
                                                   : Disposition::Missed;
  for (auto& p : call.parties) p.disposition = d;
  if (InviteSession* in = session(call.inbound)) (void)in->reject(status, reason);
  ++stats_.failed;
  g_callsFailed.inc();
  endCall(call, nullptr);
}

void CallManager::onOffer(InviteSession& s, sip::ServerTxId tx, const Message& request) {
  Call* call = callOf(s.appData);
  InviteSession* other = nullptr;
  if (call && call->answered && !call->ended) {
    sip::UsageId otherId = s.id() == call->inbound ? call->other : call->inbound;
    other = session(otherId);
  }
  if (!other || call->pendingOfferTx) {
    // RFC 3261 §14.2: 491 while another offer is pending; 488 when there is no other leg.
    (void)s.respond(tx, other ? 491 : 488);
    return;
  }
  auto ct = request.header(sip::HeaderId::ContentType);
  std::string_view type = ct ? *ct : std::string_view{};
  Result<void> sent = request.method() == sip::Method::Update
                          ? other->update(type, request.body())
                          : other->reinvite(type, request.body());
  if (!sent) {
    (void)s.respond(tx, 500);
    return;
  }
  call->pendingOfferTx = tx;
  call->pendingOfferFrom = s.id();
}

void CallManager::onOfferAnswered(InviteSession& s, sip::Method, const Message& response) {
  Call* call = callOf(s.appData);
  if (!call || !call->pendingOfferTx) return;
  InviteSession* from = session(call->pendingOfferFrom);
  sip::ServerTxId tx = call->pendingOfferTx;
  call->pendingOfferTx = 0;
  call->pendingOfferFrom = 0;
  if (!from) return;
  auto ct = response.header(sip::HeaderId::ContentType);
  int status = response.statusCode() >= 200 ? response.statusCode() : 200;
  (void)from->respond(tx, status, ct ? *ct : std::string_view{}, response.body());
}

void CallManager::onTerminated(InviteSession& s, InviteEnd why, const Message*) {
  Call* call = callOf(s.appData);
  if (!call || call->ended) return;
  // Mark the call ended before touching the other leg: ending it may call back into
  // onTerminated for that leg from inside end().
  if (s.id() == call->inbound) {
    sip::UsageId other = call->answered ? call->other : 0;
    if (!call->answered) cancelForks(*call, nullptr, false);
    endCall(*call, &s);
    if (InviteSession* o = other ? session(other) : nullptr) (void)o->end();
  } else if (call->answered && s.id() == call->other) {
    sip::UsageId inbound = call->inbound;
    endCall(*call, &s);
    if (InviteSession* in = session(inbound)) (void)in->end();
  }
  // Other forks' early sessions end as they are cancelled: nothing to do.
}

void CallManager::endCall(Call& call, InviteSession*) {
  if (call.ended) return;
  call.ended = true;
  timers_.cancel(call.noAnswer);
  call.noAnswer = 0;
  if (call.caller.kind == Caller::Kind::LocalUser)
    line(call, call.caller.party, LineEvent::State::Terminated, true);
  for (auto& f : call.forks)
    if (!f.trunk) line(call, f.party, LineEvent::State::Terminated, false);
  if (call.pickedUp) line(call, call.answeredBy, LineEvent::State::Terminated, false);
  saveRecord(call);
  if (stats_.active) --stats_.active;
  finish(call.id);
}

void CallManager::finish(CallId id) {
  // Erased from the event loop, never inside a callback that may still hold the Call.
  timers_.after(Duration(0), [this, id] { calls_.erase(id); });
}

void CallManager::saveRecord(Call& call) {
  CallRecord r;
  r.correlationId = call.correlationId;
  bool local = call.caller.kind == Caller::Kind::LocalUser;
  bool trunk =
      std::any_of(call.forks.begin(), call.forks.end(), [](const Fork& f) { return f.trunk; });
  r.direction = !local ? "inbound" : trunk ? "outbound" : "internal";
  r.caller = local ? call.caller.party.extension : call.caller.number;
  r.callerName = local ? call.caller.party.displayName : call.caller.name;
  r.dialled = call.dialled;
  r.viaTrunk = trunk || !local;
  r.startMs = call.startMs;
  r.answerMs = call.answerMs;
  r.endMs = call.ended ? nowMs() : 0;
  if (call.answered && !call.answeredBy.extension.empty()) {
    r.answeredBy = call.answeredBy.extension;
    r.disposition = call.pickedUp ? Disposition::PickedUp : Disposition::Answered;
    bool listed = false;
    for (auto& p : call.parties) {
      if (p.role == PartyRole::Caller) p.disposition = r.disposition;
      if ((p.role == PartyRole::Rang || p.role == PartyRole::Callee) &&
          p.owner == call.answeredBy.owner && p.extension == call.answeredBy.extension)
        p.disposition = Disposition::Answered;
      else if (p.role == PartyRole::Rang)
        p.disposition = call.pickedUp ? Disposition::PickedUp : Disposition::CompletedElsewhere;
      else if (p.role == PartyRole::Callee && call.pickedUp)
        p.disposition = Disposition::PickedUp;
      else if (p.role == PartyRole::Callee)
        p.disposition = Disposition::Answered;
      if (p.role == PartyRole::AnsweredBy) listed = true;
    }
    if (!listed)
      call.parties.push_back({PartyRole::AnsweredBy, call.answeredBy.extension,
                              call.answeredBy.displayName, call.answeredBy.owner,
                              Disposition::Answered});
  } else if (!call.parties.empty()) {
    r.disposition = call.parties.front().disposition;
  }
  r.parties = call.parties;
  if (auto s = log_.save(r); !s)
    logger("calls")->error("call {}: saving the call record failed: {}", call.correlationId,
                           s.error().message);
}

// ---- Pickup ----

CallManager::Call* CallManager::findRingingFor(const std::string& extension) {
  for (auto& [id, c] : calls_) {
    if (c->answered || c->ended) continue;
    for (const auto& f : c->forks)
      if (!f.done && !f.trunk && f.party.extension == extension && f.party.owner.empty())
        return c.get();
  }
  return nullptr;
}

CallManager::Call* CallManager::findRingingInGroups(const std::vector<std::string>& groups) {
  for (auto& [id, c] : calls_) {
    if (c->answered || c->ended || !c->group) continue;
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
  if (!pickerLeg || !callerLeg || picker.caller.kind != Caller::Kind::LocalUser) return false;
  // Both phones sent offers: answer each with the other's media (address, common codecs).
  auto pickerSdp = sdp::parse(picker.offer);
  auto callerSdp = sdp::parse(target.offer);
  if (!pickerSdp || !callerSdp) return false;
  uint64_t version = uint64_t(nowMs());
  auto toPicker = sdp::answerFrom(*pickerSdp, *callerSdp, version);
  auto toCaller = sdp::answerFrom(*callerSdp, *pickerSdp, version);
  if (!toPicker || !toCaller) return false;

  Party by = picker.caller.party;
  // The picker's call merges into the target: its inbound leg becomes the target's other leg.
  target.answered = true;
  target.pickedUp = true;
  target.other = pickerLeg->id();
  target.answeredBy = by;
  target.answerMs = nowMs();
  timers_.cancel(target.noAnswer);
  target.noAnswer = 0;
  pickerLeg->appData = target.id;
  cancelForks(target, nullptr, true);
  for (auto& f : target.forks)
    if (!f.trunk) line(target, f.party, LineEvent::State::Terminated, false);
  (void)callerLeg->accept("application/sdp", *toCaller);
  (void)pickerLeg->accept("application/sdp", *toPicker);
  target.parties.push_back(
      {PartyRole::AnsweredBy, by.extension, by.displayName, by.owner, Disposition::Answered});
  line(target, by, LineEvent::State::Confirmed, false);
  if (target.caller.kind == Caller::Kind::LocalUser)
    line(target, target.caller.party, LineEvent::State::Confirmed, true);
  ++stats_.pickedUp;
  ++stats_.answered;
  g_pickups.inc();
  g_callsAnswered.inc();
  saveRecord(target);
  // The picker's own call object is done; it was never a call of its own.
  picker.ended = true;
  if (stats_.active) --stats_.active;
  --stats_.started;
  finish(picker.id);
  return true;
}

std::vector<CallManager::ActiveCall> CallManager::activeCalls() const {
  std::vector<ActiveCall> out;
  for (const auto& [id, c] : calls_) {
    if (c->ended) continue;
    ActiveCall a;
    a.correlationId = c->correlationId;
    a.caller =
        c->caller.kind == Caller::Kind::LocalUser ? c->caller.party.extension : c->caller.number;
    a.callerName =
        c->caller.kind == Caller::Kind::LocalUser ? c->caller.party.displayName : c->caller.name;
    a.dialled = c->dialled;
    a.answeredBy = c->answeredBy.extension;
    a.state = c->answered ? "connected" : "ringing";
    a.startMs = c->startMs;
    a.answerMs = c->answerMs;
    out.push_back(std::move(a));
  }
  return out;
}

} // namespace verbund::pbx

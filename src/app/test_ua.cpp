#include "app/test_ua.h"

#include "base/log.h"
#include "sip/message/builder.h"

namespace verbund::app {

using namespace sip;

namespace {
constexpr std::string_view kAllow = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";

std::string sdpAnswer(const Message& offer, const Peer& local) {
  // Echo the offer's first media line with our address: enough for SIPp and softphones to
  // consider the session established; the test UA sends no media.
  std::string ip = local.local.ip.toString();
  std::string fam = local.local.ip.v6 ? "IP6" : "IP4";
  std::string out = "v=0\r\no=verbund 1 1 IN " + fam + " " + ip + "\r\ns=verbund testua\r\nc=IN " +
                    fam + " " + ip + "\r\nt=0 0\r\n";
  std::string_view body = offer.body();
  auto m = body.find("m=audio");
  std::string payloads = "0";
  if (m != std::string_view::npos) {
    auto eol = body.find_first_of("\r\n", m);
    std::string_view line = body.substr(m, eol == body.npos ? body.npos : eol - m);
    // m=audio <port> RTP/AVP <fmt...>
    size_t p = 0;
    for (int field = 0; field < 3 && p != std::string_view::npos; ++field)
      p = line.find(' ', p + 1);
    if (p != std::string_view::npos) payloads = std::string(line.substr(p + 1));
  }
  out += "m=audio 40000 RTP/AVP " + payloads + "\r\na=sendrecv\r\n";
  return out;
}
} // namespace

TestUa::TestUa(TransactionLayer& layer, Timers& timers, TestUaConfig config)
    : layer_(layer), timers_(timers), config_(std::move(config)) {
  if (!config_.users.empty()) {
    DigestServerConfig dc;
    dc.realm = config_.realm;
    if (!config_.algorithms.empty()) dc.algorithms = config_.algorithms;
    digest_ = std::make_unique<DigestServer>(dc, timers_);
  }
}

std::string TestUa::callKey(std::string_view callId, std::string_view localTag) {
  std::string k(callId);
  k += '\x1f';
  k += localTag;
  return k;
}

bool TestUa::authorize(ServerTxId tx, const Message& request) {
  if (!digest_) return true;
  auto creds = request.header(HeaderId::Authorization);
  bool stale = false;
  if (creds) {
    auto params = parseAuthParams(*creds);
    if (params) {
      auto verdict =
          digest_->verify(*params, request.methodName(), request.body(),
                          [this](std::string_view user, std::string_view,
                                 DigestAlgorithm) -> std::optional<DigestSecret> {
                            auto it = config_.users.find(std::string(user));
                            if (it == config_.users.end()) return std::nullopt;
                            return DigestSecret{DigestSecret::Kind::Password, it->second};
                          });
      if (verdict.ok()) {
        ++stats_.authOk;
        return true;
      }
      stale = verdict.wantsStaleChallenge();
      if (!stale) ++stats_.authFailed;
    } else {
      ++stats_.authFailed;
    }
  }
  ++stats_.authChallenges;
  auto b = layer_.responseBuilder(tx, 401);
  if (!b) return false;
  for (const auto& c : digest_->challenges(stale)) b->header(HeaderId::WwwAuthenticate, c);
  (void)layer_.respond(tx, b->finish());
  return false;
}

void TestUa::onRequest(ServerTxId tx, const Message& request) {
  switch (request.method()) {
  case Method::Options: {
    ++stats_.options;
    if (!authorize(tx, request)) return;
    auto b = layer_.responseBuilder(tx, 200);
    if (!b) return;
    b->header(HeaderId::Allow, kAllow).header(HeaderId::Accept, "application/sdp");
    (void)layer_.respond(tx, b->finish());
    return;
  }
  case Method::Register: {
    ++stats_.registers;
    if (!authorize(tx, request)) return;
    auto b = layer_.responseBuilder(tx, 200);
    if (!b) return;
    uint32_t expires = 3600;
    if (auto e = request.header(HeaderId::Expires))
      if (auto n = parseUint(*e)) expires = *n;
    for (const auto& c : request.contacts()) {
      std::string v(c.text);
      if (!c.param("expires")) v += ";expires=" + std::to_string(expires);
      b->header(HeaderId::Contact, v);
    }
    b->header(HeaderId::Expires, std::to_string(expires));
    (void)layer_.respond(tx, b->finish());
    return;
  }
  case Method::Invite:
    handleInvite(tx, request);
    return;
  case Method::Bye: {
    auto it = calls_.find(callKey(request.callId(), request.toTag()));
    if (it == calls_.end()) {
      (void)layer_.respond(tx, 481);
      return;
    }
    ++stats_.byesReceived;
    timers_.cancel(it->second.hangupTimer);
    timers_.cancel(it->second.answerTimer);
    calls_.erase(it);
    (void)layer_.respond(tx, 200);
    return;
  }
  case Method::Update:
  case Method::Info:
    (void)layer_.respond(tx, 200);
    return;
  default: {
    auto b = layer_.responseBuilder(tx, 405);
    if (!b) return;
    b->header(HeaderId::Allow, kAllow);
    (void)layer_.respond(tx, b->finish());
    return;
  }
  }
}

void TestUa::handleInvite(ServerTxId tx, const Message& request) {
  if (!request.toTag().empty()) {
    // re-INVITE (hold/resume, session refresh): accept with a fresh answer.
    auto it = calls_.find(callKey(request.callId(), request.toTag()));
    if (it == calls_.end()) {
      (void)layer_.respond(tx, 481);
      return;
    }
    auto b = layer_.responseBuilder(tx, 200);
    if (!b) return;
    b->header(HeaderId::Contact, "<sip:testua@" + request.source().local.toString() + ">");
    b->body("application/sdp", sdpAnswer(request, request.source()));
    (void)layer_.respond(tx, b->finish());
    return;
  }
  ++stats_.invites;
  Call call;
  call.inviteTx = tx;
  call.callId = std::string(request.callId());
  call.localTag = std::string(layer_.localTag(tx));
  call.remoteTag = std::string(request.fromTag());
  call.peer = request.source();
  call.localUri = std::string(request.to().text);
  call.remoteUri = std::string(request.from().text);
  if (!request.contacts().empty()) call.remoteTarget = std::string(request.contacts()[0].uri.text);
  for (const auto& rr : request.recordRoutes()) call.routeSet.emplace_back(rr.text);
  std::string key = callKey(call.callId, call.localTag);
  auto b = layer_.responseBuilder(tx, 180);
  if (b) (void)layer_.respond(tx, b->finish());
  byInviteTx_[tx] = key;
  auto& stored = calls_[key] = std::move(call);
  if (config_.answerDelay.count() > 0) {
    stored.answerTimer = timers_.after(config_.answerDelay, [this, key] { answer(key); });
  } else {
    answer(key);
  }
}

void TestUa::answer(const std::string& key) {
  auto it = calls_.find(key);
  if (it == calls_.end()) return;
  Call& call = it->second;
  call.answerTimer = 0;
  const Message* req = layer_.request(call.inviteTx);
  if (!req) return;
  auto b = layer_.responseBuilder(call.inviteTx, 200);
  if (!b) return;
  b->header(HeaderId::Contact, "<sip:testua@" + req->source().local.toString() + ">");
  for (const auto& rr : req->recordRoutes()) b->header(HeaderId::RecordRoute, rr.text);
  b->body("application/sdp", sdpAnswer(*req, req->source()));
  if (layer_.respond(call.inviteTx, b->finish())) {
    call.answered = true;
    ++stats_.answered;
  }
  byInviteTx_.erase(call.inviteTx);
}

void TestUa::onAck(const Message& ack) {
  auto it = calls_.find(callKey(ack.callId(), ack.toTag()));
  if (it == calls_.end() || !it->second.answered) return;
  Call& call = it->second;
  if (config_.hangupAfter.count() > 0 && call.hangupTimer == 0) {
    std::string key = it->first;
    call.hangupTimer = timers_.after(config_.hangupAfter, [this, key] { hangup(key); });
  }
}

void TestUa::hangup(const std::string& key) {
  auto it = calls_.find(key);
  if (it == calls_.end()) return;
  Call call = std::move(it->second);
  calls_.erase(it);
  // RFC 3261 §12.2.1.1: Request-URI is the remote target, Route the route set (UAS side: in
  // Record-Route order). The request goes back to where the dialog's requests came from.
  std::string target = call.remoteTarget.empty() ? "sip:unknown@invalid" : call.remoteTarget;
  auto b = MessageBuilder::request("BYE", target);
  b.header(HeaderId::Via, layer_.makeVia(call.peer))
      .header(HeaderId::MaxForwards, "70")
      .header(HeaderId::From, call.localUri + ";tag=" + call.localTag)
      .header(HeaderId::To, call.remoteUri)
      .header(HeaderId::CallId, call.callId)
      .header(HeaderId::CSeq, std::to_string(++call.localCSeq) + " BYE");
  for (const auto& r : call.routeSet) b.header(HeaderId::Route, r);
  auto parsed = parseMessage(b.finish());
  if (!parsed.ok()) {
    ++stats_.byeFailures;
    return;
  }
  ClientTxCallbacks cb;
  cb.onResponse = [this](const Message& r) {
    if (r.statusCode() >= 300) ++stats_.byeFailures;
  };
  cb.onFailure = [this](ClientTxFailure) { ++stats_.byeFailures; };
  if (layer_.sendRequest(std::move(parsed.message), call.peer, std::move(cb)))
    ++stats_.byesSent;
  else
    ++stats_.byeFailures;
}

void TestUa::onCancel(ServerTxId inviteTx, const Message&) {
  auto it = byInviteTx_.find(inviteTx);
  if (it != byInviteTx_.end()) {
    auto c = calls_.find(it->second);
    if (c != calls_.end()) {
      timers_.cancel(c->second.answerTimer);
      calls_.erase(c);
    }
    byInviteTx_.erase(it);
  }
  ++stats_.cancelled;
  (void)layer_.respond(inviteTx, 487);
}

void TestUa::onServerTxTerminated(ServerTxId tx, ServerTxEnd how) {
  auto it = byInviteTx_.find(tx);
  if (it == byInviteTx_.end()) return;
  calls_.erase(it->second);
  byInviteTx_.erase(it);
}

} // namespace verbund::app

#include "media/ng_client.h"

#include "base/log.h"
#include "base/metrics.h"
#include "media/ng_message.h"
#include "net/address.h"

#include <algorithm>
#include <asio/post.hpp>
#include <random>

namespace verbund::media {

namespace {

Counter requestsTotal("verbund_media_ng_requests_total", "ng requests sent to rtpengine");
Counter retransmissionsTotal("verbund_media_ng_retransmissions_total",
                             "ng requests sent again for want of a reply");
Counter timeoutsTotal("verbund_media_ng_timeouts_total",
                      "ng requests an rtpengine instance did not answer in time");
Counter failoversTotal("verbund_media_ng_failovers_total",
                       "ng offers sent on to the next rtpengine instance after a timeout");
Counter rejectedTotal("verbund_media_ng_rejected_total",
                      "ng requests rtpengine answered with an error");
Counter strayTotal("verbund_media_ng_stray_replies_total",
                   "ng replies dropped: unknown cookie or not from the instance asked");
Counter malformedTotal("verbund_media_ng_malformed_replies_total",
                       "ng replies dropped: not a cookie and a bencoded dictionary");

Error ngError(NgError code, std::string message) {
  return Error{int(code), "rtpengine: " + std::move(message)};
}

void putCall(bencode::Dict& d, const NgCallRef& c) {
  d.set("call-id", c.callId);
  if (!c.fromTag.empty()) d.set("from-tag", c.fromTag);
  if (!c.toTag.empty()) d.set("to-tag", c.toTag);
  if (!c.viaBranch.empty()) d.set("via-branch", c.viaBranch);
}

void putExtra(bencode::Dict& d, const bencode::Dict& extra) {
  for (const auto& [k, v] : extra.entries()) d.set(k, v);
}

bencode::Dict offerDict(const char* command, const OfferRequest& r) {
  bencode::Dict d{{"command", command}};
  putCall(d, r.call);
  d.set("sdp", r.sdp);
  if (!r.flags.empty()) d.set("flags", stringList(r.flags));
  if (!r.replace.empty()) d.set("replace", stringList(r.replace));
  if (!r.direction.empty()) d.set("direction", stringList(r.direction));
  if (!r.receivedFrom.empty()) d.set("received-from", stringList(r.receivedFrom));
  putExtra(d, r.extra);
  return d;
}

} // namespace

bencode::List stringList(const std::vector<std::string>& items) {
  bencode::List l;
  for (const auto& s : items) l.emplace_back(s);
  return l;
}

NgClient::NgClient(asio::io_context& io, Timers& timers,
                   std::vector<std::optional<SockAddr>> instances, NgClientOptions options)
    : io_(io), timers_(timers), options_(options) {
  for (auto& a : instances) instances_.push_back(Instance{a, true});
  // A random prefix per client: rtpengine keeps replies by cookie for a while, so a restarted
  // node must not reuse the cookies of its previous run.
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) cookiePrefix_ += hex[rd() & 15];
  cookiePrefix_ += '_';
}

NgClient::~NgClient() {
  *alive_ = false;
  for (auto& [cookie, p] : pending_) timers_.cancel(p->timer);
  pending_.clear();
  std::error_code ec;
  if (v4_) v4_->close(ec);
  if (v6_) v6_->close(ec);
}

const std::optional<SockAddr>& NgClient::address(size_t instance) const {
  return instances_.at(instance).address;
}

void NgClient::setAddress(size_t instance, std::optional<SockAddr> address) {
  auto& in = instances_.at(instance);
  in.address = address;
  in.healthy = true;
}

std::optional<size_t> NgClient::instanceOf(const std::string& callId) const {
  auto it = affinity_.find(callId);
  if (it == affinity_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> NgClient::dropCallsOn(size_t instance) {
  std::vector<std::string> out;
  for (auto it = affinity_.begin(); it != affinity_.end();) {
    if (it->second == instance) {
      out.push_back(it->first);
      it = affinity_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::string NgClient::nextCookie() {
  return cookiePrefix_ + std::to_string(++cookieSeq_);
}

void NgClient::failSoon(Callback<bencode::Dict> cb, Error e) {
  asio::post(io_, [cb = std::move(cb), e = std::move(e), alive = std::weak_ptr<bool>(alive_)] {
    if (auto a = alive.lock(); a && *a) cb(e);
  });
}

void NgClient::request(bencode::Dict command, std::optional<size_t> instance,
                       Callback<bencode::Dict> cb) {
  if (shutDown_) return failSoon(std::move(cb), ngError(NgError::Cancelled, "client stopped"));
  if (pending_.size() >= options_.maxInFlight)
    return failSoon(std::move(cb), ngError(NgError::Overloaded, "too many requests in flight"));
  if (instance && *instance >= instances_.size())
    return failSoon(std::move(cb), ngError(NgError::NoInstance, "no such instance"));
  auto p = std::make_unique<Pending>();
  p->command = std::string(command.string("command").value_or(""));
  p->callId = std::string(command.string("call-id").value_or(""));
  p->pinned = instance;
  if (!p->pinned && !p->callId.empty()) p->pinned = instanceOf(p->callId);
  p->createsSession = p->command == "offer" && !p->pinned;
  // A delete without via-branch ends the whole call on its instance.
  p->endsCall = p->command == "delete" && !command.find("via-branch");
  p->payload = bencode::encode(bencode::Value(std::move(command)));
  p->tried.assign(instances_.size(), false);
  p->cb = std::move(cb);
  start(std::move(p));
}

void NgClient::start(std::unique_ptr<Pending> p) {
  p->cookie = nextCookie();
  ++stats_.requests;
  requestsTotal.inc();
  if (!dispatch(*p)) {
    bool any = std::any_of(instances_.begin(), instances_.end(),
                           [](const Instance& i) { return i.address.has_value(); });
    return failSoon(std::move(p->cb),
                    any ? ngError(NgError::SendFailed, "could not send " + p->command)
                        : ngError(NgError::NoInstance, "no instance available"));
  }
  std::string cookie = p->cookie;
  pending_.emplace(std::move(cookie), std::move(p));
}

std::optional<size_t> NgClient::pickInstance(const Pending& p) const {
  size_t n = instances_.size();
  if (p.pinned) {
    size_t i = *p.pinned;
    if (i < n && !p.tried[i] && instances_[i].address) return i;
    return std::nullopt;
  }
  // Round robin over the healthy instances first, then any not tried yet.
  for (bool needHealthy : {true, false})
    for (size_t k = 0; k < n; ++k) {
      size_t i = (nextInstance_ + k) % n;
      if (p.tried[i] || !instances_[i].address) continue;
      if (needHealthy && !instances_[i].healthy) continue;
      return i;
    }
  return std::nullopt;
}

bool NgClient::dispatch(Pending& p) {
  std::string datagram = p.cookie + ' ' + p.payload;
  while (auto i = pickInstance(p)) {
    p.tried[*i] = true;
    if (!p.pinned) nextInstance_ = (*i + 1) % instances_.size();
    if (!sendTo(*instances_[*i].address, datagram)) continue;
    p.instance = *i;
    p.sentTo = *instances_[*i].address;
    p.nextRetransmit = options_.firstRetransmit;
    p.deadline = timers_.now() + options_.timeout;
    Duration first = std::min(options_.firstRetransmit, options_.timeout);
    p.timer = timers_.after(first, [this, cookie = p.cookie] { onTimer(cookie); });
    return true;
  }
  return false;
}

NgClient::Socket* NgClient::socketFor(bool v6) {
  auto& s = v6 ? v6_ : v4_;
  if (s) return s.get();
  auto sock = std::make_unique<Socket>(io_);
  std::error_code ec;
  sock->open(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), ec);
  if (!ec)
    sock->bind(asio::ip::udp::endpoint(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), 0), ec);
  if (!ec) sock->non_blocking(true, ec);
  if (ec) {
    logger("media")->error("ng client: cannot open a UDP socket: {}", ec.message());
    return nullptr;
  }
  s = std::move(sock);
  auto& buf = v6 ? buf6_ : buf4_;
  buf = std::make_unique<std::array<char, 65536>>();
  receive(*s, *buf, v6 ? from6_ : from4_);
  return s.get();
}

void NgClient::receive(Socket& s, std::array<char, 65536>& buf, asio::ip::udp::endpoint& from) {
  s.async_receive_from(asio::buffer(buf), from,
                       [this, &s, &buf, &from,
                        alive = std::weak_ptr<bool>(alive_)](const std::error_code& ec, size_t n) {
                         auto a = alive.lock();
                         if (!a || !*a || ec == asio::error::operation_aborted) return;
                         if (!ec)
                           onDatagram(net::fromEndpoint(from), std::string_view(buf.data(), n));
                         if (s.is_open()) receive(s, buf, from);
                       });
}

bool NgClient::sendTo(const SockAddr& to, const std::string& datagram) {
  Socket* s = socketFor(to.ip.v6);
  if (!s) return false;
  std::error_code ec;
  s->send_to(asio::buffer(datagram), net::toEndpoint<asio::ip::udp::endpoint>(to), 0, ec);
  if (ec) logger("media")->debug("ng client: send to {} failed: {}", to.toString(), ec.message());
  return !ec;
}

void NgClient::onTimer(const std::string& cookie) {
  auto it = pending_.find(cookie);
  if (it == pending_.end()) return;
  Pending& p = *it->second;
  p.timer = 0;
  TimePoint now = timers_.now();
  if (now >= p.deadline) {
    ++stats_.timeouts;
    timeoutsTotal.inc();
    instances_[p.instance].healthy = false;
    if (dispatch(p)) {
      ++stats_.failovers;
      failoversTotal.inc();
      return;
    }
    return finish(cookie, ngError(NgError::Timeout,
                                  "no answer to " + p.command + " from " + p.sentTo.toString()));
  }
  if (sendTo(p.sentTo, p.cookie + ' ' + p.payload)) {
    ++stats_.retransmissions;
    retransmissionsTotal.inc();
  }
  p.nextRetransmit = std::min(p.nextRetransmit * 2, options_.maxRetransmit);
  Duration left = std::chrono::duration_cast<Duration>(p.deadline - now);
  p.timer = timers_.after(std::min(p.nextRetransmit, left), [this, cookie] { onTimer(cookie); });
}

void NgClient::onDatagram(const SockAddr& from, std::string_view data) {
  auto m = decodeNgMessage(data);
  if (!m) {
    ++stats_.malformedReplies;
    malformedTotal.inc();
    logger("media")->debug("ng client: malformed reply from {}: {}", from.toString(),
                           m.error().message);
    return;
  }
  auto it = pending_.find(m->cookie);
  if (it == pending_.end() || !(it->second->sentTo == from)) {
    ++stats_.strayReplies;
    strayTotal.inc();
    return;
  }
  Pending& p = *it->second;
  instances_[p.instance].healthy = true;
  auto result = m->dict.string("result");
  if (result == "error") {
    ++stats_.rejected;
    rejectedTotal.inc();
    std::string reason(m->dict.string("error-reason").value_or("no reason given"));
    if (p.command == "delete" && reason == "Unknown call-id") affinity_.erase(p.callId);
    return finish(m->cookie, ngError(NgError::Rejected, p.command + ": " + reason));
  }
  if (!result)
    return finish(m->cookie, ngError(NgError::BadReply, p.command + ": reply without result"));
  if (p.createsSession && !p.callId.empty()) affinity_[p.callId] = p.instance;
  if (p.endsCall) affinity_.erase(p.callId);
  finish(m->cookie, std::move(m->dict));
}

void NgClient::finish(const std::string& cookie, Result<bencode::Dict> r) {
  auto it = pending_.find(cookie);
  if (it == pending_.end()) return;
  auto p = std::move(it->second);
  pending_.erase(it);
  if (p->timer) timers_.cancel(p->timer);
  p->cb(std::move(r));
}

void NgClient::shutdown() {
  shutDown_ = true;
  std::vector<std::string> cookies;
  for (const auto& [c, p] : pending_) cookies.push_back(c);
  for (const auto& c : cookies) finish(c, ngError(NgError::Cancelled, "client stopped"));
  std::error_code ec;
  if (v4_) v4_->close(ec);
  if (v6_) v6_->close(ec);
}

// Typed commands ------------------------------------------------------------------------------

void NgClient::ping(size_t instance, Callback<void> cb) {
  request(bencode::Dict{{"command", "ping"}}, instance,
          [cb = std::move(cb)](Result<bencode::Dict> r) {
            if (!r) return cb(r.error());
            if (r->string("result") != "pong")
              return cb(ngError(NgError::BadReply, "ping: result is not pong"));
            cb(Result<void>());
          });
}

namespace {
NgClient::Callback<bencode::Dict> sdpReply(NgClient& c, std::string callId, const char* command,
                                           NgClient::Callback<SdpReply> cb) {
  return [&c, callId = std::move(callId), command, cb = std::move(cb)](Result<bencode::Dict> r) {
    if (!r) return cb(r.error());
    auto sdp = r->string("sdp");
    if (!sdp) return cb(ngError(NgError::BadReply, std::string(command) + ": reply without sdp"));
    SdpReply out;
    out.sdp = std::string(*sdp);
    out.instance = c.instanceOf(callId).value_or(0);
    out.raw = std::move(r.value());
    cb(std::move(out));
  };
}
} // namespace

void NgClient::offer(const OfferRequest& r, Callback<SdpReply> cb) {
  request(offerDict("offer", r), std::nullopt,
          sdpReply(*this, r.call.callId, "offer", std::move(cb)));
}

void NgClient::answer(const AnswerRequest& r, Callback<SdpReply> cb) {
  request(offerDict("answer", r), std::nullopt,
          sdpReply(*this, r.call.callId, "answer", std::move(cb)));
}

void NgClient::deleteCall(const DeleteRequest& r, Callback<bencode::Dict> cb) {
  bencode::Dict d{{"command", "delete"}};
  putCall(d, r.call);
  putExtra(d, r.extra);
  request(std::move(d), std::nullopt, std::move(cb));
}

void NgClient::query(const NgCallRef& call, Callback<bencode::Dict> cb) {
  bencode::Dict d{{"command", "query"}};
  putCall(d, call);
  request(std::move(d), std::nullopt, std::move(cb));
}

void NgClient::playMedia(const PlayMediaRequest& r, Callback<PlayMediaReply> cb) {
  bencode::Dict d{{"command", "play media"}};
  putCall(d, r.call);
  d.set("file", r.file);
  if (r.repeatTimes > 0) d.set("repeat-times", r.repeatTimes);
  putExtra(d, r.extra);
  request(std::move(d), std::nullopt, [cb = std::move(cb)](Result<bencode::Dict> res) {
    if (!res) return cb(res.error());
    PlayMediaReply out;
    out.durationMs = res->integer("duration").value_or(-1);
    out.raw = std::move(res.value());
    cb(std::move(out));
  });
}

void NgClient::stopMedia(const StopMediaRequest& r, Callback<void> cb) {
  bencode::Dict d{{"command", "stop media"}};
  putCall(d, r.call);
  putExtra(d, r.extra);
  request(std::move(d), std::nullopt, [cb = std::move(cb)](Result<bencode::Dict> res) {
    if (!res) return cb(res.error());
    cb(Result<void>());
  });
}

} // namespace verbund::media

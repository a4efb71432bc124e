#include "sip/dialog/dialog.h"

#include <algorithm>

namespace verbund::sip {

size_t DialogIdHash::operator()(const DialogId& id) const noexcept {
  std::hash<std::string_view> h;
  size_t v = h(id.callId);
  v ^= h(id.localTag) + 0x9e3779b97f4a7c15ull + (v << 6) + (v >> 2);
  v ^= h(id.remoteTag) + 0x9e3779b97f4a7c15ull + (v << 6) + (v >> 2);
  return v;
}

DialogId dialogIdOfRequest(const Message& request) {
  return DialogId{std::string(request.callId()), std::string(request.toTag()),
                  std::string(request.fromTag())};
}

DialogId dialogIdOfResponse(const Message& response) {
  return DialogId{std::string(response.callId()), std::string(response.fromTag()),
                  std::string(response.toTag())};
}

namespace {
// The single Contact URI of a dialog-creating or target refresh message (RFC 3261 §12.1.1:
// exactly one Contact with a SIP or SIPS URI), or empty.
std::string contactUri(const Message& m) {
  if (m.contacts().size() != 1 || m.contactIsStar()) return {};
  const Uri& u = m.contacts().front().uri;
  if (u.scheme != UriScheme::Sip && u.scheme != UriScheme::Sips) return {};
  return std::string(u.text);
}

// A URI as it may stand in a Request-URI (RFC 3261 §19.1.1 table: no headers, no method param).
std::string requestUriFrom(const Uri& u) {
  std::string_view t = u.text;
  if (!u.headers.empty()) {
    auto q = t.find('?');
    if (q != std::string_view::npos) t = t.substr(0, q);
  }
  return std::string(t);
}
} // namespace

void Dialog::setRouteSet(const Message& m, bool reverse) {
  routeSet_.clear();
  for (const auto& rr : m.recordRoutes()) routeSet_.emplace_back(rr.text);
  if (reverse) std::reverse(routeSet_.begin(), routeSet_.end());
}

Result<Dialog> Dialog::fromUac(const Message& request, const Message& response) {
  if (response.toTag().empty()) return makeError(400, "response without To tag");
  Dialog d;
  d.uac_ = true;
  d.id_ = dialogIdOfResponse(response);
  d.state_ = response.statusCode() >= 200 ? State::Confirmed : State::Early;
  // RFC 3261 §12.1.2: secure when the request went over TLS to a SIPS Request-URI.
  d.secure_ = request.requestUri().isSecure() && response.source().transport == TransportType::Tls;
  // RFC 3261 §12.1.2: route set from Record-Route in reverse order, target from Contact.
  d.setRouteSet(response, true);
  d.remoteTarget_ = contactUri(response);
  // A provisional response may lack Contact; until one arrives, aim at the original target.
  if (d.remoteTarget_.empty()) d.remoteTarget_ = requestUriFrom(request.requestUri());
  d.localCSeq_ = request.cseq().seq;
  d.local_ = std::string(request.from().text);
  d.remote_ = std::string(response.to().text);
  d.localContact_ =
      request.contacts().empty() ? std::string() : std::string(request.contacts().front().uri.text);
  return d;
}

Result<Dialog> Dialog::fromUas(const Message& request, std::string_view localTag,
                               std::string_view localContact, bool confirmed) {
  if (localTag.empty()) return makeError(500, "no local tag");
  if (!request.toTag().empty() && request.toTag() != localTag)
    return makeError(400, "request already in a dialog");
  std::string target = contactUri(request);
  if (target.empty()) return makeError(400, "Missing or bad Contact");
  Dialog d;
  d.uac_ = false;
  d.id_ = DialogId{std::string(request.callId()), std::string(localTag),
                   std::string(request.fromTag())};
  d.state_ = confirmed ? State::Confirmed : State::Early;
  // RFC 3261 §12.1.1: secure when the request came over TLS with a SIPS Request-URI.
  d.secure_ = request.requestUri().isSecure() && request.source().transport == TransportType::Tls;
  d.setRouteSet(request, false);
  d.remoteTarget_ = std::move(target);
  d.remoteCSeq_ = request.cseq().seq;
  d.remote_ = std::string(request.from().text);
  d.local_ = std::string(request.to().text);
  if (request.toTag().empty()) d.local_.append(";tag=").append(localTag);
  d.localContact_ = std::string(localContact);
  return d;
}

Result<Dialog> Dialog::fromUacNotify(const Message& subscribe, const Message& notify) {
  if (notify.fromTag().empty()) return makeError(400, "NOTIFY without From tag");
  std::string target = contactUri(notify);
  if (target.empty()) return makeError(400, "Missing or bad Contact");
  Dialog d;
  d.uac_ = true;
  d.id_ = dialogIdOfRequest(notify);
  d.state_ = State::Confirmed;
  d.secure_ = subscribe.requestUri().isSecure() && notify.source().transport == TransportType::Tls;
  // RFC 6665 §4.1.2.4: the NOTIFY is a request, so its Record-Route is taken as a UAS does.
  d.setRouteSet(notify, false);
  d.remoteTarget_ = std::move(target);
  d.localCSeq_ = subscribe.cseq().seq;
  d.local_ = std::string(subscribe.from().text);
  d.remote_ = std::string(notify.from().text);
  d.localContact_ = subscribe.contacts().empty()
                        ? std::string()
                        : std::string(subscribe.contacts().front().uri.text);
  return d;
}

uint32_t Dialog::nextLocalCSeq() {
  // RFC 3261 §8.1.1.5 / §12.2.1.1: one higher than the last; any value below 2^31 to start.
  localCSeq_ = localCSeq_ ? *localCSeq_ + 1 : 1;
  return *localCSeq_;
}

DialogTarget Dialog::target() const {
  DialogTarget t;
  if (routeSet_.empty()) {
    t.requestUri = remoteTarget_;
    t.nextHop = remoteTarget_;
    return t;
  }
  auto first = parseNameAddr(routeSet_.front());
  bool loose = !first.ok() || first->uri.hasParam("lr");
  if (loose) {
    // RFC 3261 §12.2.1.1: loose routing: R-URI = remote target, every route in Route.
    t.requestUri = remoteTarget_;
    t.routes = routeSet_;
    t.nextHop = std::string(first.ok() ? first->uri.text : std::string_view(remoteTarget_));
    return t;
  }
  // Strict routing: the first route becomes the Request-URI, the remote target is appended as
  // the last Route.
  t.requestUri = requestUriFrom(first->uri);
  t.nextHop = t.requestUri;
  t.routes.assign(routeSet_.begin() + 1, routeSet_.end());
  t.routes.push_back("<" + remoteTarget_ + ">");
  return t;
}

MessageBuilder Dialog::request(std::string_view method, std::string_view via, uint32_t cseq,
                               bool withContact) const {
  DialogTarget t = target();
  MessageBuilder b = MessageBuilder::request(method, t.requestUri);
  b.header(HeaderId::Via, via);
  b.header(HeaderId::MaxForwards, "70");
  for (const auto& r : t.routes) b.header(HeaderId::Route, r);
  b.header(HeaderId::From, local_);
  b.header(HeaderId::To, remote_);
  b.header(HeaderId::CallId, id_.callId);
  std::string c = std::to_string(cseq);
  c.append(" ").append(method);
  b.header(HeaderId::CSeq, c);
  if (withContact && !localContact_.empty()) b.header(HeaderId::Contact, "<" + localContact_ + ">");
  return b;
}

Result<void> Dialog::acceptRemoteCSeq(const Message& request) {
  uint32_t seq = request.cseq().seq;
  // RFC 3261 §12.2.2: lower than the remote sequence number is out of order -> 500. An equal one
  // cannot be a new request (the transaction layer absorbs retransmissions), so it is too.
  if (remoteCSeq_ && seq <= *remoteCSeq_) return makeError(500, "CSeq out of order");
  remoteCSeq_ = seq;
  return {};
}

void Dialog::refreshTarget(const Message& message) {
  std::string t = contactUri(message);
  if (!t.empty()) remoteTarget_ = std::move(t);
}

void Dialog::confirmFromResponse(const Message& response) {
  if (state_ == State::Early) {
    // RFC 3261 §13.2.2.4: the route set is recomputed from the 2xx.
    setRouteSet(response, true);
  }
  refreshTarget(response);
  state_ = State::Confirmed;
}

} // namespace verbund::sip

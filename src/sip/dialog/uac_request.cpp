#include "sip/dialog/uac_request.h"

#include "sip/message/builder.h"
#include "sip/message/text.h"

namespace verbund::sip {

std::optional<Peer> resolveNumeric(const Uri& uri) {
  if (uri.scheme != UriScheme::Sip && uri.scheme != UriScheme::Sips) return std::nullopt;
  auto ip = IpAddress::parse(uri.host);
  if (!ip) return std::nullopt;
  Peer p;
  std::string_view tp = uri.transportParam();
  if (uri.isSecure() || tp == "tls")
    p.transport = TransportType::Tls;
  else if (tp == "tcp")
    p.transport = TransportType::Tcp;
  else
    p.transport = TransportType::Udp;
  p.remote.ip = *ip;
  p.remote.port = uri.port ? uri.port : (p.transport == TransportType::Tls ? 5061 : 5060);
  return p;
}

std::string_view authHeaderFor(int challengeStatus) {
  return challengeStatus == 407 ? headerCanonicalName(HeaderId::ProxyAuthorization)
                                : headerCanonicalName(HeaderId::Authorization);
}

std::string buildOutOfDialogRequest(const OutOfDialogRequest& r) {
  MessageBuilder b = MessageBuilder::request(r.method, r.requestUri);
  b.header(HeaderId::Via, r.via);
  b.header(HeaderId::MaxForwards, "70");
  if (r.routes)
    for (const auto& route : *r.routes) b.header(HeaderId::Route, route);
  std::string from(r.from);
  from.append(";tag=").append(r.fromTag);
  b.header(HeaderId::From, from);
  b.header(HeaderId::To, r.to);
  b.header(HeaderId::CallId, r.callId);
  std::string cseq = std::to_string(r.cseq);
  cseq.append(" ").append(r.method);
  b.header(HeaderId::CSeq, cseq);
  if (!r.contact.empty()) {
    std::string c = "<";
    c.append(r.contact).append(">");
    b.header(HeaderId::Contact, c);
  }
  if (r.headers)
    for (const auto& [name, value] : *r.headers) b.header(name, value);
  if (!r.body.empty()) b.body(r.contentType, r.body);
  return b.finish();
}

std::optional<uint32_t> retryAfterSeconds(const Message& m) {
  auto v = m.header(HeaderId::RetryAfter);
  if (!v) return std::nullopt;
  std::string_view s = text::trim(*v);
  size_t n = 0;
  while (n < s.size() && text::isDigit(s[n])) ++n;
  auto r = parseUint(s.substr(0, n));
  if (!r) return std::nullopt;
  return *r;
}

std::optional<uint32_t> expiresHeader(const Message& m) {
  auto v = m.header(HeaderId::Expires);
  if (!v) return std::nullopt;
  auto r = parseUint(text::trim(*v));
  if (!r) return std::nullopt;
  return *r;
}

} // namespace verbund::sip

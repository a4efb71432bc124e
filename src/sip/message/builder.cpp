#include "sip/message/builder.h"

#include "sip/message/text.h"

#include <random>

namespace verbund::sip {

MessageBuilder::MessageBuilder(std::string startLine) : out_(std::move(startLine)) {
  out_.reserve(1024);
}

MessageBuilder MessageBuilder::request(std::string_view method, std::string_view requestUri) {
  std::string s;
  s.reserve(1024);
  s.append(method).append(" ").append(requestUri).append(" SIP/2.0\r\n");
  return MessageBuilder(std::move(s));
}

MessageBuilder MessageBuilder::response(int status, std::string_view reason) {
  std::string s = "SIP/2.0 " + std::to_string(status) + " ";
  s.append(reason.empty() ? defaultReason(status) : reason).append("\r\n");
  return MessageBuilder(std::move(s));
}

MessageBuilder& MessageBuilder::header(std::string_view name, std::string_view value) {
  out_.append(name).append(": ").append(value).append("\r\n");
  return *this;
}

MessageBuilder& MessageBuilder::header(HeaderId id, std::string_view value) {
  return header(headerCanonicalName(id), value);
}

MessageBuilder& MessageBuilder::copyHeaders(const Message& from, HeaderId id) {
  for (const auto& h : from.headers())
    if (h.id == id) header(headerCanonicalName(id), h.value);
  return *this;
}

MessageBuilder& MessageBuilder::body(std::string_view contentType, std::string_view b) {
  contentType_ = contentType;
  body_.assign(b);
  return *this;
}

std::string MessageBuilder::finish() {
  if (!body_.empty() && !contentType_.empty()) header(HeaderId::ContentType, contentType_);
  out_.append("Content-Length: ").append(std::to_string(body_.size())).append("\r\n\r\n");
  out_.append(body_);
  body_.clear();
  contentType_ = {};
  return std::move(out_);
}

namespace {
// Rewrites the top Via for a response: RFC 3261 §18.2.1 received, RFC 3581 rport.
std::string topViaForResponse(const Message& req) {
  const Via& via = req.topVia();
  const Peer& src = req.source();
  if (src.remote.port == 0) return std::string(via.text);
  std::string srcIp = src.remote.ip.toString();
  std::string_view viaHost = via.host;
  if (viaHost.size() > 2 && viaHost.front() == '[') viaHost = viaHost.substr(1, viaHost.size() - 2);
  bool addReceived = via.hasRport || !text::iequals(viaHost, srcIp);
  if (!addReceived && !(via.hasRport && !via.rport)) return std::string(via.text);
  std::string out(via.text.substr(0, size_t(via.params.data() - via.text.data())));
  while (!out.empty() && text::isWs(out.back())) out.pop_back();
  // Copy parameters except received and rport, which are rewritten.
  std::string_view p = via.params;
  while (!p.empty()) {
    if (p.front() == ';') p.remove_prefix(1);
    auto end = p.find(';');
    std::string_view item = text::trim(p.substr(0, end));
    std::string_view name = item.substr(0, item.find('='));
    name = text::trim(name);
    if (!item.empty() && !text::iequals(name, "received") && !text::iequals(name, "rport"))
      out.append(";").append(item);
    if (end == std::string_view::npos) break;
    p = p.substr(end);
  }
  if (addReceived) out.append(";received=").append(srcIp);
  if (via.hasRport) out.append(";rport=").append(std::to_string(src.remote.port));
  return out;
}
} // namespace

MessageBuilder responseTo(const Message& request, int status, std::string_view reason,
                          std::string_view toTag) {
  MessageBuilder b = MessageBuilder::response(status, reason);
  bool first = true;
  for (const auto& h : request.headers()) {
    if (h.id != HeaderId::Via) continue;
    if (first) {
      b.header(HeaderId::Via, topViaForResponse(request));
      first = false;
    } else {
      b.header(HeaderId::Via, h.value);
    }
  }
  b.header(HeaderId::From, request.from().text);
  if (!toTag.empty() && request.toTag().empty() && status > 100) {
    std::string to(request.to().text);
    to.append(";tag=").append(toTag);
    b.header(HeaderId::To, to);
  } else {
    b.header(HeaderId::To, request.to().text);
  }
  b.header(HeaderId::CallId, request.callId());
  std::string cseq = std::to_string(request.cseq().seq);
  cseq.append(" ").append(request.cseq().methodText);
  b.header(HeaderId::CSeq, cseq);
  // RFC 3261 §8.2.6.1: a 100 (Trying) copies the request's Timestamp.
  if (status == 100)
    if (auto ts = request.header(HeaderId::Timestamp)) b.header(HeaderId::Timestamp, *ts);
  return b;
}

std::string_view defaultReason(int status) {
  switch (status) {
  case 100:
    return "Trying";
  case 180:
    return "Ringing";
  case 181:
    return "Call Is Being Forwarded";
  case 182:
    return "Queued";
  case 183:
    return "Session Progress";
  case 200:
    return "OK";
  case 202:
    return "Accepted";
  case 300:
    return "Multiple Choices";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Moved Temporarily";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 407:
    return "Proxy Authentication Required";
  case 408:
    return "Request Timeout";
  case 410:
    return "Gone";
  case 413:
    return "Request Entity Too Large";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Unsupported URI Scheme";
  case 420:
    return "Bad Extension";
  case 421:
    return "Extension Required";
  case 423:
    return "Interval Too Brief";
  case 480:
    return "Temporarily Unavailable";
  case 481:
    return "Call/Transaction Does Not Exist";
  case 482:
    return "Loop Detected";
  case 483:
    return "Too Many Hops";
  case 484:
    return "Address Incomplete";
  case 485:
    return "Ambiguous";
  case 486:
    return "Busy Here";
  case 487:
    return "Request Terminated";
  case 488:
    return "Not Acceptable Here";
  case 489:
    return "Bad Event";
  case 491:
    return "Request Pending";
  case 500:
    return "Server Internal Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Server Time-out";
  case 505:
    return "Version Not Supported";
  case 513:
    return "Message Too Large";
  case 600:
    return "Busy Everywhere";
  case 603:
    return "Decline";
  case 604:
    return "Does Not Exist Anywhere";
  case 606:
    return "Not Acceptable";
  default:
    break;
  }
  if (status < 200) return "Progress";
  if (status < 300) return "OK";
  if (status < 400) return "Redirect";
  if (status < 500) return "Client Error";
  if (status < 600) return "Server Error";
  return "Global Failure";
}

namespace {
// Tags, Call-IDs and branches need uniqueness, not secrecy (RFC 3261 §19.3 asks for 32 bits of
// randomness): a per-thread xoshiro-like generator seeded from the OS is enough and lock-free.
uint64_t nextRandom() {
  thread_local uint64_t s = [] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ull;
  }();
  // splitmix64
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void appendHex(std::string& out, uint64_t v, int digits) {
  static const char* kHex = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += kHex[(v >> (i * 4)) & 0xf];
}
} // namespace

std::string quotedDisplayName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  if (out.empty()) return {};
  return "\"" + out + "\"";
}

std::string newTag() {
  std::string s;
  appendHex(s, nextRandom(), 12);
  return s;
}

std::string newCallId(std::string_view host) {
  std::string s;
  appendHex(s, nextRandom(), 16);
  appendHex(s, nextRandom(), 8);
  if (!host.empty()) s.append("@").append(host);
  return s;
}

std::string newBranch() {
  std::string s(kMagicCookie);
  appendHex(s, nextRandom(), 16);
  return s;
}

} // namespace verbund::sip

// The SIP message parser (RFC 3261 §7, §25). One pass over the bytes: unfold continuation lines in
// place, split header lines, classify names, split list headers, parse routing headers. Never
// throws; every failure becomes a ParseError with a reason fit for a 400 reason phrase.
#include "base/metrics.h"
#include "sip/message/builder.h"
#include "sip/message/message.h"
#include "sip/message/text.h"

#include <cstring>

namespace verbund::sip {

namespace {
Counter g_parsed("verbund_sip_messages_parsed_total", "SIP messages parsed successfully");
Counter g_parseErrors("verbund_sip_parse_errors_total", "SIP messages rejected by the parser");

struct Line {
  uint32_t begin;
  uint32_t end;     // exclusive, without CR LF
  uint32_t nameEnd; // header name is [begin, nameEnd)
  uint32_t colon;   // offset of the ':' after the name
  HeaderId id;
  bool nameOk; // name is a token followed by optional whitespace and ':'
  bool folded; // contains continuation lines (CR LF still in place until unfolded)
};

// RFC 3261 §7.3.1: a line starting with SP or HTAB continues the previous header line. Turns the
// CR LF of every fold in [from, to) into spaces, so that the header value is one contiguous view.
// Every LF in that range that is followed by whitespace is a fold: the header block has been
// split at all other LFs already.
void unfold(char* base, size_t size, size_t from, size_t to) {
  for (size_t i = from; i < to;) {
    const void* nl = std::memchr(base + i, '\n', to - i);
    if (!nl) break;
    size_t n = size_t(static_cast<const char*>(nl) - base);
    if (n + 1 < size && text::isWs(base[n + 1])) {
      base[n] = ' ';
      if (n > 0 && base[n - 1] == '\r') base[n - 1] = ' ';
    }
    i = n + 1;
  }
}
} // namespace

class Parser {
public:
  static ParseOutcome run(std::string buffer, const ParseOptions& opt);
};

Message::Message(std::string buffer) : buffer_(std::move(buffer)) {}

ParseOutcome Parser::run(std::string buffer, const ParseOptions& opt) {
  ParseOutcome out;
  MessagePtr m;
  auto fail = [&](int status, std::string reason) {
    g_parseErrors.inc();
    // Hand the bytes back so the caller can answer without having kept a copy. Unfolding may
    // have turned CR LF inside headers into spaces, which only helps the error response.
    if (m)
      out.raw = std::move(m->buffer_);
    else
      out.raw = std::move(buffer);
    m.reset();
    out.message.reset();
    out.error.status = status;
    out.error.reason = std::move(reason);
    return std::move(out);
  };
  if (buffer.size() > opt.limits.maxMessageSize) {
    out.error.isRequest = buffer.compare(0, 4, "SIP/") != 0;
    return fail(513, "Message Too Large");
  }
  m.reset(new Message(std::move(buffer)));
  Message& msg = *m;
  char* base = msg.buffer_.data();
  const size_t size = msg.buffer_.size();

  // RFC 3261 §7.5: ignore CRLFs before the start line.
  size_t pos = 0;
  while (pos < size && (base[pos] == '\r' || base[pos] == '\n')) ++pos;
  if (pos == size) return fail(400, "Empty message");

  // One pass over the header block with one memchr per line: the start line, the header lines,
  // folds, and the empty line that ends the block (bare LF line ends are accepted leniently).
  // Errors found here are reported in message order: an incomplete block first, then start-line
  // errors, then limits. Folds are only noted; their CR LF are blanked once the start line has
  // been accepted, so a start-line error hands back the bytes as received.
  Line lines[256];
  size_t nLines = 0;
  bool anyFold = false;
  const char* limitError = nullptr;
  size_t limitPos = 0; // the LF (or end) ending the line that broke a limit
  size_t headerEnd = std::string::npos, bodyStart = size;
  // An LF at n ends the header block when an empty line follows it.
  auto endsBlock = [&](size_t n) {
    if (n + 1 < size && base[n + 1] == '\n') {
      headerEnd = n + 1;
      bodyStart = n + 2;
      return true;
    }
    if (n + 2 < size && base[n + 1] == '\r' && base[n + 2] == '\n') {
      headerEnd = n + 1;
      bodyStart = n + 3;
      return true;
    }
    return false;
  };
  // Names and ids as the lines are found, so the vectors can be sized before anything is
  // pushed: growing them would strand the old blocks in the monotonic arena and spill it to the
  // heap. A folded line waits until it has been unfolded (a fold may sit before the colon).
  size_t idCount[size_t(HeaderId::kCount)] = {};
  auto classify = [&](Line& l) {
    const char* lp = base + l.begin;
    const size_t len = l.end - l.begin;
    // header-name = token, then optional whitespace before HCOLON (RFC 3261 §7.3.1, §25.1).
    size_t k = text::scan(lp, 0, len, text::kToken);
    l.nameEnd = uint32_t(l.begin + k);
    k = text::scan(lp, k, len, text::kWs);
    l.nameOk = k < len && lp[k] == ':' && l.nameEnd > l.begin;
    if (!l.nameOk) return;
    l.colon = uint32_t(l.begin + k);
    l.id = headerIdFromName(std::string_view(lp, l.nameEnd - l.begin));
    ++idCount[size_t(l.id)];
  };
  auto addLine = [&](size_t b, size_t n, bool folded) {
    size_t e = n;
    if (e > b && base[e - 1] == '\r') --e;
    if (e == b || limitError) return;
    if (nLines == std::size(lines) || nLines >= opt.limits.maxHeaders) {
      limitError = "Too many headers";
      limitPos = n;
    } else if (e - b > opt.limits.maxHeaderLine) {
      limitError = "Header line too long";
      limitPos = n;
    } else {
      Line& l = lines[nLines++];
      l = Line{uint32_t(b), uint32_t(e), 0, 0, HeaderId::Other, false, folded};
      if (folded)
        anyFold = true;
      else
        classify(l);
    }
  };
  const char* slNl = static_cast<const char*>(std::memchr(base + pos, '\n', size - pos));
  if (slNl && !endsBlock(size_t(slNl - base))) {
    size_t lineStart = size_t(slNl - base) + 1;
    bool folded = false;
    for (size_t i = lineStart;;) {
      const char* nl = static_cast<const char*>(std::memchr(base + i, '\n', size - i));
      if (!nl) {
        addLine(lineStart, size, folded); // datagram without the empty line
        break;
      }
      size_t n = size_t(nl - base);
      if (endsBlock(n)) {
        addLine(lineStart, n, folded);
        break;
      }
      i = n + 1;
      if (n + 1 < size && text::isWs(base[n + 1])) {
        folded = true;
        continue;
      }
      addLine(lineStart, n, folded);
      lineStart = n + 1;
      folded = false;
    }
  }
  if (headerEnd == std::string::npos) {
    if (opt.stream) return fail(400, "Incomplete header block");
    // A datagram without the empty line: treat the end of the packet as the end of headers.
    headerEnd = size;
    bodyStart = size;
  }

  // Start line.
  const char* sl = base + pos;
  size_t slLen = slNl ? size_t(slNl - sl) : headerEnd - pos;
  size_t next = pos + slLen + 1;
  if (slLen && sl[slLen - 1] == '\r') --slLen;
  std::string_view start(sl, slLen);
  const bool isResponse = start.size() >= 4 && start.compare(0, 4, "SIP/") == 0;
  out.error.isRequest = !isResponse;
  msg.isRequest_ = !isResponse;
  if (isResponse) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    auto sp1 = start.find(' ');
    if (sp1 == std::string_view::npos) return fail(400, "Bad status line");
    msg.version_ = start.substr(0, sp1);
    if (!text::iequals(msg.version_, "SIP/2.0")) return fail(505, "Version Not Supported");
    std::string_view rest = start.substr(sp1 + 1);
    if (rest.size() < 3 || !text::isDigit(rest[0]) || !text::isDigit(rest[1]) ||
        !text::isDigit(rest[2]) || (rest.size() > 3 && rest[3] != ' '))
      return fail(400, "Bad status code");
    msg.status_ = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
    if (msg.status_ < 100 || msg.status_ > 699) return fail(400, "Bad status code");
    msg.reason_ = rest.size() > 4 ? rest.substr(4) : std::string_view{};
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version (RFC 3261 §7.1). Runs of spaces
    // between the elements and trailing spaces are tolerated (RFC 4475 §3.1.2.9, §3.1.2.10:
    // a liberal element may accept them); whitespace inside the Request-URI is not (§3.1.2.4).
    if (start.find('\t') != start.npos) return fail(400, "Tab in request line");
    while (!start.empty() && start.back() == ' ') start.remove_suffix(1);
    auto sp1 = start.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "Bad request line");
    auto uriStart = start.find_first_not_of(' ', sp1);
    auto uriEnd = uriStart == start.npos ? start.npos : start.find(' ', uriStart);
    auto verStart = uriEnd == start.npos ? start.npos : start.find_first_not_of(' ', uriEnd);
    if (verStart == std::string_view::npos) return fail(400, "Bad request line");
    if (start.find(' ', verStart) != std::string_view::npos)
      return fail(400, "Whitespace in Request-URI");
    msg.methodText_ = start.substr(0, sp1);
    if (!text::isToken(msg.methodText_)) return fail(400, "Bad method");
    msg.method_ = methodFromName(msg.methodText_);
    std::string_view ruri = start.substr(uriStart, uriEnd - uriStart);
    if (ruri.empty()) return fail(400, "Empty Request-URI");
    if (ruri.front() == '<') return fail(400, "Request-URI in angle brackets");
    auto uri = parseUri(ruri);
    if (!uri) return fail(400, uri.error().message);
    msg.requestUri_ = uri.value();
    msg.version_ = start.substr(verStart);
    if (msg.version_.size() < 5 || !text::iequals(msg.version_.substr(0, 4), "SIP/"))
      return fail(400, "Bad SIP version");
    if (!text::iequals(msg.version_, "SIP/2.0")) return fail(505, "Version Not Supported");
  }

  if (limitError) {
    unfold(base, size, next, limitPos); // as far as the lines were taken before the limit hit
    return fail(400, limitError);
  }
  if (anyFold) {
    for (size_t li = 0; li < nLines; ++li) {
      if (!lines[li].folded) continue;
      unfold(base, size, lines[li].begin, lines[li].end);
      classify(lines[li]);
    }
  }
  msg.headers_.reserve(nLines + 4);
  msg.vias_.reserve(idCount[size_t(HeaderId::Via)]);
  msg.routes_.reserve(idCount[size_t(HeaderId::Route)]);
  msg.recordRoutes_.reserve(idCount[size_t(HeaderId::RecordRoute)]);
  msg.contacts_.reserve(idCount[size_t(HeaderId::Contact)]);

  bool haveFrom = false, haveTo = false, haveCallId = false, haveCSeq = false;
  std::optional<uint32_t> contentLength;
  for (size_t li = 0; li < nLines; ++li) {
    const Line& l = lines[li];
    std::string_view line(base + l.begin, l.end - l.begin);
    if (text::isWs(line[0])) return fail(400, "Continuation line without header");
    if (!l.nameOk) {
      // Which error: a line without any ':' is malformed, else the name is not a token.
      if (line.find(':') == std::string_view::npos) return fail(400, "Malformed header line");
      return fail(400, "Bad header name");
    }
    std::string_view name(base + l.begin, l.nameEnd - l.begin);
    std::string_view value = text::trim(std::string_view(base + l.colon + 1, l.end - l.colon - 1));
    const HeaderId id = l.id;

    auto addOne = [&](std::string_view v) -> bool {
      if (msg.headers_.size() >= opt.limits.maxHeaders) return false;
      msg.headers_.push_back(Header{id, name, v});
      return true;
    };
    if (isListHeader(id)) {
      bool star = id == HeaderId::Contact && value == "*";
      if (star) {
        msg.contactStar_ = true;
        addOne(value);
        continue;
      }
      size_t before = msg.headers_.size();
      // Most lines carry one element: skip the quote-aware splitter when there is no comma.
      if (std::memchr(value.data(), ',', value.size()) == nullptr) {
        if (!addOne(value)) return fail(400, "Too many headers");
      } else if (!forEachListElement(value, addOne)) {
        return fail(400, "Bad list in header " + std::string(name));
      }
      for (size_t k = before; k < msg.headers_.size(); ++k) {
        std::string_view ev = msg.headers_[k].value;
        switch (id) {
        case HeaderId::Via: {
          auto via = parseVia(ev);
          if (!via) return fail(400, "Bad Via header: " + via.error().message);
          msg.vias_.push_back(via.value());
          break;
        }
        case HeaderId::Route:
        case HeaderId::RecordRoute:
        case HeaderId::Contact: {
          auto na = parseNameAddr(ev);
          if (!na) {
            return fail(400, "Bad " + std::string(headerCanonicalName(id)) +
                                 " header: " + na.error().message);
          }
          (id == HeaderId::Route         ? msg.routes_
           : id == HeaderId::RecordRoute ? msg.recordRoutes_
                                         : msg.contacts_)
              .push_back(na.value());
          break;
        }
        default:
          break;
        }
      }
      continue;
    }
    if (!addOne(value)) return fail(400, "Too many headers");
    switch (id) {
    case HeaderId::From:
    case HeaderId::To: {
      bool& have = id == HeaderId::From ? haveFrom : haveTo;
      if (have) return fail(400, "Duplicate " + std::string(headerCanonicalName(id)) + " header");
      have = true;
      auto na = parseNameAddr(value);
      if (!na) {
        return fail(400, "Bad " + std::string(headerCanonicalName(id)) +
                             " header: " + na.error().message);
      }
      (id == HeaderId::From ? msg.from_ : msg.to_) = na.value();
      (id == HeaderId::From ? msg.fromTag_ : msg.toTag_) = na->tag();
      break;
    }
    case HeaderId::CallId: {
      if (haveCallId) return fail(400, "Duplicate Call-ID header");
      haveCallId = true;
      // callid = word [ "@" word ]: no whitespace
      if (value.empty()) return fail(400, "Empty Call-ID");
      if (text::scan(value.data(), 0, value.size(), text::kCallId) != value.size())
        return fail(400, "Bad Call-ID");
      msg.callId_ = value;
      break;
    }
    case HeaderId::CSeq: {
      if (haveCSeq) return fail(400, "Duplicate CSeq header");
      haveCSeq = true;
      auto c = parseCSeq(value);
      if (!c) return fail(400, c.error().message);
      msg.cseq_ = c.value();
      break;
    }
    case HeaderId::MaxForwards: {
      auto n = parseUint(value);
      if (!n || *n > 255) return fail(400, "Bad Max-Forwards");
      if (msg.maxForwards_) return fail(400, "Duplicate Max-Forwards header");
      msg.maxForwards_ = *n;
      break;
    }
    case HeaderId::ContentLength: {
      auto n = parseUint(value);
      if (!n) return fail(400, "Bad Content-Length");
      if (contentLength && *contentLength != *n) return fail(400, "Conflicting Content-Length");
      contentLength = *n;
      break;
    }
    case HeaderId::Expires: {
      // RFC 3261 §20.19: delta-seconds. A date form (RFC 2543) is a client error.
      if (!parseUint(value)) return fail(400, "Bad Expires");
      break;
    }
    default:
      break;
    }
  }

  if (msg.vias_.empty()) return fail(400, "Missing Via header");
  if (!haveFrom) return fail(400, "Missing From header");
  if (!haveTo) return fail(400, "Missing To header");
  if (!haveCallId) return fail(400, "Missing Call-ID header");
  if (!haveCSeq) return fail(400, "Missing CSeq header");
  if (msg.isRequest_ && msg.cseq_.methodText != msg.methodText_)
    return fail(400, "CSeq method does not match request method");

  // Body (RFC 3261 §18.3 framing).
  size_t available = size - bodyStart;
  if (contentLength) {
    if (*contentLength > available) return fail(400, "Content-Length larger than message");
    if (opt.stream && *contentLength != available) return fail(400, "Content-Length mismatch");
    msg.body_ = std::string_view(base + bodyStart, *contentLength);
  } else {
    if (opt.stream) return fail(400, "Missing Content-Length");
    msg.body_ = std::string_view(base + bodyStart, available);
  }

  g_parsed.inc();
  out.message = std::move(m);
  return out;
}

ParseOutcome parseMessage(std::string buffer, const ParseOptions& options) {
  return Parser::run(std::move(buffer), options);
}

std::optional<std::string_view> Message::header(HeaderId id) const {
  for (const auto& h : headers_)
    if (h.id == id) return h.value;
  return std::nullopt;
}

std::optional<std::string_view> Message::header(std::string_view name) const {
  HeaderId id = headerIdFromName(name);
  if (id != HeaderId::Other) return header(id);
  for (const auto& h : headers_)
    if (h.id == HeaderId::Other && text::iequals(h.name, name)) return h.value;
  return std::nullopt;
}

size_t Message::headerCount(HeaderId id) const {
  size_t n = 0;
  for (const auto& h : headers_) n += h.id == id;
  return n;
}

std::string Message::serialize() const {
  std::string out;
  out.reserve(buffer_.size() + 64);
  if (isRequest_) {
    out.append(methodText_).append(" ").append(requestUri_.text).append(" ").append(version_);
  } else {
    out.append(version_).append(" ").append(std::to_string(status_)).append(" ").append(reason_);
  }
  out.append("\r\n");
  for (const auto& h : headers_) out.append(h.name).append(": ").append(h.value).append("\r\n");
  out.append("\r\n");
  out.append(body_);
  return out;
}

std::string buildErrorResponse(std::string_view raw, const ParseError& error) {
  if (!error.isRequest) return {};
  std::string via, rest;
  bool haveTo = false;
  size_t i = 0;
  // Skip the start line.
  auto nl = raw.find('\n');
  if (nl == std::string_view::npos) return {};
  i = nl + 1;
  while (i < raw.size()) {
    auto e = raw.find('\n', i);
    std::string_view line = raw.substr(i, e == std::string_view::npos ? raw.npos : e - i);
    i = e == std::string_view::npos ? raw.size() : e + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = text::trim(line.substr(0, colon));
    std::string_view value = text::trim(line.substr(colon + 1));
    bool printable = true;
    for (char c : value)
      if ((unsigned char)c < 0x20 && c != '\t') printable = false;
    if (!printable || value.size() > 1024) continue;
    HeaderId id = headerIdFromName(name);
    // Copy only what parses, so that the 400 itself is well formed for strict peers.
    bool valid = true;
    switch (id) {
    case HeaderId::Via:
      valid = parseVia(value).ok();
      break;
    case HeaderId::From:
    case HeaderId::To:
      valid = parseNameAddr(value).ok();
      break;
    case HeaderId::CSeq:
      valid = parseCSeq(value).ok();
      break;
    case HeaderId::CallId:
      valid = !value.empty() && value.find_first_of(" \t") == std::string_view::npos;
      break;
    default:
      break;
    }
    if (!valid) continue;
    switch (id) {
    case HeaderId::Via:
      via.append("Via: ").append(value).append("\r\n");
      break;
    case HeaderId::From:
    case HeaderId::CallId:
    case HeaderId::CSeq:
      rest.append(headerCanonicalName(id)).append(": ").append(value).append("\r\n");
      break;
    case HeaderId::To:
      if (haveTo) break;
      haveTo = true;
      rest.append("To: ").append(value);
      if (value.find(";tag=") == std::string_view::npos &&
          value.find(";TAG=") == std::string_view::npos)
        rest.append(";tag=").append(newTag());
      rest.append("\r\n");
      break;
    default:
      break;
    }
  }
  if (via.empty()) return {};
  std::string reason;
  for (char c : error.reason) reason += ((unsigned char)c < 0x20 || c == 0x7f) ? ' ' : c;
  if (reason.size() > 120) reason.resize(120);
  std::string out = "SIP/2.0 " + std::to_string(error.status) + " " + reason + "\r\n";
  out += via;
  out += rest;
  out += "Content-Length: 0\r\n\r\n";
  return out;
}

} // namespace verbund::sip

#include "http/request_parser.h"

#include <algorithm>

namespace verbund::http {

namespace {

constexpr size_t kMaxChunkLine = 1024; // chunk size + extensions (RFC 9112 §7.1.1)

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

// RFC 9110 §5.6.2 tchar
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTokenChar);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A line of the head without its "\n" and optional "\r".
std::string_view chomp(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Comma-separated list contains the token (case-insensitive), e.g. Connection: keep-alive, close.
bool listHas(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = trim(list.substr(0, comma));
    if (equalsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

} // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool percentDecode(std::string_view in, bool plusIsSpace, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = char(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plusIsSpace) {
      c = ' ';
    }
    if (c == '\0') return false;
    out.push_back(c);
  }
  return true;
}

bool parseQuery(std::string_view text, std::multimap<std::string, std::string>& out) {
  while (!text.empty()) {
    auto amp = text.find('&');
    auto part = text.substr(0, amp);
    if (!part.empty()) {
      auto eq = part.find('=');
      std::string key, value;
      if (!percentDecode(part.substr(0, eq), true, key)) return false;
      if (eq != std::string_view::npos && !percentDecode(part.substr(eq + 1), true, value))
        return false;
      out.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return true;
}

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (equalsIgnoreCase(k, name)) return &v;
  return nullptr;
}

std::string HttpRequest::headerValue(std::string_view name) const {
  const std::string* v = header(name);
  return v ? *v : std::string();
}

void RequestParser::reset() {
  state_ = State::Head;
  head_.clear();
  lineStart_ = 0;
  lines_ = 0;
  leadingBlank_ = 0;
  remaining_ = 0;
  request_ = HttpRequest{};
  errorStatus_ = 0;
  errorMessage_.clear();
}

size_t RequestParser::bodyLimit() const {
  for (const auto& p : limits_.largeBodyPaths)
    if (request_.path == p) return limits_.maxLargeBodyBytes;
  return limits_.maxBodyBytes;
}

size_t RequestParser::fail(int status, std::string message) {
  state_ = State::Failed;
  errorStatus_ = status;
  errorMessage_ = std::move(message);
  head_.clear();
  return 0;
}

size_t RequestParser::feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size()) {
    std::string_view rest = data.substr(used);
    switch (state_) {
    case State::Head:
      used += feedHead(rest);
      break;
    case State::Body:
    case State::ChunkData: {
      size_t n = std::min(remaining_, rest.size());
      request_.body.append(rest.data(), n);
      remaining_ -= n;
      used += n;
      if (remaining_ == 0) state_ = state_ == State::Body ? State::Done : State::ChunkEnd;
      break;
    }
    case State::ChunkEnd:
      // RFC 9112 §7.1: chunk-data CRLF
      if (rest.front() == '\r' && head_.empty()) {
        head_.push_back('\r');
        ++used;
      } else if (rest.front() == '\n') {
        head_.clear();
        state_ = State::ChunkSize;
        ++used;
      } else {
        return used + fail(400, "body: malformed chunk (no CRLF after the data)");
      }
      break;
    case State::ChunkSize:
      used += feedChunkSize(rest);
      break;
    case State::Trailer:
      used += feedTrailer(rest);
      break;
    case State::Done:
    case State::Failed:
      return used;
    }
    if (state_ == State::Failed) return used;
  }
  return used;
}

size_t RequestParser::feedHead(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    char c = data[i];
    // Empty lines before the request line are ignored (RFC 9112 §2.2), a few of them.
    if (head_.empty() && (c == '\r' || c == '\n')) {
      if (++leadingBlank_ > 64) return i + 1 + fail(400, "request: no request line");
      continue;
    }
    head_.push_back(c);
    if (head_.size() > limits_.maxHeadBytes)
      return i + 1 +
             fail(431, "headers: request head larger than " + std::to_string(limits_.maxHeadBytes) +
                           " bytes");
    if (c != '\n') continue;
    std::string_view line = chomp(std::string_view(head_).substr(lineStart_));
    lineStart_ = head_.size();
    if (!line.empty()) {
      if (++lines_ > limits_.maxHeaders + 1)
        return i + 1 +
               fail(431, "headers: more than " + std::to_string(limits_.maxHeaders) + " fields");
      continue;
    }
    if (!parseHead()) return i + 1;
    head_.clear();
    return i + 1;
  }
  return data.size();
}

bool RequestParser::parseHead() {
  std::string_view head(head_);
  size_t pos = 0;
  bool first = true;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    std::string_view line = chomp(head.substr(pos, nl - pos + 1));
    pos = nl + 1;
    if (line.empty()) break;
    if (first) {
      if (!parseRequestLine(line)) return false;
      first = false;
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "headers: obsolete line folding"), false; // RFC 9112 §5.2
    auto colon = line.find(':');
    if (colon == std::string_view::npos || !isToken(line.substr(0, colon)))
      return fail(400, "headers: malformed field"), false; // also "Name :" (RFC 9112 §5.1)
    auto value = trim(line.substr(colon + 1));
    for (char ch : value)
      if ((static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f)
        return fail(400, "headers: control character in a field value"), false;
    request_.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  if (first) return fail(400, "request: no request line"), false;
  return parseFramingHeaders();
}

bool RequestParser::parseRequestLine(std::string_view line) {
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "request: malformed request line"), false;
  auto method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto version = line.substr(sp2 + 1);
  if (!isToken(method)) return fail(400, "request: malformed method"), false;
  if (version == "HTTP/1.1")
    request_.minorVersion = 1;
  else if (version == "HTTP/1.0")
    request_.minorVersion = 0;
  else if (version.starts_with("HTTP/"))
    return fail(505, "request: only HTTP/1.0 and HTTP/1.1"), false;
  else
    return fail(400, "request: malformed version"), false;
  // Origin form only (RFC 9112 §3.2.1); the admin server is no proxy.
  if (target.empty() || target.front() != '/')
    return fail(400, "request: target must be a path"), false;
  for (char ch : target)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f)
      return fail(400, "request: control character in the target"), false;
  request_.method = std::string(method);
  request_.target = std::string(target);
  auto q = target.find('?');
  auto rawPath = target.substr(0, q);
  auto hash = rawPath.find('#');
  if (hash != std::string_view::npos) rawPath = rawPath.substr(0, hash);
  if (!percentDecode(rawPath, false, request_.path))
    return fail(400, "request: bad percent-encoding in the path"), false;
  if (q != std::string_view::npos) {
    auto query = target.substr(q + 1);
    query = query.substr(0, query.find('#'));
    if (!parseQuery(query, request_.query))
      return fail(400, "request: bad percent-encoding in the query"), false;
  }
  return true;
}

bool RequestParser::parseFramingHeaders() {
  std::string transferEncoding;
  const std::string* contentLength = nullptr;
  bool http11 = request_.minorVersion == 1;
  request_.keepAlive = http11;
  for (const auto& [name, value] : request_.headers) {
    if (equalsIgnoreCase(name, "Transfer-Encoding")) {
      transferEncoding += transferEncoding.empty() ? value : "," + value;
    } else if (equalsIgnoreCase(name, "Content-Length")) {
      // Repeated lengths must agree (RFC 9112 §6.3 item 5); we accept no list form.
      if (contentLength && *contentLength != value)
        return fail(400, "Content-Length: conflicting values"), false;
      contentLength = &value;
    } else if (equalsIgnoreCase(name, "Connection")) {
      if (listHas(value, "close")) request_.keepAlive = false;
      if (!http11 && listHas(value, "keep-alive")) request_.keepAlive = true;
    } else if (equalsIgnoreCase(name, "Expect")) {
      if (!equalsIgnoreCase(trim(value), "100-continue"))
        return fail(417, "Expect: only 100-continue"), false;
      request_.expectContinue = http11;
    }
  }
  if (!transferEncoding.empty()) {
    // RFC 9112 §6.1: both headers are a smuggling attempt; a server may reject it.
    if (contentLength) return fail(400, "Transfer-Encoding: together with Content-Length"), false;
    if (!http11) return fail(400, "Transfer-Encoding: not in HTTP/1.0"), false;
    if (!equalsIgnoreCase(trim(transferEncoding), "chunked"))
      return fail(501, "Transfer-Encoding: only chunked"), false;
    request_.chunked = true;
    state_ = State::ChunkSize;
    return true;
  }
  if (contentLength) {
    const std::string& v = *contentLength;
    if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
      return fail(400, "Content-Length: not a number"), false;
    size_t n = std::stoull(v);
    if (n > bodyLimit())
      return fail(413, "body: larger than the limit of " + std::to_string(bodyLimit()) + " bytes"),
             false;
    remaining_ = n;
    if (n > 0) {
      request_.body.reserve(n);
      state_ = State::Body;
      return true;
    }
  }
  state_ = State::Done;
  request_.expectContinue = false;
  return true;
}

size_t RequestParser::feedChunkSize(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    head_.push_back(data[i]);
    if (head_.size() > kMaxChunkLine) return i + 1 + fail(400, "body: chunk size line too long");
    if (data[i] != '\n') continue;
    std::string_view line = chomp(head_);
    auto ext = line.find(';');
    auto digits = trim(line.substr(0, ext));
    if (digits.empty() || digits.size() > 16)
      return i + 1 + fail(400, "body: malformed chunk size");
    size_t size = 0;
    for (char c : digits) {
      int h = hexValue(c);
      if (h < 0) return i + 1 + fail(400, "body: malformed chunk size");
      size = size * 16 + size_t(h);
      if (size > bodyLimit()) break; // about to fail anyway; avoids overflow
    }
    head_.clear();
    if (size > bodyLimit() - request_.body.size())
      return i + 1 +
             fail(413, "body: larger than the limit of " + std::to_string(bodyLimit()) + " bytes");
    if (size == 0) {
      state_ = State::Trailer;
      lineStart_ = 0;
      lines_ = 0;
    } else {
      remaining_ = size;
      state_ = State::ChunkData;
    }
    return i + 1;
  }
  return data.size();
}

// RFC 9112 §7.1.2: trailer fields are read and dropped (none of ours needs them).
size_t RequestParser::feedTrailer(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    head_.push_back(data[i]);
    if (head_.size() > limits_.maxHeadBytes)
      return i + 1 + fail(431, "headers: chunked trailer too large");
    if (data[i] != '\n') continue;
    std::string_view line = chomp(std::string_view(head_).substr(lineStart_));
    lineStart_ = head_.size();
    if (!line.empty()) {
      if (++lines_ > limits_.maxHeaders)
        return i + 1 + fail(431, "headers: too many trailer fields");
      continue;
    }
    head_.clear();
    state_ = State::Done;
    return i + 1;
  }
  return data.size();
}

} // namespace verbund::http

#include "sip/transport/framing.h"

#include <algorithm>
#include <cstring>
#include <string.h> // memmem (glibc)

namespace verbund::sip {

namespace {

constexpr char kCrlfCrlf[] = "\r\n\r\n";

bool isWsp(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trimWsp(std::string_view s) {
  while (!s.empty() && isWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWsp(s.back())) s.remove_suffix(1);
  return s;
}

bool equalsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

} // namespace

StreamFramer::StreamFramer(size_t maxHeaderBytes, size_t maxMessageBytes)
    : maxHeader_(maxHeaderBytes), maxMessage_(std::max(maxHeaderBytes, maxMessageBytes)) {}

void StreamFramer::feed(std::string_view bytes) {
  if (failed() || bytes.empty()) return;
  // Drop consumed bytes before appending; what remains is at most one partial message, so this
  // moves a bounded amount per chunk and scan positions stay valid after shifting them.
  if (pos_ > 0) {
    if (pos_ == buf_.size()) {
      buf_.clear();
    } else {
      buf_.erase(0, pos_);
    }
    scanFrom_ = scanFrom_ > pos_ ? scanFrom_ - pos_ : 0;
    pos_ = 0;
  }
  buf_.append(bytes.data(), bytes.size());
}

bool StreamFramer::setError(std::string why) {
  error_ = std::move(why);
  return false;
}

StreamFramer::Frame StreamFramer::fail(std::string why) {
  error_ = std::move(why);
  buf_.clear();
  buf_.shrink_to_fit();
  pos_ = 0;
  return Frame{Kind::Error, {}};
}

StreamFramer::Frame StreamFramer::next() {
  if (failed()) return Frame{Kind::Error, {}};
  for (;;) {
    const size_t avail = buf_.size() - pos_;
    switch (state_) {
    case State::Idle: {
      if (avail == 0) return Frame{};
      const char* p = buf_.data() + pos_;
      // RFC 3261 §7.5: CRLFs before a start-line are ignored. RFC 5626 §3.5.1 gives them meaning:
      // CRLFCRLF is a ping (answer CRLF), a lone CRLF is a pong. A CRLF at the end of the buffer
      // may be the first half of a ping split across reads, so wait for the next byte.
      if (p[0] == '\r') {
        if (avail < 2) return Frame{};
        if (p[1] == '\n') {
          if (avail == 2) return Frame{};
          if (p[2] == '\r') {
            if (avail == 3) return Frame{};
            if (p[3] == '\n') {
              pos_ += 4;
              return Frame{Kind::Ping, {}};
            }
          }
          pos_ += 2; // pong
          continue;
        }
      }
      state_ = State::Header;
      scanFrom_ = pos_;
      continue;
    }
    case State::Header: {
      const size_t end = buf_.size();
      const void* hit = nullptr;
      if (end > scanFrom_) hit = memmem(buf_.data() + scanFrom_, end - scanFrom_, kCrlfCrlf, 4);
      if (!hit) {
        if (avail > maxHeader_) return fail("header block exceeds limit");
        // The terminator may straddle chunks: resume 3 bytes back next time, never from the start.
        scanFrom_ = std::max(pos_, end >= 3 ? end - 3 : 0);
        return Frame{};
      }
      size_t at = size_t(static_cast<const char*>(hit) - buf_.data());
      headerLen_ = at + 4 - pos_;
      if (headerLen_ > maxHeader_) return fail("header block exceeds limit");
      size_t length = 0;
      if (!parseContentLength(std::string_view(buf_).substr(pos_, headerLen_), length))
        return fail(error_);
      if (length > maxMessage_ - headerLen_) return fail("message exceeds limit");
      bodyLen_ = length;
      state_ = State::Body;
      continue;
    }
    case State::Body: {
      const size_t total = headerLen_ + bodyLen_;
      if (avail < total) return Frame{};
      Frame f{Kind::Message, {}};
      if (pos_ == 0 && total == buf_.size()) {
        f.message = std::move(buf_); // common case: the chunk was exactly one message
        buf_.clear();
      } else {
        f.message.assign(buf_, pos_, total);
        pos_ += total;
      }
      state_ = State::Idle;
      return f;
    }
    }
  }
}

// Finds Content-Length (or compact "l", RFC 3261 §7.3.3) in a header block that ends with
// CRLFCRLF. Header names are case-insensitive (§7.3.1), HCOLON allows whitespace before the
// colon, and values may be folded onto continuation lines. §18.3 makes it mandatory on streams;
// conflicting duplicates are rejected because they make the message boundary ambiguous.
bool StreamFramer::parseContentLength(std::string_view headers, size_t& length) {
  bool found = false;
  bool inLength = false;
  std::string value;
  size_t result = 0;

  auto finishHeader = [&]() -> bool {
    if (!inLength) return true;
    inLength = false;
    std::string_view v = trimWsp(value);
    if (v.empty()) return setError("empty Content-Length");
    size_t n = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return setError("malformed Content-Length");
      n = n * 10 + size_t(c - '0');
      if (n > maxMessage_) return setError("Content-Length exceeds limit");
    }
    if (found && n != result) return setError("conflicting Content-Length headers");
    found = true;
    result = n;
    return true;
  };

  size_t i = headers.find("\r\n"); // skip the start-line
  if (i == std::string_view::npos) return setError("no start-line");
  i += 2;
  while (i < headers.size()) {
    size_t e = headers.find("\r\n", i);
    if (e == std::string_view::npos) e = headers.size();
    std::string_view line = headers.substr(i, e - i);
    i = e + 2;
    if (line.empty()) break;   // the final CRLF
    if (isWsp(line.front())) { // continuation of the previous header (§7.3.1 folding)
      if (inLength) value.append(line);
      continue;
    }
    if (!finishHeader()) return false;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue; // malformed; the message parser rejects it
    std::string_view name = trimWsp(line.substr(0, colon));
    if (equalsLower(name, "content-length") || equalsLower(name, "l")) {
      inLength = true;
      value.assign(line.substr(colon + 1));
    }
  }
  if (!finishHeader()) return false;
  if (!found) return setError("missing Content-Length on stream transport");
  length = result;
  return true;
}

} // namespace verbund::sip

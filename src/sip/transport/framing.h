#pragma once
// Splits a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3) and recognises RFC 5626 §3.5.1
// CRLF keep-alives. Pure: no I/O, no clock, so it is unit-tested and fuzzed on its own.
#include <cstddef>
#include <string>
#include <string_view>

namespace verbund::sip {

class StreamFramer {
public:
  enum class Kind {
    NeedMore, // feed more bytes
    Message,  // `message` holds one complete SIP message (header block + body)
    Ping,     // a CRLFCRLF keep-alive arrived: answer with a single CRLF (RFC 5626 §3.5.1)
    Error,    // fatal framing error: close the connection. Sticky.
  };
  struct Frame {
    Kind kind = Kind::NeedMore;
    std::string message;
  };

  static constexpr size_t kDefaultMaxHeaderBytes = 16 * 1024;
  static constexpr size_t kDefaultMaxMessageBytes = 64 * 1024;

  explicit StreamFramer(size_t maxHeaderBytes = kDefaultMaxHeaderBytes,
                        size_t maxMessageBytes = kDefaultMaxMessageBytes);

  // Appends bytes. Call next() until it returns NeedMore (or Error) before feeding again, so the
  // buffer never holds more than one incomplete message plus one chunk.
  void feed(std::string_view bytes);
  Frame next();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; } // why framing failed; safe to log
  size_t buffered() const { return buf_.size() - pos_; }

private:
  enum class State { Idle, Header, Body };

  Frame fail(std::string why);    // sets the error and drops the buffer
  bool setError(std::string why); // returns false
  bool parseContentLength(std::string_view headers, size_t& length);

  size_t maxHeader_;
  size_t maxMessage_;
  std::string buf_;
  size_t pos_ = 0; // first unconsumed byte
  State state_ = State::Idle;
  size_t scanFrom_ = 0;  // Header: where the CRLFCRLF search resumes (absolute index)
  size_t headerLen_ = 0; // Body: header block length including the final CRLFCRLF
  size_t bodyLen_ = 0;   // Body: Content-Length
  std::string error_;
};

} // namespace verbund::sip

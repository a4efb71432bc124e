#pragma once
// Incremental HTTP/1.1 request parser of the admin server: a pure codec (no I/O, no clock) that
// enforces the request limits while the bytes arrive, so that nothing beyond a limit is ever
// buffered.
//
// - Head (request line + header fields): at most maxHeadBytes and maxHeaders fields, else 431.
// - Body: Content-Length or "Transfer-Encoding: chunked" (RFC 9112 §6, §7.1); both together,
//   other transfer codings, malformed lengths are refused (400/501). A declared length or the
//   running sum of chunk sizes above maxBodyBytes fails with 413 before the data is read.
// - Chunk trailers count against the head limits and are dropped.
// Errors are sticky: after failed() the parser consumes nothing more.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace verbund::http {

struct RequestLimits {
  size_t maxHeadBytes = 16 * 1024; // request line + header fields (and, apart, the trailer)
  size_t maxHeaders = 64;
  size_t maxBodyBytes = 1 << 20;
  // Paths that take bulk uploads (exact match), with their own, larger limit.
  std::vector<std::string> largeBodyPaths;
  size_t maxLargeBodyBytes = 16 << 20;
};

struct HttpRequest {
  std::string method;
  std::string target; // as sent ("/api/v1/users?q=a")
  std::string path;   // percent-decoded path of the target
  std::multimap<std::string, std::string> query;
  int minorVersion = 1; // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keepAlive = true;
  bool expectContinue = false; // "Expect: 100-continue"
  bool chunked = false;

  // The first field of that name (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  std::string headerValue(std::string_view name) const; // "" when absent
};

class RequestParser {
public:
  enum class State { Head, Body, ChunkSize, ChunkData, ChunkEnd, Trailer, Done, Failed };

  explicit RequestParser(RequestLimits limits = {}) : limits_(limits) {}

  // Consumes bytes of the request and returns how many it used: all of them, or fewer when the
  // request is complete (the rest is the next pipelined request) or failed.
  size_t feed(std::string_view data);

  State state() const { return state_; }
  bool done() const { return state_ == State::Done; }
  bool failed() const { return state_ == State::Failed; }
  bool started() const { return state_ != State::Head || !head_.empty() || leadingBlank_ > 0; }
  bool headComplete() const { return state_ != State::Head && state_ != State::Failed; }
  // 400, 413, 417, 431, 501 or 505 and a "field: reason" message once failed().
  int errorStatus() const { return errorStatus_; }
  const std::string& errorMessage() const { return errorMessage_; }

  HttpRequest& request() { return request_; }
  // Ready for the next request on the same connection.
  void reset();

private:
  size_t feedHead(std::string_view data);
  size_t feedChunkSize(std::string_view data);
  size_t feedTrailer(std::string_view data);
  bool parseHead();
  bool parseRequestLine(std::string_view line);
  bool parseFramingHeaders();
  size_t fail(int status, std::string message);
  // The body limit of the request's path (known once the head is parsed).
  size_t bodyLimit() const;

  RequestLimits limits_;
  State state_ = State::Head;
  std::string head_; // the head (or the current chunk-size line / trailer) as received
  size_t lineStart_ = 0;
  size_t lines_ = 0;
  size_t leadingBlank_ = 0;
  size_t remaining_ = 0; // body bytes left (Content-Length) or of the current chunk
  HttpRequest request_;
  int errorStatus_ = 0;
  std::string errorMessage_;
};

// Percent-decodes (plusIsSpace for query components); false on a bad escape or a NUL.
bool percentDecode(std::string_view in, bool plusIsSpace, std::string& out);
// "a=1&b=x%20y" -> {a:1, b:"x y"}; false on a bad escape.
bool parseQuery(std::string_view text, std::multimap<std::string, std::string>& out);
bool equalsIgnoreCase(std::string_view a, std::string_view b);

} // namespace verbund::http

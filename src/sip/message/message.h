#pragma once
// The SIP message model (RFC 3261 §7). A Message owns the bytes it was parsed from; every view it
// hands out points into that buffer (zero-copy). Routing-critical headers (Via, From, To, Call-ID,
// CSeq, Max-Forwards, Route, Record-Route, Contact, Content-Length) are parsed eagerly; the rest
// are found by id or name and parsed on demand with the functions of headers.h.
//
// Messages are immutable once parsed. New messages are written with MessageBuilder (builder.h) and
// parsed back when a Message object is needed.
#include "base/result.h"
#include "sip/message/headers.h"
#include "sip/message/peer.h"
#include "sip/message/types.h"
#include "sip/message/uri.h"

#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::sip {

struct ParseLimits {
  size_t maxMessageSize = 65535; // whole message including body
  size_t maxHeaders = 128;       // header lines (after list splitting)
  size_t maxHeaderLine = 8192;   // one header line after unfolding
};

struct Header {
  HeaderId id = HeaderId::Other;
  std::string_view name;  // as written (may be compact)
  std::string_view value; // trimmed; one element for list headers
};

class Message {
public:
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  bool isRequest() const { return isRequest_; }
  bool isResponse() const { return !isRequest_; }

  // Requests
  Method method() const { return method_; }
  std::string_view methodName() const { return methodText_; }
  const Uri& requestUri() const { return requestUri_; }
  // Responses
  int statusCode() const { return status_; }
  std::string_view reason() const { return reason_; }

  std::string_view sipVersion() const { return version_; }

  // Eagerly parsed, always present in a successfully parsed message.
  const std::pmr::vector<Via>& vias() const { return vias_; }
  const Via& topVia() const { return vias_.front(); }
  const NameAddr& from() const { return from_; }
  const NameAddr& to() const { return to_; }
  std::string_view fromTag() const { return fromTag_; }
  std::string_view toTag() const { return toTag_; }
  std::string_view callId() const { return callId_; }
  const CSeq& cseq() const { return cseq_; }
  // Present when the header was.
  std::optional<uint32_t> maxForwards() const { return maxForwards_; }
  const std::pmr::vector<NameAddr>& routes() const { return routes_; }
  const std::pmr::vector<NameAddr>& recordRoutes() const { return recordRoutes_; }
  const std::pmr::vector<NameAddr>& contacts() const { return contacts_; }
  bool contactIsStar() const { return contactStar_; } // "Contact: *"

  std::string_view body() const { return body_; }

  // All headers in order, list headers split into one entry per element.
  const std::pmr::vector<Header>& headers() const { return headers_; }
  // First value of a header, by id or by name (any case, compact forms understood).
  std::optional<std::string_view> header(HeaderId id) const;
  std::optional<std::string_view> header(std::string_view name) const;
  size_t headerCount(HeaderId id) const;

  // Where the message came from; set by the transport layer on receipt (mutable annotation).
  const Peer& source() const { return source_; }
  void setSource(const Peer& p) { source_ = p; }

  // The bytes the message was parsed from.
  std::string_view raw() const { return buffer_; }

  // Writes the message back in wire form: start line, headers in order (list elements one per
  // line, full names as written), body. parse(serialize()) yields an equal message.
  std::string serialize() const;

  // Transaction-matching key parts (RFC 3261 §17.2.3).
  std::string_view branch() const { return vias_.empty() ? std::string_view{} : vias_[0].branch; }

private:
  friend class Parser;
  explicit Message(std::string buffer);

  std::string buffer_;
  // Small per-message arena so that parsing a typical message makes no allocation beyond the
  // Message itself.
  alignas(std::max_align_t) char arenaBytes_[2048];
  std::pmr::monotonic_buffer_resource arena_{arenaBytes_, sizeof arenaBytes_};

  bool isRequest_ = false;
  Method method_ = Method::Unknown;
  std::string_view methodText_;
  Uri requestUri_;
  int status_ = 0;
  std::string_view reason_;
  std::string_view version_;

  std::pmr::vector<Header> headers_{&arena_};
  std::pmr::vector<Via> vias_{&arena_};
  NameAddr from_, to_;
  std::string_view fromTag_, toTag_, callId_;
  CSeq cseq_;
  std::optional<uint32_t> maxForwards_;
  std::pmr::vector<NameAddr> routes_{&arena_};
  std::pmr::vector<NameAddr> recordRoutes_{&arena_};
  std::pmr::vector<NameAddr> contacts_{&arena_};
  bool contactStar_ = false;
  std::string_view body_;
  Peer source_;
};

using MessagePtr = std::unique_ptr<Message>;

// What went wrong parsing. For requests, status is the code to answer with (400, 413, 505, ...)
// and reason a phrase that says what is wrong ("Bad Via header", "Missing Call-ID").
struct ParseError {
  int status = 400;
  std::string reason;
  bool isRequest = false; // start line looked like a request (so a response may be sent)
};

// Parses one complete datagram or framed stream message. Never throws.
// With a stream transport the caller has framed the message already (see framing.h), so
// Content-Length must match exactly; on datagrams a longer packet is truncated to Content-Length
// and a missing Content-Length means "the rest of the packet" (RFC 3261 §18.3).
struct ParseOptions {
  bool stream = false;
  ParseLimits limits;
};
struct ParseOutcome {
  MessagePtr message; // set on success
  ParseError error;   // meaningful when !message
  std::string raw;    // on failure: the input bytes handed back (for buildErrorResponse)
  bool ok() const { return message != nullptr; }
};
ParseOutcome parseMessage(std::string buffer, const ParseOptions& options = {});

// For a request that failed to parse: builds a response (normally 400) from whatever Via, From,
// To, Call-ID and CSeq lines can be found in the raw bytes. Returns empty when not even a Via can
// be found (then nothing can be sent back, RFC 3261 §18.2.2 needs it).
std::string buildErrorResponse(std::string_view raw, const ParseError& error);

} // namespace verbund::sip

#pragma once
// Writes SIP messages as text. Used for every message the core and the PBX send; the result is
// sent as-is or parsed back into a Message when one is needed (e.g. to hand to a transaction).
#include "sip/message/message.h"

#include <string>
#include <string_view>

namespace verbund::sip {

class MessageBuilder {
public:
  static MessageBuilder request(std::string_view method, std::string_view requestUri);
  static MessageBuilder response(int status, std::string_view reason);

  // Appends "Name: value\r\n". Content-Length is written by finish(); do not add it.
  MessageBuilder& header(std::string_view name, std::string_view value);
  MessageBuilder& header(HeaderId id, std::string_view value);
  // Copies every header of `from` with the given id, in order, one line per element.
  MessageBuilder& copyHeaders(const Message& from, HeaderId id);
  MessageBuilder& body(std::string_view contentType, std::string_view body);

  // Finishes with Content-Length and the body; the builder is left empty.
  std::string finish();

private:
  explicit MessageBuilder(std::string startLine);
  std::string out_;
  std::string_view contentType_;
  std::string body_;
};

// RFC 3261 §8.2.6.2: a response to `request` with Via, From, To, Call-ID and CSeq copied; a To
// tag added when `toTag` is not empty and the request's To has none. Extra headers and a body can
// follow through the returned builder. The top Via gets received/rport from `source` when given
// (RFC 3261 §18.2.1, RFC 3581).
MessageBuilder responseTo(const Message& request, int status, std::string_view reason = {},
                          std::string_view toTag = {});

// Default reason phrase of a status code ("OK", "Not Found", ...).
std::string_view defaultReason(int status);

// A display name as a quoted-string (RFC 3261 §25.1: `"` and `\` escaped, control characters
// dropped), e.g. `"Alice \"A\" Smith"`; empty for an empty name.
std::string quotedDisplayName(std::string_view name);

// Random tokens for tags, Call-IDs and branches (branch already carries the magic cookie).
std::string newTag();
std::string newCallId(std::string_view host);
std::string newBranch();

} // namespace verbund::sip

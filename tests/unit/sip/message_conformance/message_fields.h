#pragma once
// The fields the conformance test compares between parsers: what routing and transaction
// matching need from a message (RFC 3261 §8.1.1, §17.2.3). Plain strings so that neither
// parser's types leak into the comparison.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace verbund::sip::conformance {

struct MessageFields {
  bool parsed = false;
  std::string error; // why parsing failed, when !parsed
  int errorStatus = 0;

  bool isRequest = false;
  std::string method; // requests
  std::string ruri;   // requests: Request-URI as the parser reports it
  int status = 0;     // responses
  std::string callId;
  uint32_t cseq = 0;
  std::string cseqMethod;
  // nullopt: no tag parameter. Present-but-empty and absent are different things.
  std::optional<std::string> fromTag;
  std::optional<std::string> toTag;
  std::optional<std::string> branch; // top Via
};

// Renders the fields as "name=value" lines (for failure messages and the diff tool).
std::string describe(const MessageFields& f);

// Our parser (verbund::sip::parseMessage), datagram mode.
MessageFields verbundFields(std::string_view data);

} // namespace verbund::sip::conformance

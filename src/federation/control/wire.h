#pragma once
// The federation control plane's wire format (docs/federation-protocol.md).
//
// One mutual-TLS connection per pair of nodes carries frames in both directions. A frame is a
// 4-byte big-endian length followed by that many bytes of UTF-8 JSON: an object whose member "t"
// (a non-empty string) names the message type. The first frame each side sends is "hello".
// Everything here is pure (no I/O) so the fuzz target and the unit tests can drive it directly.
#include "base/result.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::federation {

// Beyond this a frame is refused and the connection closed (a directory snapshot of ~10,000
// users is about 1.5 MB).
inline constexpr uint32_t kMaxFrameBytes = 8u << 20;
inline constexpr size_t kMaxAddressesInHello = 8;

// Error codes of the control plane (in verbund::Error::code).
enum class ControlErrc : int {
  kBadFrame = 4301, // length beyond kMaxFrameBytes, invalid JSON, not an object, no "t"
  kBadMessage,      // a known message type with missing or invalid members (message names it)
  kIncompatible,    // protocol major versions differ (message names both versions)
  kOtherFederation, // hello from a node of another federation
  kNotInFederation, // this node has no federation credentials
  kUnreachable,     // no connection could be made to any address
  kRefused,         // the peer refused us (its reason is in the message)
  kClosed,          // the link closed
};
inline Error controlError(ControlErrc c, std::string message) {
  return Error{static_cast<int>(c), std::move(message)};
}

std::string encodeFrame(const nlohmann::json& message);

// Splits a byte stream into messages. After an error the decoder stays failed.
class FrameDecoder {
public:
  // Appends bytes and moves every complete message to `out`. kBadFrame on the first bad frame.
  Result<void> feed(std::string_view bytes, std::vector<nlohmann::json>& out);
  size_t buffered() const { return buffer_.size() - consumed_; }

private:
  std::string buffer_;
  size_t consumed_ = 0;
  bool failed_ = false;
};

// "major.minor". Nodes whose majors are equal interoperate (one minor apart and more).
struct ProtocolVersion {
  int major = 1;
  int minor = 0;
  std::string toString() const;
  static std::optional<ProtocolVersion> parse(std::string_view s); // "1.0"; 0..999 each
  bool compatibleWith(const ProtocolVersion& o) const { return major == o.major; }
  friend bool operator==(const ProtocolVersion&, const ProtocolVersion&) = default;
};
inline constexpr ProtocolVersion kProtocolVersion{1, 0};

// The first frame on every link, both directions: {"t":"hello", ...}.
struct Hello {
  std::string federationId;
  std::string nodeId;
  std::string name;
  std::string productVersion; // "0.1.0"
  ProtocolVersion protocol;
  std::vector<std::string> controlAddresses; // "host:port" of the control plane
  std::string sipAddress;                    // "host:port" of the node's SIP-over-TLS listener
  int64_t sentMs = 0;                        // sender's Unix ms
};
nlohmann::json toJson(const Hello& h);
// Validates every member (ids, name, addresses via trust/bundle validators). kBadMessage.
Result<Hello> helloFromJson(const nlohmann::json& j);

// Sent instead of (or right after) hello when the receiver refuses the link, then the connection
// closes: {"t":"refuse","code":"incompatible"|"revoked"|"other-federation"|"duplicate",
//          "message":"...", "protocol":"1.0"}.
struct Refusal {
  std::string code;
  std::string message;
  std::string protocol; // the refusing side's protocol version
};
nlohmann::json toJson(const Refusal& r);
Result<Refusal> refusalFromJson(const nlohmann::json& j);

} // namespace verbund::federation

#include "federation/control/wire.h"

#include "federation/trust/bundle.h"
#include "federation/trust/certificates.h"
#include "federation/trust/ossl.h"

#include <charconv>

namespace verbund::federation {

namespace {

using nlohmann::json;

// JSON nesting beyond this is refused before parsing: no message of the protocol needs more than
// a handful of levels, and deep nesting costs stack and time in the parser and destructor.
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxProductVersionChars = 32;
constexpr size_t kMaxRefusalCodeChars = 32;
constexpr size_t kMaxRefusalMessageChars = 1024;

Error badFrame(std::string message) {
  return controlError(ControlErrc::kBadFrame, std::move(message));
}

Error badMessage(std::string message) {
  return controlError(ControlErrc::kBadMessage, std::move(message));
}

// Depth of [ and { outside strings; stops counting once beyond the limit.
bool depthWithin(std::string_view text, int limit) {
  int depth = 0;
  bool inString = false;
  bool escaped = false;
  for (char ch : text) {
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        inString = false;
      }
      continue;
    }
    switch (ch) {
    case '"':
      inString = true;
      break;
    case '[':
    case '{':
      if (++depth > limit) return false;
      break;
    case ']':
    case '}':
      --depth;
      break;
    default:
      break;
    }
  }
  return true;
}

uint32_t readBigEndian32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

// A string member; nullptr when missing or not a string.
const std::string* stringMember(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

// A validator's error ("field: why") as kBadMessage naming the hello/refuse member instead.
Result<void> asBadMessage(std::string_view member, Result<void> r) {
  if (r) return r;
  std::string_view why = r.error().message;
  if (size_t colon = why.find(": "); colon != std::string_view::npos) why.remove_prefix(colon + 2);
  return badMessage(std::string(member) + ": " + std::string(why));
}

bool isPrintableAscii(std::string_view s) {
  for (char c : s)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

Result<void> expectType(const json& j, std::string_view type) {
  if (!j.is_object()) return badMessage(std::string(type) + ": not a JSON object");
  const std::string* t = stringMember(j, "t");
  if (t == nullptr || *t != type) return badMessage(std::string(type) + ": wrong message type");
  return {};
}

} // namespace

std::string encodeFrame(const nlohmann::json& message) {
  // replace: a string we were handed that is not UTF-8 must not throw on the event loop.
  std::string body = message.dump(-1, ' ', false, json::error_handler_t::replace);
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string frame;
  frame.reserve(4 + body.size());
  frame.push_back(static_cast<char>((n >> 24) & 0xff));
  frame.push_back(static_cast<char>((n >> 16) & 0xff));
  frame.push_back(static_cast<char>((n >> 8) & 0xff));
  frame.push_back(static_cast<char>(n & 0xff));
  frame += body;
  return frame;
}

Result<void> FrameDecoder::feed(std::string_view bytes, std::vector<nlohmann::json>& out) {
  if (failed_) return badFrame("stream already failed");
  buffer_.append(bytes.data(), bytes.size());
  Result<void> result;
  for (;;) {
    size_t available = buffer_.size() - consumed_;
    if (available < 4) break;
    uint32_t length = readBigEndian32(buffer_.data() + consumed_);
    if (length > kMaxFrameBytes) {
      result = badFrame("frame of " + std::to_string(length) + " bytes exceeds the limit of " +
                        std::to_string(kMaxFrameBytes));
      break;
    }
    if (length == 0) {
      result = badFrame("empty frame");
      break;
    }
    if (available - 4 < length) break;
    std::string_view body(buffer_.data() + consumed_ + 4, length);
    if (!depthWithin(body, kMaxJsonDepth)) {
      result = badFrame("JSON nested deeper than " + std::to_string(kMaxJsonDepth));
      break;
    }
    json message = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded()) {
      result = badFrame("frame is not valid JSON");
      break;
    }
    if (!message.is_object()) {
      result = badFrame("frame is not a JSON object");
      break;
    }
    const std::string* t = stringMember(message, "t");
    if (t == nullptr || t->empty()) {
      result = badFrame("frame has no message type \"t\"");
      break;
    }
    consumed_ += 4 + length;
    out.push_back(std::move(message));
  }
  if (!result) {
    failed_ = true;
    buffer_.clear();
    buffer_.shrink_to_fit();
    consumed_ = 0;
    return result;
  }
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return result;
}

std::string ProtocolVersion::toString() const {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::optional<ProtocolVersion> ProtocolVersion::parse(std::string_view s) {
  size_t dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view part) -> std::optional<int> {
    if (part.empty() || part.size() > 3) return std::nullopt;
    for (char c : part)
      if (c < '0' || c > '9') return std::nullopt;
    int v = 0;
    std::from_chars(part.data(), part.data() + part.size(), v);
    return v;
  };
  auto major = number(s.substr(0, dot));
  auto minor = number(s.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return ProtocolVersion{*major, *minor};
}

nlohmann::json toJson(const Hello& h) {
  return json{{"t", "hello"},
              {"federationId", h.federationId},
              {"nodeId", h.nodeId},
              {"name", h.name},
              {"productVersion", h.productVersion},
              {"protocol", h.protocol.toString()},
              {"controlAddresses", h.controlAddresses},
              {"sipAddress", h.sipAddress},
              {"sentMs", h.sentMs}};
}

Result<Hello> helloFromJson(const nlohmann::json& j) {
  if (auto r = expectType(j, "hello"); !r) return r.error();
  Hello h;
  auto text = [&](const char* key, std::string& into) -> Result<void> {
    const std::string* s = stringMember(j, key);
    if (s == nullptr) return badMessage(std::string("hello.") + key + ": missing or not a string");
    into = *s;
    return {};
  };
  for (auto [key, into] : {std::pair<const char*, std::string*>{"federationId", &h.federationId},
                           {"nodeId", &h.nodeId},
                           {"name", &h.name},
                           {"productVersion", &h.productVersion},
                           {"sipAddress", &h.sipAddress}}) {
    if (auto r = text(key, *into); !r) return r.error();
  }
  if (auto r = asBadMessage("hello.federationId", validateFederationId(h.federationId)); !r)
    return r.error();
  if (auto r = asBadMessage("hello.nodeId", validateNodeId("nodeId", h.nodeId)); !r)
    return r.error();
  if (auto r = asBadMessage("hello.name", validateNodeName(h.name)); !r) return r.error();
  if (h.productVersion.empty() || h.productVersion.size() > kMaxProductVersionChars ||
      !isPrintableAscii(h.productVersion))
    return badMessage("hello.productVersion: 1 to 32 printable ASCII characters");
  if (!h.sipAddress.empty()) {
    if (auto r = asBadMessage("hello.sipAddress", validateHostPort("sipAddress", h.sipAddress)); !r)
      return r.error();
  }
  const std::string* protocol = stringMember(j, "protocol");
  if (protocol == nullptr) return badMessage("hello.protocol: missing or not a string");
  auto version = ProtocolVersion::parse(*protocol);
  if (!version) return badMessage("hello.protocol: expected major.minor");
  h.protocol = *version;

  auto addresses = j.find("controlAddresses");
  if (addresses == j.end() || !addresses->is_array())
    return badMessage("hello.controlAddresses: missing or not an array");
  if (addresses->size() > kMaxAddressesInHello)
    return badMessage("hello.controlAddresses: at most " + std::to_string(kMaxAddressesInHello));
  for (const auto& a : *addresses) {
    if (!a.is_string()) return badMessage("hello.controlAddresses: not a string");
    const auto& s = a.get_ref<const std::string&>();
    if (auto r = asBadMessage("hello.controlAddresses", validateHostPort("controlAddresses", s));
        !r)
      return r.error();
    h.controlAddresses.push_back(s);
  }

  auto sent = j.find("sentMs");
  if (sent == j.end() || !(sent->is_number_integer()))
    return badMessage("hello.sentMs: missing or not an integer");
  if (sent->is_number_unsigned()) {
    uint64_t v = sent->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return badMessage("hello.sentMs: out of range");
    h.sentMs = static_cast<int64_t>(v);
  } else {
    h.sentMs = sent->get<int64_t>();
  }
  if (h.sentMs < 0) return badMessage("hello.sentMs: negative");
  return h;
}

nlohmann::json toJson(const Refusal& r) {
  return json{{"t", "refuse"}, {"code", r.code}, {"message", r.message}, {"protocol", r.protocol}};
}

Result<Refusal> refusalFromJson(const nlohmann::json& j) {
  if (auto r = expectType(j, "refuse"); !r) return r.error();
  Refusal r;
  const std::string* code = stringMember(j, "code");
  if (code == nullptr || code->empty() || code->size() > kMaxRefusalCodeChars)
    return badMessage("refuse.code: missing or not a short string");
  for (char c : *code)
    if (!((c >= 'a' && c <= 'z') || c == '-'))
      return badMessage("refuse.code: lowercase letters and '-' only");
  r.code = *code;
  if (const std::string* message = stringMember(j, "message")) {
    size_t chars = 0;
    if (!detail::isCleanUtf8(*message, &chars) || chars > kMaxRefusalMessageChars)
      return badMessage("refuse.message: at most 1024 characters, no control characters");
    r.message = *message;
  } else if (j.contains("message")) {
    return badMessage("refuse.message: not a string");
  }
  const std::string* protocol = stringMember(j, "protocol");
  if (protocol == nullptr || !ProtocolVersion::parse(*protocol))
    return badMessage("refuse.protocol: expected major.minor");
  r.protocol = *protocol;
  return r;
}

} // namespace verbund::federation

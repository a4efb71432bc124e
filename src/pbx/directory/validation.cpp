// Field rules of the directory. Messages start with the field name so that the API can name it.
#include "pbx/directory/directory.h"

#include <cstdint>
#include <set>
#include <utility>

namespace verbund::pbx {

namespace {

Error invalid(std::string_view field, std::string_view reason) {
  return Error{400, std::string(field) + ": " + std::string(reason)};
}

bool allDigits(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// RFC 3261 §25.1 token characters.
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
  case '-':
  case '.':
  case '!':
  case '%':
  case '*':
  case '_':
  case '+':
  case '`':
  case '\'':
  case '~':
    return true;
  default:
    return false;
  }
}

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i, or nullopt for
// malformed input (overlong forms, surrogates, values above U+10FFFF, truncation).
std::optional<uint32_t> nextCodePoint(std::string_view s, size_t& i) {
  auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t len = 0;
  uint32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (i + len > s.size()) return std::nullopt;
  for (size_t k = 1; k < len; ++k) {
    auto b = uint8_t(s[i + k]);
    if ((b & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += len;
  return cp;
}

} // namespace

Result<void> validateExtension(std::string_view field, std::string_view value) {
  if (value.size() < 2 || value.size() > 8 || !allDigits(value))
    return invalid(field, "digits only, 2 to 8 of them");
  return {};
}

Result<void> validateExternalNumber(std::string_view value) {
  if (value.empty()) return {};
  auto digits = value.substr(1);
  if (value[0] != '+' || digits.size() < 6 || digits.size() > 15 || !allDigits(digits) ||
      digits[0] == '0')
    return invalid("externalNumber", "E.164 expected: '+' and 6 to 15 digits, or empty");
  return {};
}

Result<void> validateSipUser(std::string_view value) {
  if (value.empty() || value.size() > 32) return invalid("sipUser", "1 to 32 characters");
  for (char c : value)
    if (!isTokenChar(c)) return invalid("sipUser", "letters, digits and -.!%*_+`'~ only");
  return {};
}

Result<void> validatePassword(std::string_view value) {
  if (value.size() < kMinPasswordLength) return invalid("sipPassword", "at least 8 characters");
  if (value.size() > kMaxPasswordLength) return invalid("sipPassword", "at most 128 characters");
  for (char c : value)
    if (uint8_t(c) < 0x20 || c == 0x7F) return invalid("sipPassword", "control characters");
  return {};
}

Result<void> validateDisplayName(std::string_view field, std::string_view value) {
  size_t count = 0;
  for (size_t i = 0; i < value.size();) {
    auto cp = nextCodePoint(value, i);
    if (!cp) return invalid(field, "not valid UTF-8");
    if (*cp < 0x20 || (*cp >= 0x7F && *cp < 0xA0) || *cp == 0x2028 || *cp == 0x2029)
      return invalid(field, "control characters are not allowed");
    ++count;
  }
  if (count == 0 || count > 64) return invalid(field, "1 to 64 characters");
  if (value.front() == ' ' || value.back() == ' ')
    return invalid(field, "leading or trailing spaces");
  return {};
}

Result<void> validateLanguage(std::string_view value) {
  if (value != "de" && value != "en") return invalid("language", "'de' or 'en'");
  return {};
}

Result<void> validateOwner(std::string_view field, std::string_view value) {
  // A node id: empty (this node) or a token like a host name or a key fingerprint.
  if (value.size() > 64) return invalid(field, "at most 64 characters");
  for (char c : value)
    if (!isTokenChar(c)) return invalid(field, "node id: letters, digits and -._ only");
  return {};
}

Result<void> validateForwardTarget(std::string_view field, std::string_view value) {
  if (value.empty()) return {};
  auto digits = value[0] == '+' ? value.substr(1) : value;
  if (value.size() > kMaxForwardTarget || digits.empty() || !allDigits(digits))
    return invalid(field, "digits with an optional leading '+', at most 32, or empty (off)");
  return {};
}

Result<void> validateNoAnswerSeconds(std::string_view field, int64_t value) {
  if (value < kMinNoAnswerSeconds || value > kMaxNoAnswerSeconds)
    return invalid(field, "an integer from 5 to 120");
  return {};
}

Result<void> validateForwardingInput(const ForwardingInput& in) {
  const std::pair<const char*, const std::optional<std::string>*> targets[] = {
      {"forward.always", &in.always},
      {"forward.busy", &in.busy},
      {"forward.noAnswer", &in.noAnswer},
      {"forward.unregistered", &in.unregistered}};
  for (const auto& [field, value] : targets)
    if (*value)
      if (auto r = validateForwardTarget(field, **value); !r) return r;
  if (in.noAnswerSeconds)
    if (auto r = validateNoAnswerSeconds("forward.noAnswerSeconds", *in.noAnswerSeconds); !r)
      return r;
  return {};
}

void applyForwarding(Forwarding& f, const ForwardingInput& in) {
  if (in.always) f.always = *in.always;
  if (in.busy) f.busy = *in.busy;
  if (in.noAnswer) f.noAnswer = *in.noAnswer;
  if (in.unregistered) f.unregistered = *in.unregistered;
  if (in.noAnswerSeconds) f.noAnswerSeconds = int(*in.noAnswerSeconds);
}

Result<void> validateUserInput(const UserInput& in, bool create) {
  if (create) {
    if (!in.extension) return invalid("extension", "required");
    if (!in.displayName) return invalid("displayName", "required");
    if (!in.sipPassword) return invalid("sipPassword", "required");
  }
  if (in.extension)
    if (auto r = validateExtension("extension", *in.extension); !r) return r;
  if (in.displayName)
    if (auto r = validateDisplayName("displayName", *in.displayName); !r) return r;
  if (in.externalNumber)
    if (auto r = validateExternalNumber(*in.externalNumber); !r) return r;
  if (in.sipUser)
    if (auto r = validateSipUser(*in.sipUser); !r) return r;
  if (in.sipPassword)
    if (auto r = validatePassword(*in.sipPassword); !r) return r;
  if (in.language)
    if (auto r = validateLanguage(*in.language); !r) return r;
  return validateForwardingInput(in.forward);
}

Result<void> validateGroupInput(const GroupInput& in, bool create) {
  if (create) {
    if (!in.number) return invalid("number", "required");
    if (!in.name) return invalid("name", "required");
  }
  if (in.number)
    if (auto r = validateExtension("number", *in.number); !r) return r;
  if (in.name)
    if (auto r = validateDisplayName("name", *in.name); !r) return r;
  if (in.members) {
    if (in.members->size() > kMaxGroupMembers) return invalid("members", "at most 100 members");
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& m : *in.members) {
      if (auto r = validateOwner("members.owner", m.owner); !r) return r;
      if (auto r = validateExtension("members.extension", m.extension); !r) return r;
      if (!seen.emplace(m.owner, m.extension).second)
        return invalid("members", "member " + m.extension + " listed twice");
    }
  }
  return {};
}

} // namespace verbund::pbx

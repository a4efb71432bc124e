#pragma once
// Small character helpers shared by the parsers (RFC 3261 §25.1 grammar classes).
#include <cstddef>
#include <string_view>

namespace verbund::sip::text {

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

inline bool isWs(char c) { return c == ' ' || c == '\t'; }
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isAlpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool isAlnum(char c) { return isAlpha(c) || isDigit(c); }

// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
inline bool isTokenChar(char c) {
  if (isAlnum(c)) return true;
  switch (c) {
  case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`': case '\'':
  case '~':
    return true;
  default:
    return false;
  }
}

inline bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!isTokenChar(c)) return false;
  return true;
}

// Trims SP, HTAB, CR and LF on both ends (folds have been turned into spaces already).
inline std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (isWs(s[b]) || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (isWs(s[e - 1]) || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

} // namespace verbund::sip::text

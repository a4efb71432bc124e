#pragma once
// Small character helpers shared by the parsers (RFC 3261 §25.1 grammar classes).
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace verbund::sip::text {

constexpr char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Character classes of RFC 3261 §25.1, as one lookup table so hot loops test a bit, not a set.
enum CharClass : uint8_t {
  kToken = 1,     // token characters
  kUser = 2,      // unreserved / user-unreserved / '%'
  kPassword = 4,  // unreserved / password chars / '%'
  kParam = 8,     // paramchar / '=' / ';' / '%'
  kHeader = 16,   // hnv-unreserved / unreserved / '=' / '&' / '%'
  kHost = 32,     // alphanum / '-' / '.'
};

constexpr uint8_t classOf(char c) {
  auto in = [c](const char* set) {
    for (; *set; ++set)
      if (*set == c) return true;
    return false;
  };
  bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  bool mark = in("-_.!~*'()");
  uint8_t r = 0;
  if (alnum || in("-.!%*_+`'~")) r |= kToken;
  if (alnum || mark || in("&=+$,;?/%")) r |= kUser;
  if (alnum || mark || in("&=+$,%")) r |= kPassword;
  if (alnum || mark || in("[]/:&+$%=;")) r |= kParam;
  if (alnum || mark || in("[]/?:+$%=&")) r |= kHeader;
  if (alnum || in("-.")) r |= kHost;
  return r;
}

struct CharTable {
  uint8_t v[256]{};
  constexpr CharTable() {
    for (int i = 0; i < 256; ++i) v[i] = classOf(char(i));
  }
};
inline constexpr CharTable kCharTable;

inline bool is(char c, CharClass k) { return kCharTable.v[static_cast<unsigned char>(c)] & k; }

inline bool isWs(char c) { return c == ' ' || c == '\t'; }
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isAlpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool isAlnum(char c) { return isAlpha(c) || isDigit(c); }

// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
inline bool isTokenChar(char c) { return is(c, kToken); }

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

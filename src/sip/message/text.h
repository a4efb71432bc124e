#pragma once
// Small character helpers shared by the parsers (RFC 3261 §25.1 grammar classes).
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace verbund::sip::text {

constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Character classes of RFC 3261 §25.1, as one lookup table so hot loops test a bit, not a set.
enum CharClass : uint32_t {
  kToken = 1,         // token characters
  kUser = 2,          // unreserved / user-unreserved / '%'
  kPassword = 4,      // unreserved / password chars / '%'
  kParam = 8,         // paramchar / '=' / ';' / '%'
  kHeader = 16,       // hnv-unreserved / unreserved / '=' / '&' / '%'
  kHost = 32,         // alphanum / '-' / '.'
  kWs = 64,           // SP / HTAB
  kDigit = 128,       // DIGIT
  kGenValue = 256,    // unquoted gen-value as accepted here: token / host (':' '[' ']' for IPv6)
  kScheme = 512,      // scheme characters after the first: alphanum / '+' / '-' / '.'
  kHex = 1024,        // HEXDIG (either case)
  kIPv6 = 2048,       // inside an IPv6 reference: HEXDIG / ':' / '.'
  kParamName = 4096,  // kParam without ';' and '=': a uri-parameter name
  kParamValue = 8192, // kParam without ';': a uri-parameter value
  kLabel = 16384,     // alphanum / '-': a hostname label
  kNotPct = 32768,    // anything but '%': kUser | kNotPct scans up to the next escape
  kTrim = 65536,      // SP / HTAB / CR / LF: what trim() removes
  kCallId = 131072,   // accepted in Call-ID: not below 0x21 (as char compares) and not DEL
};

constexpr uint32_t classOf(char c) {
  auto in = [c](const char* set) {
    for (; *set; ++set)
      if (*set == c) return true;
    return false;
  };
  bool digit = c >= '0' && c <= '9';
  bool alnum = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  bool hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  bool mark = in("-_.!~*'()");
  uint32_t r = 0;
  if (alnum || in("-.!%*_+`'~")) r |= kToken;
  if (alnum || mark || in("&=+$,;?/%")) r |= kUser;
  if (alnum || mark || in("&=+$,%")) r |= kPassword;
  if (alnum || mark || in("[]/:&+$%=;")) r |= kParam;
  if (alnum || mark || in("[]/?:+$%=&")) r |= kHeader;
  if (alnum || in("-.")) r |= kHost;
  if (c == ' ' || c == '\t') r |= kWs;
  if (digit) r |= kDigit;
  if ((r & kToken) || in(":[]")) r |= kGenValue;
  if (alnum || in("+-.")) r |= kScheme;
  if (hex) r |= kHex;
  if (hex || in(":.")) r |= kIPv6;
  if ((r & kParam) && c != ';' && c != '=') r |= kParamName;
  if ((r & kParam) && c != ';') r |= kParamValue;
  if (alnum || c == '-') r |= kLabel;
  if (c != '%') r |= kNotPct;
  if (c == ' ' || c == '\t' || c == '\r' || c == '\n') r |= kTrim;
  if (!(c < 0x21 || c == 0x7f)) r |= kCallId;
  return r;
}

struct CharTable {
  uint32_t v[256]{};
  constexpr CharTable() {
    for (int i = 0; i < 256; ++i) v[i] = classOf(char(i));
  }
};
inline constexpr CharTable kCharTable;

inline bool is(char c, uint32_t k) {
  return kCharTable.v[static_cast<unsigned char>(c)] & k;
}
// c has every class bit of k (for one class the same as is()).
inline bool isAll(char c, uint32_t k) {
  return (kCharTable.v[static_cast<unsigned char>(c)] & k) == k;
}

// Index of the first character at or after i in p[0, n) that lacks one of the class bits of k (n
// if none). The hot loop of every scanner here, unrolled because header values are mostly long
// runs of one class. (Testing four characters with one compare of their ANDed class bits measured
// slower: most runs are short, and finding the exact stop inside the group costs more.)
inline size_t scan(const char* p, size_t i, size_t n, uint32_t k) {
  for (; i + 4 <= n; i += 4) {
    if (!isAll(p[i], k)) return i;
    if (!isAll(p[i + 1], k)) return i + 1;
    if (!isAll(p[i + 2], k)) return i + 2;
    if (!isAll(p[i + 3], k)) return i + 3;
  }
  while (i < n && isAll(p[i], k)) ++i;
  return i;
}

constexpr bool isWs(char c) {
  return c == ' ' || c == '\t';
}
constexpr bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool isAlpha(char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
constexpr bool isAlnum(char c) {
  return isAlpha(c) || isDigit(c);
}

// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
inline bool isTokenChar(char c) {
  return is(c, kToken);
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
  while (b < e && is(s[b], kTrim)) ++b;
  while (e > b && is(s[e - 1], kTrim)) --e;
  return s.substr(b, e - b);
}

} // namespace verbund::sip::text

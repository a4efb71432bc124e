// Parser for the credentials and challenges of the HTTP authentication framework as SIP uses it
// (RFC 3261 §25.1 "challenge" / "credentials", RFC 7235 §2.1, RFC 7616 §3.3-3.4). Views only:
// the parser never allocates, and it rejects rather than guesses, because these values feed
// security decisions.
#include "sip/message/headers.h"

#include "sip/message/text.h"

namespace verbund::sip {

namespace {

Error bad(const char* why) {
  return Error{400, std::string("Bad auth header: ") + why};
}

// LWS between elements: SP/HTAB. The message parser has already turned folds into spaces, but a
// value handed in raw may still carry "CRLF 1*WSP" (RFC 3261 §25.1 LWS), so accept that too.
size_t skipLws(std::string_view s, size_t i) {
  for (;;) {
    if (i < s.size() && text::isWs(s[i])) {
      ++i;
    } else if (i + 2 < s.size() && s[i] == '\r' && s[i + 1] == '\n' && text::isWs(s[i + 2])) {
      i += 3;
    } else {
      return i;
    }
  }
}

// RFC 3261 §25.1: qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII;
// quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F). Control characters other than HTAB are
// rejected because nothing legitimate carries them and they confuse downstream logging.
bool isQdText(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7F && c != '"');
}
bool isQuotedPairChar(unsigned char c) {
  return c <= 0x7F && c != '\n' && c != '\r';
}

// Parses a quoted-string starting at s[i] == '"'. On success sets body (without the quotes,
// escapes kept) and returns the index after the closing quote; returns npos on error.
size_t parseQuoted(std::string_view s, size_t i, std::string_view& body) {
  size_t start = ++i;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      body = s.substr(start, i - start);
      return i + 1;
    }
    if (c == '\\') {
      if (i + 1 >= s.size() || !isQuotedPairChar(static_cast<unsigned char>(s[i + 1])))
        return std::string_view::npos;
      i += 2;
      continue;
    }
    if (c == '\r' && i + 2 < s.size() && s[i + 1] == '\n' && text::isWs(s[i + 2])) {
      i += 3; // a fold inside the quoted string that nobody unfolded: still LWS
      continue;
    }
    if (!isQdText(c)) return std::string_view::npos;
    ++i;
  }
  return std::string_view::npos; // unterminated
}

size_t scanToken(std::string_view s, size_t i) {
  while (i < s.size() && text::isTokenChar(s[i])) ++i;
  return i;
}

} // namespace

std::optional<std::string_view> AuthParams::get(std::string_view name) const {
  for (size_t i = 0; i < count && i < kMaxParams; ++i)
    if (text::iequals(items[i].name, name)) return items[i].value;
  return std::nullopt;
}

Result<AuthParams> parseAuthParams(std::string_view value) {
  AuthParams out;
  std::string_view s = text::trim(value);
  size_t i = scanToken(s, 0);
  if (i == 0) return bad("missing scheme");
  out.scheme = s.substr(0, i);
  if (i == s.size()) return out; // bare scheme; the digest layer decides whether that is enough
  size_t afterScheme = skipLws(s, i);
  if (afterScheme == i) return bad("junk after scheme");
  i = afterScheme;

  // #auth-param (RFC 7235 §2.1 with the list rule of RFC 7230 §7): empty elements are tolerated,
  // anything that is not name=value is not. token68 credentials (Basic) are not used by SIP.
  bool needComma = false;
  while (i < s.size()) {
    if (s[i] == ',') {
      i = skipLws(s, i + 1);
      needComma = false;
      continue;
    }
    if (needComma) return bad("expected comma");
    size_t nameEnd = scanToken(s, i);
    if (nameEnd == i) return bad("expected parameter name");
    std::string_view name = s.substr(i, nameEnd - i);
    i = skipLws(s, nameEnd);
    if (i >= s.size() || s[i] != '=') return bad("expected '=' after parameter name");
    i = skipLws(s, i + 1);
    AuthParams::Param p;
    p.name = name;
    if (i < s.size() && s[i] == '"') {
      i = parseQuoted(s, i, p.value);
      if (i == std::string_view::npos) return bad("malformed quoted-string");
      p.quoted = true;
    } else {
      size_t valueEnd = scanToken(s, i);
      if (valueEnd == i) return bad("expected parameter value");
      p.value = s.substr(i, valueEnd - i);
      i = valueEnd;
    }
    // RFC 7616 §3.4: a parameter appears at most once. Two realms or two responses would let a
    // proxy and a registrar read different values from the same header, so refuse them.
    for (size_t k = 0; k < out.count; ++k)
      if (text::iequals(out.items[k].name, p.name)) return bad("duplicate parameter");
    if (out.count >= AuthParams::kMaxParams) return bad("too many parameters");
    out.items[out.count++] = p;
    i = skipLws(s, i);
    needComma = true;
  }
  return out;
}

std::string unquote(std::string_view quotedBody) {
  std::string out;
  out.reserve(quotedBody.size());
  for (size_t i = 0; i < quotedBody.size(); ++i) {
    if (quotedBody[i] == '\\' && i + 1 < quotedBody.size()) ++i;
    out.push_back(quotedBody[i]);
  }
  return out;
}

} // namespace verbund::sip

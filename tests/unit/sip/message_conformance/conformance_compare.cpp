#include "conformance_compare.h"

namespace verbund::sip::conformance {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decodesQuietly(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
  case '-':
  case '_':
  case '.':
  case '!':
  case '~':
  case '*':
  case '\'':
  case '(':
  case ')':
  case '/':
    return true;
  default:
    return false;
  }
}

std::string show(const std::optional<std::string>& s) {
  return s ? "\"" + *s + "\"" : std::string("<absent>");
}

} // namespace

std::string normalizeUri(std::string_view uri) {
  std::string out;
  out.reserve(uri.size());
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size()) {
      int hi = hexValue(uri[i + 1]), lo = hexValue(uri[i + 2]);
      if (hi >= 0 && lo >= 0) {
        char c = static_cast<char>(hi * 16 + lo);
        if (decodesQuietly(c)) {
          out += c;
          i += 2;
          continue;
        }
      }
    }
    out += uri[i];
  }
  return out;
}

std::vector<std::string> compareFields(const MessageFields& ours, const MessageFields& reference) {
  std::vector<std::string> d;
  if (!ours.parsed || !reference.parsed) {
    if (!ours.parsed) d.push_back("verbund did not parse: " + ours.error);
    if (!reference.parsed) d.push_back("reference did not parse: " + reference.error);
    return d;
  }
  auto field = [&d](const char* name, const std::string& a, const std::string& b) {
    if (a != b) d.push_back(std::string(name) + ": verbund \"" + a + "\", reference \"" + b + "\"");
  };
  auto optField = [&d](const char* name, const std::optional<std::string>& a,
                       const std::optional<std::string>& b) {
    if (a != b) d.push_back(std::string(name) + ": verbund " + show(a) + ", reference " + show(b));
  };
  if (ours.isRequest != reference.isRequest) {
    d.push_back(std::string("kind: verbund ") + (ours.isRequest ? "request" : "response") +
                ", reference " + (reference.isRequest ? "request" : "response"));
    return d;
  }
  if (ours.isRequest) {
    field("method", ours.method, reference.method);
    if (normalizeUri(ours.ruri) != normalizeUri(reference.ruri))
      field("ruri", ours.ruri, reference.ruri);
  } else if (ours.status != reference.status) {
    field("status", std::to_string(ours.status), std::to_string(reference.status));
  }
  field("callid", ours.callId, reference.callId);
  if (ours.cseq != reference.cseq)
    field("cseq", std::to_string(ours.cseq), std::to_string(reference.cseq));
  field("cseq_method", ours.cseqMethod, reference.cseqMethod);
  optField("from_tag", ours.fromTag, reference.fromTag);
  optField("to_tag", ours.toTag, reference.toTag);
  optField("branch", ours.branch, reference.branch);
  return d;
}

} // namespace verbund::sip::conformance

#include "message_fields.h"

#include "sip/message/message.h"

#include <sstream>

namespace verbund::sip::conformance {
namespace {

std::optional<std::string> tagOf(const NameAddr& a) {
  auto t = a.param("tag");
  if (!t) return std::nullopt;
  return std::string(*t);
}

} // namespace

MessageFields verbundFields(std::string_view data) {
  MessageFields f;
  ParseOutcome out = parseMessage(std::string(data));
  if (!out.ok()) {
    f.error = out.error.reason;
    f.errorStatus = out.error.status;
    return f;
  }
  const Message& m = *out.message;
  f.parsed = true;
  f.isRequest = m.isRequest();
  if (m.isRequest()) {
    f.method = std::string(m.methodName());
    f.ruri = std::string(m.requestUri().text);
  } else {
    f.status = m.statusCode();
  }
  f.callId = std::string(m.callId());
  f.cseq = m.cseq().seq;
  f.cseqMethod = std::string(m.cseq().methodText);
  // Presence comes from the parameter list; the value from the eagerly parsed fields that the
  // transaction and dialog layers use.
  if (tagOf(m.from())) f.fromTag = std::string(m.fromTag());
  if (tagOf(m.to())) f.toTag = std::string(m.toTag());
  if (!m.vias().empty() && m.topVia().param("branch")) f.branch = std::string(m.branch());
  return f;
}

std::string describe(const MessageFields& f) {
  std::ostringstream o;
  if (!f.parsed) {
    o << "  (not parsed: " << f.error;
    if (f.errorStatus) o << ", status " << f.errorStatus;
    o << ")\n";
    return o.str();
  }
  auto opt = [](const std::optional<std::string>& s) { return s ? *s : std::string("<absent>"); };
  if (f.isRequest) {
    o << "  method=" << f.method << "\n  ruri=" << f.ruri << "\n";
  } else {
    o << "  status=" << f.status << "\n";
  }
  o << "  callid=" << f.callId << "\n  cseq=" << f.cseq << "\n  cseq_method=" << f.cseqMethod
    << "\n  from_tag=" << opt(f.fromTag) << "\n  to_tag=" << opt(f.toTag)
    << "\n  branch=" << opt(f.branch) << "\n";
  return o.str();
}

} // namespace verbund::sip::conformance

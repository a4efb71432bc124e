#include "sip/stack/sip_stack.h"

#include "base/log.h"
#include "base/metrics.h"
#include "sip/message/text.h"

#include <algorithm>

namespace verbund::sip {

namespace {
Counter g_malformedRequests("verbund_sip_malformed_requests_total",
                            "SIP requests that failed to parse (answered when possible)");
Counter g_malformedResponses("verbund_sip_malformed_responses_dropped_total",
                             "SIP responses that failed to parse and were dropped");
Counter
    g_multiViaResponses("verbund_sip_responses_multiple_via_dropped_total",
                        "SIP responses dropped for carrying more than one Via (RFC 3261 §18.1.2)");

bool onlyWhitespace(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == ' ' || c == '\t'; });
}
} // namespace

SipStack::SipStack(Transport& transport, Timers& timers, TransactionUser& tu, StackConfig config)
    : transport_(transport), config_(std::move(config)),
      layer_(transport, timers, tu, config_.transactions) {
  layer_.setRequestScreen([this](const Message& m) { return screen(m); });
}

void SipStack::onReceive(std::string bytes, const Peer& from) {
  // RFC 5626 §3.5.1 / RFC 3261 §7.5: CRLF keep-alives and stray blank lines are not messages.
  if (onlyWhitespace(bytes)) return;
  ParseOptions options;
  options.stream = isReliable(from.transport);
  options.limits = config_.limits;
  ParseOutcome out = parseMessage(std::move(bytes), options);
  if (!out.ok()) {
    if (!out.error.isRequest) {
      g_malformedResponses.inc();
      logger("sip")->debug("malformed response from {} dropped: {}", from.toString(),
                           out.error.reason);
      return;
    }
    g_malformedRequests.inc();
    logger("sip")->debug("malformed request from {}: {} {}", from.toString(), out.error.status,
                         out.error.reason);
    // Never answer an ACK (RFC 3261 §17.2.1 / §8.2); otherwise answer over the same transport
    // and connection, as far as a Via can be found (RFC 3261 §18.2.2 needs one).
    if (std::string_view(out.raw).substr(0, 4) == "ACK ") return;
    std::string response = buildErrorResponse(out.raw, out.error);
    if (!response.empty()) (void)transport_.send(from, response);
    return;
  }
  MessagePtr msg = std::move(out.message);
  // RFC 3261 §18.2.1: received/rport are added to responses by responseTo() from this source.
  msg->setSource(from);
  if (msg->isResponse() && msg->vias().size() > 1) {
    // RFC 3261 §18.1.2: a response with more than one Via is not for us (we are no proxy).
    g_multiViaResponses.inc();
    logger("sip")->debug("response with {} Via headers from {} dropped", msg->vias().size(),
                         from.toString());
    return;
  }
  layer_.receive(std::move(msg));
}

void SipStack::onTransportError(const Peer& peer, const std::string& reason) {
  logger("sip")->debug("transport error on {}: {}", peer.toString(), reason);
  layer_.onTransportError(peer);
}

std::optional<Rejection> SipStack::screen(const Message& req) const {
  // RFC 3261 §8.2.2.1 / §21.4.17: a Request-URI scheme we cannot handle.
  if (req.requestUri().scheme == UriScheme::Other) return Rejection{416, {}, {}, {}};
  // RFC 3261 §8.2.2 / §16.3 item 3: Max-Forwards 0. OPTIONS may be answered by the TU (§11).
  if (req.maxForwards() && *req.maxForwards() == 0 && req.method() != Method::Options)
    return Rejection{483, {}, {}, {}};
  // RFC 3261 §8.2.2.3: Require. Not checked for CANCEL (and ACK never gets here).
  if (req.method() == Method::Cancel) return std::nullopt;
  std::string unsupported;
  for (const Header& h : req.headers()) {
    if (h.id != HeaderId::Require) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view tag = text::trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (tag.empty()) continue;
      bool ok = std::any_of(config_.supported.begin(), config_.supported.end(),
                            [&](const std::string& s) { return text::iequals(s, tag); });
      if (ok) continue;
      if (!unsupported.empty()) unsupported.append(", ");
      unsupported.append(tag);
    }
  }
  if (!unsupported.empty()) return Rejection{420, {}, "Unsupported", std::move(unsupported)};
  return std::nullopt;
}

} // namespace verbund::sip

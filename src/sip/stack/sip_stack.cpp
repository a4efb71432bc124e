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

Counter g_shedInvite("verbund_sip_overload_shed_invite_total",
                     "new INVITEs refused with 503 because the node was overloaded");
Counter g_shedRegister("verbund_sip_overload_shed_register_total",
                       "REGISTERs refused with 503 because the node was overloaded");
Counter g_shedSubscribe("verbund_sip_overload_shed_subscribe_total",
                        "new SUBSCRIBEs refused with 503 because the node was overloaded");
Counter g_deferred("verbund_sip_overload_deferred_total",
                   "new requests served after the rest of their receive batch");
Gauge g_overloaded("verbund_sip_overload_state",
                   "1 while the node sheds new requests (overload control), else 0");
Gauge g_shedFraction("verbund_sip_overload_shed_fraction",
                     "share of new requests without credentials currently refused (0..1)");
Gauge g_queueDelay("verbund_sip_queue_delay_seconds",
                   "mean time datagrams waited between the kernel and the event loop, last "
                   "control interval");
Gauge g_serverTx("verbund_sip_server_transactions", "live SIP server transactions");
Gauge g_pendingServerTx("verbund_sip_server_transactions_pending",
                        "SIP server transactions awaiting a final response");
Gauge g_clientTx("verbund_sip_client_transactions", "live SIP client transactions");

bool onlyWhitespace(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == ' ' || c == '\t'; });
}
} // namespace

SipStack::SipStack(Transport& transport, Timers& timers, TransactionUser& tu, StackConfig config)
    : transport_(transport), timers_(timers), config_(std::move(config)),
      layer_(transport, timers, tu, config_.transactions), overload_(config_.overload) {
  layer_.setRequestScreen([this](const Message& m) { return screen(m); });
  armTick();
}

SipStack::~SipStack() {
  if (tick_) timers_.cancel(tick_);
}

void SipStack::armTick() {
  tick_ = timers_.after(overload_.config().interval, [this] {
    tick_ = 0;
    tick();
    armTick();
  });
}

void SipStack::tick() {
  overload_.update(layer_.pendingServerCount());
  g_overloaded.set(overload_.state() == OverloadControl::State::Shedding ? 1 : 0);
  g_shedFraction.set(overload_.atTransactionCap() ? 1 : overload_.shedFraction());
  g_queueDelay.set(overload_.queueDelay());
  g_serverTx.set(double(layer_.serverCount()));
  g_pendingServerTx.set(double(layer_.pendingServerCount()));
  g_clientTx.set(double(layer_.clientCount()));
}

void SipStack::onReceiveBatchBegin() {
  batching_ = true;
}

void SipStack::onReceiveBatchEnd(uint64_t kernelDrops) {
  batching_ = false;
  if (kernelDrops) overload_.noteKernelDrops(kernelDrops);
  // Swap out first: dispatching may re-enter (a TU that sends to itself over a fake transport).
  std::vector<Deferred> batch;
  batch.swap(deferred_);
  for (Deferred& d : batch) dispatch(std::move(d.message), d.receivedAt);
  batch.clear();
  if (deferred_.empty()) deferred_.swap(batch); // keep the capacity
}

bool SipStack::deferrable(const Message& m) const {
  if (!m.isRequest()) return false;
  // RFC 3261 §12.2: a To tag marks an in-dialog request; ACK belongs to a transaction or
  // dialog already admitted.
  if (m.method() == Method::Ack || !m.toTag().empty()) return false;
  if (m.method() != Method::Cancel) return true;
  // RFC 3261 §9.2: a CANCEL for an INVITE waiting in this batch must come after it, or it would
  // find no transaction and get 481.
  return std::any_of(deferred_.begin(), deferred_.end(), [&](const Deferred& d) {
    return d.message->method() == Method::Invite && d.message->branch() == m.branch();
  });
}

void SipStack::onReceive(std::string bytes, const Peer& from, TimePoint receivedAt) {
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
  if (batching_ && deferrable(*msg)) {
    g_deferred.inc();
    deferred_.push_back({std::move(msg), receivedAt});
    return;
  }
  dispatch(std::move(msg), receivedAt);
}

void SipStack::dispatch(MessagePtr msg, TimePoint receivedAt) {
  // Only datagrams carry the kernel's receive time; a stream message is stamped when read.
  if (msg->source().transport == TransportType::Udp)
    overload_.noteQueueDelay(timers_.now() - receivedAt);
  if (msg->isRequest() && shed(*msg)) return;
  layer_.receive(std::move(msg));
}

bool SipStack::shed(const Message& req) {
  Counter* counter = nullptr;
  switch (req.method()) {
  case Method::Invite:
    counter = &g_shedInvite;
    break;
  case Method::Register:
    counter = &g_shedRegister;
    break;
  case Method::Subscribe:
    counter = &g_shedSubscribe;
    break;
  default:
    return false; // ACK, BYE, CANCEL, ... are always served
  }
  if (!req.toTag().empty()) return false; // in-dialog: a session already admitted
  if (overload_.state() == OverloadControl::State::Normal) return false;
  // RFC 3261 §17.2.3: a retransmission belongs to its transaction, which answers it from its
  // state; a 503 here would contradict the answer the request already has or will get.
  if (layer_.hasServerTransaction(req)) return false;
  bool answersChallenge = req.header(HeaderId::Authorization).has_value() ||
                          req.header(HeaderId::ProxyAuthorization).has_value();
  if (overload_.admit(answersChallenge) == OverloadControl::Verdict::Admit) return false;
  counter->inc();
  // RFC 3261 §21.5.4: 503 with Retry-After; sent statelessly (§8.2.7) so that refusing costs no
  // transaction or timer. A lost 503 is recovered by the client's retransmission.
  std::string retryAfter = std::to_string(overload_.retryAfterSeconds());
  HeaderField extra[] = {{"Retry-After", retryAfter}};
  (void)layer_.respondStateless(req, 503, {}, extra);
  return true;
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

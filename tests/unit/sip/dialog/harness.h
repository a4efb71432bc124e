#pragma once
// Inject/expect harness for the dialog layer: the real TransactionLayer over a fake transport,
// simulated time, and helpers to write the peer's messages.
#include "base/manual_timers.h"
#include "sip/dialog/dialog_manager.h"
#include "sip/message/builder.h"
#include "sip/transaction/transaction_layer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace verbund::sip::test {

class FakeTransport final : public Transport {
public:
  struct Sent {
    Peer to;
    std::string bytes;
  };
  Result<void> send(const Peer& to, std::string_view bytes) override {
    sent.push_back({to, std::string(bytes)});
    return {};
  }
  std::optional<SockAddr> localAddress(TransportType, const SockAddr&) const override {
    return SockAddr::parse("192.0.2.1:5060");
  }
  std::vector<Sent> sent;
};

inline Peer udpPeer(std::string_view addr) {
  Peer p;
  p.transport = TransportType::Udp;
  p.remote = *SockAddr::parse(addr);
  return p;
}

inline MessagePtr parse(std::string text) {
  auto r = parseMessage(std::move(text));
  EXPECT_TRUE(r.ok()) << r.error.reason;
  return std::move(r.message);
}

struct Harness {
  explicit Harness(DialogConfig config = defaultConfig()) : dm(timers, std::move(config)) {
    dm.attach(txl);
  }
  static DialogConfig defaultConfig() {
    DialogConfig c;
    c.contact = "sip:pbx@192.0.2.1:5060";
    c.random = [](uint32_t lo, uint32_t) { return lo; };
    return c;
  }
  static TransactionConfig txConfig() {
    TransactionConfig c;
    c.retransmitInvite2xx = false; // the dialog layer retransmits 2xx itself
    c.trying100 = Duration(0);
    return c;
  }

  // A message from the peer at `from`.
  void inject(std::string text, const Peer& from = udpPeer("192.0.2.2:5060")) {
    auto m = parse(std::move(text));
    ASSERT_TRUE(m);
    m->setSource(from);
    txl.receive(std::move(m));
  }
  // Everything sent since the last call, parsed.
  std::vector<MessagePtr> take() {
    std::vector<MessagePtr> out;
    for (auto& s : tp.sent) out.push_back(parse(s.bytes));
    last = tp.sent;
    tp.sent.clear();
    return out;
  }
  // Exactly one message must have been sent; returns it.
  MessagePtr takeOne() {
    auto all = take();
    EXPECT_EQ(all.size(), 1u);
    if (all.empty()) return nullptr;
    return std::move(all.back());
  }
  void advance(Duration d) { timers.advance(d); }

  ManualTimers timers;
  FakeTransport tp;
  DialogManager dm;
  TransactionLayer txl{tp, timers, dm, txConfig()};
  std::vector<FakeTransport::Sent> last;
};

// A response from the peer to a request we sent, with optional To tag and more header lines
// ("Contact: <...>\r\n...").
inline std::string reply(const Message& req, int status, std::string_view toTag = {},
                         std::string_view extra = {}, std::string_view body = {}) {
  MessageBuilder b = responseTo(req, status, {}, toTag);
  std::string_view rest = extra;
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      b.header(line.substr(0, colon), value);
    }
    if (eol == std::string_view::npos) break;
    rest = rest.substr(eol + 2);
  }
  if (!body.empty()) b.body("application/sdp", body);
  return b.finish();
}

} // namespace verbund::sip::test

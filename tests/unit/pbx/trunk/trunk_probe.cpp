// trunk_probe: runs a real TrunkManager (UDP/TCP transport on 127.0.0.1, SipStack, dialog layer,
// c-ares locator) against a carrier such as the Kamailio of tests/integration/trunk/, prints
// every trunk state change and every inbound INVITE's DID mapping, and exits 0 as soon as the
// expected state is reached (1 on timeout). Used by tests/integration/trunk/trunk_kamailio.py
// until `verbund` has a trunk command of its own.
//
//   trunk_probe --registrar 127.0.0.1:5098 --user 4930123456 --password pw --expect registered
//               [--transport udp|tcp] [--did +4930123456=100] [--dns 127.0.0.1:5353]
//               [--hold 5] [--timeout 20] [--t1 100]
//
// Output lines (stdout): "STATE <state> <reason>", "INBOUND did=<did> target=<target>
// trusted=<0|1>", "RESULT ok|timeout".
#include "base/asio_timers.h"
#include "base/log.h"
#include "pbx/trunk/trunk_manager.h"
#include "sip/dialog/dialog_manager.h"
#include "sip/dialog/invite_session.h"
#include "sip/dns/server_locator.h"
#include "sip/stack/sip_stack.h"
#include "sip/transport/transport_manager.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

using namespace verbund;

namespace {

// The dialog layer's TU sits behind the stack; the stack needs its TU at construction.
struct ForwardTu final : sip::TransactionUser {
  sip::TransactionUser* to = nullptr;
  void onRequest(sip::ServerTxId tx, const sip::Message& r) override { to->onRequest(tx, r); }
  void onAck(const sip::Message& m) override { to->onAck(m); }
  void onCancel(sip::ServerTxId tx, const sip::Message& m) override { to->onCancel(tx, m); }
  void onServerTxTerminated(sip::ServerTxId tx, sip::ServerTxEnd e) override {
    to->onServerTxTerminated(tx, e);
  }
  void onStrayResponse(const sip::Message& m) override { to->onStrayResponse(m); }
};

struct InboundPrinter final : sip::InviteHandler {
  pbx::TrunkManager* trunk = nullptr;
  void onNewSession(sip::InviteSession& session, const sip::Message& invite) override {
    auto route = trunk->inboundDid(invite);
    std::cout << "INBOUND did=" << (route ? route->did : "-")
              << " target=" << (route ? route->target : "-")
              << " trusted=" << (trunk->isTrunkPeer(invite.source()) ? 1 : 0) << std::endl;
    (void)session.reject(route ? 480 : 404);
  }
  void onProvisional(sip::ClientInvite&, sip::InviteSession*, const sip::Message&) override {}
};

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  std::vector<pbx::DidRoute> dids;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--did") {
      std::string v = argv[i + 1];
      auto eq = v.find('=');
      if (eq != std::string::npos) dids.push_back({v.substr(0, eq), v.substr(eq + 1)});
      continue;
    }
    args[k] = argv[i + 1];
  }
  auto arg = [&](const std::string& k, const std::string& def = {}) {
    auto it = args.find(k);
    return it == args.end() ? def : it->second;
  };
  setLogLevel(arg("--log", "warn"));

  asio::io_context io;
  AsioTimers timers(io);
  sip::TransportManager transport(io);
  auto udp = transport.listen(sip::TransportType::Udp, *SockAddr::parse("127.0.0.1:0"));
  if (!udp) {
    std::cerr << "listen: " << udp.error().message << "\n";
    return 2;
  }
  (void)transport.listen(sip::TransportType::Tcp, *udp);

  sip::DialogConfig dc;
  dc.contact = "sip:probe@" + udp->toString();
  sip::DialogManager dm(timers, dc);
  ForwardTu forward;
  forward.to = &dm;
  sip::StackConfig sc;
  sc.transactions.retransmitInvite2xx = false;
  sc.transactions.t1 = Duration(std::stoi(arg("--t1", "500")));
  sip::SipStack stack(transport, timers, forward, sc);
  transport.setUser(&stack);
  dm.attach(stack.transactions());

  std::unique_ptr<sip::DnsResolver> dns;
  std::unique_ptr<sip::ServerLocator> locator;
  if (!arg("--dns").empty()) {
    sip::DnsConfig d;
    d.servers.push_back(*SockAddr::parse(arg("--dns")));
    auto r = sip::DnsResolver::create(io, d);
    if (!r) {
      std::cerr << r.error().message << "\n";
      return 2;
    }
    dns = std::move(r.value());
    locator = std::make_unique<sip::ServerLocator>(*dns);
  }

  pbx::TrunkManagerOptions o;
  o.retryMin = Duration(2000);
  o.retryMax = Duration(8000);
  pbx::TrunkManager trunk(dm, transport, timers, locator.get(), o);
  InboundPrinter printer;
  printer.trunk = &trunk;
  dm.setInviteHandler(&printer);

  std::string expect = arg("--expect", "registered");
  int hold = std::stoi(arg("--hold", "0"));
  bool reached = false;
  asio::steady_timer done(io);
  trunk.addListener([&](const pbx::TrunkStatus& s) {
    std::cout << "STATE " << pbx::trunkStateName(s.state) << " " << s.reason << std::endl;
    if (!reached && pbx::trunkStateName(s.state) == expect) {
      reached = true;
      // Stay up a while (e.g. for inbound calls), then stop.
      done.expires_after(std::chrono::seconds(hold));
      done.async_wait([&](const asio::error_code& ec) {
        if (!ec) io.stop();
      });
    }
  });

  pbx::TrunkConfig c;
  c.enabled = true;
  c.registrar = arg("--registrar");
  c.domain = arg("--domain");
  c.username = arg("--user");
  c.password = arg("--password");
  c.expiry = uint32_t(std::stoul(arg("--expiry", "120")));
  c.transport =
      pbx::trunkTransportFromName(arg("--transport", "udp")).value_or(pbx::TrunkTransport::Udp);
  c.dids = dids;
  if (auto r = trunk.configure(c); !r) {
    std::cerr << "configure: " << r.error().message << "\n";
    return 2;
  }
  std::cout << "LISTEN " << udp->toString() << std::endl;

  asio::steady_timer timeout(io);
  timeout.expires_after(std::chrono::seconds(std::stoi(arg("--timeout", "20"))));
  timeout.async_wait([&](const asio::error_code& ec) {
    if (!ec) io.stop();
  });
  io.run();
  std::cout << "RESULT " << (reached ? "ok" : "timeout") << std::endl;
  const auto& st = trunk.status();
  std::cout << "LASTERROR " << st.lastError << std::endl;
  return reached ? 0 : 1;
}

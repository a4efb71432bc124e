// verbund: the node (`verbund serve`), its command line tools, and the test user agent.
#include "app/cli_admin.h"
#include "app/cli_backup.h"
#include "app/config.h"
#include "app/doctor.h"
#include "app/listen.h"
#include "app/node.h"
#include "app/test_ua.h"
#include "app/version.h"
#include "base/asio_timers.h"
#include "base/log.h"
#include "base/metrics.h"
#include "sip/stack/sip_stack.h"
#include "sip/transaction/transaction_layer.h"
#include "sip/transport/transport_manager.h"

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

using namespace verbund;

namespace {

struct TestUaOptions {
  std::vector<std::string> udp, tcp, tls;
  std::string tlsCert, tlsKey, readyFile, logLevel = "warn", realm = "verbund.test";
  int answerDelayMs = 0, hangupAfterMs = 0;
  std::vector<std::string> auth;
  std::vector<std::string> digestAlgorithms;
};

int runTestUa(const TestUaOptions& o) {
  setLogLevel(o.logLevel);
  auto log = logger("testua");
  asio::io_context io;
  AsioTimers timers(io);
  sip::TransportManager transport(io);
  if (!o.tls.empty()) {
    if (auto r = app::loadTls(transport, o.tlsCert, o.tlsKey, ""); !r) {
      std::fprintf(stderr, "testua: TLS: %s\n", r.error().message.c_str());
      return 2;
    }
  }
  app::TestUaConfig cfg;
  cfg.answerDelay = Duration(o.answerDelayMs);
  cfg.hangupAfter = Duration(o.hangupAfterMs);
  cfg.realm = o.realm;
  for (const auto& a : o.auth) {
    auto colon = a.find(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "testua: --auth wants USER:PASS\n");
      return 2;
    }
    cfg.users[a.substr(0, colon)] = a.substr(colon + 1);
  }
  for (const auto& name : o.digestAlgorithms) {
    auto alg = sip::digestAlgorithmFromName(name);
    if (!alg) {
      std::fprintf(stderr, "testua: unknown digest algorithm '%s'\n", name.c_str());
      return 2;
    }
    cfg.algorithms.push_back(*alg);
  }
  // The TU is created after the layer but the layer needs it: a small forwarding shim.
  struct Forward : sip::TransactionUser {
    app::TestUa* ua = nullptr;
    void onRequest(sip::ServerTxId tx, const sip::Message& m) override { ua->onRequest(tx, m); }
    void onAck(const sip::Message& m) override { ua->onAck(m); }
    void onCancel(sip::ServerTxId tx, const sip::Message& m) override { ua->onCancel(tx, m); }
    void onServerTxTerminated(sip::ServerTxId tx, sip::ServerTxEnd how) override {
      ua->onServerTxTerminated(tx, how);
    }
  } forward;
  sip::SipStack stack(transport, timers, forward);
  app::TestUa ua(stack.transactions(), timers, cfg);
  forward.ua = &ua;
  transport.setUser(&stack);

  std::vector<app::ListenSpec> specs;
  for (const auto& a : o.udp) specs.push_back({sip::TransportType::Udp, a});
  for (const auto& a : o.tcp) specs.push_back({sip::TransportType::Tcp, a});
  for (const auto& a : o.tls) specs.push_back({sip::TransportType::Tls, a});
  if (specs.empty()) specs.push_back({sip::TransportType::Udp, "127.0.0.1:5060"});
  auto bound = app::bindListeners(transport, specs);
  if (!bound) {
    std::fprintf(stderr, "testua: %s\n", bound.error().message.c_str());
    return 2;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) {
    transport.close();
    io.stop();
  });
  app::writeReadyFile(o.readyFile, bound.value());
  log->info("test UA listening on {}", bound->dump());
  io.run();
  const auto& s = ua.stats();
  std::printf("testua: invites=%llu answered=%llu cancelled=%llu byes_received=%llu "
              "byes_sent=%llu bye_failures=%llu options=%llu registers=%llu auth_ok=%llu "
              "auth_failed=%llu challenges=%llu active_calls=%zu\n",
              (unsigned long long)s.invites, (unsigned long long)s.answered,
              (unsigned long long)s.cancelled, (unsigned long long)s.byesReceived,
              (unsigned long long)s.byesSent, (unsigned long long)s.byeFailures,
              (unsigned long long)s.options, (unsigned long long)s.registers,
              (unsigned long long)s.authOk, (unsigned long long)s.authFailed,
              (unsigned long long)s.authChallenges, ua.activeCalls());
  return 0;
}

// SIGHUP (systemctl reload): the configuration file is read again (Node::reload).
void watchHangup(asio::signal_set& hangup, app::Node& node) {
  hangup.async_wait([&hangup, &node](const std::error_code& ec, int) {
    if (ec) return;
    logger("node")->info("SIGHUP: reloading the configuration");
    (void)node.reload(); // logs what it applied, or why not
    watchHangup(hangup, node);
  });
}

int runServe(const std::string& configPath, const std::string& readyFile) {
  app::NodeConfig cfg = app::defaultConfig();
  if (!configPath.empty()) {
    auto c = app::loadConfig(configPath);
    if (!c) {
      std::fprintf(stderr, "verbund: %s\n", c.error().message.c_str());
      return 2;
    }
    cfg = c.value();
  }
  setLogLevel(cfg.logLevel);
  auto log = logger("node");
  asio::io_context io;
  auto node = app::Node::start(io, cfg);
  if (!node) {
    std::fprintf(stderr, "verbund: %s\n", node.error().message.c_str());
    return 2;
  }
  nlohmann::json info = (*node)->bound();
  info["node_id"] = (*node)->nodeId();
  app::writeReadyFile(readyFile, info);
  log->info("verbund {} node '{}' ({}) listening on {} (data directory {})",
            std::string(app::kProductVersion), cfg.nodeName, (*node)->nodeId(), info.dump(),
            cfg.dataDir);
  (*node)->setConfigPath(configPath);
  asio::signal_set hangup(io, SIGHUP);
  watchHangup(hangup, **node);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) {
    log->info("shutting down");
    hangup.cancel();
    (*node)->stop();
    io.stop();
  });
  io.run();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  // Everything the node and the CLI create (database, keys, exported certificate files, the
  // ready file) is for this user only.
  ::umask(077);
  CLI::App cli{"Verbund: a federated PBX"};
  cli.require_subcommand(1);

  std::string configPath, serveReadyFile;
  auto* serve = cli.add_subcommand("serve", "Run a node");
  serve->add_option("-c,--config", configPath, "TOML configuration file")->check(CLI::ExistingFile);
  serve->add_option("--ready-file", serveReadyFile, "write bound addresses as JSON here");

  TestUaOptions ua;
  auto* testua = cli.add_subcommand("testua", "Run the SIP test user agent");
  testua->add_option("--udp", ua.udp, "UDP listen address (port 0: any)");
  testua->add_option("--tcp", ua.tcp, "TCP listen address");
  testua->add_option("--tls", ua.tls, "TLS listen address");
  testua->add_option("--tls-cert", ua.tlsCert, "certificate chain (PEM file)");
  testua->add_option("--tls-key", ua.tlsKey, "private key (PEM file)");
  testua->add_option("--answer-delay", ua.answerDelayMs, "ms from 180 to 200 (0: at once)");
  testua->add_option("--hangup-after", ua.hangupAfterMs, "ms after the ACK to send BYE (0: never)");
  testua->add_option("--auth", ua.auth, "USER:PASS required for OPTIONS and REGISTER");
  testua->add_option("--realm", ua.realm, "digest realm");
  testua->add_option("--digest-algorithms", ua.digestAlgorithms,
                     "challenges to offer, most preferred first (e.g. MD5 SHA-256)");
  testua->add_option("--ready-file", ua.readyFile, "write bound addresses as JSON here");
  testua->add_option("--log-level", ua.logLevel, "trace|debug|info|warn|error");

  auto* version = cli.add_subcommand("version", "Print the version");
  bool versionJson = false;
  version->add_flag("--json", versionJson, "print {\"version\": ...}");
  app::AdminCommands admin(cli);
  app::BackupCommands backup(cli);
  app::DoctorCommand doctor(cli);

  CLI11_PARSE(cli, argc, argv);
  if (admin.selected()) return admin.run();
  if (backup.selected()) return backup.run();
  if (doctor.selected()) return doctor.run(std::cout, std::cerr);
  if (*serve) return runServe(configPath, serveReadyFile);
  if (*testua) return runTestUa(ua);
  if (*version) {
    const std::string v(app::kProductVersion);
    if (versionJson)
      std::printf("%s\n", nlohmann::json{{"version", v}}.dump().c_str());
    else
      std::printf("verbund %s\n", v.c_str());
    return 0;
  }
  return 1;
}

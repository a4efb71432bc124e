#include "app/node.h"

#include "app/call_features.h"
#include "app/data_lock.h"
#include "app/federation_routes.h"
#include "app/listen.h"
#include "app/media_anchor_ng.h"
#include "app/version.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/private_files.h"
#include "federation/service/federation_service.h"
#include "federation/trust/ossl.h"
#include "http/admin_server.h"
#include "http/call_export.h"
#include "http/directory_routes.h"
#include "http/media_routes.h"
#include "http/trunk_routes.h"
#include "media/media_service.h"
#include "media/music_on_hold.h"
#include "media/process_launcher.h"
#include "net/fd_limit.h"
#include "pbx/calllog/call_log.h"
#include "pbx/calllog/retention.h"
#include "pbx/calls/call_manager.h"
#include "pbx/directory/directory.h"
#include "pbx/presence/blf_notifier.h"
#include "pbx/presence/presence_hub.h"
#include "pbx/registrar/registrar.h"
#include "pbx/trunk/trunk_manager.h"
#include "pbx/trunk/trunk_store.h"
#include "sip/auth/auth_throttle.h"
#include "sip/auth/digest.h"
#include "sip/dialog/dialog_manager.h"
#include "sip/dns/dns_resolver.h"
#include "sip/dns/server_locator.h"
#include "sip/stack/sip_stack.h"
#include "sip/transport/transport_manager.h"
#include "store/database.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <random>

namespace verbund::app {

namespace {

// How late a call record may reach the database (CallLog::deferWrites): the records of at most
// this last moment are lost when the node is killed hard.
constexpr Duration kCallLogWriteDelay{50};

// The methods the node takes (OPTIONS and 405 answers): REFER inside calls (transfer).
constexpr std::string_view kNodeAllow =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, UPDATE, INFO, REFER";

// Stream connection limits from the config, the configured caps or those the open-file limit
// allows (net::connectionBudget). The limit was raised in Node::start.
sip::TransportOptions sipTransportOptions(const NodeConfig& c) {
  net::ConnectionBudget budget = net::connectionBudget(net::currentFileLimit());
  sip::TransportOptions o;
  net::AdmissionLimits& a = o.admission;
  a.maxConnections = c.sipMaxConnections > 0 ? size_t(c.sipMaxConnections) : budget.sip;
  a.maxPerSource = size_t(c.sipMaxConnectionsPerSource);
  a.maxPendingPerSource = size_t(c.sipMaxPendingPerSource);
  // Connections that sent nothing yet: a quarter of all, at least 64.
  a.maxPending = std::max<size_t>(64, a.maxConnections / 4);
  // Kept for federation members on the SIP-TLS listener (isReservedSource).
  a.reserved = std::min<size_t>(64, a.maxConnections / 16);
  o.firstMessageTimeout = Duration(c.sipFirstMessageTimeoutMs);
  return o;
}

federation::LinkOptions federationLinkOptions(const NodeConfig& c) {
  net::ConnectionBudget budget = net::connectionBudget(net::currentFileLimit());
  federation::LinkOptions o;
  net::AdmissionLimits& a = o.admission;
  a.maxConnections =
      c.federationMaxConnections > 0 ? size_t(c.federationMaxConnections) : budget.federation;
  a.maxPending = size_t(c.federationMaxPending);
  a.maxPendingPerSource = size_t(c.federationMaxPendingPerSource);
  a.reserved = size_t(c.federationReservedForMembers);
  o.connectTimeout = Duration(c.federationHelloTimeoutMs);
  return o;
}

std::vector<store::Migration> nodeMigrations() {
  return {{"node", 1, "node identity", R"SQL(
CREATE TABLE node_identity(
  id TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
)SQL"}};
}

// Every module's migrations, in the order they are applied.
std::vector<store::Migration> allMigrations() {
  std::vector<store::Migration> migrations = nodeMigrations();
  for (auto& m : pbx::Directory::migrations()) migrations.push_back(m);
  for (auto& m : pbx::CallLog::migrations()) migrations.push_back(m);
  for (auto& m : pbx::StoredCallJournal::migrations()) migrations.push_back(m);
  // (the registrar's bindings are in their own file, bindings.db: Registrar::migrations())
  for (auto& m : http::AdminAuth::migrations()) migrations.push_back(m);
  for (auto& m : pbx::trunkMigrations()) migrations.push_back(m);
  for (auto& m : federation::FederationService::migrations()) migrations.push_back(m);
  for (auto& m : media::MusicOnHold::migrations()) migrations.push_back(m);
  return migrations;
}

// The first non-loopback IPv4 address of this host (what other nodes most likely reach), else
// 127.0.0.1.
std::string firstHostAddress() {
  ifaddrs* list = nullptr;
  std::string out = "127.0.0.1";
  if (getifaddrs(&list) != 0) return out;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    IpAddress ip;
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    std::memcpy(ip.bytes.data(), &in->sin_addr, 4);
    if (ip.isLoopback()) continue;
    out = ip.toString();
    break;
  }
  freeifaddrs(list);
  return out;
}

std::string randomId() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) s += hex[rd() & 15];
  return s;
}

} // namespace

// Adapts the directory and the registrar to what the call engine needs.
class NodeCallDirectory final : public pbx::CallDirectory {
public:
  NodeCallDirectory(pbx::Directory& dir, pbx::Registrar& reg) : dir_(dir), reg_(reg) {}
  void setFederation(federation::FederationService* fed) { fed_ = fed; }

  static pbx::Party party(const pbx::User& u) {
    return pbx::Party{u.owner, u.extension, u.displayName, u.sipUser, u.externalNumber};
  }
  std::optional<pbx::Party> userByExtension(const std::string& ext) override {
    auto u = dir_.userByExtension(ext);
    if (!u) return std::nullopt;
    return party(*u);
  }
  std::optional<pbx::Party> userBySipUser(const std::string& sipUser) override {
    auto u = dir_.userBySipUser(sipUser);
    if (!u) return std::nullopt;
    return party(*u);
  }
  std::optional<pbx::GroupTarget> groupByNumber(const std::string& number) override {
    auto g = dir_.groupByNumber(number);
    if (!g) return std::nullopt;
    pbx::GroupTarget t{g->number, g->name, {}};
    for (const auto& m : g->members) {
      if (!m.loggedIn || !m.owner.empty()) continue; // remote members: below
      if (auto u = dir_.userByExtension(m.extension)) t.loggedInMembers.push_back(party(*u));
    }
    if (fed_)
      for (auto& p : fed_->remoteGroupMembers(g->members)) t.loggedInMembers.push_back(p);
    return t;
  }
  std::vector<pbx::DeviceTarget> devices(const std::string& sipUser) override {
    std::vector<pbx::DeviceTarget> out;
    for (const auto& b : reg_.lookup(sipUser)) {
      auto r = pbx::routeTo(b);
      out.push_back({std::move(r.requestUri), r.next, std::move(r.routes)});
    }
    return out;
  }
  std::vector<std::string> groupsOf(const std::string& extension) override {
    std::vector<std::string> out;
    for (const auto& g : dir_.groups())
      for (const auto& m : g.members)
        if (m.owner.empty() && m.extension == extension) out.push_back(g.number);
    return out;
  }
  pbx::FeatureWrite setGroupLogin(const std::string& number, const std::string& extension,
                                  bool loggedIn) override {
    auto g = dir_.groupByNumber(number);
    if (!g) return pbx::FeatureWrite::Refused;
    auto r = dir_.setMemberLoggedIn(g->id, "", extension, loggedIn);
    if (r) return pbx::FeatureWrite::Done;
    return r.error().code == 503 ? pbx::FeatureWrite::Busy : pbx::FeatureWrite::Refused;
  }

private:
  pbx::Directory& dir_;
  pbx::Registrar& reg_;
  federation::FederationService* fed_ = nullptr;
};

// Feeds call-engine line events into the presence hub (BLF).
class NodeLineObserver final : public pbx::LineObserver {
public:
  explicit NodeLineObserver(pbx::PresenceHub& hub) : hub_(hub) {}
  void lineEvent(const pbx::LineEvent& e) override {
    // Users of other nodes: their own node publishes their state (presence flows from the owner).
    if (!e.owner.empty()) return;
    pbx::DialogInfo d;
    d.id = e.dialogId;
    d.callId = e.callId;
    d.localTag = e.localTag;
    d.remoteTag = e.remoteTag;
    d.direction = e.initiator ? pbx::DialogDirection::Initiator : pbx::DialogDirection::Recipient;
    d.remote.identity = e.remoteUri;
    d.remote.display = e.remoteName;
    pbx::CallEventKind kind = e.state == pbx::LineEvent::State::Early ? pbx::CallEventKind::Ringing
                              : e.state == pbx::LineEvent::State::Confirmed
                                  ? pbx::CallEventKind::Answered
                                  : pbx::CallEventKind::Ended;
    hub_.callEvent(pbx::UserKey{e.owner, e.extension}, kind, std::move(d));
  }

private:
  pbx::PresenceHub& hub_;
};

// The trunk as the call engine's external line.
class NodeExternalLine final : public pbx::ExternalLine {
public:
  explicit NodeExternalLine(pbx::TrunkManager& trunk) : trunk_(trunk) {}
  bool isExternalNumber(const std::string& dialled) override {
    return trunk_.isExternalNumber(dialled);
  }
  bool prepareOutbound(const std::string& number, const pbx::Party& from,
                       sip::DialogManager::InviteParams& params) override {
    pbx::CallerIdentity caller;
    caller.externalNumber = from.externalNumber;
    caller.displayName = from.displayName;
    auto r = trunk_.prepareInvite(number, caller, params);
    if (!r) logger("calls")->info("external line refused {}: {}", number, r.error().message);
    return r.ok();
  }
  std::optional<std::string> inboundTarget(const sip::Message& invite) override {
    auto route = trunk_.inboundDid(invite);
    if (!route) return std::nullopt;
    return route->target;
  }

private:
  pbx::TrunkManager& trunk_;
};

struct Node::Impl {
  asio::io_context& io;
  NodeConfig config;
  std::string nodeId;
  nlohmann::json bound = nlohmann::json::object();

  AsioTimers timers;
  DataDirLock dataLock;                // held while the node runs (released last)
  std::unique_ptr<store::Database> db; // durable (synchronous=FULL): what is acknowledged
  // The registrar's bindings: own file, synchronous=NORMAL, written behind by the storage thread
  // (declared before the registrar, which flushes into them when destroyed).
  std::unique_ptr<store::Database> bindingsDb;
  // A second connection to verbund.db with synchronous=NORMAL for the ringing-call journal: one
  // commit per call, which must survive kill -9 (it does with NORMAL) but need not survive a power
  // cut; a disk flush per call on the loop (FULL, about 2.5 ms here) would cap calls.
  std::unique_ptr<store::Database> journalDb;
  std::unique_ptr<store::StorageThread> storageThread;
  std::unique_ptr<pbx::Directory> directory;
  std::unique_ptr<pbx::CallLog> callLog;
  std::unique_ptr<pbx::CallRetention> callRetention; // [calls] retention_days
  std::unique_ptr<http::AdminAuth> adminAuth;

  sip::TransportManager transport;
  std::unique_ptr<sip::DialogManager> dialogs;
  std::unique_ptr<sip::SipStack> stack;
  std::unique_ptr<pbx::Registrar> registrar;
  pbx::PresenceHub presence;
  std::unique_ptr<pbx::BlfNotifier> blf;
  std::unique_ptr<NodeCallDirectory> callDirectory;
  std::unique_ptr<NodeLineObserver> lineObserver;
  std::unique_ptr<DirectoryCallFeatures> callFeatures; // do-not-disturb, forwarding (issue 12)
  std::unique_ptr<pbx::CallManager> calls;
  std::unique_ptr<pbx::StoredCallJournal> callJournal; // ringing calls, ended after a crash
  std::unique_ptr<sip::DigestServer> callAuth;         // INVITE from devices: 407 challenges
  // The one digest brute-force policy: registrar (REGISTER), gate (SUBSCRIBE, INVITE), checkCaller.
  std::unique_ptr<sip::AuthThrottle> authThrottle;
  std::unique_ptr<sip::DnsResolver> dns;
  std::unique_ptr<sip::ServerLocator> locator;
  std::unique_ptr<pbx::TrunkManager> trunk;
  std::unique_ptr<NodeExternalLine> externalLine;
  std::unique_ptr<federation::FederationService> federation;
  std::unordered_map<sip::ConnectionId, std::string> federationConnections; // TLS conn → node id
  bool federationSipListening = false;
  std::string federationSipAddress; // "ip:port" other nodes reach our SIP-TLS listener at
  // The media relay (rtpengine): declared before the admin API, whose status reads it.
  std::unique_ptr<media::PosixProcessLauncher> processes;
  std::unique_ptr<media::MediaService> media;
  std::unique_ptr<media::MusicOnHold> music;  // the file played to held parties
  std::unique_ptr<NgMediaAnchor> mediaAnchor; // the call engine's relay seam
  std::unique_ptr<http::AdminServer> admin;

  Impl(asio::io_context& ioc, NodeConfig cfg)
      : io(ioc), config(std::move(cfg)), timers(ioc),
        transport(ioc, sipTransportOptions(config), &timers) {}
  // The transport outlives the members its callback touches (it closes its connections when
  // destroyed).
  ~Impl() { transport.onConnectionClosed = nullptr; }

  Result<void> openStorage();
  Result<void> startSip();
  Result<void> startFederation();
  void federationTls(const federation::TrustStore* trust);
  bool tlsPeerVerified(sip::ConnectionId id, const sip::Peer& peer, X509* cert);
  std::optional<std::string> federationPeer(const sip::Peer& from) const;
  void closeFormerMembers();
  void federationNodeDown(const std::string& peerNode, const std::optional<SockAddr>& sipAddr);
  void sipConnectionClosed(sip::ConnectionId id, const sip::Peer& peer, bool byPeer);
  void forgetClosedFederationConnections();
  std::optional<pbx::Caller> federationCaller(const sip::Message& invite);
  Result<void> startMedia();
  Result<void> startAdmin();
  void addApiRoutes();
  std::optional<pbx::Caller> checkCaller(sip::InviteSession& s, const sip::Message& invite);
  bool authorizeSubscribe(const sip::Message& subscribe);
  bool gate(sip::ServerTxId tx, const sip::Message& request);
  bool challengeBareInvite(sip::ServerTxId tx, const sip::Message& invite);
  bool trustedPeer(const sip::Message& m);
  bool refuseBlocked(sip::ServerTxId tx, const sip::Message& m);
  void challenge(sip::ServerTxId tx, bool stale);
  bool registeredFlow(const sip::Message& request);
  void outOfDialog(sip::ServerTxId tx, const sip::Message& request);
  std::string configPath; // Node::setConfigPath
  Result<nlohmann::json> reload();
};

namespace {
// The data directory holds the trunk password, the device HA1 values, the admin password hash and
// the federation keys: 0700, its database files 0600 (the process umask is 077, so what the node
// creates is private already). Looser modes are logged with path and mode and tightened; other
// files are only reported (the federation trust secret refuses to load when loose).
Result<void> securePrivateFiles(const std::string& dataDir) {
  auto log = logger("node");
  auto dir = checkPrivateMode(dataDir, kPrivateDirMode, true);
  if (!dir) return dir.error();
  if (*dir)
    log->warn("data directory {} had mode {} (readable by others); changed to {}", dataDir,
              modeString(**dir), modeString(**dir & kPrivateDirMode));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dataDir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    std::string path = entry.path().string();
    std::string name = entry.path().filename().string();
    bool ours = name == "verbund.db" || name == "verbund.db-wal" || name == "verbund.db-shm" ||
                name == "bindings.db" || name == "bindings.db-wal" || name == "bindings.db-shm";
    auto f = checkPrivateMode(path, kPrivateFileMode, ours);
    if (!f) return f.error();
    if (!*f) continue;
    if (ours)
      log->warn("{} had mode {} (readable by others); changed to {}", path, modeString(**f),
                modeString(**f & kPrivateFileMode));
    else
      log->warn("{} has mode {}: readable by others (should be {})", path, modeString(**f),
                modeString(kPrivateFileMode));
  }
  if (ec) return Error{1, "data directory " + dataDir + ": " + ec.message()};
  return {};
}
} // namespace

Result<void> Node::Impl::openStorage() {
  std::error_code ec;
  std::filesystem::create_directories(config.dataDir, ec);
  if (ec) return Error{1, "data directory " + config.dataDir + ": " + ec.message()};
  // Before the database opens: SQLite gives its -wal and -shm files the database file's mode.
  if (auto r = securePrivateFiles(config.dataDir); !r) return r;
  // One node per data directory; `verbund restore` checks the same lock (data_lock.h).
  auto held = DataDirLock::acquire(config.dataDir);
  if (!held) return Error{1, held.error().message};
  dataLock = std::move(*held);
  auto d = store::Database::open(config.dataDir + "/verbund.db", allMigrations());
  if (!d) return d.error();
  db = std::move(d.value());
  // The main database is used on the SIP loop (admin API, call records, federation state): a lock
  // held by another process (a backup, an sqlite3 shell) must not stall the loop. Writes that
  // meet one fail after this with 503 (the API adds Retry-After) instead of waiting 5 s.
  db->setBusyTimeout(std::chrono::milliseconds(20));
  auto b = store::Database::open(config.dataDir + "/bindings.db", pbx::Registrar::migrations(),
                                 store::Durability::Normal);
  if (!b) return b.error();
  bindingsDb = std::move(b.value());
  if (auto r = pbx::Registrar::adoptLegacyBindings(*db, *bindingsDb); !r) return r;
  auto j = store::Database::open(config.dataDir + "/verbund.db", {}, store::Durability::Normal);
  if (!j) return j.error();
  journalDb = std::move(j.value());
  journalDb->setBusyTimeout(std::chrono::milliseconds(20));
  if (auto r = securePrivateFiles(config.dataDir); !r) return r;
  auto id = db->query("SELECT id FROM node_identity LIMIT 1");
  if (!id) return id.error();
  if (id->empty()) {
    nodeId = randomId();
    if (auto r = db->exec("INSERT INTO node_identity(id, created_ms) VALUES (?1, ?2)",
                          {nodeId, timers.wallMs()});
        !r)
      return r;
  } else {
    nodeId = store::asText(id->at(0).at(0)).value_or("");
  }
  auto dir = pbx::Directory::open(*db, config.nodeName);
  if (!dir) return dir.error();
  directory = std::move(dir.value());
  callLog = std::make_unique<pbx::CallLog>(*db);
  // Call records in one transaction per quarter second instead of two per call (a commit each).
  callLog->deferWrites(timers, kCallLogWriteDelay);
  callRetention = std::make_unique<pbx::CallRetention>(*callLog, timers, config.callRetentionDays);
  callRetention->start(); // at start, then daily; nothing with retention_days = 0
  auto auth = http::AdminAuth::open(*db, timers);
  if (!auth) return auth.error();
  adminAuth = std::move(auth.value());
  const char* envPassword = std::getenv("VERBUND_ADMIN_PASSWORD");
  auto initial =
      adminAuth->bootstrap(envPassword ? std::optional<std::string>(envPassword) : std::nullopt);
  if (!initial) return initial.error();
  if (*initial) {
    // Shown once, on the first start only (the hash is what is stored).
    std::printf("initial admin password: %s\n", initial->value().c_str());
    std::fflush(stdout);
  }
  return {};
}

Result<void> Node::Impl::startSip() {
  if (!config.sipTls.empty()) {
    if (auto r = loadTls(transport, config.tlsCert, config.tlsKey, config.tlsCa); !r)
      return Error{1, "TLS: " + r.error().message};
  }
  std::vector<ListenSpec> specs;
  for (const auto& a : config.sipUdp) specs.push_back({sip::TransportType::Udp, a});
  for (const auto& a : config.sipTcp) specs.push_back({sip::TransportType::Tcp, a});
  for (const auto& a : config.sipTls) specs.push_back({sip::TransportType::Tls, a});
  auto b = bindListeners(transport, specs);
  if (!b) return b.error();
  bound = b.value();

  // The address the node writes into Contact and its own identities: the configured public
  // host, else the first bound address (a wildcard bind needs `sip.advertise` in the config).
  std::string first = bound.contains("udp") ? bound["udp"].get<std::string>()
                                            : bound.begin().value().get<std::string>();
  std::string advertise = config.sipAdvertise.empty() ? first : config.sipAdvertise;
  auto addr = SockAddr::parse(advertise);
  std::string host = addr ? addr->hostString() : advertise;

  sip::DialogConfig dc;
  dc.contact = "sip:verbund@" + advertise;
  // Calls from other nodes arrive over SIP-TLS: their dialogs stay on TLS (ACK, BYE, re-INVITE).
  dc.contactFor = [this](const sip::Message& request) -> std::string {
    if (federationSipAddress.empty() || !federationPeer(request.source())) return {};
    return "sip:verbund@" + federationSipAddress + ";transport=tls";
  };
  dc.sessionTimer.sessionExpires = uint32_t(config.sessionExpiresSeconds);
  dc.sessionTimer.minSE = uint32_t(
      std::min(config.minSessionExpiresSeconds, std::max(config.sessionExpiresSeconds, 2)));
  // Calls from other nodes: the federation's session timers (docs/federation-protocol.md "Calls
  // across a cut"); the federation service asks for the same on calls to other nodes.
  dc.sessionTimerFor =
      [this](const sip::Message& request) -> std::optional<sip::SessionTimerConfig> {
    if (!federation || !federationPeer(request.source())) return std::nullopt;
    return federation->sessionTimer();
  };
  dialogs = std::make_unique<sip::DialogManager>(timers, dc);
  sip::StackConfig sc;
  // The dialog layer retransmits 2xx itself (RFC 3261 §13.3.1.4).
  sc.transactions.retransmitInvite2xx = false;
  sc.supported = {"replaces", "path", "outbound"};
  // RFC 4028: the dialog layer runs session timers (a peer may send "Require: timer"). Never
  // "100rel": PRACK (RFC 3262) is not implemented, so such INVITEs get 420.
  if (dc.sessionTimer.sessionExpires || config.federationSessionExpiresSeconds)
    sc.supported.push_back("timer");
  sc.overload.queueDelayTarget = Duration(config.overloadQueueDelayMs);
  sc.overload.maxPendingTransactions = size_t(config.overloadMaxTransactions);
  stack = std::make_unique<sip::SipStack>(transport, timers, *dialogs, sc);
  dialogs->attach(stack->transactions());
  transport.setUser(stack.get());

  sip::AuthThrottleConfig tc;
  tc.maxFailures = uint32_t(config.authMaxFailures);
  tc.failureWindow = std::chrono::seconds(config.authFailureWindowSeconds);
  tc.cooldown = std::chrono::seconds(config.authBlockSeconds);
  authThrottle = std::make_unique<sip::AuthThrottle>(tc, timers);

  pbx::RegistrarConfig rc;
  rc.throttle = authThrottle.get();
  rc.realm = directory->realm();
  rc.credentials = [this](std::string_view sipUser) { return directory->credentials(sipUser); };
  rc.algorithms = config.digestAlgorithms;
  rc.natExpires = uint32_t(config.natExpiresSeconds);
  storageThread = std::make_unique<store::StorageThread>();
  rc.storage = storageThread.get();
  auto reg = pbx::Registrar::open(*bindingsDb, timers, rc);
  if (!reg) return reg.error();
  registrar = std::move(reg.value());
  // Every closed TCP/TLS connection: phones' flows (registrar) and federation links.
  transport.onConnectionClosed = [this](sip::ConnectionId id, const sip::Peer& p, bool byPeer) {
    sipConnectionClosed(id, p, byPeer);
  };

  sip::DigestServerConfig authCfg;
  authCfg.realm = directory->realm();
  authCfg.algorithms = config.digestAlgorithms;
  callAuth = std::make_unique<sip::DigestServer>(authCfg, timers);

  pbx::BlfNotifierConfig bc;
  bc.authorize = [this](const sip::Message& m) { return authorizeSubscribe(m); };
  bc.resolve = [this](std::string_view ext) -> std::optional<pbx::UserKey> {
    if (directory->userByExtension(ext)) return pbx::UserKey{"", std::string(ext)};
    // A user of another node: its presence arrives from its node (once per node).
    if (federation)
      if (auto p = federation->userByExtension(std::string(ext)))
        return pbx::UserKey{p->owner, std::string(ext)};
    return std::nullopt;
  };
  blf = std::make_unique<pbx::BlfNotifier>(*dialogs, presence, bc);
  dialogs->setServerSubscriptionHandler(blf.get());

  callDirectory = std::make_unique<NodeCallDirectory>(*directory, *registrar);
  lineObserver = std::make_unique<NodeLineObserver>(presence);
  pbx::CallManagerConfig cc;
  cc.domain = host;
  cc.nodeId = nodeId;
  cc.noAnswer = Duration(config.noAnswerSeconds * 1000);
  cc.maxForwards = config.maxForwards;
  cc.transferRecall = Duration(config.transferRecallSeconds * 1000);
  cc.federationFallback = Duration(config.federationFallbackMs);
  calls = std::make_unique<pbx::CallManager>(*dialogs, timers, *callDirectory, *callLog, cc);
  calls->setLineObserver(lineObserver.get());
  callFeatures = std::make_unique<DirectoryCallFeatures>(*directory, presence);
  calls->setCallFeatures(callFeatures.get());
  callJournal = std::make_unique<pbx::StoredCallJournal>(*journalDb);
  callJournal->deferDeletes(timers, kCallLogWriteDelay);
  calls->setJournal(callJournal.get());
  calls->setCallerCheck(
      [this](sip::InviteSession& s, const sip::Message& m) { return checkCaller(s, m); });
  dialogs->setInviteHandler(calls.get());

  // The external line: RFC 3263 location through c-ares, registration, DID routing.
  auto resolver = sip::DnsResolver::create(io);
  if (!resolver) return Error{1, "DNS: " + resolver.error().message};
  dns = std::move(resolver.value());
  locator = std::make_unique<sip::ServerLocator>(*dns);
  pbx::TrunkManagerOptions to;
  to.db = db.get();
  to.isInternalNumber = [this](const std::string& n) {
    return directory->userByExtension(n).has_value() || directory->groupByNumber(n).has_value() ||
           (!n.empty() && n[0] == '*');
  };
  trunk = std::make_unique<pbx::TrunkManager>(*dialogs, transport, timers, locator.get(), to);
  auto stored = pbx::loadTrunk(*db);
  if (!stored) return Error{1, "trunk settings: " + stored.error().message};
  if (*stored) {
    if (auto r = trunk->configure(**stored); !r)
      logger("node")->warn("trunk settings not applied: {}", r.error().message);
  }
  externalLine = std::make_unique<NodeExternalLine>(*trunk);
  calls->setExternalLine(externalLine.get());
  dialogs->setNewRequestGate(
      [this](sip::ServerTxId tx, const sip::Message& m) { return gate(tx, m); });
  dialogs->setOutOfDialogHandler(
      [this](sip::ServerTxId tx, const sip::Message& m) { outOfDialog(tx, m); });
  return {};
}

Result<void> Node::Impl::startFederation() {
  if (!config.federationEnabled) return {};
  federation::FederationConfig fc;
  fc.nodeId = nodeId;
  fc.nodeName = config.nodeName;
  fc.productVersion = std::string(kProductVersion);
  // Test-only: announce another protocol version (rolling-upgrade and incompatibility tests).
  if (const char* p = std::getenv("VERBUND_FEDERATION_PROTOCOL")) {
    auto v = federation::ProtocolVersion::parse(p);
    if (!v) return Error{1, std::string("VERBUND_FEDERATION_PROTOCOL: not a version: ") + p};
    fc.protocol = *v;
  }
  fc.listen = config.federationListen;
  fc.advertise = config.federationAdvertise;
  if (fc.advertise.empty()) fc.advertise.push_back(firstHostAddress());
  auto sipListen = SockAddr::parse(config.federationSipListen);
  if (!sipListen) return Error{1, "federation.sip_listen: not an address"};
  const std::string& adv = fc.advertise.front();
  std::string advHost = adv.find(':') != std::string::npos ? "[" + adv + "]" : adv;
  fc.sipAddress = advHost + ":" + std::to_string(sipListen->port);
  federationSipAddress = fc.sipAddress;
  fc.dataDir = config.dataDir;
  fc.links = federationLinkOptions(config);
  fc.sessionTimer.sessionExpires = uint32_t(config.federationSessionExpiresSeconds);
  fc.sessionTimer.minSE = uint32_t(std::min(config.federationMinSessionExpiresSeconds,
                                            std::max(config.federationSessionExpiresSeconds, 2)));
  federation = std::make_unique<federation::FederationService>(io, timers, *db, *directory,
                                                               presence, *callLog, fc);
  federation->onTrustChanged = [this](const federation::TrustStore* t) { federationTls(t); };
  federation->onMembersRemoved = [this] { closeFormerMembers(); };
  federation->onNodeDown = [this](const std::string& id, const std::optional<SockAddr>& addr) {
    federationNodeDown(id, addr);
  };
  auto b = federation->start();
  if (!b) return b.error();
  bound["federation"] = b->toString();
  transport.onTlsPeerVerified = [this](sip::ConnectionId id, const sip::Peer& p, X509* cert) {
    return tlsPeerVerified(id, p, cert);
  };
  // Members' addresses keep SIP slots of their own: a flood cannot keep calls between nodes out.
  transport.isReservedSource = [this](const IpAddress& ip) {
    return federation && federation->isMemberAddress(ip);
  };
  if (federation->trust()) federationTls(federation->trust());
  calls->setRemoteNodes(federation.get());
  federation->setCalls(calls.get());
  callDirectory->setFederation(federation.get());
  return {};
}

// SIP over TLS between nodes uses the node certificate of the federation, verified against the
// federation CA in both directions. (A node in a federation serves phones over TLS with the same
// certificate; a separate certificate for phones is not supported yet.)
void Node::Impl::federationTls(const federation::TrustStore* trust) {
  if (!trust || !trust->nodeCredentials()) return; // after leaving: peers are refused below
  sip::TlsConfig tc;
  auto cert = federation::detail::certToPem(trust->nodeCredentials()->cert.get());
  auto ca = federation::detail::certToPem(trust->ca().cert());
  if (!cert || !ca) return;
  tc.certificateChainPem = *cert;
  auto key = federation::detail::keyToPem(trust->nodeCredentials()->key.get());
  if (!key) return;
  tc.privateKeyPem = *key;
  tc.caPem = *ca;
  tc.clientCertMode = sip::TlsConfig::ClientCertMode::Optional;
  tc.verifyServer = true;
  if (!config.sipTls.empty())
    logger("node")->warn("sip.tls: the federation's node certificate replaces sip.tls_cert");
  if (auto r = transport.configureTls(tc); !r) {
    logger("node")->error("federation TLS: {}", r.error().message);
    return;
  }
  if (!federationSipListening) {
    auto addr = SockAddr::parse(config.federationSipListen);
    auto l = transport.listen(sip::TransportType::Tls, *addr);
    if (!l) {
      logger("node")->error("federation SIP listener {}: {}", config.federationSipListen,
                            l.error().message);
      return;
    }
    federationSipListening = true;
    bound["federationSip"] = l->toString();
  }
}

bool Node::Impl::tlsPeerVerified(sip::ConnectionId id, const sip::Peer& peer, X509* cert) {
  if (!cert) return true; // a phone without a client certificate
  if (!federation || !federation->trust()) return true;
  auto who = federation->verifySipPeer(cert);
  if (!who) {
    static Counter refused("verbund_federation_sip_refused_total",
                           "SIP-over-TLS connections refused: certificate not of a member");
    refused.inc();
    logger("federation")
        ->warn("SIP/TLS from {} refused: {}", peer.remote.toString(), who.error().message);
    return false;
  }
  forgetClosedFederationConnections();
  federationConnections[id] = who->nodeId;
  return true;
}

// The member node behind a SIP-over-TLS connection, checked again on every request: a node
// removed since the handshake is nobody (its connections are also closed, see below).
std::optional<std::string> Node::Impl::federationPeer(const sip::Peer& from) const {
  if (!federation || from.transport != sip::TransportType::Tls) return std::nullopt;
  auto it = federationConnections.find(from.connection);
  if (it == federationConnections.end() || !federation->isMember(it->second)) return std::nullopt;
  return it->second;
}

// Members were removed (or this node left): their SIP-over-TLS connections close now.
void Node::Impl::closeFormerMembers() {
  static Counter closed("verbund_federation_sip_closed_total",
                        "SIP-over-TLS connections closed because the node is no longer a member");
  std::vector<sip::ConnectionId> gone;
  for (const auto& [id, member] : federationConnections)
    if (!federation || !federation->isMember(member)) gone.push_back(id);
  for (auto id : gone) {
    logger("federation")
        ->warn("closing SIP/TLS connection of node {}: no longer a member",
               federationConnections[id]);
    federationConnections.erase(id);
    transport.closeConnection(id);
    closed.inc();
  }
  forgetClosedFederationConnections();
}

// A member's control link went down (cut off, or the node died): its SIP-over-TLS connections
// close at once and abortively, so that requests queued for it (an INVITE sent just before the
// cut, its CANCEL) are dropped rather than delivered when the path returns; its pending forks
// fail (the call falls back to the external line).
void Node::Impl::federationNodeDown(const std::string& peerNode,
                                    const std::optional<SockAddr>& sipAddr) {
  std::vector<sip::ConnectionId> gone;
  for (const auto& [id, member] : federationConnections)
    if (member == peerNode) gone.push_back(id);
  for (auto id : gone) {
    federationConnections.erase(id);
    transport.abortConnection(id);
  }
  // Connections still connecting (dialled during a cut) are nobody's yet: by address.
  size_t aborted = gone.size();
  if (sipAddr) aborted += transport.abortConnectionsTo(sip::TransportType::Tls, *sipAddr);
  if (aborted)
    logger("federation")
        ->info("link to node {} down: {} SIP/TLS connection(s) aborted", peerNode, aborted);
  if (calls) calls->nodeLost(peerNode, "control link down");
}

// A member's SIP-over-TLS connection closed. Closed by the peer or failed: forks sent over it
// fail now (the transport reports a peer's close only when data was lost).
void Node::Impl::sipConnectionClosed(sip::ConnectionId id, const sip::Peer& peer, bool byPeer) {
  // A phone's TCP/TLS flow: its bindings go with it (a fork must not reconnect to its port).
  if (registrar) registrar->flowClosed(id);
  auto it = federationConnections.find(id);
  if (it == federationConnections.end()) return;
  std::string peerNode = it->second;
  federationConnections.erase(it);
  if (byPeer && calls) calls->nodeLost(peerNode, "SIP/TLS connection closed", &peer.remote);
}

void Node::Impl::forgetClosedFederationConnections() {
  std::erase_if(federationConnections,
                [this](const auto& entry) { return !transport.isOpen(entry.first); });
}

// An INVITE from another node: over a TLS connection whose certificate is a member's. Its
// P-Asserted-Identity names the caller (trusted because of mutual TLS), X-Verbund-Call carries
// the federation-wide call id and what the calling node asks for.
std::optional<pbx::Caller> Node::Impl::federationCaller(const sip::Message& invite) {
  auto member = federationPeer(invite.source());
  if (!member) return std::nullopt;
  pbx::Caller c;
  c.kind = pbx::Caller::Kind::Federation;
  c.party.owner = *member;
  std::string origin = "user";
  if (auto h = invite.header("X-Verbund-Call")) {
    std::string_view v = *h;
    auto semi = v.find(';');
    c.correlationId = std::string(v.substr(0, semi));
    while (semi != std::string_view::npos) {
      v = v.substr(semi + 1);
      semi = v.find(';');
      auto param = v.substr(0, semi);
      auto eq = param.find('=');
      if (eq == std::string_view::npos) continue;
      auto name = param.substr(0, eq), value = param.substr(eq + 1);
      if (name == "mode")
        if (auto m = pbx::parseCallMode(value)) c.mode = *m;
      if (name == "origin") origin = std::string(value);
    }
    if (c.correlationId.size() > 64) c.correlationId.resize(64);
  }
  auto pai = invite.header("P-Asserted-Identity");
  auto na = sip::parseNameAddr(pai ? *pai : invite.header(sip::HeaderId::From).value_or(""));
  if (na) {
    std::string user = sip::unescape(na->uri.user).value_or("");
    c.party.displayName = std::string(na->displayName);
    if (origin == "external") {
      c.party.externalNumber = user;
      c.party.extension = user;
      c.number = user;
      c.name = c.party.displayName;
    } else {
      c.party.extension = user;
      if (auto u = federation->remoteUser(c.party.owner, user)) {
        c.party.externalNumber = u->externalNumber;
        if (c.party.displayName.empty()) c.party.displayName = u->displayName;
      }
    }
  }
  return c;
}

namespace {
sip::DigestLookup credentialLookup(pbx::Directory& dir) {
  return [&dir](std::string_view user, std::string_view,
                sip::DigestAlgorithm alg) -> std::optional<sip::DigestSecret> {
    auto c = dir.credentials(user);
    if (!c) return std::nullopt;
    const std::string& ha1 = alg == sip::DigestAlgorithm::Md5 ? c->ha1Md5 : c->ha1Sha256;
    if (ha1.empty()) return std::nullopt;
    return sip::DigestSecret{sip::DigestSecret::Kind::Ha1, ha1};
  };
}
} // namespace

std::optional<pbx::Caller> Node::Impl::checkCaller(sip::InviteSession& s,
                                                   const sip::Message& invite) {
  if (auto c = federationCaller(invite)) return c;
  if (trunk && trunk->isTrunkPeer(invite.source())) {
    // The carrier is trusted by address (RFC 3263-resolved registrar/proxy, configured IPs).
    pbx::Caller c;
    c.kind = pbx::Caller::Kind::Trunk;
    c.number = sip::unescape(invite.from().uri.user).value_or("");
    c.name = std::string(invite.from().displayName);
    // Another site's fallback: its call id, if the carrier passed it and it names a member.
    if (auto h = invite.header(pbx::kCorrelationHeader); h && federation) {
      auto carried = pbx::parseCarriedCorrelation(*h);
      if (carried && federation->isMember(carried->node))
        c.correlationId = std::move(carried->id);
      else
        logger("calls")->info("call from the external line: {} ignored (not a member's call id)",
                              pbx::kCorrelationHeader);
    }
    return c;
  }
  bool stale = false;
  if (auto creds = invite.header(sip::HeaderId::ProxyAuthorization)) {
    if (auto params = sip::parseAuthParams(*creds)) {
      auto v = callAuth->verify(*params, invite.methodName(), invite.body(),
                                credentialLookup(*directory));
      const SockAddr& source = invite.source().remote;
      if (v.ok() &&
          !sip::digestUriMatches(v.uri, invite.requestUri(), config.digestUriWithoutUser)) {
        // RFC 3261 §22.4: a response computed for another Request-URI (a captured one replayed
        // towards another number) authorises nothing.
        authThrottle->failed(source, "INVITE", v.username, sip::AuthFailure::UriMismatch);
        (void)s.reject(400, sip::kDigestUriMismatchReason);
        return std::nullopt;
      }
      if (v.ok()) {
        auto user = directory->userBySipUser(v.username);
        if (user) {
          authThrottle->accepted();
          pbx::Caller c;
          c.kind = pbx::Caller::Kind::LocalUser;
          c.party = NodeCallDirectory::party(*user);
          return c;
        }
      }
      if (v.status == sip::DigestStatus::WrongResponse)
        authThrottle->failed(source, "INVITE", v.username, sip::AuthFailure::WrongResponse);
      stale = v.wantsStaleChallenge();
    }
  }
  // RFC 3261 §22.3: a proxy-style challenge, so the phone answers with Proxy-Authorization.
  sip::ExtraHeaders h;
  for (auto& c : callAuth->challenges(stale)) h.emplace_back("Proxy-Authenticate", std::move(c));
  (void)s.reject(407, {}, h);
  return std::nullopt;
}

// Gate for new out-of-dialog requests: SUBSCRIBE from devices must authenticate (digest, 407)
// unless it comes over the flow a device registered from. INVITEs are checked by the call
// engine's CallerCheck (it needs the session to answer); REGISTER by the registrar. A source the
// digest throttle blocked gets 403 for every authenticated method, here and in the registrar.
bool Node::Impl::gate(sip::ServerTxId tx, const sip::Message& m) {
  if (m.method() == sip::Method::Invite) {
    if (trustedPeer(m)) return true;
    if (refuseBlocked(tx, m)) return false;
    return !challengeBareInvite(tx, m);
  }
  if (m.method() != sip::Method::Subscribe) return true;
  if (refuseBlocked(tx, m)) return false;
  bool stale = false;
  if (auto creds = m.header(sip::HeaderId::ProxyAuthorization)) {
    if (auto params = sip::parseAuthParams(*creds)) {
      auto v = callAuth->verify(*params, m.methodName(), m.body(), credentialLookup(*directory));
      if (v.ok() && !sip::digestUriMatches(v.uri, m.requestUri(), config.digestUriWithoutUser)) {
        authThrottle->failed(m.source().remote, "SUBSCRIBE", v.username,
                             sip::AuthFailure::UriMismatch);
        auto& txl = stack->transactions();
        if (auto b = txl.responseBuilder(tx, 400, sip::kDigestUriMismatchReason))
          (void)txl.respond(tx, b->finish());
        return false;
      }
      if (v.ok()) {
        authThrottle->accepted();
        return true;
      }
      if (v.status == sip::DigestStatus::WrongResponse)
        authThrottle->failed(m.source().remote, "SUBSCRIBE", v.username,
                             sip::AuthFailure::WrongResponse);
      stale = v.wantsStaleChallenge();
    }
  }
  if (registeredFlow(m)) return true;
  challenge(tx, stale);
  return false;
}

// Other nodes (over a verified federation TLS connection) and the external line's carrier are
// not phones: they are trusted by connection or address and never digest-checked or throttled.
bool Node::Impl::trustedPeer(const sip::Message& m) {
  const sip::Peer& from = m.source();
  if (federationPeer(from)) return true;
  return trunk && trunk->isTrunkPeer(from);
}

// 403 with Retry-After for a request from a source blocked after failed digest checks (the
// registrar answers REGISTER the same way). True when it answered.
bool Node::Impl::refuseBlocked(sip::ServerTxId tx, const sip::Message& m) {
  auto left = authThrottle->refuse(m.source().remote, m.methodName(), sip::claimedUser(m));
  if (!left) return false;
  auto& txl = stack->transactions();
  if (auto b = txl.responseBuilder(tx, 403, sip::kAuthBlockedReason)) {
    b->header("Retry-After", std::to_string(*left));
    (void)txl.respond(tx, b->finish());
  }
  return true;
}

// The first INVITE of nearly every call from a phone carries no credentials. Its 407 is sent
// here, from the transaction, before the dialog layer builds an INVITE session only to reject
// and retire it. INVITEs with credentials, from other nodes or from the external line go on to
// checkCaller, which verifies them (and challenges again when they fail).
bool Node::Impl::challengeBareInvite(sip::ServerTxId tx, const sip::Message& m) {
  if (m.header(sip::HeaderId::ProxyAuthorization)) return false;
  challenge(tx, false);
  return true;
}

// RFC 3261 §22.3: a proxy-style challenge, so the phone answers with Proxy-Authorization.
void Node::Impl::challenge(sip::ServerTxId tx, bool stale) {
  auto& txl = stack->transactions();
  auto b = txl.responseBuilder(tx, 407);
  if (!b) return;
  for (const auto& c : callAuth->challenges(stale)) b->header(sip::HeaderId::ProxyAuthenticate, c);
  (void)txl.respond(tx, b->finish());
}

bool Node::Impl::registeredFlow(const sip::Message& m) {
  auto user = sip::unescape(m.from().uri.user).value_or("");
  for (const auto& b : registrar->lookup(user))
    if (b.peer.remote == m.source().remote && b.peer.transport == m.source().transport) return true;
  return false;
}

bool Node::Impl::authorizeSubscribe(const sip::Message&) {
  // The request gate (above) has authenticated every new SUBSCRIBE already; verifying the same
  // credentials twice would trip the nonce-count replay check.
  return true;
}

void Node::Impl::outOfDialog(sip::ServerTxId tx, const sip::Message& request) {
  auto& txl = stack->transactions();
  switch (request.method()) {
  case sip::Method::Register:
    registrar->handleRegister(txl, tx, request);
    return;
  case sip::Method::Options: {
    auto b = txl.responseBuilder(tx, 200);
    if (!b) return;
    b->header(sip::HeaderId::Allow, kNodeAllow).header(sip::HeaderId::Accept, "application/sdp");
    (void)txl.respond(tx, b->finish());
    return;
  }
  default: {
    auto b = txl.responseBuilder(tx, 405);
    if (!b) return;
    b->header(sip::HeaderId::Allow, kNodeAllow);
    (void)txl.respond(tx, b->finish());
    return;
  }
  }
}

void Node::Impl::addApiRoutes() {
  using http::Method;
  using http::RequestContext;
  using http::Response;
  admin->route(Method::Post, "/api/v1/reload", [this](RequestContext&) -> Result<Response> {
    auto r = reload();
    if (!r) return Error{400, r.error().message};
    return Response::json(*r);
  });
  admin->route(Method::Get, "/api/v1/calls", [this](RequestContext& c) -> Result<Response> {
    pbx::CallQuery q;
    if (auto e = c.queryValue("extension")) q.extension = *e;
    if (auto d = c.queryValue("disposition")) {
      auto disp = pbx::dispositionFromName(*d);
      if (!disp) return Error{400, "disposition: unknown value '" + *d + "'"};
      q.disposition = *disp;
    }
    auto num = [&](const char* name, int64_t& out) -> Result<void> {
      auto v = c.queryValue(name);
      if (!v) return {};
      try {
        size_t used = 0;
        out = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument("junk");
      } catch (const std::exception&) {
        return Error{400, std::string(name) + ": not a number"};
      }
      return {};
    };
    int64_t limit = 100;
    if (auto r = num("from", q.fromMs); !r) return r.error();
    if (auto r = num("to", q.toMs); !r) return r.error();
    if (auto r = num("limit", limit); !r) return r.error();
    if (limit < 1 || limit > 1000) return Error{400, "limit: must be 1..1000"};
    q.limit = int(limit);
    auto records = callLog->find(q);
    if (!records) return records.error();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *records) out.push_back(http::callRecordJson(r));
    return Response::json({{"calls", out}});
  });
  admin->route(Method::Get, "/api/v1/calls/active", [this](RequestContext&) -> Result<Response> {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : calls->activeCalls())
      out.push_back({{"correlationId", a.correlationId},
                     {"caller", a.caller},
                     {"callerName", a.callerName},
                     {"dialled", a.dialled},
                     {"answeredBy", a.answeredBy},
                     {"state", a.state},
                     {"startMs", a.startMs},
                     {"answerMs", a.answerMs}});
    return Response::json({{"calls", out}});
  });
  admin->route(Method::Get, "/api/v1/registrations", [this](RequestContext&) -> Result<Response> {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : registrar->all())
      out.push_back({{"sipUser", b.sipUser},
                     {"contact", b.contact},
                     {"transport", std::string(sip::transportName(b.peer.transport))},
                     {"source", b.peer.remote.toString()},
                     {"userAgent", b.userAgent},
                     {"expiresInSeconds", b.expiresIn(timers.now())}});
    return Response::json({{"registrations", out}});
  });
  admin->route(Method::Get, "/api/v1/presence", [this](RequestContext&) -> Result<Response> {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : directory->users()) {
      auto p = presence.get(pbx::UserKey{"", u.extension});
      out.push_back({{"node", ""},
                     {"nodeName", config.nodeName},
                     {"extension", u.extension},
                     {"displayName", u.displayName},
                     {"state", std::string(pbx::lineStateName(p.state))},
                     {"dnd", u.dnd}});
    }
    // Users of the other nodes (replica); their state comes from their node, "unknown" while
    // the link is down.
    if (federation && federation->member())
      for (const auto& u : federation->replica().allUsers()) {
        auto p = presence.get(pbx::UserKey{u.owner, u.user.extension});
        out.push_back({{"node", u.owner},
                       {"nodeName", federation->nodeName(u.owner)},
                       {"extension", u.user.extension},
                       {"displayName", u.user.displayName},
                       {"state", std::string(pbx::lineStateName(p.state))},
                       {"dnd", u.user.dnd}});
      }
    return Response::json({{"users", out}});
  });
  admin->addStatus([this](nlohmann::json& j) {
    j["nodeId"] = nodeId;
    j["registrations"] = registrar->all().size();
    j["activeCalls"] = calls->activeCalls().size();
    if (federation) {
      auto f = federation->status();
      nlohmann::json brief = {{"member", f["member"]}};
      if (f["member"].get<bool>()) {
        brief["name"] = f["name"];
        size_t up = 0, total = 0;
        for (const auto& m : f["members"]) {
          if (m["self"].get<bool>()) continue;
          ++total;
          if (m["state"] == "up") ++up;
        }
        brief["peersUp"] = up;
        brief["peers"] = total;
      }
      j["federation"] = brief;
    }
  });
}

// The own rtpengine relays RTP on the configured media interface, else on the address the node
// is reached at for SIP (sip.advertise, else the first bound address), else on the first
// non-loopback address of the host (a wildcard bind).
Result<void> Node::Impl::startMedia() {
  media::MediaConfig mc;
  mc.own = config.mediaOwnRtpengine;
  for (const auto& a : config.mediaRtpengine) {
    auto addr = SockAddr::parse(a);
    if (!addr) return Error{1, "media.rtpengine: not an ng address: " + a};
    mc.external.push_back(*addr);
  }
  std::optional<IpAddress> ip;
  if (!config.mediaInterface.empty()) ip = IpAddress::parse(config.mediaInterface);
  auto hostOf = [](const std::string& hostPort) -> std::optional<IpAddress> {
    if (auto a = SockAddr::parse(hostPort); a && !a->ip.isAny()) return a->ip;
    if (auto h = IpAddress::parse(hostPort); h && !h->isAny()) return h;
    return std::nullopt;
  };
  if (!ip && !config.sipAdvertise.empty()) ip = hostOf(config.sipAdvertise);
  if (!ip && bound.contains("udp")) ip = hostOf(bound["udp"].get<std::string>());
  if (!ip) ip = IpAddress::parse(firstHostAddress());
  mc.interface = ip.value_or(*IpAddress::parse("127.0.0.1"));
  mc.portMin = uint16_t(config.mediaPortMin);
  mc.portMax = uint16_t(config.mediaPortMax);
  mc.logPath = config.dataDir + "/rtpengine.log";
  if (!config.mediaMusicOnHold.empty())
    if (auto w = media::checkWavFile(config.mediaMusicOnHold); !w)
      return Error{1, "media.music_on_hold: " + w.error().message};
  auto moh =
      media::MusicOnHold::open(*db, config.mediaMusicOnHold, config.dataDir + "/music-on-hold.wav");
  if (!moh) return Error{1, "music on hold: " + moh.error().message};
  music = std::move(moh.value());
  if (auto w = media::checkWavFile(music->path()); !w)
    logger("media")->warn("music on hold file {} is not usable: {}", music->path(),
                          w.error().message);
  processes = std::make_unique<media::PosixProcessLauncher>(io);
  media = std::make_unique<media::MediaService>(io, timers, *processes, mc);
  media->start();
  mediaAnchor = std::make_unique<NgMediaAnchor>(
      *media, [this] { return music ? music->path() : std::string(); });
  calls->setMediaAnchor(mediaAnchor.get(),
                        pbx::parseAnchorMode(config.mediaAnchor).value_or(pbx::AnchorMode::Always));
  return {};
}

Result<void> Node::Impl::startAdmin() {
  http::AdminServerConfig ac;
  ac.listen = config.adminListen;
  ac.nodeName = config.nodeName;
  ac.version = std::string(kProductVersion);
  ac.secureCookie = config.adminSecureCookie;
  ac.allowedOrigins = config.adminAllowedOrigins;
  admin = std::make_unique<http::AdminServer>(io, *adminAuth, ac);
  http::addDirectoryRoutes(*admin, *directory, [this](const std::string& number) {
    return federation ? federation->numberWarnings(number) : nlohmann::json::array();
  });
  http::addTrunkRoutes(*admin, *trunk, *db);
  http::addMediaRoutes(*admin, *media);
  http::addMusicOnHoldRoutes(*admin, *music);
  if (federation) addFederationRoutes(*admin, *federation);
  addApiRoutes();
  http::addCallExportRoute(*admin, *callLog);
  auto b = admin->start();
  if (!b) return Error{1, "admin API: " + b.error().message};
  bound["admin"] = b->toString();
  return {};
}

Result<std::unique_ptr<Node>> Node::start(asio::io_context& io, const NodeConfig& config) {
  // Every stream connection is a descriptor: take what the hard limit allows, and derive the
  // connection caps from the result (sipTransportOptions, federationLinkOptions).
  net::FileLimit files = net::raiseFileLimit();
  net::ConnectionBudget budget = net::connectionBudget(files.soft);
  auto nodeLog = logger("node");
  if (!files.error.empty())
    nodeLog->warn("open-file limit {} (hard {}) not raised: {}", files.soft, files.hard,
                  files.error);
  nodeLog->info("open-file limit {} (was {}, hard {}): up to {} SIP and {} federation "
                "connections, {} descriptors kept for the rest",
                files.soft, files.before, files.hard,
                config.sipMaxConnections > 0 ? size_t(config.sipMaxConnections) : budget.sip,
                config.federationMaxConnections > 0 ? size_t(config.federationMaxConnections)
                                                    : budget.federation,
                budget.headroom);
  auto impl = std::make_unique<Impl>(io, config);
  if (auto r = impl->openStorage(); !r) return r.error();
  if (auto r = impl->startSip(); !r) return r.error();
  if (auto r = impl->startFederation(); !r) return r.error();
  if (auto r = impl->startMedia(); !r) return r.error();
  if (auto r = impl->startAdmin(); !r) return r.error();
  // Calls a crash left ringing: records written, their phones cancelled (transports are up).
  if (size_t n = impl->calls->endInterrupted())
    nodeLog->warn("{} call(s) were ringing when the node last stopped: ended", n);
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() {
  stop();
}
std::map<std::string, int> Node::schemaVersions() {
  std::map<std::string, int> out;
  for (const auto& m : allMigrations()) out[m.module] = std::max(out[m.module], m.version);
  return out;
}
const nlohmann::json& Node::bound() const {
  return impl_->bound;
}
const std::string& Node::nodeId() const {
  return impl_->nodeId;
}

void Node::setConfigPath(const std::string& path) {
  impl_->configPath = path;
}

Result<nlohmann::json> Node::reload() {
  return impl_->reload();
}

namespace {
// Keys whose value differs between two configurations and that only a restart applies.
std::vector<std::string> restartOnlyChanges(const NodeConfig& a, const NodeConfig& b) {
  std::vector<std::string> out;
  auto cmp = [&out](const char* key, const auto& x, const auto& y) {
    if (!(x == y)) out.emplace_back(key);
  };
  cmp("node.name", a.nodeName, b.nodeName);
  cmp("node.data_dir", a.dataDir, b.dataDir);
  cmp("node.admin_listen", a.adminListen, b.adminListen);
  cmp("sip.udp", a.sipUdp, b.sipUdp);
  cmp("sip.tcp", a.sipTcp, b.sipTcp);
  cmp("sip.tls", a.sipTls, b.sipTls);
  cmp("sip.tls_cert", a.tlsCert, b.tlsCert);
  cmp("sip.tls_key", a.tlsKey, b.tlsKey);
  cmp("sip.tls_ca", a.tlsCa, b.tlsCa);
  cmp("sip.advertise", a.sipAdvertise, b.sipAdvertise);
  cmp("sip.digest_algorithms", a.digestAlgorithms, b.digestAlgorithms);
  cmp("sip.digest_uri_without_user", a.digestUriWithoutUser, b.digestUriWithoutUser);
  cmp("sip.no_answer_seconds", a.noAnswerSeconds, b.noAnswerSeconds);
  cmp("sip.max_forwards", a.maxForwards, b.maxForwards);
  cmp("sip.transfer_recall_seconds", a.transferRecallSeconds, b.transferRecallSeconds);
  cmp("sip.session_expires", a.sessionExpiresSeconds, b.sessionExpiresSeconds);
  cmp("sip.min_se", a.minSessionExpiresSeconds, b.minSessionExpiresSeconds);
  cmp("admin.secure_cookie", a.adminSecureCookie, b.adminSecureCookie);
  cmp("admin.allowed_origins", a.adminAllowedOrigins, b.adminAllowedOrigins);
  cmp("federation.enabled", a.federationEnabled, b.federationEnabled);
  cmp("federation.listen", a.federationListen, b.federationListen);
  cmp("federation.sip_listen", a.federationSipListen, b.federationSipListen);
  cmp("federation.advertise", a.federationAdvertise, b.federationAdvertise);
  cmp("federation.fallback_ms", a.federationFallbackMs, b.federationFallbackMs);
  cmp("federation.session_expires", a.federationSessionExpiresSeconds,
      b.federationSessionExpiresSeconds);
  cmp("federation.min_se", a.federationMinSessionExpiresSeconds,
      b.federationMinSessionExpiresSeconds);
  cmp("federation.max_connections", a.federationMaxConnections, b.federationMaxConnections);
  cmp("federation.max_pending", a.federationMaxPending, b.federationMaxPending);
  cmp("federation.max_pending_per_source", a.federationMaxPendingPerSource,
      b.federationMaxPendingPerSource);
  cmp("federation.reserved_for_members", a.federationReservedForMembers,
      b.federationReservedForMembers);
  cmp("federation.hello_timeout_ms", a.federationHelloTimeoutMs, b.federationHelloTimeoutMs);
  cmp("media.rtpengine", a.mediaRtpengine, b.mediaRtpengine);
  cmp("media.rtpengine", a.mediaOwnRtpengine, b.mediaOwnRtpengine);
  cmp("media.port_min", a.mediaPortMin, b.mediaPortMin);
  cmp("media.port_max", a.mediaPortMax, b.mediaPortMax);
  cmp("media.interface", a.mediaInterface, b.mediaInterface);
  cmp("sip.nat_expires", a.natExpiresSeconds, b.natExpiresSeconds);
  cmp("calls.retention_days", a.callRetentionDays, b.callRetentionDays);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
} // namespace

Result<nlohmann::json> Node::Impl::reload() {
  auto log = logger("node");
  NodeConfig next = defaultConfig();
  if (!configPath.empty()) {
    auto c = loadConfig(configPath);
    if (!c) {
      log->error("reload: {}; nothing changed", c.error().message);
      return Error{1, c.error().message + "; nothing changed"};
    }
    next = c.value();
  }
  nlohmann::json applied = nlohmann::json::array();
  if (next.logLevel != config.logLevel) {
    setLogLevel(next.logLevel);
    config.logLevel = next.logLevel;
    applied.push_back("node.log_level");
  }
  if (next.overloadQueueDelayMs != config.overloadQueueDelayMs ||
      next.overloadMaxTransactions != config.overloadMaxTransactions) {
    sip::OverloadConfig oc = stack->overload().config();
    oc.queueDelayTarget = Duration(next.overloadQueueDelayMs);
    oc.maxPendingTransactions = size_t(next.overloadMaxTransactions);
    stack->setOverloadConfig(oc);
    config.overloadQueueDelayMs = next.overloadQueueDelayMs;
    config.overloadMaxTransactions = next.overloadMaxTransactions;
    applied.push_back("sip.overload_*");
  }
  if (next.authMaxFailures != config.authMaxFailures ||
      next.authFailureWindowSeconds != config.authFailureWindowSeconds ||
      next.authBlockSeconds != config.authBlockSeconds) {
    sip::AuthThrottleConfig tc = authThrottle->config();
    tc.maxFailures = uint32_t(next.authMaxFailures);
    tc.failureWindow = std::chrono::seconds(next.authFailureWindowSeconds);
    tc.cooldown = std::chrono::seconds(next.authBlockSeconds);
    authThrottle->setConfig(tc);
    config.authMaxFailures = next.authMaxFailures;
    config.authFailureWindowSeconds = next.authFailureWindowSeconds;
    config.authBlockSeconds = next.authBlockSeconds;
    applied.push_back("sip.auth_*");
  }
  if (next.sipMaxConnections != config.sipMaxConnections ||
      next.sipMaxConnectionsPerSource != config.sipMaxConnectionsPerSource ||
      next.sipMaxPendingPerSource != config.sipMaxPendingPerSource ||
      next.sipFirstMessageTimeoutMs != config.sipFirstMessageTimeoutMs) {
    sip::TransportOptions o = sipTransportOptions(next);
    transport.setConnectionLimits(o.admission, o.firstMessageTimeout);
    config.sipMaxConnections = next.sipMaxConnections;
    config.sipMaxConnectionsPerSource = next.sipMaxConnectionsPerSource;
    config.sipMaxPendingPerSource = next.sipMaxPendingPerSource;
    config.sipFirstMessageTimeoutMs = next.sipFirstMessageTimeoutMs;
    applied.push_back("sip.connection_limits");
  }
  // Media: the anchoring mode applies to calls that start afterwards (a call keeps the media
  // path it began with); the music file to holds that start afterwards.
  if (next.mediaAnchor != config.mediaAnchor) {
    auto mode = pbx::parseAnchorMode(next.mediaAnchor);
    if (mode && mediaAnchor) {
      calls->setMediaAnchor(mediaAnchor.get(), *mode);
      config.mediaAnchor = next.mediaAnchor;
      applied.push_back("media.anchor");
    }
  }
  if (next.mediaMusicOnHold != config.mediaMusicOnHold && music) {
    if (auto r = music->setConfigured(next.mediaMusicOnHold); !r) {
      log->warn("reload: media.music_on_hold not applied: {}", r.error().message);
    } else {
      config.mediaMusicOnHold = next.mediaMusicOnHold;
      applied.push_back("media.music_on_hold");
    }
  }
  // The trunk's settings live in the database (API, web UI): applied again, which registers
  // anew (e.g. after the carrier changed the password and the database was updated).
  auto stored = pbx::loadTrunk(*db);
  if (!stored) return Error{1, "trunk settings: " + stored.error().message};
  if (*stored) {
    if (auto r = trunk->configure(**stored); !r)
      log->warn("reload: trunk settings not applied: {}", r.error().message);
    else
      applied.push_back("trunk");
  }
  nlohmann::json restart = restartOnlyChanges(config, next);
  log->info("reload: applied {}; changed but applied only by a restart: {}", applied.dump(),
            restart.dump());
  return nlohmann::json{{"applied", applied}, {"restartNeeded", restart}};
}

void Node::stop() {
  if (!impl_) return;
  if (impl_->admin) impl_->admin->stop();
  if (impl_->federation) impl_->federation->stop();
  if (impl_->trunk) impl_->trunk->stop();
  // The relay's sessions of calls still up are deleted (external instances keep no leftovers).
  if (impl_->calls) impl_->calls->releaseAllMedia();
  if (impl_->media) impl_->media->stop(); // the own rtpengine ends and is reaped here
  impl_->transport.close();
  if (impl_->callLog) (void)impl_->callLog->flush();
}

} // namespace verbund::app

#include "federation/service/federation_service.h"

#include "base/log.h"
#include "base/metrics.h"
#include "federation/replication/calls_held.h"
#include "federation/replication/presence_wire.h"
#include "federation/trust/errors.h"
#include "federation/trust/rekey.h"

#include <asio/steady_timer.hpp>
#include <chrono>

namespace verbund::federation {

namespace {

Counter badMessages("verbund_federation_bad_messages_total",
                    "Control-plane messages from peers that failed validation");
Counter rekeys("verbund_federation_rekeys_total",
               "Federation CAs made or adopted by this node (after a member was removed or left)");
Counter fallbackCalls("verbund_federation_fallback_calls_total",
                      "Calls to another node's user that went over the external line");
Counter deferredWrites("verbund_federation_deferred_writes_total",
                       "Federation state writes that met a busy database and were queued for a "
                       "retry every second");
Counter deferredDropped("verbund_federation_deferred_writes_dropped_total",
                        "Deferred federation state writes dropped because the retry queue was "
                        "full (the state comes again at the peer's next link up)");
Gauge deferredPending("verbund_federation_deferred_writes",
                      "Federation state writes waiting for the database (retried every second)");

enum class ServiceErrc : int {
  kAlreadyMember = 4401,
  kNotMember,
  kUnknownMember,
  kSelf,
  kBusy,
  kTimeout,
};
Error serviceError(ServiceErrc c, std::string message) {
  return Error{static_cast<int>(c), std::move(message)};
}

std::string hostOf(const std::string& hostPort) {
  if (!hostPort.empty() && hostPort[0] == '[') {
    auto e = hostPort.find(']');
    return e == std::string::npos ? hostPort : hostPort.substr(0, e + 1);
  }
  auto c = hostPort.rfind(':');
  return c == std::string::npos ? hostPort : hostPort.substr(0, c);
}

std::string portOf(const std::string& hostPort) {
  auto c = hostPort.rfind(':');
  if (c == std::string::npos || (hostPort[0] == '[' && hostPort.back() == ']')) return {};
  return hostPort.substr(c + 1);
}

} // namespace

FederationError classify(const Error& e) {
  switch (e.code) {
  case int(TrustErrc::kWrongPassphrase):
    return {400, "wrong-passphrase", e.message};
  case int(TrustErrc::kWeakPassphrase):
    return {400, "weak-passphrase", e.message};
  case int(TrustErrc::kCorrupt):
  case int(TrustErrc::kKeyMismatch):
  case int(TrustErrc::kBadSignature):
  case int(TrustErrc::kTooLarge):
    return {400, "corrupt", e.message};
  case int(TrustErrc::kExpired):
    return {400, "expired", e.message};
  case int(TrustErrc::kOtherFederation):
  case int(ControlErrc::kOtherFederation):
    return {409, "other-federation", e.message};
  case int(TrustErrc::kInvalidArgument):
    return {400, "invalid", e.message};
  case int(ControlErrc::kUnreachable):
    return {502, "unreachable", e.message};
  case int(ControlErrc::kIncompatible):
    return {409, "incompatible", e.message};
  case int(TrustErrc::kStaleCa):
    return {409, "stale-bundle",
            "this federation file is out of date: the federation's keys changed after it was "
            "made (a member was removed or left); ask a member for a new file (" +
                e.message + ")"};
  case int(ControlErrc::kRefused):
  case int(TrustErrc::kRevoked):
  case int(TrustErrc::kSelfSigned):
  case int(TrustErrc::kNotMember):
  case int(TrustErrc::kPinMismatch):
    return {409, "refused", e.message};
  case int(ServiceErrc::kAlreadyMember):
    return {409, "already-member", e.message};
  case int(ServiceErrc::kNotMember):
    return {409, "not-member", e.message};
  case int(ServiceErrc::kUnknownMember):
    return {404, "unknown-member", e.message};
  case int(ServiceErrc::kSelf):
    return {400, "self", e.message};
  case int(ServiceErrc::kBusy):
    return {409, "busy", e.message};
  case int(ServiceErrc::kTimeout):
    return {504, "unreachable", e.message};
  default:
    if (e.code >= 400 && e.code < 600) return {e.code, "invalid", e.message};
    return {500, "internal", e.message};
  }
}

FederationService::FederationService(asio::io_context& io, Timers& timers, store::Database& db,
                                     pbx::Directory& directory, pbx::PresenceHub& presence,
                                     pbx::CallLog& callLog, FederationConfig config)
    : io_(io), timers_(timers), db_(db), directory_(directory), presence_(presence),
      callLog_(callLog), config_(std::move(config)) {}

FederationService::~FederationService() {
  stop();
}

std::vector<store::Migration> FederationService::migrations() {
  std::vector<store::Migration> out = TrustStore::migrations();
  for (auto& m : MemberStore::migrations()) out.push_back(m);
  for (auto& m : DirectoryPublisher::migrations()) out.push_back(m);
  for (auto& m : DirectoryReplica::migrations()) out.push_back(m);
  return out;
}

Result<SockAddr> FederationService::start() {
  auto ms = MemberStore::open(db_, timers_);
  if (!ms) return ms.error();
  members_ = std::move(ms.value());
  auto pub = DirectoryPublisher::open(db_, config_.nodeId);
  if (!pub) return pub.error();
  publisher_ = std::move(pub.value());
  auto rep = DirectoryReplica::open(db_);
  if (!rep) return rep.error();
  replica_ = std::move(rep.value());

  links_ = std::make_unique<LinkManager>(io_, timers_, *this, config_.links);
  links_->setVerifier(
      [this](const TrustStore& trust, X509* cert, STACK_OF(X509) * chain, bool incoming) {
        return verifyLinkPeer(trust, cert, chain, incoming);
      });
  auto addr = SockAddr::parse(config_.listen);
  if (!addr) return Error{1, "federation.listen: not an address: " + config_.listen};
  auto bound = links_->listen(*addr);
  if (!bound)
    return Error{1, "federation listener " + config_.listen + ": " + bound.error().message};
  config_.listen = bound->toString(); // port 0 (tests): advertise the port actually bound

  auto loaded = TrustStore::load(db_, config_.dataDir);
  if (!loaded) return Error{1, "federation trust: " + loaded.error().message};
  if (loaded->has_value()) {
    trust_ = std::make_unique<TrustStore>(std::move(**loaded));
    renewIfDue(); // self-managing certificates (below)
    if (auto r = links_->setCredentials(trust_.get(), selfHello()); !r)
      return Error{1, "federation credentials: " + r.error().message};
    (void)members_->upsert(selfRecord());
    // Until a link confirms otherwise, other nodes' users are "unknown" (never stale busy).
    for (const auto& owner : replica_->owners()) presence_.markUnknown(owner);
    applyPeers();
    logger("federation")
        ->info("member of federation '{}' ({} members known)", trust_->ca().name(),
               members_->all().size());
  }
  (void)publisher_->update(directory_);
  directory_.onChange([this] { publishChange(); });
  scheduleRenewal();
  followLocalPresence();
  return *bound;
}

// Local presence goes to the other members only while this node is in a federation. Without one
// nobody would receive it, and a listener for every user makes the hub build each change for it
// (all dialogs of the user, per call event).
void FederationService::followLocalPresence() {
  bool want = trust_ != nullptr && !stopped_;
  if (want && !presenceListener_) {
    presenceListener_ =
        presence_.subscribeAll([this](const pbx::UserPresence& p) { onLocalPresence(p); });
  } else if (!want && presenceListener_) {
    presence_.unsubscribe(presenceListener_);
    presenceListener_ = 0;
  }
}

// Self-managing certificates: the node certificate is re-minted (with the federation CA every
// member holds) when fewer than 30 days of its validity remain; checked at start and twice a day.
bool FederationService::renewIfDue() {
  if (!trust_) return false;
  if (trust_->nodeCredentials() && !renewalDue(trust_->nodeCredentials()->cert.get(), sysNow()))
    return false;
  // The same key as before when there is one: peers pinned it.
  const auto& current = trust_->nodeCredentials();
  auto creds = current ? reissueNodeCertificate(trust_->ca(), current->key.get(), config_.nodeId,
                                                config_.nodeName, config_.advertise, sysNow())
                       : mintNodeCertificate(trust_->ca(), config_.nodeId, config_.nodeName,
                                             config_.advertise, sysNow());
  if (!creds) {
    logger("federation")->error("node certificate renewal failed: {}", creds.error().message);
    return false;
  }
  if (auto r = trust_->setNodeCredentials(std::move(*creds)); !r) return false;
  (void)saveTrust();
  logger("federation")->info("node certificate renewed");
  return true;
}

void FederationService::scheduleRenewal() {
  renewTimer_ = std::make_shared<asio::steady_timer>(io_, std::chrono::hours(12));
  renewTimer_->async_wait([this, t = renewTimer_](const std::error_code& ec) {
    if (ec || stopped_) return;
    if (renewIfDue()) {
      (void)links_->setCredentials(trust_.get(), selfHello());
      if (onTrustChanged) onTrustChanged(trust_.get());
    }
    scheduleRenewal();
  });
}

void FederationService::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (renewTimer_) renewTimer_->cancel();
  if (rotateTimer_) rotateTimer_->cancel();
  if (deferredTimer_) timers_.cancel(deferredTimer_);
  deferredTimer_ = 0;
  if (presenceListener_) presence_.unsubscribe(presenceListener_);
  presenceListener_ = 0;
  if (links_) links_->stop();
}

// ---------------------------------------------------------------------------------------------
// Identity

MemberRecord FederationService::selfRecord() const {
  MemberRecord m;
  m.nodeId = config_.nodeId;
  m.name = config_.nodeName;
  for (const auto& a : config_.advertise) {
    bool v6 = a.find(':') != std::string::npos;
    m.controlAddresses.push_back((v6 ? "[" + a + "]" : a) + ":" + portOf(config_.listen));
  }
  m.sipAddress = config_.sipAddress;
  m.productVersion = config_.productVersion;
  m.protocolVersion = config_.protocol.toString();
  m.updatedMs = timers_.wallMs();
  if (trust_ && trust_->nodeCredentials())
    m.fingerprint = fingerprintOfKey(trust_->nodeCredentials()->key.get()).value_or("");
  return m;
}

Hello FederationService::selfHello() const {
  Hello h;
  h.federationId = trust_ ? trust_->ca().federationId() : std::string();
  h.nodeId = config_.nodeId;
  h.name = config_.nodeName;
  h.productVersion = config_.productVersion;
  h.protocol = config_.protocol;
  auto self = selfRecord();
  h.controlAddresses = self.controlAddresses;
  h.sipAddress = config_.sipAddress;
  h.sentMs = timers_.wallMs();
  return h;
}

std::string FederationService::nodeName(const std::string& nodeId) const {
  if (nodeId.empty() || nodeId == config_.nodeId) return config_.nodeName;
  if (members_)
    if (auto m = members_->get(nodeId)) return m->name;
  return nodeId;
}

// ---------------------------------------------------------------------------------------------
// Create / join / leave / remove

Result<void> FederationService::adopt(std::unique_ptr<TrustStore> trust) {
  if (auto r = trust->save(db_, config_.dataDir, sysNow()); !r) return r;
  bool same = trust.get() == trust_.get();
  trust_ = std::move(trust);
  if (!same)
    if (auto r = links_->setCredentials(trust_.get(), selfHello()); !r) return r;
  (void)members_->upsert(selfRecord());
  followLocalPresence();
  publishDirectory();
  if (onTrustChanged) onTrustChanged(trust_.get());
  return {};
}

Result<void> FederationService::create(const std::string& name) {
  if (trust_)
    return serviceError(ServiceErrc::kAlreadyMember,
                        "this node is already a member of federation '" + trust_->ca().name() +
                            "'; leave it first");
  if (joining_) return serviceError(ServiceErrc::kBusy, "a join is in progress");
  auto ca = FederationCa::create(name, sysNow());
  if (!ca) return ca.error();
  auto creds =
      mintNodeCertificate(*ca, config_.nodeId, config_.nodeName, config_.advertise, sysNow());
  if (!creds) return creds.error();
  auto trust = std::make_unique<TrustStore>(std::move(*ca));
  if (auto r = trust->setNodeCredentials(std::move(*creds)); !r) return r;
  (void)members_->clear();
  (void)replica_->clear();
  if (auto r = adopt(std::move(trust)); !r) return r;
  (void)members_->audit("created", config_.nodeId, "federation '" + name + "' created");
  logger("federation")->info("created federation '{}'", name);
  return {};
}

Result<std::string> FederationService::certificate(const std::string& passphrase) {
  if (!trust_) return serviceError(ServiceErrc::kNotMember, "this node is not in a federation");
  std::vector<Member> list;
  for (const auto& m : members_->all()) {
    if (m.controlAddresses.empty()) continue;
    Member b{m.nodeId, m.name, m.controlAddresses, m.fingerprint};
    if (b.addresses.size() > kMaxMemberAddresses) b.addresses.resize(kMaxMemberAddresses);
    list.push_back(std::move(b));
  }
  auto bundle = makeBundle(trust_->ca(), list, passphrase, sysNow());
  if (!bundle) return bundle.error();
  (void)members_->audit("certificate-created", config_.nodeId,
                        "federation certificate file made with " + std::to_string(list.size()) +
                            " member(s)");
  return bundle;
}

Result<OpenedBundle> FederationService::openUploaded(std::string_view bundle,
                                                     std::string_view passphrase) {
  return openBundle(bundle, passphrase);
}

struct JoinState {
  std::vector<Member> members; // as listed in the bundle
  std::function<void(Result<void>)> done;
  std::vector<std::string> addresses;
  size_t next = 0;
  std::unique_ptr<TrustStore> trust;
  std::optional<Error> lastError;
};

void FederationService::join(OpenedBundle bundle, std::function<void(Result<void>)> done) {
  if (trust_) {
    bool same = trust_->ca().federationId() == bundle.ca.federationId();
    return done(serviceError(ServiceErrc::kAlreadyMember,
                             same ? "this node is already a member of this federation"
                                  : "this node is a member of another federation ('" +
                                        trust_->ca().name() + "'); leave it first"));
  }
  if (joining_) return done(serviceError(ServiceErrc::kBusy, "a join is already in progress"));
  auto st = std::make_shared<JoinState>();
  for (const auto& m : bundle.members) {
    if (m.nodeId == config_.nodeId) continue;
    for (const auto& a : m.addresses) st->addresses.push_back(a);
  }
  if (st->addresses.empty())
    return done(
        controlError(ControlErrc::kUnreachable, "the federation file lists no member to contact"));
  auto creds =
      mintNodeCertificate(bundle.ca, config_.nodeId, config_.nodeName, config_.advertise, sysNow());
  if (!creds) return done(creds.error());
  st->trust = std::make_unique<TrustStore>(std::move(bundle.ca));
  if (auto r = st->trust->setNodeCredentials(std::move(*creds)); !r) return done(r.error());
  st->members = bundle.members;
  joinMembers_ = bundle.members;
  st->done = std::move(done);
  // Links use the candidate credentials while probing; nothing is persisted before a member
  // answered, so a failed join leaves the node unchanged.
  Hello hello = selfHello();
  hello.federationId = st->trust->ca().federationId();
  if (auto r = links_->setCredentials(st->trust.get(), hello); !r) return st->done(r.error());
  joining_ = true;
  tryJoin(st);
}

void FederationService::tryJoin(std::shared_ptr<JoinState> st) {
  if (st->next >= st->addresses.size()) {
    joining_ = false;
    joinMembers_.clear();
    (void)links_->setCredentials(nullptr, selfHello());
    Error e = st->lastError.value_or(
        controlError(ControlErrc::kUnreachable, "no member of the federation answered"));
    if (e.code == int(ControlErrc::kUnreachable))
      e.message = "no member listed in the federation file answered (" + e.message + ")";
    return st->done(e);
  }
  std::string address = st->addresses[st->next++];
  links_->probe(address, [this, st, address](Result<LinkInfo> r) {
    if (!r) {
      logger("federation")->info("join: {} did not accept us: {}", address, r.error().message);
      // An incompatible or refusing member is a better explanation than "unreachable".
      if (!st->lastError || r.error().code != int(ControlErrc::kUnreachable))
        st->lastError = r.error();
      return tryJoin(st);
    }
    joining_ = false;
    joinMembers_.clear();
    // Persist. The trust store moves into place at the same address the links already use,
    // so the link that answered stays up.
    (void)members_->clear();
    (void)replica_->clear();
    trust_ = nullptr;
    auto trust = std::move(st->trust);
    if (auto a = adopt(std::move(trust)); !a) return st->done(a.error());
    for (const auto& m : st->members) {
      if (m.nodeId == config_.nodeId) continue;
      MemberRecord rec;
      rec.nodeId = m.nodeId;
      rec.name = m.name;
      rec.controlAddresses = m.addresses;
      rec.fingerprint = m.fingerprint;
      (void)members_->upsert(rec);
    }
    onLinkUp(*r); // records the member from its hello and starts gossip/replication
    applyPeers();
    (void)members_->audit("joined", config_.nodeId,
                          "joined federation '" + trust_->ca().name() + "' through " + r->name);
    logger("federation")
        ->info("joined federation '{}' through {} ({})", trust_->ca().name(), r->name, address);
    st->done(Result<void>());
  });
}

void FederationService::forgetFederation() {
  (void)links_->setCredentials(nullptr, selfHello());
  links_->setPeers({});
  for (const auto& owner : replica_->owners()) presence_.markUnknown(owner);
  (void)TrustStore::erase(db_);
  (void)members_->clear();
  (void)replica_->clear();
  trust_.reset();
  deferred_.clear(); // federation state of the federation just left
  deferredPending.set(0);
  unpublishedUsers_.clear();
  unpublishedGroups_.clear();
  followLocalPresence();
  if (onTrustChanged) onTrustChanged(nullptr);
  if (onMembersRemoved) onMembersRemoved();
}

Result<void> FederationService::leave() {
  if (!trust_) return serviceError(ServiceErrc::kNotMember, "this node is not in a federation");
  std::string name = trust_->ca().name();
  auto entry = trust_->revoke(config_.nodeId, "", "left the federation", config_.nodeId, sysNow());
  if (entry) {
    links_->broadcast({{"t", "leave"}, {"nodeId", config_.nodeId}});
    gossipRevocations();
  }
  // Give the queued frames a moment to leave before the links close; the old trust store stays
  // alive until then because the links still point at it.
  std::shared_ptr<TrustStore> old(std::move(trust_));
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(300));
  timer->async_wait([this, timer, old](const std::error_code&) {
    if (trust_ || joining_) return; // created or joining anew meanwhile: links are configured
    (void)links_->setCredentials(nullptr, selfHello());
    links_->setPeers({});
  });
  for (const auto& owner : replica_->owners()) presence_.markUnknown(owner);
  (void)TrustStore::erase(db_);
  (void)members_->clear();
  (void)replica_->clear();
  if (onTrustChanged) onTrustChanged(nullptr);
  if (onMembersRemoved) onMembersRemoved();
  (void)members_->audit("left", config_.nodeId, "left federation '" + name + "'");
  logger("federation")->info("left federation '{}'", name);
  return {};
}

Result<void> FederationService::removeMember(const std::string& nodeId) {
  if (!trust_) return serviceError(ServiceErrc::kNotMember, "this node is not in a federation");
  if (nodeId == config_.nodeId)
    return serviceError(ServiceErrc::kSelf, "nodeId: this is this node; use leave instead");
  auto m = members_->get(nodeId);
  if (!m) return serviceError(ServiceErrc::kUnknownMember, "nodeId: no such member: " + nodeId);
  auto entry =
      trust_->revoke(nodeId, "", "removed by " + config_.nodeName, config_.nodeId, sysNow());
  if (!entry) return entry.error();
  if (auto r = trust_->save(db_, config_.dataDir, sysNow()); !r) return r;
  (void)members_->audit("removed", nodeId, "removed member '" + m->name + "'");
  logger("federation")->info("removed member '{}' ({})", m->name, nodeId);
  gossipRevocations();
  dropRevokedMembers();
  // The removed node holds the CA key (every member does): a new one, so that nothing it holds
  // admits anyone. The revocation above travels again inside the rekey, signed anew.
  rotateKeys("member '" + m->name + "' removed");
  return {};
}

void FederationService::dropRevokedMembers() {
  bool changed = false;
  for (const auto& m : std::vector<MemberRecord>(members_->all())) {
    if (m.nodeId == config_.nodeId) continue;
    if (!trust_->revocations().isRevoked(m.nodeId, "")) continue;
    (void)members_->remove(m.nodeId);
    (void)replica_->removeOwner(m.nodeId);
    presence_.markUnknown(m.nodeId);
    changed = true;
  }
  links_->closeRevoked();
  if (changed) {
    applyPeers();
    if (onMembersRemoved) onMembersRemoved();
  }
}

void FederationService::credentialsChanged() {
  if (auto r = links_->setCredentials(trust_.get(), selfHello()); !r)
    logger("federation")->error("federation credentials: {}", r.error().message);
  if (onTrustChanged) onTrustChanged(trust_.get());
}

void FederationService::rotateKeys(const std::string& why) {
  if (!trust_) return;
  if (auto r = trust_->rotate(sysNow()); !r) {
    logger("federation")->error("new federation keys failed ({}): {}", why, r.error().message);
    return;
  }
  rekeys.inc();
  if (auto r = saveTrust(); !r && r.error().code != 503)
    logger("federation")->error("saving the new federation keys: {}", r.error().message);
  credentialsChanged();
  size_t sent = links_->broadcast(rekeyMessage(*trust_));
  (void)members_->audit("keys-rotated", config_.nodeId,
                        "new federation keys (generation " + std::to_string(trust_->generation()) +
                            ") because " + why);
  logger("federation")
      ->info("new federation keys (generation {}) because {}; sent to {} member(s)",
             trust_->generation(), why, sent);
}

void FederationService::handleRekey(const std::string& from, const nlohmann::json& msg) {
  auto rk = rekeyFromJson(msg, trust_->ca().federationId());
  if (!rk) {
    badMessages.inc();
    logger("federation")->warn("bad 'rekey' from {}: {}", nodeName(from), rk.error().message);
    return;
  }
  if (!trust_->supersededBy(rk->ca, rk->generation)) {
    // The sender is behind us (it was offline, or lost a tie): it gets ours.
    if (rk->ca.fingerprint() != trust_->ca().fingerprint())
      links_->send(from, rekeyMessage(*trust_));
    return;
  }
  auto list = RevocationList::parse(rk->revocations, rk->ca.cert(), rk->ca.federationId());
  if (!list) {
    badMessages.inc();
    logger("federation")
        ->warn("bad 'rekey' from {}: revocations: {}", nodeName(from), list.error().message);
    return;
  }
  int64_t generation = rk->generation;
  if (auto r = trust_->adoptCa(std::move(rk->ca), generation, sysNow()); !r) {
    logger("federation")->error("adopting the new federation keys: {}", r.error().message);
    return;
  }
  rekeys.inc();
  (void)trust_->mergeRevocations(*list);
  if (auto r = saveTrust(); !r && r.error().code != 503)
    logger("federation")->error("saving the new federation keys: {}", r.error().message);
  (void)members_->audit("keys-rotated", from,
                        "adopted new federation keys (generation " + std::to_string(generation) +
                            ") from " + nodeName(from));
  logger("federation")
      ->info("adopted new federation keys (generation {}) from {}", generation, nodeName(from));
  if (trust_->revocations().isRevoked(config_.nodeId, "")) {
    forgetFederation();
    return;
  }
  credentialsChanged();
  dropRevokedMembers();
  links_->broadcast(rekeyMessage(*trust_)); // on to the others (the sender ignores it)
  gossipRevocations();
}

Result<PeerIdentity> FederationService::verifyLinkPeer(const TrustStore& trust, X509* cert,
                                                       STACK_OF(X509) * chain, bool) const {
  PinLookup pins;
  if (trust_ && &trust == trust_.get()) {
    pins = [this](const std::string& id) { return members_->pinOf(id); };
  } else { // joining: the members the bundle lists
    pins = [this](const std::string& id) -> std::optional<std::string> {
      for (const auto& m : joinMembers_)
        if (m.nodeId == id) return m.fingerprint;
      return std::nullopt;
    };
  }
  // Control links admit nodes that are not members yet when the current CA signed them: that is
  // joining with a federation file (docs/federation-protocol.md "Trust model").
  return verifyMember(cert, chain, trust, pins, true, sysNow());
}

bool FederationService::isMember(const std::string& nodeId) const {
  return trust_ && members_ && nodeId != config_.nodeId && members_->get(nodeId).has_value() &&
         !trust_->revocations().isRevoked(nodeId, "");
}

// ---------------------------------------------------------------------------------------------
// Links and gossip

void FederationService::applyPeers() {
  std::vector<PeerTarget> peers;
  for (const auto& m : members_->all()) {
    if (m.nodeId == config_.nodeId || m.controlAddresses.empty()) continue;
    if (trust_ && trust_->revocations().isRevoked(m.nodeId, "")) continue;
    peers.push_back({m.nodeId, m.controlAddresses});
  }
  links_->setPeers(std::move(peers));
}

void FederationService::gossipMembers(const std::string& to) {
  auto msg = membersMessage(members_->all());
  if (to.empty())
    links_->broadcast(msg);
  else
    links_->send(to, msg);
}

void FederationService::gossipRevocations(const std::string& to) {
  if (!trust_) return;
  nlohmann::json msg = {{"t", "revocations"},
                        {"list", nlohmann::json::parse(trust_->revocations().toJson())}};
  if (to.empty())
    links_->broadcast(msg);
  else
    links_->send(to, msg);
}

void FederationService::onLinkUp(const LinkInfo& link) {
  if (!trust_) return;
  MemberRecord rec;
  rec.nodeId = link.nodeId;
  rec.name = link.name;
  rec.controlAddresses = link.controlAddresses;
  rec.sipAddress = link.sipAddress;
  rec.productVersion = link.productVersion;
  rec.protocolVersion = link.protocolVersion;
  rec.updatedMs = timers_.wallMs();
  rec.fingerprint = link.fingerprint; // verified: equal to the pin, or the first one seen
  bool known = members_->get(link.nodeId).has_value();
  (void)writeOrDefer("member:" + link.nodeId, [this, rec]() -> Result<void> {
    if (!trust_) return {};
    auto r = members_->upsert(rec);
    if (!r) return r.error();
    return {};
  });
  if (!known) {
    (void)members_->audit("member-joined", link.nodeId, "member '" + link.name + "' linked up");
    applyPeers();
    gossipMembers();
  } else {
    gossipMembers(link.nodeId);
  }
  // A peer that was offline while the CA changed gets the new one first, so that it can check
  // the revocations signed with it.
  if (trust_->generation() > 0) links_->send(link.nodeId, rekeyMessage(*trust_));
  gossipRevocations(link.nodeId);
  links_->send(link.nodeId,
               {{"t", "dir-want"}, {"owner", link.nodeId}, {"seq", replica_->seqOf(link.nodeId)}});
  sendPresenceSync(link.nodeId);
  resendOutcomes(link.nodeId);
  // Calls across a cut: BYEs sent while the link was down may be lost; the peer ends the calls
  // it holds connected with us that we no longer hold, and we do the same with its list.
  if (calls_)
    links_->send(link.nodeId, callsHeldMessage(config_.nodeId, calls_->linkUp(link.nodeId)));
}

void FederationService::onLinkDown(const LinkInfo& link) {
  presence_.markUnknown(link.nodeId);
  if (calls_) calls_->linkDown(link.nodeId);
  if (onNodeDown) {
    std::string sipAddr = link.sipAddress;
    if (sipAddr.empty() && members_)
      if (auto m = members_->get(link.nodeId)) sipAddr = m->sipAddress;
    onNodeDown(link.nodeId, SockAddr::parse(sipAddr));
  }
  if (link.state == LinkState::Revoked && trust_) dropRevokedMembers();
}

void FederationService::onMessage(const std::string& from, const nlohmann::json& msg) {
  if (!trust_) return;
  const std::string type = msg.value("t", "");
  auto bad = [&](const std::string& why) {
    badMessages.inc();
    logger("federation")->warn("bad '{}' from {}: {}", type, nodeName(from), why);
  };
  try {
    if (type == "members") {
      auto list = membersFromMessage(msg);
      if (!list) return bad(list.error().message);
      auto merge = [this, from, members = std::move(*list)]() -> Result<void> {
        if (!trust_) return {};
        auto changed = members_->merge(members, trust_->revocations(), config_.nodeId);
        if (!changed) return changed.error();
        if (!changed->empty()) {
          for (const auto& id : *changed)
            if (auto m = members_->get(id))
              (void)members_->audit("member-known", id,
                                    "learnt member '" + m->name + "' from " + nodeName(from));
          applyPeers();
          gossipMembers();
        }
        return {};
      };
      if (auto r = writeOrDefer("members:" + from, std::move(merge)); !r && r.error().code != 503)
        return bad(r.error().message);
    } else if (type == "revocations") {
      if (!msg.contains("list")) return bad("list missing");
      auto n = trust_->mergeRevocations(msg["list"].dump());
      if (!n && isTrustError(n.error(), TrustErrc::kBadSignature)) {
        // Signed with another CA of this federation: the sender has not adopted the newest
        // keys yet (they reach it with "rekey"; it sends its list again then).
        logger("federation")->debug("revocations from {} signed with other keys", nodeName(from));
        return;
      }
      if (!n) return bad(n.error().message);
      if (*n > 0) {
        (void)saveTrust();
        if (trust_->revocations().isRevoked(config_.nodeId, "")) {
          logger("federation")->warn("this node was removed from the federation by a member");
          (void)members_->audit("removed-by-peer", config_.nodeId,
                                "this node was removed from the federation");
          forgetFederation();
          return;
        }
        for (const auto& m : members_->all())
          if (m.nodeId != config_.nodeId && trust_->revocations().isRevoked(m.nodeId, ""))
            (void)members_->audit("member-removed", m.nodeId,
                                  "member '" + m.name + "' left or was removed");
        dropRevokedMembers();
        gossipRevocations();
      }
    } else if (type == "rekey") {
      handleRekey(from, msg);
    } else if (type == "leave") {
      // The revocation entry that makes it final follows in "revocations". The node that left
      // holds the CA key: the remaining member with the smallest node id among those linked
      // makes new keys once the revocation is in (two doing it at once converge by the
      // generation tie-break).
      std::string leaver = from;
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(500));
      if (rotateTimer_) rotateTimer_->cancel();
      rotateTimer_ = timer;
      timer->async_wait([this, timer, leaver](const std::error_code& ec) {
        if (ec || !trust_ || !trust_->revocations().isRevoked(leaver, "")) return;
        for (const auto& l : links_->links())
          if (l.state == LinkState::Up && l.nodeId != leaver && l.nodeId < config_.nodeId) return;
        rotateKeys("member " + leaver + " left");
      });
    } else if (type == "dir-want") {
      if (msg.value("owner", "") != config_.nodeId) return;
      int64_t seq = msg.value("seq", int64_t(-1));
      if (seq != publisher_->seq() || seq == 0) links_->send(from, toJson(publisher_->snapshot()));
    } else if (type == "dir-snapshot") {
      auto s = snapshotFromJson(msg);
      if (!s) return bad(s.error().message);
      if (s->owner != from) return bad("owner is not the sender");
      // A busy database: kept and applied at the retry (a later delta of the same owner
      // replaces it, finds a gap and asks for a new snapshot).
      auto apply = [this, snap = std::move(*s)]() -> Result<void> {
        if (!trust_) return {};
        return replica_->applySnapshot(snap);
      };
      if (auto r = writeOrDefer("dir:" + from, std::move(apply)); !r && r.error().code != 503)
        return bad(r.error().message);
    } else if (type == "dir-delta") {
      auto d = deltaFromJson(msg);
      if (!d) return bad(d.error().message);
      if (d->owner != from) return bad("owner is not the sender");
      auto apply = [this, from, delta = std::move(*d)]() -> Result<void> {
        if (!trust_) return {};
        auto applied = replica_->applyDelta(delta);
        if (!applied) return applied.error();
        if (!*applied)
          links_->send(from, {{"t", "dir-want"}, {"owner", from}, {"seq", replica_->seqOf(from)}});
        return {};
      };
      if (auto r = writeOrDefer("dir:" + from, std::move(apply)); !r && r.error().code != 503)
        return bad(r.error().message);
    } else if (type == "presence") {
      auto p = presenceFromJson(msg);
      if (!p) return bad(p.error().message);
      if (p->owner != from) return bad("owner is not the sender");
      presence_.publish(pbx::UserKey{from, p->extension}, std::move(p->dialogs));
    } else if (type == "presence-sync") {
      auto p = presenceSyncFromJson(msg);
      if (!p) return bad(p.error().message);
      if (p->owner != from) return bad("owner is not the sender");
      presence_.resync(from, std::move(p->users));
    } else if (type == "group-login") {
      uint64_t id = msg.value("requestId", uint64_t(0));
      std::string group = msg.value("group", "");
      std::string ext = msg.value("extension", "");
      bool in = msg.value("loggedIn", true);
      // A busy database: the login is written at the retry and answered then (the member's
      // phone was answered at its node already; the answer confirms it there).
      auto login = [this, from, id, group, ext, in]() -> Result<void> {
        nlohmann::json answer = {{"t", "group-login-result"}, {"requestId", id}, {"ok", false}};
        auto g = directory_.groupByNumber(group);
        if (!g) {
          answer["error"] = "group: no group " + group + " on " + config_.nodeName;
        } else {
          auto r = directory_.setMemberLoggedIn(g->id, from, ext, in);
          if (!r && r.error().code == 503) return r.error();
          if (r) {
            answer["ok"] = true;
            logger("federation")
                ->info("{}@{} logged {} group {}", ext, nodeName(from), in ? "in to" : "out of",
                       group);
          } else {
            answer["error"] = r.error().message;
          }
        }
        links_->send(from, answer);
        return {};
      };
      (void)writeOrDefer("group-login:" + from + ":" + group + ":" + ext, std::move(login));
    } else if (type == "group-login-result") {
      uint64_t id = msg.value("requestId", uint64_t(0));
      auto it = pendingLogins_.find(id);
      if (it == pendingLogins_.end()) return;
      auto done = std::move(it->second);
      pendingLogins_.erase(it);
      if (msg.value("ok", false))
        done(Result<void>());
      else
        done(Error{409, msg.value("error", std::string("refused by the group's node"))});
    } else if (type == "call-outcome") {
      auto o = callOutcomeFromJson(msg);
      if (!o) return bad(o.error().message);
      std::string key = "outcome:" + o->correlationId + ":" + o->relatedCorrelationId;
      auto apply = [this, outcome = std::move(*o)]() -> Result<void> {
        auto r = callLog_.applyOutcome(outcome);
        if (!r) return r.error();
        return {};
      };
      if (auto r = writeOrDefer(key, std::move(apply)); !r && r.error().code != 503)
        return bad(r.error().message);
    } else if (type == "calls-held") {
      auto held = callsHeldFromJson(msg);
      if (!held) return bad(held.error().message);
      if (held->owner != from) return bad("owner is not the sender");
      if (!calls_) return;
      size_t ended = calls_->peerHolds(from, held->calls);
      logger("federation")
          ->info("calls-held from {}: {} calls listed, {} ended here", nodeName(from),
                 held->calls.size(), ended);
    }
    // Unknown types: ignored (a newer minor version may send more).
  } catch (const std::exception& e) {
    bad(e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Replication and presence

// Only while in a federation: the published snapshot is rebuilt and persisted whole on each change
// (O(users)), which made every user created through the API slower the more users the node had,
// also on nodes in no federation. adopt() catches up when the node creates or joins one.
void FederationService::publishDirectory() {
  if (!publisher_ || !trust_) return;
  auto d = publisher_->update(directory_);
  if (!d) {
    logger("federation")->warn("directory publish failed: {}", d.error().message);
    if (d.error().code == 503)
      (void)writeOrDefer("publish-all", [this]() -> Result<void> {
        if (!publisher_ || !trust_) return {};
        auto again = publisher_->update(directory_);
        if (!again) return again.error();
        if (*again) links_->broadcast(toJson(**again));
        return {};
      });
    return;
  }
  unpublishedUsers_.clear();
  unpublishedGroups_.clear();
  if (*d && trust_) links_->broadcast(toJson(**d));
}

// One directory change: only its records are compared and written (O(change), not O(users)).
// Names of a publish that met a busy database stay in unpublished*_ and go with the next change
// or the retry, in order: the peers get every change, as one delta per publish.
void FederationService::publishChange() {
  if (!publisher_ || !trust_) return;
  const auto& change = directory_.lastChange();
  unpublishedUsers_.insert(change.users.begin(), change.users.end());
  unpublishedGroups_.insert(change.groups.begin(), change.groups.end());
  auto publish = [this]() -> Result<void> {
    if (!publisher_ || !trust_) return {};
    auto d = publisher_->update(directory_, unpublishedUsers_, unpublishedGroups_);
    if (!d) return d.error();
    unpublishedUsers_.clear();
    unpublishedGroups_.clear();
    if (*d) links_->broadcast(toJson(**d));
    return {};
  };
  if (auto r = writeOrDefer("publish", publish); !r && r.error().code != 503)
    logger("federation")->warn("directory publish failed: {}", r.error().message);
}

// The trust store is saved whole: a save deferred by a busy database writes the newest state.
Result<void> FederationService::saveTrust() {
  return writeOrDefer("trust", [this]() -> Result<void> {
    if (!trust_) return {};
    return trust_->save(db_, config_.dataDir, sysNow());
  });
}

Result<void> FederationService::writeOrDefer(const std::string& key,
                                             std::function<Result<void>()> write) {
  if (deferred_.contains(key)) {
    // An earlier write of this key waits: this one replaces it (it carries the newer state) and
    // runs in order at the retry, not before it.
    deferred_[key] = std::move(write);
    return Error{503, "database busy; queued for a retry"};
  }
  auto r = write();
  if (r || r.error().code != 503) return r;
  if (deferred_.size() >= kMaxDeferredWrites) {
    deferredDropped.inc();
    logger("federation")
        ->warn("database busy; retry queue full, dropped write '{}' "
               "(the state comes again at the next link up)",
               key);
    return r;
  }
  deferredWrites.inc();
  logger("federation")->info("database busy; write '{}' queued for a retry", key);
  deferred_.emplace(key, std::move(write));
  deferredPending.set(double(deferred_.size()));
  if (!deferredTimer_)
    deferredTimer_ = timers_.after(kDeferredRetry, [this] {
      deferredTimer_ = 0;
      retryDeferred();
    });
  return r;
}

void FederationService::retryDeferred() {
  if (stopped_) return;
  // The first one still busy ends this round: the lock is still held, and each try may wait
  // the busy timeout on the loop.
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    auto r = it->second();
    if (!r && r.error().code == 503) break;
    if (!r)
      logger("federation")->warn("deferred write '{}' failed: {}", it->first, r.error().message);
    else
      logger("federation")->info("deferred write '{}' done", it->first);
    it = deferred_.erase(it);
  }
  deferredPending.set(double(deferred_.size()));
  if (!deferred_.empty() && !deferredTimer_)
    deferredTimer_ = timers_.after(kDeferredRetry, [this] {
      deferredTimer_ = 0;
      retryDeferred();
    });
}

void FederationService::sendPresenceSync(const std::string& to) {
  std::vector<pbx::UserPresence> local;
  for (auto& p : presence_.snapshot(""))
    if (auto u = directory_.userByExtension(p.key.extension); u && u->shared) {
      p.dialogs = boundedDialogs(p.dialogs);
      local.push_back(std::move(p));
    }
  links_->send(to, presenceSyncMessage(config_.nodeId, local));
}

void FederationService::onLocalPresence(const pbx::UserPresence& p) {
  if (!trust_ || !p.key.owner.empty()) return;
  auto u = directory_.userByExtension(p.key.extension);
  if (!u || !u->shared) return;
  links_->broadcast(presenceMessage(config_.nodeId, p.key.extension, boundedDialogs(p.dialogs)));
}

// What a peer needs for BLF is the line state and a few dialogs (pickup ids): a user with very
// many calls at once (a queue, a load test) sends at most kMaxPresenceDialogs, the dialogs that
// ended with this change first, then answered ones, then ringing ones. This bounds every
// presence message, so a busy user cannot flood the links.
std::vector<pbx::DialogInfo>
FederationService::boundedDialogs(const std::vector<pbx::DialogInfo>& dialogs) {
  if (dialogs.size() <= kMaxPresenceDialogs) return dialogs;
  auto rank = [](const pbx::DialogInfo& d) {
    return d.state == pbx::DialogState::Terminated  ? 0
           : d.state == pbx::DialogState::Confirmed ? 1
                                                    : 2;
  };
  std::vector<pbx::DialogInfo> out = dialogs;
  std::stable_sort(out.begin(), out.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  out.resize(kMaxPresenceDialogs);
  return out;
}

nlohmann::json FederationService::directoryJson() const {
  nlohmann::json users = nlohmann::json::array(), groups = nlohmann::json::array();
  if (replica_) {
    for (const auto& u : replica_->allUsers())
      users.push_back({{"nodeId", u.owner},
                       {"nodeName", nodeName(u.owner)},
                       {"extension", u.user.extension},
                       {"displayName", u.user.displayName},
                       {"externalNumber", u.user.externalNumber}});
    for (const auto& g : replica_->allGroups()) {
      nlohmann::json members = nlohmann::json::array();
      for (const auto& m : g.group.members)
        members.push_back(
            {{"nodeId", m.owner}, {"extension", m.extension}, {"loggedIn", m.loggedIn}});
      groups.push_back({{"nodeId", g.owner},
                        {"nodeName", nodeName(g.owner)},
                        {"number", g.group.number},
                        {"name", g.group.name},
                        {"members", members}});
    }
  }
  return {{"users", users}, {"groups", groups}};
}

nlohmann::json FederationService::status() const {
  auto self = selfRecord();
  nlohmann::json selfJ = {{"nodeId", self.nodeId},
                          {"name", self.name},
                          {"controlAddresses", self.controlAddresses},
                          {"sipAddress", self.sipAddress},
                          {"productVersion", self.productVersion},
                          {"protocolVersion", self.protocolVersion}};
  if (!trust_) return {{"member", false}, {"joining", joining_}, {"self", selfJ}};
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : members_->all()) {
    nlohmann::json j = {{"nodeId", m.nodeId},
                        {"name", m.name},
                        {"controlAddresses", m.controlAddresses},
                        {"sipAddress", m.sipAddress},
                        {"productVersion", m.productVersion},
                        {"protocolVersion", m.protocolVersion},
                        {"self", m.nodeId == config_.nodeId},
                        {"rttMs", nullptr},
                        {"clockOffsetMs", nullptr},
                        {"sinceMs", nullptr},
                        {"lastError", ""}};
    if (m.nodeId == config_.nodeId) {
      j["state"] = "self";
    } else if (auto l = links_->link(m.nodeId)) {
      j["state"] = std::string(linkStateName(l->state));
      if (l->rttMs) j["rttMs"] = *l->rttMs;
      if (l->clockOffsetMs) j["clockOffsetMs"] = *l->clockOffsetMs;
      j["sinceMs"] = l->sinceMs;
      j["lastError"] = l->lastError;
      if (!l->productVersion.empty()) j["productVersion"] = l->productVersion;
      if (!l->protocolVersion.empty()) j["protocolVersion"] = l->protocolVersion;
    } else {
      j["state"] = "connecting";
    }
    members.push_back(std::move(j));
  }
  // Links to nodes that are not (or no longer) members, e.g. refused as incompatible.
  for (const auto& l : links_->links()) {
    if (members_->get(l.nodeId)) continue;
    members.push_back({{"nodeId", l.nodeId},
                       {"name", l.name.empty() ? l.nodeId : l.name},
                       {"controlAddresses", l.controlAddresses},
                       {"sipAddress", l.sipAddress},
                       {"productVersion", l.productVersion},
                       {"protocolVersion", l.protocolVersion},
                       {"self", false},
                       {"state", std::string(linkStateName(l.state))},
                       {"rttMs", l.rttMs ? nlohmann::json(*l.rttMs) : nlohmann::json(nullptr)},
                       {"clockOffsetMs", l.clockOffsetMs ? nlohmann::json(*l.clockOffsetMs)
                                                         : nlohmann::json(nullptr)},
                       {"sinceMs", l.sinceMs},
                       {"lastError", l.lastError}});
  }
  nlohmann::json conflicts = nlohmann::json::array();
  for (const auto& c : replica_->conflicts(directory_, config_.nodeId)) {
    nlohmann::json uses = nlohmann::json::array();
    for (const auto& u : c.uses)
      uses.push_back({{"nodeId", u.owner},
                      {"nodeName", nodeName(u.owner)},
                      {"kind", u.kind},
                      {"name", u.name}});
    conflicts.push_back({{"number", c.number}, {"uses", uses}});
  }
  nlohmann::json byNode = nlohmann::json::object();
  uint64_t total = 0;
  for (const auto& [id, n] : fallbacks_) {
    byNode[id] = n;
    total += n;
  }
  nlohmann::json revoked = nlohmann::json::array();
  for (const auto& e : trust_->revocations().entries())
    revoked.push_back({{"nodeId", e.nodeId},
                       {"fingerprint", e.fingerprint},
                       {"reason", e.reason},
                       {"revokedAt", e.revokedAt},
                       {"byNode", e.byNode}});
  return {{"member", true},
          {"name", trust_->ca().name()},
          {"federationId", trust_->ca().federationId()},
          {"self", selfJ},
          {"members", members},
          {"conflicts", conflicts},
          {"fallback", {{"total", total}, {"byNode", byNode}}},
          {"revoked", revoked},
          {"keys",
           {{"generation", trust_->generation()}, {"caFingerprint", trust_->ca().fingerprint()}}}};
}

// ---------------------------------------------------------------------------------------------
// Group login across sites

void FederationService::remoteGroupLogin(const std::string& owner, const std::string& group,
                                         const std::string& extension, bool loggedIn,
                                         std::function<void(Result<void>)> done) {
  if (!trust_) return done(serviceError(ServiceErrc::kNotMember, "not in a federation"));
  if (!links_->isUp(owner))
    return done(controlError(ControlErrc::kUnreachable,
                             "node '" + nodeName(owner) + "' is not reachable now"));
  uint64_t id = ++nextRequest_;
  pendingLogins_[id] = std::move(done);
  links_->send(owner, {{"t", "group-login"},
                       {"requestId", id},
                       {"group", group},
                       {"extension", extension},
                       {"loggedIn", loggedIn}});
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(5));
  timer->async_wait([this, timer, id](const std::error_code&) {
    auto it = pendingLogins_.find(id);
    if (it == pendingLogins_.end()) return;
    auto d = std::move(it->second);
    pendingLogins_.erase(it);
    d(serviceError(ServiceErrc::kTimeout, "the group's node did not answer in time"));
  });
}

// ---------------------------------------------------------------------------------------------
// SIP side and pbx::RemoteNodes

bool FederationService::isMemberAddress(const IpAddress& ip) const {
  if (!members_ || !trust_) return false;
  auto hostIs = [&](const std::string& hostPort) {
    auto a = SockAddr::parse(hostPort);
    return a && a->ip == ip;
  };
  for (const auto& m : members_->all()) {
    if (m.nodeId == config_.nodeId) continue;
    if (hostIs(m.sipAddress)) return true;
    for (const auto& c : m.controlAddresses)
      if (hostIs(c)) return true;
  }
  return false;
}

Result<PeerIdentity> FederationService::verifySipPeer(X509* cert) const {
  if (!trust_) return controlError(ControlErrc::kNotInFederation, "not in a federation");
  return verifyMember(
      cert, nullptr, *trust_, [this](const std::string& id) { return members_->pinOf(id); }, false,
      sysNow());
}

std::optional<ReplicaUser> FederationService::remoteUser(const std::string& owner,
                                                         const std::string& ext) const {
  if (!replica_) return std::nullopt;
  for (const auto& u : replica_->usersByExtension(ext))
    if (u.owner == owner) return u.user;
  return std::nullopt;
}

std::vector<pbx::Party>
FederationService::remoteGroupMembers(const std::vector<pbx::GroupMember>& members) const {
  std::vector<pbx::Party> out;
  for (const auto& m : members) {
    if (!m.loggedIn || m.owner.empty() || m.owner == config_.nodeId) continue;
    pbx::Party p;
    p.owner = m.owner;
    p.extension = m.extension;
    if (auto u = remoteUser(m.owner, m.extension)) {
      p.displayName = u->displayName;
      p.externalNumber = u->externalNumber;
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<pbx::Party> FederationService::userByExtension(const std::string& extension) {
  if (!replica_) return std::nullopt;
  auto users = replica_->usersByExtension(extension);
  if (users.size() != 1) return std::nullopt;
  const auto& u = users.front();
  pbx::Party p;
  p.owner = u.owner;
  p.extension = u.user.extension;
  p.displayName = u.user.displayName;
  p.externalNumber = u.user.externalNumber;
  return p;
}

std::optional<std::string> FederationService::groupOwner(const std::string& number) {
  if (!replica_) return std::nullopt;
  auto groups = replica_->groupsByNumber(number);
  if (groups.size() != 1) return std::nullopt;
  return groups.front().owner;
}

std::vector<std::pair<std::string, std::string>>
FederationService::remoteGroupsOf(const std::string& extension) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!replica_) return out;
  for (const auto& g : replica_->groupsWithMember(config_.nodeId, extension))
    out.emplace_back(g.owner, g.group.number);
  return out;
}

bool FederationService::reachable(const std::string& owner) {
  return trust_ && links_->isUp(owner);
}

bool FederationService::prepareInvite(const std::string& owner, const std::string& requestUser,
                                      const pbx::RemoteCall& call,
                                      sip::DialogManager::InviteParams& params) {
  if (!trust_) return false;
  std::string sipAddress;
  if (auto l = links_->link(owner); l && !l->sipAddress.empty()) sipAddress = l->sipAddress;
  if (sipAddress.empty())
    if (auto m = members_->get(owner)) sipAddress = m->sipAddress;
  if (sipAddress.empty()) return false;
  auto addr = SockAddr::parse(sipAddress);
  if (!addr) return false;
  auto self = selfRecord();
  std::string ourHost = hostOf(config_.sipAddress);
  bool external = call.caller.extension.empty() && !call.callerNumber.empty();
  std::string callerUser = external ? call.callerNumber : call.caller.extension;
  std::string callerName = call.caller.displayName;
  std::string identity = "sip:" + callerUser + "@" + ourHost;
  std::string nameAddr =
      (callerName.empty() ? std::string() : sip::quotedDisplayName(callerName) + " ") + "<" +
      identity + ">";
  params.requestUri = "sip:" + requestUser + "@" + sipAddress + ";transport=tls";
  params.target = sip::Peer{sip::TransportType::Tls, *addr, {}, 0};
  params.from = nameAddr;
  params.contact = "sip:verbund@" + config_.sipAddress + ";transport=tls";
  params.to = "<sip:" + requestUser + "@" + sipAddress + ">";
  params.headers.emplace_back("P-Asserted-Identity", nameAddr);
  params.sessionTimer = config_.sessionTimer;
  params.headers.emplace_back(
      "X-Verbund-Call", call.correlationId + ";mode=" + std::string(pbx::callModeName(call.mode)) +
                            ";origin=" + (external ? "external" : "user"));
  return true;
}

bool FederationService::setGroupLogin(const std::string& owner, const std::string& groupNumber,
                                      const std::string& extension, bool loggedIn) {
  if (!reachable(owner)) return false;
  remoteGroupLogin(owner, groupNumber, extension, loggedIn, [=, this](Result<void> r) {
    if (!r)
      logger("federation")
          ->info("group login {} {} on {} failed: {}", extension, groupNumber, nodeName(owner),
                 r.error().message);
  });
  return true;
}

void FederationService::countFallback(const std::string& owner) {
  ++fallbacks_[owner];
  fallbackCalls.inc();
}

void FederationService::shareOutcome(const std::vector<std::string>& nodes,
                                     const pbx::CallOutcome& outcome) {
  if (!trust_) return;
  auto msg = toJson(outcome);
  int64_t now = timers_.wallMs();
  for (const auto& n : nodes) {
    if (n == config_.nodeId) continue;
    links_->send(n, msg);
    // Kept for the next link up: a link cut silently loses what was written into it (and a link
    // that is down sends nothing), and the other node's record of the call needs it. Applying
    // an outcome twice changes nothing.
    auto& kept = recentOutcomes_[n];
    std::erase_if(kept, [&](const KeptOutcome& k) {
      return k.correlationId == outcome.correlationId || now - k.atMs > kRecentOutcomeTtl.count();
    });
    kept.push_back({now, outcome.correlationId, msg});
    while (kept.size() > kRecentOutcomes) kept.pop_front();
  }
}

void FederationService::resendOutcomes(const std::string& nodeId) {
  auto it = recentOutcomes_.find(nodeId);
  if (it == recentOutcomes_.end()) return;
  int64_t now = timers_.wallMs();
  std::erase_if(it->second,
                [&](const KeptOutcome& k) { return now - k.atMs > kRecentOutcomeTtl.count(); });
  for (const auto& k : it->second) links_->send(nodeId, k.message);
  if (it->second.empty()) recentOutcomes_.erase(it);
}

nlohmann::json FederationService::numberWarnings(const std::string& number) const {
  nlohmann::json out = nlohmann::json::array();
  if (!trust_ || !replica_ || number.empty()) return out;
  auto warn = [&](const std::string& owner, const char* kind, const std::string& name) {
    std::string site = nodeName(owner);
    out.push_back(
        {{"code", "extension-conflict"},
         {"number", number},
         {"nodeId", owner},
         {"nodeName", site},
         {"kind", kind},
         {"name", name},
         {"message", "number " + number + " is also used at site " + site + " (" + kind + " " +
                         name + "); dialled at a site, it reaches that site's own"}});
  };
  for (const auto& u : replica_->usersByExtension(number))
    if (u.owner != config_.nodeId) warn(u.owner, "user", u.user.displayName);
  for (const auto& g : replica_->groupsByNumber(number))
    if (g.owner != config_.nodeId) warn(g.owner, "group", g.group.name);
  return out;
}

} // namespace verbund::federation

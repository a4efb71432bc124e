#pragma once
// The federation as one service of the node (design §4): creating and joining, membership by
// gossip, revocation, directory replication, presence exchange, remote group login, call
// outcomes, status and audit — on top of the trust store, the links, the member store and the
// directory replica. Runs on the node's event loop; no locks. It is also the call engine's view
// of the other nodes (pbx::RemoteNodes).
//
//   FederationService fed(io, db, directory, presence, callLog, config);
//   fed.start();                                   // loads a stored federation, links up
//   fed.create("Muster GmbH");                     // or join(...)
#include "base/result.h"
#include "federation/control/link_manager.h"
#include "federation/membership/member_store.h"
#include "federation/replication/directory_replica.h"
#include "federation/trust/bundle.h"
#include "federation/trust/trust_store.h"
#include "pbx/calllog/call_log.h"
#include "pbx/calls/call_manager.h"
#include "pbx/directory/directory.h"
#include "pbx/presence/presence_hub.h"
#include "store/database.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace verbund::federation {

struct FederationConfig {
  std::string nodeId;
  std::string nodeName;
  std::string productVersion;
  ProtocolVersion protocol = kProtocolVersion;
  std::string listen = "0.0.0.0:3090"; // control plane
  std::vector<std::string> advertise;  // IP literals peers use to reach us
  std::string sipAddress;              // "ip:port" of our SIP-over-TLS listener
  std::filesystem::path dataDir;
  LinkOptions links;
  // RFC 4028 session timers of calls between nodes (both directions; the UAS side is chosen by
  // the node's sip::DialogConfig::sessionTimerFor): a call whose other node cannot be reached
  // ends within a bound (docs/federation-protocol.md "Calls across a cut").
  sip::SessionTimerConfig sessionTimer{90, 90};
};

// Error with a stable reason word for the API/UI (docs/federation-api.md).
struct FederationError {
  int status = 400;
  std::string reason;
  std::string message;
};
// Maps trust/control errors to (status, reason).
FederationError classify(const Error& e);
// Error code carrying a reason: message is "reason|human text" (see http side).
Error federationError(int status, std::string_view reason, std::string message);

class FederationService final : public LinkManager::Handler, public pbx::RemoteNodes {
public:
  // `timers` (the loop's) gives the wall clock of records, hellos and certificates.
  FederationService(asio::io_context& io, Timers& timers, store::Database& db,
                    pbx::Directory& directory, pbx::PresenceHub& presence, pbx::CallLog& callLog,
                    FederationConfig config);
  ~FederationService() override;

  static std::vector<store::Migration> migrations();

  // Loads a stored federation (if any), binds the control listener and starts linking.
  Result<SockAddr> start();
  void stop();

  bool member() const { return trust_ != nullptr; }
  const TrustStore* trust() const { return trust_.get(); }
  // Called whenever the trust store changes (create, join, leave, revocations): the node
  // reconfigures its SIP-over-TLS credentials.
  std::function<void(const TrustStore*)> onTrustChanged;
  // Called after members were removed (removal, leave, revocation from a peer, leaving the
  // federation): the node closes SIP-over-TLS connections of nodes that are no longer members.
  std::function<void()> onMembersRemoved;
  // The call engine: its cross-site calls are reconciled with each peer on link up
  // ("calls-held").
  void setCalls(pbx::CallManager* calls) { calls_ = calls; }
  const sip::SessionTimerConfig& sessionTimer() const { return config_.sessionTimer; }
  // Called when the control link to a member goes down (cut off, or the node died), with the
  // member's SIP-over-TLS address when known: the node aborts that member's SIP-over-TLS
  // connections and fails the forks to it.
  std::function<void(const std::string& nodeId, const std::optional<SockAddr>& sipAddress)>
      onNodeDown;
  // True when nodeId is a current member other than this node (SIP-over-TLS re-checks it on
  // every request it trusts).
  bool isMember(const std::string& nodeId) const;

  // ---- Admin (docs/federation-api.md); all on the loop ----
  nlohmann::json status() const;
  Result<void> create(const std::string& name);
  Result<std::string> certificate(const std::string& passphrase); // the bundle text
  // Opens the bundle (slow: PBKDF2) — call off the loop; the result goes to join().
  static Result<OpenedBundle> openUploaded(std::string_view bundle, std::string_view passphrase);
  // Links to the first reachable member of the bundle, then persists. `done` runs on the loop.
  void join(OpenedBundle bundle, std::function<void(Result<void>)> done);
  Result<void> leave();
  Result<void> removeMember(const std::string& nodeId);
  Result<std::vector<AuditEntry>> audit() const { return members_->auditLog(); }
  nlohmann::json directoryJson() const;
  // Other sites that use `number` (a user extension or group number) according to the replica:
  // [{"code":"extension-conflict","number","nodeId","nodeName","kind":"user"|"group","name",
  // "message"}], empty outside a federation. The admin API adds them to the answer of a create
  // or rename (docs/federation-api.md "Number conflicts").
  nlohmann::json numberWarnings(const std::string& number) const;
  // Logs a local user in/out of another node's group; `done` on the loop with the owner's answer.
  void remoteGroupLogin(const std::string& owner, const std::string& group,
                        const std::string& extension, bool loggedIn,
                        std::function<void(Result<void>)> done);

  // ---- SIP side ----
  // Verifies the certificate a SIP-over-TLS peer presented: only a current member with its
  // pinned key (verifyMember without joining); the member's node id.
  Result<PeerIdentity> verifySipPeer(X509* cert) const;
  // Whether `ip` is the host of another member's SIP or control address (connection slots
  // reserved for members, net::Admission).
  bool isMemberAddress(const IpAddress& ip) const;
  std::string nodeName(const std::string& nodeId) const;
  std::optional<ReplicaUser> remoteUser(const std::string& owner, const std::string& ext) const;
  const DirectoryReplica& replica() const { return *replica_; }
  std::vector<pbx::Party> remoteGroupMembers(const std::vector<pbx::GroupMember>& members) const;

  // ---- pbx::RemoteNodes ----
  std::optional<pbx::Party> userByExtension(const std::string& extension) override;
  std::optional<std::string> groupOwner(const std::string& number) override;
  std::vector<std::pair<std::string, std::string>>
  remoteGroupsOf(const std::string& extension) override;
  bool reachable(const std::string& owner) override;
  bool prepareInvite(const std::string& owner, const std::string& requestUser,
                     const pbx::RemoteCall& call,
                     sip::DialogManager::InviteParams& params) override;
  bool setGroupLogin(const std::string& owner, const std::string& groupNumber,
                     const std::string& extension, bool loggedIn) override;
  void countFallback(const std::string& owner) override;
  void shareOutcome(const std::vector<std::string>& nodes,
                    const pbx::CallOutcome& outcome) override;

  // ---- LinkManager::Handler ----
  void onLinkUp(const LinkInfo& link) override;
  void onLinkDown(const LinkInfo& link) override;
  void onMessage(const std::string& nodeId, const nlohmann::json& message) override;

private:
  MemberRecord selfRecord() const;
  Hello selfHello() const;
  Result<void> adopt(std::unique_ptr<TrustStore> trust); // save + links + members
  void applyPeers();                                     // member store → links.setPeers
  void gossipMembers(const std::string& to = {});
  void gossipRevocations(const std::string& to = {});
  void publishDirectory(); // local change → delta to all
  void sendPresenceSync(const std::string& to);
  void onLocalPresence(const pbx::UserPresence& p);
  void followLocalPresence(); // presence listener while in a federation (trust_ set)
  void handleRevocations(const nlohmann::json& list);
  // Membership policy of the control links (LinkManager::PeerVerifier).
  Result<PeerIdentity> verifyLinkPeer(const TrustStore& trust, X509* cert, STACK_OF(X509) * chain,
                                      bool incoming) const;
  // A new CA for the federation (after a removal or a leave): persisted, links and SIP-over-TLS
  // re-credentialed, handed to every member over the links.
  void rotateKeys(const std::string& why);
  void handleRekey(const std::string& from, const nlohmann::json& msg);
  void credentialsChanged(); // links + SIP-over-TLS take the trust store's current certificate
  void dropRevokedMembers();
  void forgetFederation();
  void tryJoin(std::shared_ptr<struct JoinState> st);
  bool renewIfDue();
  static std::vector<pbx::DialogInfo> boundedDialogs(const std::vector<pbx::DialogInfo>& dialogs);
  void scheduleRenewal();

  // The wall clock as the trust module wants it.
  SysTime sysNow() const { return sysTimeFromMs(timers_.wallMs()); }

  asio::io_context& io_;
  Timers& timers_;
  store::Database& db_;
  pbx::Directory& directory_;
  pbx::PresenceHub& presence_;
  pbx::CallLog& callLog_;
  FederationConfig config_;
  pbx::CallManager* calls_ = nullptr;

  // Heap-held so that its address (given to the links) survives create/join.
  std::unique_ptr<TrustStore> trust_;
  std::unique_ptr<MemberStore> members_;
  std::unique_ptr<DirectoryPublisher> publisher_;
  std::unique_ptr<DirectoryReplica> replica_;
  std::unique_ptr<LinkManager> links_;
  pbx::PresenceHub::ListenerId presenceListener_ = 0;
  std::shared_ptr<asio::steady_timer> renewTimer_;
  std::shared_ptr<asio::steady_timer> rotateTimer_; // after a member left (see "leave")
  bool joining_ = false;
  std::vector<Member> joinMembers_; // the bundle's members while joining (their pins)
  bool stopped_ = false;

  // Call outcomes sent to each node lately, sent again on its next link up (resendOutcomes).
  struct KeptOutcome {
    int64_t atMs = 0;
    std::string correlationId;
    nlohmann::json message;
  };
  static constexpr size_t kRecentOutcomes = 64; // per node
  static constexpr Duration kRecentOutcomeTtl{600000};
  void resendOutcomes(const std::string& nodeId);
  std::map<std::string, std::deque<KeptOutcome>> recentOutcomes_;
  std::map<std::string, uint64_t> fallbacks_;
  uint64_t nextRequest_ = 0;
  std::map<uint64_t, std::function<void(Result<void>)>> pendingLogins_;

  // Writes of federation state that met a busy database (another process holds its lock; the
  // loop's connection gives up after its 20 ms busy timeout, so the loop never waits longer).
  // Nothing in memory ran ahead of the disk for them (each store changes memory only after its
  // commit, the trust store is saved whole), so each is run again every second under its key
  // (a later write of the same key replaces the earlier one: "dir:<owner>", "members:<node>",
  // "trust", "publish", ...) until it commits or fails for another reason. At most
  // kMaxDeferredWrites keys: beyond that a write is dropped (counted), and what it carried comes
  // again at the peer's next link up (dir-want, member gossip, revocations, call outcomes are all
  // exchanged then). Gauge and counters in /metrics (verbund_federation_deferred_writes*).
  static constexpr size_t kMaxDeferredWrites = 256;
  static constexpr Duration kDeferredRetry{1000};
  // Runs `write`; on a busy database keeps it under `key` for a retry. Returns write's result.
  Result<void> writeOrDefer(const std::string& key, std::function<Result<void>()> write);
  void retryDeferred();
  Result<void> saveTrust(); // trust_->save, deferred on a busy database
  std::map<std::string, std::function<Result<void>()>> deferred_;
  TimerId deferredTimer_ = 0;
  // Local directory changes not yet published (a publish met a busy database): user extensions
  // and group numbers, published with the next change or retry.
  std::set<std::string> unpublishedUsers_, unpublishedGroups_;
  void publishChange(); // the directory's last change → delta to all
};

} // namespace verbund::federation

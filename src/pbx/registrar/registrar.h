#pragma once
// The registrar of a PBX node (RFC 3261 §10.3): digest-authenticated REGISTER handling, bindings
// per user (several devices each), expiry, persistence in the store and the queries the call
// engine, presence and the API make.
//
// Runs on the node's event loop: single-threaded, no locks. handleRegister() is called by the
// node's request dispatcher for every REGISTER outside a dialog and always sends a final
// response on the transaction, from memory: it never waits for the disk.
//
// Bindings live in memory, indexed by user (AoR), by flow (TCP/TLS connection) and by expiry.
// Changes are written behind to the store in batches (every writeBehindInterval or
// writeBehindBatch changes, one transaction each) by the storage thread; a restart restores what
// was written. A crash or power cut loses at most the changes of the last interval plus the time
// a write takes (phones re-register).
//
// Bindings are keyed per RFC 3261 §10.3 step 7 by the Contact URI, except that a Contact with
// +sip.instance (RFC 5626 §6, RFC 5627) is keyed by (instance, reg-id): a phone that comes back
// from a new port or after a reboot replaces its old binding instead of adding a second one that
// would ring into the void until it expires.
//
// GRUU (RFC 5627): not offered by default. linphone sends +sip.instance with "Supported: gruu"
// and, when it gets a pub-gruu back, uses that port-less GRUU as its Contact from then on; every
// in-dialog request towards it must then be routed through lookupGruu() (see the Kamailio
// pitfall in the test-tools recipe). Handing out GRUUs is optional for a registrar (RFC 5627
// §5.1); omitting pub-gruu keeps linphone on its plain, directly routable Contact.
// RegistrarConfig::offerGruu turns GRUUs on; lookupGruu() resolves them either way.
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"
#include "pbx/directory/directory.h"
#include "sip/auth/auth_throttle.h"
#include "sip/auth/digest.h"
#include "sip/message/message.h"
#include "sip/message/peer.h"
#include "sip/transaction/transaction_layer.h"
#include "store/database.h"
#include "store/storage_thread.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

// One registered device of a user.
struct Binding {
  int64_t id = 0;       // store row id (assigned by the registrar)
  std::string sipUser;  // the AoR's user part (= the authenticated device login)
  std::string contact;  // Contact URI as sent, without <> and header parameters
  std::string instance; // +sip.instance without quotes ("<urn:uuid:...>"), or empty
  uint32_t regId = 0;   // RFC 5626 reg-id; 0 when absent
  int16_t q = -1;       // Contact q-value times 1000; -1 when absent
  std::string callId;   // of the REGISTER that last changed the binding (§10.3 step 7)
  uint32_t cseq = 0;
  std::string path;      // RFC 3327 Path values as received, joined by ", "; or empty
  std::string userAgent; // User-Agent, truncated; informational
  sip::Peer peer;        // the flow the REGISTER came over: send requests to the device here
  TimePoint expires{};   // on the Timers clock
  int64_t updatedMs = 0; // wall clock of the last REGISTER that refreshed it
  uint64_t sequence = 0; // higher = registered or refreshed more recently

  // Seconds until expiry, rounded up; 0 when expired.
  uint32_t expiresIn(TimePoint now) const;
  // The instance id without the angle brackets: "urn:uuid:...". Empty when none.
  std::string_view instanceUrn() const;
  // True when the binding is tied to a TCP/TLS connection of the device itself (no Path): it is
  // dropped when that connection closes (see flowClosed).
  bool onDeviceFlow() const;
};

// Where requests to a device go (RFC 3327 §5.3, RFC 3261 §8.1.2 with a pre-loaded route set).
struct DeviceRoute {
  std::string requestUri;          // the Contact
  std::vector<std::string> routes; // the Path values in order, to be sent as Route headers
  sip::Peer next;                  // the first Path hop, else the device's own flow
};
// Without Path: the Contact, no routes, the flow the REGISTER came over. With Path: the Path as
// the route set and its first hop as the next hop: the flow the REGISTER came over when the first
// Path URI names that address (or is a host name: the edge proxy that sent the REGISTER is the
// first hop, RFC 5626 §5.2), else the numeric address of the first Path URI.
DeviceRoute routeTo(const Binding& b);

// A Contact behind NAT: the REGISTER came over UDP without Path, and the Contact's host is a
// private address (IpAddress::isPrivate) that is not the address the REGISTER came from.
bool behindNat(const sip::Uri& contact, const sip::Peer& source, std::string_view path);

struct RegistrarConfig {
  std::string realm;
  // Device credentials by SIP user name (Directory::credentials); null for unknown users. Used
  // within the REGISTER's handling only (not kept), so a reference into the directory will do.
  std::function<const DeviceCredentials*(std::string_view sipUser)> credentials;
  // Challenges offered, strongest first (RFC 8760 §2.4).
  std::vector<sip::DigestAlgorithm> algorithms{sip::DigestAlgorithm::Sha256,
                                               sip::DigestAlgorithm::Md5};
  Duration nonceLifetime = std::chrono::seconds(300);

  // RFC 3261 §10.3 step 7: expiry limits in seconds. Below minExpires: 423 with Min-Expires;
  // above maxExpires: shortened.
  uint32_t minExpires = 60;
  uint32_t maxExpires = 3600;
  uint32_t defaultExpires = 3600;
  // Phones behind NAT over UDP (behindNat) get at most this expiry (0: no limit), so that their
  // re-registrations keep the NAT's UDP binding open (Linux conntrack forgets a UDP flow after
  // 30 s without packets in both directions, many routers after 30 to 120 s). It may be below
  // minExpires: the registrar shortens, the phone did not ask for it.
  uint32_t natExpires = 30;

  size_t maxBindingsPerUser = 10; // beyond this the oldest binding of the user is dropped
  size_t maxBindings = 100000;    // node-wide; beyond this new bindings get 503
  size_t maxContactsPerRequest = 10;

  // Brute-force / enumeration throttle, per source IP (IPv6: per /64). After maxAuthFailures
  // failed digest checks within failureWindow every REGISTER from there gets 403 for cooldown,
  // whether the user exists or not. The node passes its one policy for every method in
  // `throttle` (then the four values below are unused); without one the registrar makes its own.
  sip::AuthThrottle* throttle = nullptr;
  uint32_t maxAuthFailures = 10;
  Duration failureWindow = std::chrono::seconds(60);
  Duration cooldown = std::chrono::seconds(300);
  size_t maxTrackedSources = 10000; // LRU cap of the throttle table

  // Expired bindings are removed by a sweep that runs at most this often.
  Duration sweepGranularity = std::chrono::seconds(1);

  // RFC 5627: hand out pub-gruu to instances that send "Supported: gruu" (see the file comment).
  bool offerGruu = false;

  // Wall clock in ms since the epoch, for persisted expiry times; empty: the injected timers'.
  std::function<int64_t()> wallClockMs;

  // Write-behind of binding changes: at most this long after a change, or once this many changes
  // are pending, they are written in one transaction. With `storage` the write runs on that
  // thread (the node: nothing on the SIP loop waits for the disk; a failed or blocked write is
  // retried there while changes keep collecting in memory); without, it runs inline when due
  // (tests, with simulated time).
  store::StorageThread* storage = nullptr;
  Duration writeBehindInterval = std::chrono::milliseconds(200);
  size_t writeBehindBatch = 2000;
};

class Registrar {
public:
  // The bindings' own database file (see file comment).
  static std::vector<store::Migration> migrations();
  // Before bindings had their own file they lived in the node's main database: moves them over
  // once (when `to` is empty) and drops the old table.
  static Result<void> adoptLegacyBindings(store::Database& from, store::Database& to);
  // Loads the persisted bindings from `db`, dropping expired ones. From then on `db` belongs to
  // the registrar's writes (on config.storage when given): nobody else may use the connection.
  // Throws only if the digest server cannot start (no randomness, algorithm unavailable):
  // start-up only.
  static Result<std::unique_ptr<Registrar>> open(store::Database& db, Timers& timers,
                                                 RegistrarConfig config);
  ~Registrar();
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

  // Answers REGISTER request on server transaction `tx`; always sends a final response.
  void handleRegister(sip::TransactionLayer& txl, sip::ServerTxId tx, const sip::Message& request);

  // Live bindings of a user, newest first.
  std::vector<Binding> lookup(std::string_view sipUser) const;
  // The binding a GRUU ("sip:alice@host;gr=urn:uuid:...") stands for (RFC 5627 §6.1).
  std::optional<Binding> lookupGruu(std::string_view gruu) const;
  std::optional<Binding> lookupGruu(std::string_view sipUser, std::string_view instanceUrn) const;
  // Every live binding, by user, newest first within a user.
  std::vector<Binding> all() const;
  size_t size() const { return count_; }

  // Removes every binding of a user (user deleted, admin action). Notifies listeners.
  void removeUser(std::string_view sipUser);

  // The TCP/TLS connection `id` closed (peer close, reset, idle reaping, local close). Bindings
  // that came over it straight from the device are removed (from memory and the store; listeners
  // are told): the device can only be reached over that connection, and a new connection to its
  // ephemeral port would go nowhere. Bindings with a Path (the connection was the edge proxy's)
  // stay and lose the connection id: the next request opens a connection to the proxy.
  // Returns the number of bindings removed.
  size_t flowClosed(sip::ConnectionId id);

  // Called with the user whose set of bindings changed (added, removed, expired, moved to another
  // flow); not for plain refreshes. Called after the change is committed.
  using ChangeListener = std::function<void(const std::string& sipUser)>;
  void onChange(ChangeListener l) { listeners_.push_back(std::move(l)); }

  // Sources currently tracked by the throttle (for tests and metrics).
  size_t throttleEntries() const { return throttle_->entries(); }

  // Writes every pending change now and waits for it (shutdown, tests). Blocks: not for the loop
  // while it serves SIP.
  void flush();
  // Changes not yet handed to the store.
  size_t pendingWrites() const { return pending_.size(); }
  // Entries of the expiry index, stale ones included (tests: it stays bounded).
  size_t expiryEntries() const { return expiry_.size(); }

private:
  Registrar(store::Database& db, Timers& timers, RegistrarConfig config);
  Result<void> load();
  int64_t wallNowMs() const;

  void challenge(sip::TransactionLayer& txl, sip::ServerTxId tx, bool stale);
  void reply(sip::TransactionLayer& txl, sip::ServerTxId tx, int status,
             std::string_view reason = {}, uint32_t retryAfter = 0);
  void replyOk(sip::TransactionLayer& txl, sip::ServerTxId tx, const sip::Message& request,
               const std::string& sipUser);
  // RFC 3261 §10.3 steps 6-7: the user's binding set after this REGISTER, or the error status to
  // answer with (nothing is changed then).
  Result<std::vector<Binding>> plan(const sip::Message& request, const std::string& sipUser);
  // Writes the tentative binding set of a user (RFC 3261 §10.3: all or nothing) and installs it.
  Result<void> commit(const std::string& sipUser, std::vector<Binding> next);

  void armSweep(TimePoint due);
  void sweep();
  void notify(const std::string& sipUser);

  // Indexes (by flow, by expiry) and the write-behind queue follow a user's binding set from
  // `cur` to `next`; `next` gets ids.
  void track(const std::string& sipUser, const std::vector<Binding>& cur,
             std::vector<Binding>& next);
  void flowIndexRemove(const Binding& b);
  void flowIndexAdd(const Binding& b);
  // Notes that binding `id` of `sipUser` changed (or went). Only the id and the user are queued:
  // the batch copies the binding as it is when the batch is made (or deletes the row when the
  // binding is gone by then), so the queue holds no second copy of the bindings.
  void queueWrite(int64_t id, const std::string& sipUser);
  // Starts a write when a full batch is waiting; called once the change is installed in users_.
  void writeIfFull();
  void armFlush();
  // Hands the pending changes to the store unless a write is still running. With `wait` blocks
  // until they are written.
  void startWrite(bool wait);
  void compactExpiry();

  // A change handed to the store: the binding as it was when the batch was made (with its expiry
  // on the wall clock), or nothing when it was removed.
  struct PendingWrite {
    std::optional<Binding> binding;
    int64_t expiresMs = 0;
  };
  static Result<void> writeBatch(store::Database& db,
                                 const std::vector<std::pair<int64_t, PendingWrite>>& batch);

  store::Database& db_;
  Timers& timers_;
  RegistrarConfig config_;
  std::unique_ptr<sip::DigestServer> digest_;

  std::unordered_map<std::string, std::vector<Binding>> users_; // each vector newest first
  size_t count_ = 0;
  uint64_t nextSequence_ = 0;
  int64_t nextId_ = 1;

  // Users with bindings on a TCP/TLS connection, with how many (UDP bindings: none here).
  std::unordered_map<sip::ConnectionId, std::unordered_map<std::string, uint32_t>> byFlow_;
  // Expiry times with their user, earliest first. A refresh adds an entry and leaves the old one,
  // which the sweep finds stale; compactExpiry() rebuilds it when stale entries dominate.
  using ExpiryEntry = std::pair<TimePoint, std::string>;
  std::priority_queue<ExpiryEntry, std::vector<ExpiryEntry>, std::greater<>> expiry_;

  std::unordered_map<int64_t, std::string> pending_; // binding id -> its user, see queueWrite
  TimerId flushTimer_ = 0;
  std::atomic<bool> writing_{false}; // a batch is with the storage thread
  std::atomic<bool> stopping_{false};

  TimerId sweepTimer_ = 0;
  TimePoint sweepDue_{};

  std::unique_ptr<sip::AuthThrottle> ownThrottle_; // when the config brings none
  sip::AuthThrottle* throttle_ = nullptr;

  std::vector<ChangeListener> listeners_;
};

} // namespace verbund::pbx

#pragma once
// Client of rtpengine's ng control protocol (UDP; ng_message.h) on the node's event loop.
//
// Requests are typed calls with a callback that runs on the loop exactly once: with the reply,
// or with an Error whose code is an NgError. A request is retransmitted with the same cookie
// (rtpengine answers a repeat from its cache, so a command never runs twice) after
// firstRetransmit, doubling up to maxRetransmit, until `timeout`. Replies are matched by cookie
// and by source: a datagram whose cookie is unknown or that comes from another address than the
// request went to is dropped and counted (strayReplies), an unparsable one too (malformedReplies).
//
// Several instances: a request that creates a session (offer) goes to the next healthy instance
// in round robin; when that one times out it is marked unhealthy and the offer goes to the next
// (failover), until every instance was tried once. Later commands of the same call (answer,
// delete, query, play/stop media) go to the instance that holds the call (affinity by call-id,
// forgotten on delete). Time comes from the injected Timers.
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"
#include "media/bencode.h"

#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace verbund::media {

// Error codes of a failed request (Error::code).
enum class NgError {
  Timeout = 1, // no reply from any instance tried within the timeout
  Rejected,    // rtpengine answered result=error (message: its error-reason)
  BadReply,    // a reply without the fields the command needs
  NoInstance,  // no instance configured or none has an address yet
  SendFailed,  // the socket refused the datagram on every instance tried
  Overloaded,  // too many requests in flight
  Cancelled,   // the client was shut down
};

struct NgClientOptions {
  Duration firstRetransmit{250};
  Duration maxRetransmit{1000};
  Duration timeout{2000}; // per instance tried
  size_t maxInFlight = 8192;
};

// Common to every per-call command. `extra` is merged into the request dictionary last, for
// options the typed fields do not name (e.g. "ICE", "transport-protocol", "record call").
struct NgCallRef {
  std::string callId;
  std::string fromTag;
  std::string toTag;     // empty: not sent
  std::string viaBranch; // empty: not sent (tells forks of one call apart)
};

struct OfferRequest {
  NgCallRef call;
  std::string sdp;
  std::vector<std::string> flags;        // e.g. "trust-address", "symmetric", "asymmetric"
  std::vector<std::string> replace;      // e.g. "origin", "session-connection"
  std::vector<std::string> direction;    // interface names, e.g. {"external", "internal"}
  std::vector<std::string> receivedFrom; // {"IP4", "203.0.113.5"}: where the SIP came from
  bencode::Dict extra;
};
using AnswerRequest = OfferRequest; // the same fields; call.toTag is required

struct SdpReply {
  std::string sdp;     // the rewritten SDP to send on
  size_t instance = 0; // which rtpengine holds the call
  bencode::Dict raw;   // the whole reply (warnings, ...)
};

struct DeleteRequest {
  NgCallRef call; // fromTag empty: the whole call
  bencode::Dict extra;
};

struct PlayMediaRequest {
  NgCallRef call;          // fromTag: the party that hears the file
  std::string file;        // a file rtpengine can read
  int64_t repeatTimes = 0; // 0: not sent (play once); rtpengine's "repeat-times"
  bencode::Dict extra;
};

struct PlayMediaReply {
  int64_t durationMs = -1; // rtpengine's "duration", -1 when absent
  bencode::Dict raw;
};

struct StopMediaRequest {
  NgCallRef call;
  bencode::Dict extra;
};

// Per client; the same events are also counted process-wide for /metrics.
struct NgClientStats {
  uint64_t requests = 0;
  uint64_t retransmissions = 0;
  uint64_t timeouts = 0; // per instance attempt
  uint64_t failovers = 0;
  uint64_t rejected = 0;     // result=error replies
  uint64_t strayReplies = 0; // unknown cookie or wrong source
  uint64_t malformedReplies = 0;
};

class NgClient {
public:
  template <typename T> using Callback = std::function<void(Result<T>)>;

  // One entry per instance; nullopt: an instance without an address yet (a supervised one that
  // has not started).
  NgClient(asio::io_context& io, Timers& timers, std::vector<std::optional<SockAddr>> instances,
           NgClientOptions options = {});
  ~NgClient();
  NgClient(const NgClient&) = delete;
  NgClient& operator=(const NgClient&) = delete;

  // Liveness of one instance (no failover): ok on "pong".
  void ping(size_t instance, Callback<void> cb);
  void offer(const OfferRequest& r, Callback<SdpReply> cb);
  void answer(const AnswerRequest& r, Callback<SdpReply> cb);
  // The whole reply (rtpengine's statistics of the deleted call) on success.
  void deleteCall(const DeleteRequest& r, Callback<bencode::Dict> cb);
  void query(const NgCallRef& call, Callback<bencode::Dict> cb);
  void playMedia(const PlayMediaRequest& r, Callback<PlayMediaReply> cb);
  void stopMedia(const StopMediaRequest& r, Callback<void> cb);
  // Any command: `command` is the full dictionary ("command" included). With `instance` set the
  // request goes there only; else to the call's instance (call-id affinity) or round robin with
  // failover. The callback gets the reply dictionary when result is not "error".
  void request(bencode::Dict command, std::optional<size_t> instance, Callback<bencode::Dict> cb);

  size_t instanceCount() const { return instances_.size(); }
  const std::optional<SockAddr>& address(size_t instance) const;
  // A supervised instance gets a new address when it is restarted on another port; requests in
  // flight to the old address run into their timeout. nullopt: not reachable now.
  void setAddress(size_t instance, std::optional<SockAddr> address);
  bool healthy(size_t instance) const { return instances_.at(instance).healthy; }
  // The instance holding a call (after an offer), if any.
  std::optional<size_t> instanceOf(const std::string& callId) const;
  // Instance `instance` is gone with its sessions (a supervised child ended, an external one
  // stopped answering): returns the call-ids it held and forgets them, so that nothing is
  // pinned to it any more.
  std::vector<std::string> dropCallsOn(size_t instance);
  const NgClientStats& stats() const { return stats_; }
  size_t inFlight() const { return pending_.size(); }
  // Fails every request in flight with Cancelled; later requests fail the same way.
  void shutdown();

private:
  struct Instance {
    std::optional<SockAddr> address;
    bool healthy = true;
  };
  struct Pending {
    std::string cookie;
    std::string payload; // the bencoded dictionary (without cookie)
    std::string command;
    std::string callId;
    bool createsSession = false;
    bool endsCall = false;
    std::optional<size_t> pinned;
    size_t instance = 0;
    std::vector<bool> tried;
    SockAddr sentTo;
    Duration nextRetransmit{};
    TimePoint deadline{};
    TimerId timer = 0;
    Callback<bencode::Dict> cb;
  };
  using Socket = asio::ip::udp::socket;

  void start(std::unique_ptr<Pending> p);
  // Sends p to its next instance; false when none is left.
  bool dispatch(Pending& p);
  std::optional<size_t> pickInstance(const Pending& p) const;
  bool sendTo(const SockAddr& to, const std::string& datagram);
  void onTimer(const std::string& cookie);
  void finish(const std::string& cookie, Result<bencode::Dict> r);
  void failSoon(Callback<bencode::Dict> cb, Error e);
  Socket* socketFor(bool v6);
  void receive(Socket& s, std::array<char, 65536>& buf, asio::ip::udp::endpoint& from);
  void onDatagram(const SockAddr& from, std::string_view data);
  std::string nextCookie();

  asio::io_context& io_;
  Timers& timers_;
  NgClientOptions options_;
  std::vector<Instance> instances_;
  size_t nextInstance_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Pending>> pending_; // by cookie
  std::unordered_map<std::string, size_t> affinity_;                  // call-id -> instance
  std::string cookiePrefix_;
  uint64_t cookieSeq_ = 0;
  NgClientStats stats_;
  bool shutDown_ = false;
  // Receive state per address family; created on first use.
  std::unique_ptr<Socket> v4_, v6_;
  std::unique_ptr<std::array<char, 65536>> buf4_, buf6_;
  asio::ip::udp::endpoint from4_, from6_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The "flags"/"replace"/... list of a request from strings.
bencode::List stringList(const std::vector<std::string>& items);

} // namespace verbund::media

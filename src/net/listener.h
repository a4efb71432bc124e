#pragma once
// A TCP listener that never stalls: every pending connection is accepted, checked against the
// Admission (global, per-source and pending caps, reserved slots), and either handed to the owner
// or closed at once (counted, one log line per second at most). accept() failing for lack of
// descriptors (EMFILE / ENFILE) is counted and retried after a short back-off, without a log
// line per attempt.
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"
#include "net/admission.h"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace verbund::net {

class StreamListener : public std::enable_shared_from_this<StreamListener> {
public:
  struct Hooks {
    // Sources that may use the reserved slots and are not held to the per-source caps.
    std::function<bool(const IpAddress&)> privileged;
    // An admitted connection. The ticket holds its slots; pass it to StreamConnection::accepted.
    std::function<void(asio::ip::tcp::socket, const SockAddr& remote, Admission::Ticket)> onAccept;
  };

  // Binds and listens (port 0: any free port); `name` prefixes log lines ("SIP TCP"). `v6Only`:
  // an IPv6 wildcard does not take IPv4 connections too.
  static Result<std::shared_ptr<StreamListener>>
  open(asio::io_context& io, Timers& timers, const SockAddr& addr,
       std::shared_ptr<Admission> admission, std::string name, Hooks hooks, bool v6Only = false);
  ~StreamListener();
  StreamListener(const StreamListener&) = delete;
  StreamListener& operator=(const StreamListener&) = delete;

  const SockAddr& local() const { return local_; }
  Admission& admission() { return *admission_; }
  // Stops accepting (idempotent); connections already handed out stay.
  void close();

private:
  StreamListener(asio::io_context& io, Timers& timers, std::shared_ptr<Admission> admission,
                 std::string name, Hooks hooks);
  void accept();
  void onAccepted(asio::ip::tcp::socket socket);
  void backOff(const asio::error_code& ec);
  bool logAllowed(std::optional<TimePoint>& last, uint64_t& suppressed);

  asio::ip::tcp::acceptor acceptor_;
  Timers& timers_;
  std::shared_ptr<Admission> admission_;
  std::string name_;
  Hooks hooks_;
  SockAddr local_;
  TimerId backoffTimer_ = 0;
  bool closed_ = false;
  std::optional<TimePoint> lastRefusalLog_; // rate limit: one line per second and kind
  uint64_t refusalsSuppressed_ = 0;
  std::optional<TimePoint> lastErrorLog_;
  uint64_t errorsSuppressed_ = 0;
};

} // namespace verbund::net

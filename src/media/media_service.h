#pragma once
// The node's media relay: the ng client (ng_client.h) plus the supervision of the rtpengine
// instances it talks to.
//
// Own instance ("auto", the default): the service starts rtpengine as a child process
// (userspace forwarding, `--table=-1`; foreground; ng on a free loopback port; RTP on the node's
// media interface and port range; log to a file in the data directory), pings it over ng,
// restarts it when it dies or stops answering (back-off doubling from restartBackoffMin up to
// restartBackoffMax, from the minimum again once it stayed up for stableAfter) and stops it on
// shutdown. A missing program is not fatal: media is "unavailable" (and looked for again now
// and then). External instances: each is pinged; "unreachable" while it does not answer.
//
// Runs on the node's loop; time from the injected Timers, processes through ProcessLauncher.
#include "base/clock.h"
#include "base/net.h"
#include "media/ng_client.h"
#include "media/process_launcher.h"

#include <asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace verbund::media {

enum class InstanceState {
  Starting,    // launched (or configured), no ping answered yet
  Up,          // the last ping was answered
  Down,        // the child process ended; restart pending
  Unreachable, // pings are not answered
  Unavailable, // the rtpengine program is not installed
  Stopped,     // the node is shutting down
};
const char* instanceStateName(InstanceState s);

struct MediaConfig {
  bool own = true;                // true: start and supervise our own rtpengine ("auto")
  std::vector<SockAddr> external; // ng addresses of external instances (own == false)
  IpAddress interface;            // own: the address RTP is relayed on
  uint16_t portMin = 40000;       // own: RTP port range
  uint16_t portMax = 49999;
  std::string program = "rtpengine"; // own: looked up in PATH unless it contains a '/'
  std::string logPath;               // own: its stdout/stderr (rotated to .1 at each start)
};

struct SupervisorOptions {
  Duration pingInterval{2000};     // while up or unreachable
  Duration startPingInterval{200}; // while starting
  Duration startTimeout{10000};    // a child that never answers is killed and started again
  int missedPingsBeforeRestart = 3;
  Duration restartBackoffMin{1000};
  Duration restartBackoffMax{30000};
  Duration stableAfter{60000};
  Duration stopGrace{2000};
  Duration missingProgramRecheck{30000};
  NgClientOptions client;
};

struct InstanceStatus {
  std::string address; // ng address ("" while an own child has none)
  InstanceState state = InstanceState::Starting;
  std::optional<int64_t> lastPingMs; // wall clock of the last answered ping
  std::optional<int64_t> lastPingRttMs;
  uint64_t restarts = 0; // own child: starts after the first
  int pid = 0;           // own child, 0 when none runs
};

struct MediaStatus {
  bool own = true;
  InstanceState state = InstanceState::Starting; // the best of the instances' states
  std::vector<InstanceStatus> instances;
};

class MediaService {
public:
  MediaService(asio::io_context& io, Timers& timers, ProcessLauncher& launcher, MediaConfig config,
               SupervisorOptions options = {});
  ~MediaService(); // stop()
  MediaService(const MediaService&) = delete;
  MediaService& operator=(const MediaService&) = delete;

  // Starts the own child, or the pings of external instances.
  void start();
  // Stops the child (reaped before returning) and the pings; requests in flight fail.
  void stop();

  NgClient& client() { return *client_; }
  // Instance events for the media anchor: `lost` when an instance went away with its sessions
  // (the own child ended; an external instance that was up stopped answering), `up` when an
  // instance answers pings again (or for the first time). Run on the loop.
  struct Events {
    std::function<void(size_t instance)> lost;
    std::function<void(size_t instance)> up;
  };
  void setEvents(Events e) { events_ = std::move(e); }
  // At least one instance answers pings: calls can be anchored.
  bool available() const;
  MediaStatus status() const;
  // The argument list the own child is started with (for tests and the log).
  std::vector<std::string> childArgs(const std::string& program, uint16_t ngPort) const;

private:
  struct Slot {
    InstanceStatus st;
    TimerId timer = 0;
    int missed = 0;
    uint64_t generation = 0; // a ping answered for an older child is ignored
    bool pingInFlight = false;
  };

  void lookForProgram();
  void launch();
  void childExited(int pid, const std::string& how);
  void scheduleRestart();
  void schedulePing(size_t i, Duration after);
  void ping(size_t i);
  void pinged(size_t i, uint64_t generation, TimePoint sent, Result<void> r);
  void setState(size_t i, InstanceState s);

  Timers& timers_;
  ProcessLauncher& launcher_;
  MediaConfig config_;
  SupervisorOptions options_;
  std::unique_ptr<NgClient> client_;
  std::vector<Slot> slots_;
  bool stopped_ = false;
  // Own child.
  std::string programPath_;
  TimePoint launchedAt_{};
  TimePoint upSince_{};
  Duration backoff_{};
  TimerId restartTimer_ = 0;
  Events events_;
};

} // namespace verbund::media

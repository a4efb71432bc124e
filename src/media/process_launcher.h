#pragma once
// Starting and ending child processes, behind an interface so that the supervisor's logic is
// tested with a fake (no processes, simulated time).
#include "base/clock.h"
#include "base/net.h"
#include "base/result.h"

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace verbund::media {

class ProcessLauncher {
public:
  struct Spec {
    std::vector<std::string> argv; // argv[0]: the program's path
    std::string logPath;           // stdout and stderr go here (appended); empty: /dev/null
  };
  // How a process ended, for the log ("exited with status 1", "killed by signal 9").
  using ExitFn = std::function<void(const std::string& how)>;

  virtual ~ProcessLauncher() = default;
  // Starts the process; onExit runs on the loop once it has ended and was reaped.
  virtual Result<int> launch(const Spec& spec, ExitFn onExit) = 0;
  // SIGKILL; onExit follows.
  virtual void kill(int pid) = 0;
  // Ends it before returning: SIGTERM, SIGKILL after `grace`, reaped; onExit is not called.
  virtual void stop(int pid, Duration grace) = 0;
  // The path of an executable program (a name is looked up in PATH).
  virtual std::optional<std::string> findProgram(const std::string& name) const = 0;
  // A UDP port free on ip right now (bound and released; the child binds it next).
  virtual Result<uint16_t> freeUdpPort(const IpAddress& ip) = 0;
};

// fork + exec on Linux. The child gets its own process group (a Ctrl-C at the node's terminal
// reaches the node, which ends the child itself), PR_SET_PDEATHSIG SIGKILL (it dies with the
// node, even on kill -9), no descriptors of the node but stdin (/dev/null), stdout and stderr (the
// log file). Its end is noticed through a pidfd on the loop.
class PosixProcessLauncher final : public ProcessLauncher {
public:
  explicit PosixProcessLauncher(asio::io_context& io);
  ~PosixProcessLauncher() override; // kills and reaps children still running
  Result<int> launch(const Spec& spec, ExitFn onExit) override;
  void kill(int pid) override;
  void stop(int pid, Duration grace) override;
  std::optional<std::string> findProgram(const std::string& name) const override;
  Result<uint16_t> freeUdpPort(const IpAddress& ip) override;

private:
  struct Child;
  void watch(Child& c);
  void reaped(int pid, int status);

  asio::io_context& io_;
  std::unordered_map<int, std::unique_ptr<Child>> children_;
};

// "exited with status N" / "killed by signal N (name)".
std::string describeWaitStatus(int status);

} // namespace verbund::media

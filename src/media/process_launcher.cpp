#include "media/process_launcher.h"

#include "base/log.h"

#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace verbund::media {

struct PosixProcessLauncher::Child {
  int pid = 0;
  ExitFn onExit;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd; // readable once the child ended
  std::unique_ptr<asio::steady_timer> poll;              // without pidfd: waitpid every 100 ms
};

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "ended (status " + std::to_string(status) + ")";
}

PosixProcessLauncher::PosixProcessLauncher(asio::io_context& io) : io_(io) {}

PosixProcessLauncher::~PosixProcessLauncher() {
  std::vector<int> pids;
  for (const auto& [pid, c] : children_) pids.push_back(pid);
  for (int pid : pids) stop(pid, Duration(0));
}

namespace {
// Opens the log file for the child (appending, mode 0600 by the node's umask).
int openLog(const std::string& path) {
  if (path.empty()) return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

// Between fork and exec only async-signal-safe calls (the node has other threads).
[[noreturn]] void execChild(pid_t parent, int in, int out, char* const* argv) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127); // the node died before prctl took effect
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(127);
  // Nothing else of the node's: its sockets, database and log stay with it.
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
    long max = ::sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 65536); ++fd) ::close(int(fd));
  }
  ::execv(argv[0], argv);
  ::_exit(127);
}
// The child leads its own process group: signal the group, so whatever it started goes too
// (before its setpgid the group does not exist yet: then the child alone).
void signalChild(int pid, int sig) {
  if (::kill(-pid, sig) != 0) ::kill(pid, sig);
}
} // namespace

Result<int> PosixProcessLauncher::launch(const Spec& spec, ExitFn onExit) {
  if (spec.argv.empty()) return Error{1, "no program"};
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = openLog(spec.logPath);
  if (in < 0 || out < 0) {
    int err = errno;
    if (in >= 0) ::close(in);
    if (out >= 0) ::close(out);
    return Error{1, "cannot open " + (spec.logPath.empty() ? "/dev/null" : spec.logPath) + ": " +
                        std::strerror(err)};
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) execChild(parent, in, out, argv.data());
  int err = errno;
  ::close(in);
  ::close(out);
  if (pid < 0) return Error{1, std::string("fork: ") + std::strerror(err)};
  auto c = std::make_unique<Child>();
  c->pid = pid;
  c->onExit = std::move(onExit);
  Child& ref = *c;
  children_.emplace(pid, std::move(c));
  watch(ref);
  return int(pid);
}

void PosixProcessLauncher::watch(Child& c) {
  int pid = c.pid;
  int fd = int(::syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    c.pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
    c.pidfd->async_wait(asio::posix::stream_descriptor::wait_read,
                        [this, pid](const std::error_code& ec) {
                          if (ec == asio::error::operation_aborted) return;
                          int status = 0;
                          if (::waitpid(pid, &status, WNOHANG) == pid) reaped(pid, status);
                        });
    return;
  }
  c.poll = std::make_unique<asio::steady_timer>(io_);
  auto arm = [this, pid](auto self) -> void {
    auto it = children_.find(pid);
    if (it == children_.end()) return;
    it->second->poll->expires_after(std::chrono::milliseconds(100));
    it->second->poll->async_wait([this, pid, self](const std::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return reaped(pid, status);
      self(self);
    });
  };
  arm(arm);
}

void PosixProcessLauncher::reaped(int pid, int status) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  ExitFn fn = std::move(it->second->onExit);
  children_.erase(it);
  if (fn) fn(describeWaitStatus(status));
}

void PosixProcessLauncher::kill(int pid) {
  if (children_.count(pid)) signalChild(pid, SIGKILL);
}

void PosixProcessLauncher::stop(int pid, Duration grace) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  children_.erase(it); // closes the pidfd: its wait handler sees operation_aborted
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return;
  signalChild(pid, SIGTERM);
  auto end = Clock::now() + grace;
  while (Clock::now() < end) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  signalChild(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::optional<std::string> PosixProcessLauncher::findProgram(const std::string& name) const {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos)
    return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

Result<uint16_t> PosixProcessLauncher::freeUdpPort(const IpAddress& ip) {
  int fd = ::socket(ip.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{1, std::string("socket: ") + std::strerror(errno)};
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (ip.v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    std::memcpy(&a->sin6_addr, ip.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, ip.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  }
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    port = ntohs(ip.v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int err = errno;
  ::close(fd);
  if (port == 0) return Error{1, std::string("no free UDP port: ") + std::strerror(err)};
  return port;
}

} // namespace verbund::media

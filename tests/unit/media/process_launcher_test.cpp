// The real launcher against /bin/sh: output to the log file, no inherited descriptors, exit
// noticed on the loop (pidfd), stop() reaps.
#include "media/process_launcher.h"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <unistd.h>

using namespace verbund;
using namespace verbund::media;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool runUntil(asio::io_context& io, const std::function<bool()>& pred) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Processes of process group pgid that are not zombies.
int liveInGroup(int pgid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string stat = readFile(e.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    int ppid = 0, group = 0;
    rest >> state >> ppid >> group;
    if (group == pgid && state != "Z") ++n;
  }
  return n;
}

class ProcessLauncherTest : public ::testing::Test {
protected:
  asio::io_context io;
  PosixProcessLauncher launcher{io};
  std::string log = ::testing::TempDir() + "launcher-" + std::to_string(::getpid()) + ".log";
  void TearDown() override { ::unlink(log.c_str()); }
};

TEST_F(ProcessLauncherTest, OutputGoesToTheLogAndNoDescriptorIsInherited) {
  // A descriptor of the "node" without close-on-exec must not reach the child.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(::dup2(leaked, 57), 0);
  std::optional<std::string> how;
  auto pid = launcher.launch({{"/bin/sh", "-c", "echo hello; ls /proc/self/fd; exit 3"}, log},
                             [&](const std::string& h) { how = h; });
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  ASSERT_TRUE(runUntil(io, [&] { return how.has_value(); }));
  EXPECT_EQ(*how, "exited with status 3");
  std::string out = readFile(log);
  EXPECT_NE(out.find("hello\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("57"), std::string::npos) << out; // 0, 1, 2 and ls's own directory only
  ::close(57);
  ::close(leaked);
}

TEST_F(ProcessLauncherTest, KillIsReportedAsSignal) {
  std::optional<std::string> how;
  auto pid = launcher.launch({{"/bin/sleep", "30"}, ""}, [&](const std::string& h) { how = h; });
  ASSERT_TRUE(pid.ok());
  launcher.kill(*pid);
  ASSERT_TRUE(runUntil(io, [&] { return how.has_value(); }));
  EXPECT_EQ(how->rfind("killed by signal 9", 0), 0u) << *how;
  EXPECT_EQ(::kill(*pid, 0), -1); // reaped: no zombie left
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ProcessLauncherTest, StopEndsAndReapsWithoutCallback) {
  bool called = false;
  auto pid =
      launcher.launch({{"/bin/sleep", "30"}, ""}, [&](const std::string&) { called = true; });
  ASSERT_TRUE(pid.ok());
  auto t0 = std::chrono::steady_clock::now();
  launcher.stop(*pid, Duration(2000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500)); // SIGTERM
  EXPECT_EQ(::kill(*pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(called);
}

TEST_F(ProcessLauncherTest, StopEscalatesToSigkill) {
  bool called = false;
  // Ignores SIGTERM.
  auto pid = launcher.launch({{"/bin/sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"}, ""},
                             [&](const std::string&) { called = true; });
  ASSERT_TRUE(pid.ok());
  ::usleep(100000); // let the shell install its trap
  auto t0 = std::chrono::steady_clock::now();
  launcher.stop(*pid, Duration(300));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ(::kill(*pid, 0), -1);
  // Its background sleep went with it (the whole process group; a zombie waiting for init to
  // reap it does not run).
  for (int i = 0; i < 100 && liveInGroup(*pid) > 0; ++i) ::usleep(10000);
  EXPECT_EQ(liveInGroup(*pid), 0);
  EXPECT_FALSE(called);
}

TEST_F(ProcessLauncherTest, FindsProgramsAndFreePorts) {
  EXPECT_EQ(launcher.findProgram("/bin/sh"), "/bin/sh");
  EXPECT_EQ(launcher.findProgram("/nonexistent/prog"), std::nullopt);
  EXPECT_TRUE(launcher.findProgram("sh").has_value());
  EXPECT_EQ(launcher.findProgram("verbund-no-such-program"), std::nullopt);
  auto port = launcher.freeUdpPort(*IpAddress::parse("127.0.0.1"));
  ASSERT_TRUE(port.ok());
  EXPECT_GT(*port, 0);
}

} // namespace

#include "base/manual_timers.h"
#include "fake_peer.h"
#include "media/media_service.h"

#include <algorithm>
#include <gtest/gtest.h>

using namespace verbund;
using namespace verbund::media;
using namespace verbund::media::bencode;
using verbund::media::test::FakePeer;
using verbund::media::test::pump;
using verbund::media::test::settle;

namespace {

// Processes are simulated: "launching" records the arguments; the fake rtpengine is a FakePeer
// whose port freeUdpPort hands out, so the service's pings reach it.
class FakeLauncher final : public ProcessLauncher {
public:
  struct Launched {
    Spec spec;
    int pid;
    ExitFn onExit;
  };
  std::vector<Launched> launched;
  std::vector<int> killed, stopped;
  bool programInstalled = true;
  uint16_t port = 0;

  Result<int> launch(const Spec& spec, ExitFn onExit) override {
    int pid = 1000 + int(launched.size());
    launched.push_back({spec, pid, std::move(onExit)});
    return pid;
  }
  void kill(int pid) override { killed.push_back(pid); }
  void stop(int pid, Duration) override { stopped.push_back(pid); }
  std::optional<std::string> findProgram(const std::string& name) const override {
    if (!programInstalled) return std::nullopt;
    return "/usr/bin/" + name;
  }
  Result<uint16_t> freeUdpPort(const IpAddress&) override { return port; }
  void exit(const std::string& how = "killed by signal 9 (Killed)") { launched.back().onExit(how); }
};

class MediaServiceTest : public ::testing::Test {
protected:
  asio::io_context io;
  ManualTimers timers;
  FakeLauncher launcher;
  FakePeer rtpengine{io};

  MediaConfig ownConfig() {
    MediaConfig c;
    c.interface = *IpAddress::parse("192.0.2.10");
    c.portMin = 30000;
    c.portMax = 30099;
    c.logPath = ""; // nothing to rotate
    return c;
  }
  // Answers the next ping the fake rtpengine receives.
  void answerPing() {
    ASSERT_TRUE(pump(io, [&] { return !rtpengine.got().empty(); }));
    auto d = rtpengine.got().front();
    rtpengine.got().pop_front();
    EXPECT_EQ(d.message().dict.string("command"), "ping");
    rtpengine.reply(d, Dict{{"result", "pong"}});
  }
  static bool hasArg(const std::vector<std::string>& argv, const std::string& a) {
    return std::find(argv.begin(), argv.end(), a) != argv.end();
  }
};

TEST_F(MediaServiceTest, StartsOwnRtpengineInUserspaceAndSeesItUp) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  ASSERT_EQ(launcher.launched.size(), 1u);
  const auto& argv = launcher.launched[0].spec.argv;
  EXPECT_EQ(argv[0], "/usr/bin/rtpengine");
  for (std::string a : {"--table=-1", "--foreground", "--config-file=none", "--log-stderr",
                        "--interface=192.0.2.10", "--port-min=30000", "--port-max=30099"})
    EXPECT_TRUE(hasArg(argv, a)) << a;
  EXPECT_TRUE(hasArg(argv, "--listen-ng=127.0.0.1:" + std::to_string(launcher.port)));
  EXPECT_EQ(m.status().state, InstanceState::Starting);
  EXPECT_FALSE(m.available());

  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  auto st = m.status();
  EXPECT_TRUE(st.own);
  EXPECT_EQ(st.state, InstanceState::Up);
  ASSERT_EQ(st.instances.size(), 1u);
  EXPECT_EQ(st.instances[0].address, rtpengine.address().toString());
  EXPECT_EQ(st.instances[0].pid, 1000);
  EXPECT_EQ(st.instances[0].restarts, 0u);
  EXPECT_EQ(st.instances[0].lastPingMs, timers.wallMs());
  // Pinged again every interval while up.
  timers.advance(Duration(2000));
  answerPing();
}

TEST_F(MediaServiceTest, NotListeningYetIsStillStarting) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  timers.advance(Duration(200));
  ASSERT_TRUE(pump(io, [&] { return !rtpengine.got().empty(); }));
  timers.advance(Duration(2000)); // that ping timed out: still starting, pinged again soon
  settle(io);
  rtpengine.got().clear();
  EXPECT_EQ(m.status().state, InstanceState::Starting);
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
}

TEST_F(MediaServiceTest, RestartsAChildThatDiedWithBackoff) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));

  launcher.exit();
  auto st = m.status();
  EXPECT_EQ(st.state, InstanceState::Down);
  EXPECT_EQ(st.instances[0].pid, 0);
  EXPECT_EQ(st.instances[0].address, "");
  EXPECT_FALSE(m.client().address(0).has_value());
  timers.advance(Duration(999));
  EXPECT_EQ(launcher.launched.size(), 1u);
  timers.advance(Duration(1)); // first back-off: 1 s
  ASSERT_EQ(launcher.launched.size(), 2u);
  EXPECT_EQ(m.status().state, InstanceState::Starting);
  EXPECT_EQ(m.status().instances[0].restarts, 1u);
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  EXPECT_EQ(m.status().instances[0].pid, 1001);

  // Dying again soon: the back-off doubles (2 s), then 4 s.
  launcher.exit();
  timers.advance(Duration(1999));
  EXPECT_EQ(launcher.launched.size(), 2u);
  timers.advance(Duration(1));
  EXPECT_EQ(launcher.launched.size(), 3u);
  launcher.exit("exited with status 1");
  timers.advance(Duration(3999));
  EXPECT_EQ(launcher.launched.size(), 3u);
  timers.advance(Duration(1));
  EXPECT_EQ(launcher.launched.size(), 4u);
  EXPECT_EQ(m.status().instances[0].restarts, 3u);
}

TEST_F(MediaServiceTest, BackoffIsBoundedAndResetsAfterAStableRun) {
  launcher.port = rtpengine.address().port;
  SupervisorOptions o;
  o.restartBackoffMax = Duration(3000);
  o.pingInterval = Duration(30000);
  MediaService m(io, timers, launcher, ownConfig(), o);
  m.start();
  for (Duration expect : {Duration(1000), Duration(2000), Duration(3000), Duration(3000)}) {
    size_t before = launcher.launched.size();
    launcher.exit();
    timers.advance(expect - Duration(1));
    EXPECT_EQ(launcher.launched.size(), before);
    timers.advance(Duration(1));
    EXPECT_EQ(launcher.launched.size(), before + 1);
  }
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  // Up and answering for a minute.
  for (int i = 0; i < 2; ++i) {
    timers.advance(o.pingInterval);
    answerPing();
    ASSERT_TRUE(pump(io, [&] { return m.status().instances[0].lastPingMs == timers.wallMs(); }));
  }
  launcher.exit();
  size_t before = launcher.launched.size();
  timers.advance(Duration(1000));
  EXPECT_EQ(launcher.launched.size(), before + 1);
}

TEST_F(MediaServiceTest, KillsAChildThatNeverAnswers) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  timers.advance(Duration(12000));
  ASSERT_EQ(launcher.killed.size(), 1u);
  EXPECT_EQ(launcher.killed[0], 1000);
}

TEST_F(MediaServiceTest, KillsAChildThatStopsAnswering) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  // Three pings unanswered (2 s interval + 2 s timeout each).
  timers.advance(Duration(2000 + 2000));
  EXPECT_EQ(m.status().state, InstanceState::Unreachable);
  EXPECT_TRUE(launcher.killed.empty());
  timers.advance(Duration(4000 * 2));
  ASSERT_EQ(launcher.killed.size(), 1u);
}

TEST_F(MediaServiceTest, MissingProgramIsUnavailableNotFatal) {
  launcher.programInstalled = false;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  EXPECT_TRUE(launcher.launched.empty());
  EXPECT_EQ(m.status().state, InstanceState::Unavailable);
  EXPECT_FALSE(m.available());
  // Installed later: found at the next look.
  launcher.programInstalled = true;
  launcher.port = rtpengine.address().port;
  timers.advance(Duration(30000));
  EXPECT_EQ(launcher.launched.size(), 1u);
}

TEST_F(MediaServiceTest, StopEndsTheChildAndIgnoresItsExit) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  m.start();
  m.stop();
  EXPECT_EQ(launcher.stopped, std::vector<int>{1000});
  EXPECT_EQ(m.status().state, InstanceState::Stopped);
  timers.advance(Duration(60000));
  EXPECT_EQ(launcher.launched.size(), 1u);
  EXPECT_EQ(timers.pending(), 0u);
}

TEST_F(MediaServiceTest, ExternalInstancesArePingedAndCanBeUnreachable) {
  FakePeer silent(io);
  MediaConfig c;
  c.own = false;
  c.external = {rtpengine.address(), silent.address()};
  MediaService m(io, timers, launcher, c);
  m.start();
  EXPECT_TRUE(launcher.launched.empty());
  timers.advance(Duration(0));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.status().instances[0].state == InstanceState::Up; }));
  ASSERT_TRUE(pump(io, [&] { return !silent.got().empty(); }));
  timers.advance(Duration(2000));
  auto st = m.status();
  EXPECT_FALSE(st.own);
  EXPECT_EQ(st.instances[1].state, InstanceState::Unreachable);
  EXPECT_EQ(st.instances[1].address, silent.address().toString());
  EXPECT_EQ(st.state, InstanceState::Up); // one answers: media is up
  EXPECT_TRUE(m.available());
}

TEST_F(MediaServiceTest, OnlyUnreachableExternalIsUnreachable) {
  MediaConfig c;
  c.own = false;
  c.external = {rtpengine.address()};
  MediaService m(io, timers, launcher, c);
  m.start();
  timers.advance(Duration(0));
  ASSERT_TRUE(pump(io, [&] { return !rtpengine.got().empty(); }));
  timers.advance(Duration(2000));
  EXPECT_EQ(m.status().state, InstanceState::Unreachable);
  // It answers again later.
  settle(io);
  rtpengine.got().clear();
  timers.advance(Duration(2000));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  EXPECT_EQ(m.status().state, InstanceState::Up);
}

// Relay failure (re-anchoring): the own child's end is reported as the loss of instance 0, its
// next answered ping as up; an external instance that was up and stops answering is lost.
TEST_F(MediaServiceTest, ReportsLostAndUpInstances) {
  launcher.port = rtpengine.address().port;
  MediaService m(io, timers, launcher, ownConfig());
  std::vector<std::string> events;
  m.setEvents({[&](size_t i) { events.push_back("lost " + std::to_string(i)); },
               [&](size_t i) { events.push_back("up " + std::to_string(i)); }});
  m.start();
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  EXPECT_EQ(events, (std::vector<std::string>{"up 0"}));
  launcher.exit();
  EXPECT_EQ(events, (std::vector<std::string>{"up 0", "lost 0"}));
  timers.advance(Duration(1000));
  timers.advance(Duration(200));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  EXPECT_EQ(events, (std::vector<std::string>{"up 0", "lost 0", "up 0"}));
}

TEST_F(MediaServiceTest, ExternalInstanceThatStopsAnsweringIsLost) {
  MediaConfig c;
  c.own = false;
  c.external = {rtpengine.address()};
  MediaService m(io, timers, launcher, c);
  std::vector<std::string> events;
  m.setEvents({[&](size_t i) { events.push_back("lost " + std::to_string(i)); },
               [&](size_t i) { events.push_back("up " + std::to_string(i)); }});
  m.start();
  timers.advance(Duration(0));
  answerPing();
  ASSERT_TRUE(pump(io, [&] { return m.available(); }));
  settle(io);
  timers.advance(Duration(2000)); // the next ping is not answered
  ASSERT_TRUE(pump(io, [&] { return !rtpengine.got().empty(); }));
  timers.advance(Duration(2000));
  EXPECT_EQ(m.status().state, InstanceState::Unreachable);
  EXPECT_EQ(events, (std::vector<std::string>{"up 0", "lost 0"}));
}

} // namespace

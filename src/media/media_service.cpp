#include "media/media_service.h"

#include "base/log.h"
#include "base/metrics.h"

#include <algorithm>
#include <cstdio>

namespace verbund::media {

namespace {
Counter restartsTotal("verbund_media_rtpengine_restarts_total",
                      "own rtpengine started again after it ended or stopped answering");
Gauge instancesUp("verbund_media_instances_up", "rtpengine instances answering ng pings");

// Order of preference when the instances disagree: the media state is the best one.
int rank(InstanceState s) {
  switch (s) {
  case InstanceState::Up:
    return 0;
  case InstanceState::Starting:
    return 1;
  case InstanceState::Unreachable:
    return 2;
  case InstanceState::Down:
    return 3;
  case InstanceState::Unavailable:
    return 4;
  case InstanceState::Stopped:
    return 5;
  }
  return 6;
}
} // namespace

const char* instanceStateName(InstanceState s) {
  switch (s) {
  case InstanceState::Starting:
    return "starting";
  case InstanceState::Up:
    return "up";
  case InstanceState::Down:
    return "down";
  case InstanceState::Unreachable:
    return "unreachable";
  case InstanceState::Unavailable:
    return "unavailable";
  case InstanceState::Stopped:
    return "stopped";
  }
  return "unknown";
}

MediaService::MediaService(asio::io_context& io, Timers& timers, ProcessLauncher& launcher,
                           MediaConfig config, SupervisorOptions options)
    : timers_(timers), launcher_(launcher), config_(std::move(config)), options_(options),
      backoff_(options.restartBackoffMin) {
  std::vector<std::optional<SockAddr>> addrs;
  if (config_.own) {
    addrs.emplace_back(std::nullopt);
    slots_.emplace_back();
  } else {
    for (const auto& a : config_.external) {
      addrs.emplace_back(a);
      Slot s;
      s.st.address = a.toString();
      slots_.push_back(s);
    }
  }
  client_ = std::make_unique<NgClient>(io, timers, std::move(addrs), options_.client);
}

MediaService::~MediaService() {
  stop();
}

std::vector<std::string> MediaService::childArgs(const std::string& program,
                                                 uint16_t ngPort) const {
  std::string ng = config_.interface.v6 ? "[::1]" : "127.0.0.1";
  return {program,
          "--config-file=none", // not /etc/rtpengine/rtpengine.conf: everything is given here
          "--table=-1",         // userspace forwarding, no kernel module
          "--foreground",
          "--log-stderr",
          "--log-level=5", // notices and worse (info logs every ng command)
          "--listen-ng=" + ng + ":" + std::to_string(ngPort),
          "--interface=" + config_.interface.toString(),
          "--port-min=" + std::to_string(config_.portMin),
          "--port-max=" + std::to_string(config_.portMax)};
}

void MediaService::start() {
  if (stopped_) return;
  if (!config_.own) {
    logger("media")->info("media: {} external rtpengine instance(s): checking with ng ping",
                          slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) schedulePing(i, Duration(0));
    return;
  }
  lookForProgram();
}

void MediaService::lookForProgram() {
  restartTimer_ = 0;
  auto path = launcher_.findProgram(config_.program);
  if (!path) {
    if (slots_[0].st.state != InstanceState::Unavailable)
      logger("media")->error(
          "media unavailable: the rtpengine program ({}) was not found (Debian package "
          "rtpengine-daemon); the node runs without a media relay",
          config_.program);
    setState(0, InstanceState::Unavailable);
    restartTimer_ = timers_.after(options_.missingProgramRecheck, [this] { lookForProgram(); });
    return;
  }
  programPath_ = *path;
  launch();
}

void MediaService::launch() {
  restartTimer_ = 0;
  Slot& s = slots_[0];
  auto port = launcher_.freeUdpPort(config_.interface.v6 ? *IpAddress::parse("::1")
                                                         : *IpAddress::parse("127.0.0.1"));
  if (!port) {
    logger("media")->error("media: cannot start rtpengine: {}", port.error().message);
    setState(0, InstanceState::Down);
    return scheduleRestart();
  }
  if (!config_.logPath.empty()) // keep the previous run's log for a post-mortem
    std::rename(config_.logPath.c_str(), (config_.logPath + ".1").c_str());
  ProcessLauncher::Spec spec{childArgs(programPath_, *port), config_.logPath};
  ++s.generation;
  auto pid = launcher_.launch(spec, [this, gen = s.generation](const std::string& how) {
    if (slots_[0].generation == gen) childExited(slots_[0].st.pid, how);
  });
  if (!pid) {
    logger("media")->error("media: cannot start rtpengine: {}", pid.error().message);
    setState(0, InstanceState::Down);
    return scheduleRestart();
  }
  SockAddr ng{config_.interface.v6 ? *IpAddress::parse("::1") : *IpAddress::parse("127.0.0.1"),
              *port};
  s.st.pid = *pid;
  s.st.address = ng.toString();
  s.missed = 0;
  client_->setAddress(0, ng);
  launchedAt_ = timers_.now();
  setState(0, InstanceState::Starting);
  logger("media")->info("media: started rtpengine (pid {}, ng {}, RTP on {} ports {}-{}, log {})",
                        *pid, ng.toString(), config_.interface.toString(), config_.portMin,
                        config_.portMax, config_.logPath.empty() ? "none" : config_.logPath);
  schedulePing(0, options_.startPingInterval);
}

void MediaService::childExited(int pid, const std::string& how) {
  if (stopped_) return;
  Slot& s = slots_[0];
  ++s.generation; // pings of that child no longer count
  s.st.pid = 0;
  s.st.address.clear();
  client_->setAddress(0, std::nullopt);
  if (s.timer) timers_.cancel(s.timer), s.timer = 0;
  s.pingInFlight = false;
  // A child that ran long enough starts over from the shortest back-off.
  if (s.st.state == InstanceState::Up && timers_.now() - upSince_ >= options_.stableAfter)
    backoff_ = options_.restartBackoffMin;
  setState(0, InstanceState::Down);
  logger("media")->warn("media: rtpengine (pid {}) {}; starting it again in {} ms", pid, how,
                        backoff_.count());
  scheduleRestart();
  // Its sessions died with it: the anchored calls are re-anchored once a relay answers.
  if (events_.lost) events_.lost(0);
}

void MediaService::scheduleRestart() {
  if (stopped_) return;
  Duration wait = backoff_;
  backoff_ = std::min(backoff_ * 2, options_.restartBackoffMax);
  restartTimer_ = timers_.after(wait, [this] {
    restartTimer_ = 0;
    ++slots_[0].st.restarts;
    restartsTotal.inc();
    launch();
  });
}

void MediaService::schedulePing(size_t i, Duration after) {
  Slot& s = slots_[i];
  if (s.timer) timers_.cancel(s.timer);
  s.timer = timers_.after(after, [this, i] {
    slots_[i].timer = 0;
    ping(i);
  });
}

void MediaService::ping(size_t i) {
  Slot& s = slots_[i];
  if (stopped_ || s.pingInFlight) return;
  if (config_.own && s.st.state == InstanceState::Starting &&
      timers_.now() - launchedAt_ >= options_.startTimeout) {
    logger("media")->warn("media: rtpengine (pid {}) did not answer within {} ms of its start; "
                          "killing it",
                          s.st.pid, options_.startTimeout.count());
    launcher_.kill(s.st.pid); // childExited follows
    return;
  }
  s.pingInFlight = true;
  TimePoint sent = timers_.now();
  client_->ping(i, [this, i, gen = s.generation, sent](Result<void> r) {
    pinged(i, gen, sent, std::move(r));
  });
}

void MediaService::pinged(size_t i, uint64_t generation, TimePoint sent, Result<void> r) {
  Slot& s = slots_[i];
  if (stopped_ || generation != s.generation) return;
  s.pingInFlight = false;
  auto log = logger("media");
  if (r) {
    s.missed = 0;
    s.st.lastPingMs = timers_.wallMs();
    s.st.lastPingRttMs =
        std::chrono::duration_cast<std::chrono::milliseconds>(timers_.now() - sent).count();
    if (s.st.state != InstanceState::Up) {
      if (config_.own)
        log->info("media: rtpengine up (pid {}, ng {}) after {} ms", s.st.pid, s.st.address,
                  std::chrono::duration_cast<std::chrono::milliseconds>(timers_.now() - launchedAt_)
                      .count());
      else
        log->info("media: rtpengine {} up", s.st.address);
      upSince_ = timers_.now();
    } else if (config_.own && timers_.now() - upSince_ >= options_.stableAfter) {
      backoff_ = options_.restartBackoffMin; // a stable run: the next restart comes quickly
    }
    bool wasUp = s.st.state == InstanceState::Up;
    setState(i, InstanceState::Up);
    schedulePing(i, options_.pingInterval);
    if (!wasUp && events_.up) events_.up(i);
    return;
  }
  if (s.st.state == InstanceState::Starting && config_.own)
    return schedulePing(i, options_.startPingInterval); // not listening yet
  ++s.missed;
  bool wasUp = s.st.state == InstanceState::Up;
  if (s.st.state != InstanceState::Unreachable)
    log->warn("media: rtpengine {} unreachable: {}", s.st.address, r.error().message);
  setState(i, InstanceState::Unreachable);
  // An external instance that stopped answering: its calls fail over to the others (the own
  // child is killed after missed pings, and its end reports the loss).
  if (!config_.own && wasUp && events_.lost) events_.lost(i);
  if (config_.own && s.missed >= options_.missedPingsBeforeRestart) {
    log->warn("media: rtpengine (pid {}) missed {} pings; killing it", s.st.pid, s.missed);
    launcher_.kill(s.st.pid); // childExited follows
    return;
  }
  schedulePing(i, options_.pingInterval);
}

void MediaService::setState(size_t i, InstanceState st) {
  slots_[i].st.state = st;
  instancesUp.set(double(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) {
    return s.st.state == InstanceState::Up;
  })));
}

void MediaService::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (restartTimer_) timers_.cancel(restartTimer_), restartTimer_ = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.timer) timers_.cancel(s.timer), s.timer = 0;
    ++s.generation;
    if (config_.own && s.st.pid) {
      int pid = s.st.pid;
      launcher_.stop(pid, options_.stopGrace);
      logger("media")->info("media: rtpengine (pid {}) stopped", pid);
      s.st.pid = 0;
    }
    setState(i, InstanceState::Stopped);
  }
  client_->shutdown();
}

bool MediaService::available() const {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const Slot& s) { return s.st.state == InstanceState::Up; });
}

MediaStatus MediaService::status() const {
  MediaStatus out;
  out.own = config_.own;
  out.state = InstanceState::Stopped;
  for (const auto& s : slots_) {
    out.instances.push_back(s.st);
    if (rank(s.st.state) < rank(out.state)) out.state = s.st.state;
  }
  if (slots_.empty()) out.state = InstanceState::Unavailable;
  return out;
}

} // namespace verbund::media

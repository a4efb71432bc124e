#include "app/doctor.h"

#include "app/admin_api_headers.h"
#include "app/config.h"
#include "base/net.h"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <iostream>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <optional>
#include <poll.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace verbund::app {

using nlohmann::json;

struct DoctorState {
  CLI::App* cmd = nullptr;
  std::string configPath, api, token, passwordFile;
  bool jsonOut = false;
};

namespace {

constexpr const char* kDefaultConfig = "/etc/verbund/verbund.toml";
// Clock difference to a federation member above which doctor reports it (hello delay included).
constexpr int64_t kMaxSkewMs = 2000;

struct Finding {
  std::string check;  // "ports", "certificates", "media", "trunk", "federation", "permissions"
  std::string status; // "ok", "warning", "problem"
  std::string message;
  std::string fix; // what to do ("" for ok)
};

class Report {
public:
  void ok(const std::string& check, const std::string& msg) { add(check, "ok", msg, ""); }
  void warn(const std::string& check, const std::string& msg, const std::string& fix) {
    add(check, "warning", msg, fix);
  }
  void problem(const std::string& check, const std::string& msg, const std::string& fix) {
    add(check, "problem", msg, fix);
  }
  size_t problems() const {
    size_t n = 0;
    for (const auto& f : findings_) n += f.status == "problem";
    return n;
  }
  json toJson() const {
    json list = json::array();
    for (const auto& f : findings_)
      list.push_back(
          {{"check", f.check}, {"status", f.status}, {"message", f.message}, {"fix", f.fix}});
    return {{"ok", problems() == 0}, {"problems", problems()}, {"checks", list}};
  }
  void print(std::ostream& out) const {
    for (const auto& f : findings_) {
      const char* tag = f.status == "ok"        ? "ok     "
                        : f.status == "warning" ? "WARNING"
                                                : "PROBLEM";
      out << tag << " " << f.check << ": " << f.message << "\n";
      if (!f.fix.empty()) out << "        what to do: " << f.fix << "\n";
    }
    size_t n = problems();
    out << (n == 0 ? std::string("no problems found") : std::to_string(n) + " problem(s) found")
        << "\n";
  }

private:
  void add(const std::string& check, const char* status, const std::string& msg,
           const std::string& fix) {
    findings_.push_back({check, status, msg, fix});
  }
  std::vector<Finding> findings_;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

// ---------------------------------------------------------------------------------------------
// The running node's admin API (read only).

class NodeApi {
public:
  NodeApi(const std::string& base) : base_(base), http_(base) {
    http_.set_connection_timeout(3);
    http_.set_read_timeout(10);
  }
  ~NodeApi() {
    if (!cookie_.empty()) http_.Delete("/api/v1/session", headers());
  }
  // "" when logged in (or no credentials: then `anonymous`), else why not.
  std::string connect(const DoctorState& s) {
    auto token = !s.token.empty() ? std::optional(s.token) : env("VERBUND_API_TOKEN");
    std::optional<std::string> password;
    if (!token) {
      if (!s.passwordFile.empty()) {
        std::ifstream f(s.passwordFile);
        if (!f) return "cannot read " + s.passwordFile;
        std::string line;
        std::getline(f, line);
        password = line;
      } else {
        password = env("VERBUND_ADMIN_PASSWORD");
      }
    }
    auto probe = http_.Get("/api/v1/status");
    if (!probe)
      return "the node does not answer at " + base_ + " (" +
             (probe.error() == httplib::Error::Connection ? std::string("nothing listens there")
                                                          : httplib::to_string(probe.error())) +
             ")";
    reachable_ = true;
    if (token) {
      bearer_ = *token;
    } else if (password) {
      auto r =
          http_.Post("/api/v1/session", json{{"password", *password}}.dump(), "application/json");
      if (!r) return "the node does not answer at " + base_;
      if (r->status != 200)
        return "the admin password was refused (HTTP " + std::to_string(r->status) + ")";
      auto sc = r->get_header_value("Set-Cookie");
      cookie_ = sc.substr(0, sc.find(';'));
      csrf_ = json::parse(r->body, nullptr, false).value("csrfToken", "");
    } else {
      anonymous_ = true;
      return "";
    }
    auto st = get("/api/v1/status");
    if (!st) return "the credentials were refused";
    return "";
  }
  bool reachable() const { return reachable_; }
  bool anonymous() const { return anonymous_; }
  std::optional<json> get(const std::string& path) {
    auto r = http_.Get(path.c_str(), headers());
    if (!r || r->status != 200) return std::nullopt;
    auto j = json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  }

private:
  httplib::Headers headers() const { return adminApiHeaders(bearer_, cookie_, csrf_); }
  std::string base_;
  httplib::Client http_;
  std::string bearer_, cookie_, csrf_;
  bool reachable_ = false, anonymous_ = false;
};

// ---------------------------------------------------------------------------------------------
// Ports

socklen_t toSockaddr(const SockAddr& a, sockaddr_storage& ss) {
  ss = {};
  if (a.ip.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a.port);
    std::memcpy(&s6->sin6_addr, a.ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(a.port);
  std::memcpy(&s4->sin_addr, a.ip.bytes.data(), 4);
  return sizeof(sockaddr_in);
}

// Socket inodes of `port` in /proc/net/<proto> (tcp: listening only).
std::set<std::string> socketInodes(const char* proto, uint16_t port, bool tcp) {
  std::set<std::string> out;
  for (std::string v : {"", "6"}) {
    std::ifstream f(std::string("/proc/net/") + proto + v);
    std::string line;
    std::getline(f, line);
    while (std::getline(f, line)) {
      std::istringstream in(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      in >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
      if (tcp && st != "0A") continue;
      out.insert(inode);
    }
  }
  return out;
}

// "verbund (pid 123)" for the process holding one of `inodes`, "" when not found (or not ours
// to see).
std::string socketOwner(const std::set<std::string>& inodes) {
  if (inodes.empty()) return "";
  std::error_code ec;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    std::string pid = p.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec2;
    for (const auto& fd : std::filesystem::directory_iterator(p.path() / "fd", ec2)) {
      std::error_code ec3;
      auto target = std::filesystem::read_symlink(fd.path(), ec3).string();
      if (ec3 || target.rfind("socket:[", 0) != 0) continue;
      if (!inodes.count(target.substr(8, target.size() - 9))) continue;
      std::ifstream comm(p.path() / "comm");
      std::string name;
      std::getline(comm, name);
      return name + " (pid " + pid + ")";
    }
  }
  return "";
}

// 0: bindable; else errno.
int tryBind(const SockAddr& a, bool udp) {
  int fd = ::socket(a.ip.v6 ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd < 0) return errno;
  int one = 1;
  if (!udp) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(a, ss);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

// `federationIdle`: the node is known to be in no federation, so it does not listen on
// federation.sip_listen yet.
void checkPorts(const NodeConfig& c, bool nodeRuns, bool federationIdle, Report& r) {
  struct Want {
    std::string key, addr;
    bool udp;
  };
  std::vector<Want> wants;
  for (const auto& a : c.sipUdp) wants.push_back({"sip.udp", a, true});
  for (const auto& a : c.sipTcp) wants.push_back({"sip.tcp", a, false});
  for (const auto& a : c.sipTls) wants.push_back({"sip.tls", a, false});
  wants.push_back({"node.admin_listen", c.adminListen, false});
  if (c.federationEnabled) {
    wants.push_back({"federation.listen", c.federationListen, false});
    wants.push_back({"federation.sip_listen", c.federationSipListen, false});
  }
  for (const auto& w : wants) {
    auto a = SockAddr::parse(w.addr);
    std::string what = w.key + " " + w.addr + (w.udp ? "/udp" : "/tcp");
    if (!a) {
      r.problem("ports", what + " is not an address \"ip:port\"", "correct it in the config");
      continue;
    }
    if (a->port == 0) continue; // any free port
    int e = tryBind(*a, w.udp);
    if (e == 0 && nodeRuns && federationIdle && w.key == "federation.sip_listen") {
      r.ok("ports", what + " is free (the node listens there once it is in a federation)");
      continue;
    }
    if (e == 0) {
      if (nodeRuns)
        r.problem("ports", what + ": the node runs but does not listen there",
                  "restart the node after changing the configuration (systemctl restart "
                  "verbund) and read its log (journalctl -u verbund)");
      else
        r.ok("ports", what + " can be bound");
      continue;
    }
    if (e == EACCES) {
      r.problem("ports", what + ": a port below 1024 needs the capability CAP_NET_BIND_SERVICE",
                "run the node as the packaged service (its unit grants it) or pick a port "
                "from 1024 up");
      continue;
    }
    if (e == EADDRNOTAVAIL) {
      r.problem("ports", what + ": this machine has no such address",
                "use one of the machine's addresses (ip -brief address) or 0.0.0.0");
      continue;
    }
    if (e != EADDRINUSE) {
      r.problem("ports", what + ": cannot be bound (" + std::strerror(e) + ")",
                "check the address");
      continue;
    }
    std::string owner = socketOwner(socketInodes(w.udp ? "udp" : "tcp", a->port, !w.udp));
    if (owner.rfind("verbund", 0) == 0)
      r.ok("ports", what + " is held by the node, " + owner);
    else
      r.problem("ports",
                what + " is taken by another program" + (owner.empty() ? "" : ": " + owner),
                "stop that program or choose another port for " + w.key);
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates

std::string dateOf(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

void checkCertificate(const std::string& key, const std::string& path, Report& r) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) {
    r.problem("certificates", key + " " + path + " cannot be read (" + std::strerror(errno) + ")",
              "put the certificate there or correct " + key);
    return;
  }
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!cert) {
    r.problem("certificates", key + " " + path + " holds no PEM certificate",
              "put the PEM certificate chain (server certificate first) there");
    return;
  }
  const ASN1_TIME* notAfter = X509_get0_notAfter(cert);
  const ASN1_TIME* notBefore = X509_get0_notBefore(cert);
  std::string until = dateOf(notAfter);
  if (X509_cmp_current_time(notAfter) <= 0) {
    r.problem("certificates", "the certificate " + path + " expired on " + until,
              "renew it (and its key), then restart the node");
  } else if (X509_cmp_current_time(notBefore) > 0) {
    r.problem("certificates",
              "the certificate " + path + " is not valid before " + dateOf(notBefore),
              "check this machine's clock, or the certificate");
  } else {
    std::time_t soon = std::time(nullptr) + 30 * 86400;
    if (X509_cmp_time(notAfter, &soon) <= 0)
      r.warn("certificates", "the certificate " + path + " expires on " + until,
             "renew it within the next days, then restart the node");
    else
      r.ok("certificates", path + " valid until " + until);
  }
  X509_free(cert);
}

// ---------------------------------------------------------------------------------------------
// Media relay

bool programInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  p += ":/usr/sbin:/sbin";
  std::istringstream in(p);
  std::string dir;
  while (std::getline(in, dir, ':'))
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

// An ng "ping" (bencode over UDP) to an rtpengine: true when it answers "pong" within 1 s.
bool ngPing(const SockAddr& a) {
  int fd = ::socket(a.ip.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(a, ss);
  std::string msg = "doctor" + std::to_string(::getpid()) + " d7:command4:pinge";
  bool ok = false;
  if (::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) >= 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) == 1) {
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ok = n > 0 && std::string(buf, size_t(n)).find("pong") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

void checkMedia(const NodeConfig& c, const std::optional<json>& status, Report& r) {
  if (c.mediaOwnRtpengine) {
    if (!programInPath("rtpengine"))
      r.problem("media", "the rtpengine program is not installed: calls get no media relay",
                "apt install rtpengine-daemon (the node starts it itself)");
    else
      r.ok("media", "the rtpengine program is installed");
  } else {
    for (const auto& addr : c.mediaRtpengine) {
      auto a = SockAddr::parse(addr);
      if (a && ngPing(*a))
        r.ok("media", "the rtpengine at " + addr + " answers");
      else
        r.problem("media", "the rtpengine at " + addr + " does not answer (stopped?)",
                  "start it (systemctl start rtpengine-daemon on that machine) or correct "
                  "media.rtpengine");
    }
  }
  if (!status || !status->contains("media")) return;
  const json& m = (*status)["media"];
  std::string state = m.value("state", "");
  if (state == "up") {
    r.ok("media", "the node's media relay is up");
  } else if (c.mediaOwnRtpengine) {
    r.problem("media", "the node's own rtpengine is " + state,
              "read rtpengine.log in the data directory and the node's log (journalctl -u "
              "verbund); the node restarts it by itself");
  } else {
    r.problem("media", "the node reaches no rtpengine (" + state + ")",
              "start the rtpengine instances named in media.rtpengine");
  }
}

// ---------------------------------------------------------------------------------------------
// Trunk and federation (through the API)

void checkTrunk(const json& t, Report& r) {
  const json settings = t.value("settings", json::object());
  const json status = t.value("status", json::object());
  if (!settings.value("enabled", false)) {
    r.ok("trunk", "no external line configured");
    return;
  }
  std::string state = status.value("state", "");
  std::string reason = status.value("reason", "");
  if (state == "registered" || (state != "failing" && settings.value("mode", "") == "ip")) {
    r.ok("trunk", "the external line is " + state);
    return;
  }
  if (state == "failing") {
    bool creds =
        reason.rfind("401", 0) == 0 || reason.rfind("403", 0) == 0 || reason.rfind("407", 0) == 0;
    if (creds)
      r.problem("trunk",
                "the carrier refuses the external line's credentials (" + reason +
                    "): wrong user name or password",
                "enter the user name and password the carrier gave you (web interface: "
                "external line, or `verbund trunk set`)");
    else
      r.problem("trunk", "the external line does not register: " + reason,
                "check the registrar address and that the carrier is reachable from here");
    return;
  }
  r.warn("trunk", "the external line is " + state + (reason.empty() ? "" : ": " + reason),
         "wait a moment and run doctor again");
}

// TCP connect within 2 s: "" on success, else the reason.
std::string tcpReach(const SockAddr& a) {
  int fd = ::socket(a.ip.v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::strerror(errno);
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(a, ss);
  std::string why;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) {
      why = errno == ECONNREFUSED ? "port closed (connection refused)" : std::strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 2000) != 1) {
        why = "no answer within 2 s (a firewall drops it?)";
      } else {
        int err = 0;
        socklen_t el = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err)
          why = err == ECONNREFUSED ? "port closed (connection refused)" : std::strerror(err);
      }
    }
  }
  ::close(fd);
  return why;
}

void checkFederation(const json& f, Report& r) {
  if (!f.value("member", false)) {
    r.ok("federation", "not a member of a federation");
    return;
  }
  for (const auto& m : f.value("members", json::array())) {
    if (m.value("self", false)) continue;
    std::string name = m.value("name", m.value("nodeId", "?"));
    std::string state = m.value("state", "");
    std::vector<std::string> addrs;
    for (const auto& a : m.value("controlAddresses", json::array()))
      if (a.is_string()) addrs.push_back(a.get<std::string>());
    std::string reached, why;
    for (const auto& addr : addrs) {
      auto a = SockAddr::parse(addr);
      if (!a) continue;
      std::string w = tcpReach(*a);
      if (w.empty()) {
        reached = addr;
        break;
      }
      why += (why.empty() ? "" : "; ") + addr + ": " + w;
    }
    if (reached.empty()) {
      r.problem(
          "federation",
          "member " + name + " cannot be reached: " + (why.empty() ? "no address" : why),
          "check that its node runs and that port " +
              (addrs.empty() ? std::string("3090") : addrs[0].substr(addrs[0].rfind(':') + 1)) +
              "/tcp is open between the sites");
      continue;
    }
    if (state != "up") {
      std::string err = m.value("lastError", "");
      r.problem("federation",
                "member " + name + " at " + reached + " answers, but the link is " + state +
                    (err.empty() ? "" : " (" + err + ")"),
                "read the log of both nodes (journalctl -u verbund); versions and federation "
                "certificates must match");
      continue;
    }
    if (m.contains("clockOffsetMs") && m["clockOffsetMs"].is_number_integer()) {
      int64_t off = m["clockOffsetMs"].get<int64_t>();
      if (off > kMaxSkewMs || off < -kMaxSkewMs) {
        r.problem("federation",
                  "the clock of member " + name + " is " + std::to_string(std::llabs(off) / 1000) +
                      " s " + (off > 0 ? "ahead of" : "behind") + " this node's",
                  "synchronise the clocks of both machines (NTP: systemd-timesyncd or chrony); "
                  "certificates and call records depend on them");
        continue;
      }
    }
    std::string rtt = m.contains("rttMs") && m["rttMs"].is_number()
                          ? ", " + std::to_string(int(m["rttMs"].get<double>())) + " ms"
                          : "";
    r.ok("federation", "member " + name + " at " + reached + " is up" + rtt);
  }
}

// ---------------------------------------------------------------------------------------------
// File permissions

void checkPermissions(const NodeConfig& c, Report& r) {
  struct stat st {};
  if (::stat(c.dataDir.c_str(), &st) != 0) {
    r.warn("permissions", "the data directory " + c.dataDir + " does not exist yet",
           "it is made at the node's first start");
    return;
  }
  bool bad = false;
  char mode[8];
  if (st.st_mode & 077) {
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    r.problem("permissions",
              "the data directory " + c.dataDir + " is open to others (mode " + mode +
                  "); it holds password hashes and keys",
              "chmod 700 " + c.dataDir);
    bad = true;
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(c.dataDir, ec)) {
    struct stat fs {};
    if (::lstat(e.path().c_str(), &fs) != 0 || S_ISLNK(fs.st_mode)) continue;
    if ((fs.st_mode & 077) == 0) continue;
    std::snprintf(mode, sizeof mode, "%04o", unsigned(fs.st_mode & 07777));
    bool dir = S_ISDIR(fs.st_mode);
    r.problem("permissions", e.path().string() + " can be read by others (mode " + mode + ")",
              std::string(dir ? "chmod 700 " : "chmod 600 ") + e.path().string());
    bad = true;
  }
  if (ec)
    r.warn("permissions", "cannot look into " + c.dataDir + " (" + ec.message() + ")",
           "run doctor as root or as the node's user");
  for (const auto& key : {c.tlsKey}) {
    if (key.empty()) continue;
    struct stat ks {};
    if (::stat(key.c_str(), &ks) == 0 && (ks.st_mode & 077)) {
      std::snprintf(mode, sizeof mode, "%04o", unsigned(ks.st_mode & 07777));
      r.problem("permissions", "the TLS key " + key + " can be read by others (mode " + mode + ")",
                "chmod 600 " + key);
      bad = true;
    }
  }
  if (!bad && !ec) r.ok("permissions", c.dataDir + " and its files are private");
}

} // namespace

DoctorCommand::DoctorCommand(CLI::App& app) : s_(std::make_unique<DoctorState>()) {
  auto& s = *s_;
  s.cmd = app.add_subcommand("doctor", "Check the node's set-up and health (ports, "
                                       "certificates, media, trunk, federation, permissions)");
  s.cmd->add_option("-c,--config", s.configPath,
                    "the node's configuration (default: /etc/verbund/verbund.toml if present)");
  s.cmd->add_option("--api", s.api, "admin API of the node (default: from the configuration)");
  s.cmd->add_option("--token", s.token, "bearer token (or VERBUND_API_TOKEN)");
  s.cmd->add_option("--password-file", s.passwordFile,
                    "file holding the admin password (or VERBUND_ADMIN_PASSWORD)");
  s.cmd->add_flag("--json", s.jsonOut, "print JSON");
}

DoctorCommand::~DoctorCommand() = default;

bool DoctorCommand::selected() const {
  return s_->cmd->parsed();
}

int DoctorCommand::run(std::ostream& out, std::ostream& err) {
  auto& s = *s_;
  Report r;
  std::string path = s.configPath;
  if (path.empty() && ::access(kDefaultConfig, R_OK) == 0) path = kDefaultConfig;
  NodeConfig c = defaultConfig();
  if (!path.empty()) {
    auto loaded = loadConfig(path);
    if (!loaded) {
      err << "verbund doctor: " << loaded.error().message << "\n";
      return 2;
    }
    c = loaded.value();
    r.ok("config", path + " loads");
  } else {
    r.ok("config", "no configuration file: built-in defaults");
  }
  std::string api = s.api;
  if (api.empty()) {
    auto a = SockAddr::parse(c.adminListen);
    std::string host =
        a && !a->ip.isAny() ? a->toString() : "127.0.0.1:" + std::to_string(a ? a->port : 8080);
    api = "http://" + host;
  }
  NodeApi node(api);
  std::string why = node.connect(s);
  std::optional<json> status;
  if (!node.reachable()) {
    r.warn("node", why, "start it (systemctl start verbund) to check the running node too");
  } else if (!why.empty()) {
    r.problem("node", why,
              "give the admin password (--password-file, VERBUND_ADMIN_PASSWORD) "
              "or an API token (--token, VERBUND_API_TOKEN)");
  } else if (node.anonymous()) {
    r.warn("node",
           "the node answers at " + api +
               "; no credentials, so trunk, media and "
               "federation are not checked",
           "give --password-file or --token (or VERBUND_ADMIN_PASSWORD / VERBUND_API_TOKEN)");
  } else {
    status = node.get("/api/v1/status");
    r.ok("node", "the node answers at " + api);
  }
  bool authed = status.has_value();

  std::optional<json> federation;
  if (status) federation = node.get("/api/v1/federation");
  bool federationIdle = federation && !federation->value("member", false);
  checkPorts(c, node.reachable(), federationIdle, r);
  if (!c.tlsCert.empty()) checkCertificate("sip.tls_cert", c.tlsCert, r);
  if (!c.tlsCa.empty()) checkCertificate("sip.tls_ca", c.tlsCa, r);
  checkMedia(c, status, r);
  if (authed) {
    if (auto t = node.get("/api/v1/trunk")) checkTrunk(*t, r);
    if (federation) checkFederation(*federation, r);
  }
  checkPermissions(c, r);

  if (s.jsonOut)
    out << r.toJson().dump(2) << "\n";
  else
    r.print(out);
  return r.problems() == 0 ? 0 : 1;
}

} // namespace verbund::app

#include "app/config.h"

#include "base/net.h"

#include <algorithm>
#include <cstdlib>
#include <toml++/toml.h>
#include <unistd.h>

namespace verbund::app {

NodeConfig defaultConfig() {
  NodeConfig c;
  // systemd's StateDirectory= (the Debian package's unit) names it; a list: the first one.
  const char* state = std::getenv("STATE_DIRECTORY");
  if (state && *state) {
    std::string first(state);
    c.dataDir = first.substr(0, first.find(':'));
  } else if (geteuid() == 0) {
    c.dataDir = "/var/lib/verbund";
  } else {
    const char* home = std::getenv("HOME");
    c.dataDir = std::string(home ? home : ".") + "/.local/share/verbund";
  }
  return c;
}

const std::vector<std::string>& configKeys() {
  static const std::vector<std::string> keys{
      "node.name", "node.data_dir", "node.log_level", "node.admin_listen",
      // [sip]
      "sip.udp", "sip.tcp", "sip.tls", "sip.tls_cert", "sip.tls_key", "sip.tls_ca", "sip.advertise",
      "sip.digest_algorithms", "sip.no_answer_seconds", "sip.max_forwards",
      "sip.transfer_recall_seconds", "sip.session_expires", "sip.min_se",
      "sip.overload_queue_delay_ms", "sip.overload_max_transactions", "sip.max_connections",
      "sip.max_connections_per_source", "sip.max_pending_per_source",
      "sip.first_message_timeout_ms", "sip.auth_max_failures", "sip.auth_failure_window_s",
      "sip.auth_block_s", "sip.digest_uri_without_user", "sip.nat_expires",
      // [federation]
      "federation.enabled", "federation.listen", "federation.sip_listen", "federation.advertise",
      "federation.fallback_ms", "federation.session_expires", "federation.min_se",
      "federation.max_connections", "federation.max_pending", "federation.max_pending_per_source",
      "federation.reserved_for_members", "federation.hello_timeout_ms",
      // [admin]
      "admin.secure_cookie", "admin.allowed_origins",
      // [calls]
      "calls.retention_days",
      // [media]
      "media.rtpengine", "media.port_min", "media.port_max", "media.interface", "media.anchor",
      "media.music_on_hold"};
  return keys;
}

namespace {
Error configError(const std::string& what) {
  return Error{1, "config: " + what};
}

Result<std::vector<std::string>> stringList(const toml::node& n, const std::string& key) {
  std::vector<std::string> out;
  if (auto s = n.value<std::string>()) {
    out.push_back(*s);
    return out;
  }
  const toml::array* arr = n.as_array();
  if (!arr) return configError(key + " must be a string or a list of strings");
  for (const auto& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) return configError(key + " must be a list of strings");
    out.push_back(*s);
  }
  return out;
}
// "http://host[:port]" or "https://host[:port]", nothing after (the admin API checks it fully).
bool looksLikeOrigin(const std::string& o) {
  auto sep = o.find("://");
  if (sep == std::string::npos) return false;
  auto scheme = o.substr(0, sep);
  if (scheme != "http" && scheme != "https") return false;
  auto authority = o.substr(sep + 3);
  return !authority.empty() && authority.find_first_of("/?#@ \t") == std::string::npos;
}
} // namespace

Result<NodeConfig> loadConfig(const std::string& path) {
  NodeConfig c = defaultConfig();
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return configError(path + ": " + std::string(e.description()));
  }
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    // Only listed keys pass (the shipped configuration file shows each of them).
    const toml::table* section = v.as_table();
    bool known = key == "node" || key == "sip" || key == "federation" || key == "admin" ||
                 key == "calls" || key == "media";
    if (section && known) {
      for (const auto& [sk, sv] : *section) {
        std::string full = key + "." + std::string(sk.str());
        const auto& keys = configKeys();
        if (std::find(keys.begin(), keys.end(), full) == keys.end())
          return configError("unknown key " + full);
      }
    }
    if (key == "node") {
      const toml::table* node = v.as_table();
      if (!node) return configError("[node] must be a table");
      for (const auto& [nk, nv] : *node) {
        std::string name(nk.str());
        auto s = nv.value<std::string>();
        if (!s) return configError("node." + name + " must be a string");
        if (name == "name")
          c.nodeName = *s;
        else if (name == "data_dir")
          c.dataDir = *s;
        else if (name == "log_level")
          c.logLevel = *s;
        else if (name == "admin_listen")
          c.adminListen = *s;
        else
          return configError("unknown key node." + name);
      }
    } else if (key == "sip") {
      const toml::table* sip = v.as_table();
      if (!sip) return configError("[sip] must be a table");
      for (const auto& [sk, sv] : *sip) {
        std::string name(sk.str());
        if (name == "udp" || name == "tcp" || name == "tls") {
          auto list = stringList(sv, "sip." + name);
          if (!list) return list.error();
          (name == "udp" ? c.sipUdp : name == "tcp" ? c.sipTcp : c.sipTls) = list.value();
        } else if (name == "advertise") {
          auto adv = sv.value<std::string>();
          if (!adv) return configError("sip.advertise must be a string");
          c.sipAdvertise = *adv;
        } else if (name == "no_answer_seconds") {
          auto secs = sv.value<int64_t>();
          if (!secs || *secs < 5 || *secs > 600)
            return configError("sip.no_answer_seconds must be 5..600");
          c.noAnswerSeconds = int(*secs);
        } else if (name == "max_forwards") {
          auto n = sv.value<int64_t>();
          if (!n || *n < 1 || *n > 20) return configError("sip.max_forwards must be 1..20");
          c.maxForwards = int(*n);
        } else if (name == "nat_expires") {
          auto secs = sv.value<int64_t>();
          if (!secs || (*secs != 0 && (*secs < 10 || *secs > 3600)))
            return configError("sip.nat_expires must be 0 (off) or 10..3600");
          c.natExpiresSeconds = int(*secs);
        } else if (name == "transfer_recall_seconds") {
          auto secs = sv.value<int64_t>();
          if (!secs || (*secs != 0 && (*secs < 5 || *secs > 600)))
            return configError("sip.transfer_recall_seconds must be 0 (off) or 5..600");
          c.transferRecallSeconds = int(*secs);
        } else if (name == "session_expires" || name == "min_se") {
          auto secs = sv.value<int64_t>();
          bool off = name == "session_expires" && secs && *secs == 0;
          if (!secs || (!off && (*secs < 2 || *secs > 86400)))
            return configError("sip." + name + " must be 2..86400" +
                               (name == "session_expires" ? " (or 0: off)" : ""));
          (name == "session_expires" ? c.sessionExpiresSeconds : c.minSessionExpiresSeconds) =
              int(*secs);
        } else if (name == "overload_queue_delay_ms") {
          auto ms = sv.value<int64_t>();
          if (!ms || (*ms != 0 && (*ms < 10 || *ms > 5000)))
            return configError("sip.overload_queue_delay_ms must be 0 (off) or 10..5000");
          c.overloadQueueDelayMs = int(*ms);
        } else if (name == "overload_max_transactions") {
          auto n = sv.value<int64_t>();
          if (!n || (*n != 0 && (*n < 100 || *n > 10000000)))
            return configError("sip.overload_max_transactions must be 0 (none) or 100..10000000");
          c.overloadMaxTransactions = int(*n);
        } else if (auto* field = name == "max_connections" ? &c.sipMaxConnections
                                 : name == "max_connections_per_source"
                                     ? &c.sipMaxConnectionsPerSource
                                 : name == "max_pending_per_source" ? &c.sipMaxPendingPerSource
                                                                    : nullptr) {
          auto n = sv.value<int64_t>();
          if (!n || *n < 0 || *n > 10000000)
            return configError("sip." + name + " must be 0..10000000" +
                               (name == "max_connections" ? " (0: from the open-file limit)"
                                                          : " (0: no per-source cap)"));
          *field = int(*n);
        } else if (name == "first_message_timeout_ms") {
          auto ms = sv.value<int64_t>();
          if (!ms || *ms < 100 || *ms > 300000)
            return configError("sip.first_message_timeout_ms must be 100..300000");
          c.sipFirstMessageTimeoutMs = int(*ms);
        } else if (name == "auth_max_failures") {
          auto n = sv.value<int64_t>();
          if (!n || *n < 0 || *n > 1000)
            return configError("sip.auth_max_failures must be 0 (never block) or 1..1000");
          c.authMaxFailures = int(*n);
        } else if (name == "auth_failure_window_s" || name == "auth_block_s") {
          auto secs = sv.value<int64_t>();
          if (!secs || *secs < 1 || *secs > 86400)
            return configError("sip." + name + " must be 1..86400");
          (name == "auth_block_s" ? c.authBlockSeconds : c.authFailureWindowSeconds) = int(*secs);
        } else if (name == "digest_uri_without_user") {
          auto b = sv.value<bool>();
          if (!b) return configError("sip.digest_uri_without_user must be true or false");
          c.digestUriWithoutUser = *b;
        } else if (name == "digest_algorithms") {
          auto list = stringList(sv, "sip.digest_algorithms");
          if (!list) return list.error();
          c.digestAlgorithms.clear();
          for (const auto& a : list.value()) {
            auto alg = sip::digestAlgorithmFromName(a);
            if (!alg) return configError("sip.digest_algorithms: unknown algorithm " + a);
            c.digestAlgorithms.push_back(*alg);
          }
          if (c.digestAlgorithms.empty()) return configError("sip.digest_algorithms is empty");
        } else if (name == "tls_cert" || name == "tls_key" || name == "tls_ca") {
          auto s = sv.value<std::string>();
          if (!s) return configError("sip." + name + " must be a string");
          (name == "tls_cert" ? c.tlsCert : name == "tls_key" ? c.tlsKey : c.tlsCa) = *s;
        } else {
          return configError("unknown key sip." + name);
        }
      }
    } else if (key == "federation") {
      const toml::table* fed = v.as_table();
      if (!fed) return configError("[federation] must be a table");
      for (const auto& [fk, fv] : *fed) {
        std::string name(fk.str());
        if (name == "listen" || name == "sip_listen") {
          auto s = fv.value<std::string>();
          if (!s || !SockAddr::parse(*s))
            return configError("federation." + name + " must be an address \"ip:port\"");
          (name == "listen" ? c.federationListen : c.federationSipListen) = *s;
        } else if (name == "advertise") {
          auto list = stringList(fv, "federation.advertise");
          if (!list) return list.error();
          for (const auto& a : list.value())
            if (!IpAddress::parse(a))
              return configError("federation.advertise: not an IP address: " + a);
          c.federationAdvertise = list.value();
        } else if (name == "fallback_ms") {
          auto ms = fv.value<int64_t>();
          if (!ms || *ms < 100 || *ms > 30000)
            return configError("federation.fallback_ms must be 100..30000");
          c.federationFallbackMs = int(*ms);
        } else if (name == "session_expires" || name == "min_se") {
          auto secs = fv.value<int64_t>();
          bool off = name == "session_expires" && secs && *secs == 0;
          if (!secs || (!off && (*secs < 2 || *secs > 86400)))
            return configError("federation." + name + " must be 2..86400" +
                               (name == "session_expires" ? " (or 0: off)" : ""));
          (name == "session_expires" ? c.federationSessionExpiresSeconds
                                     : c.federationMinSessionExpiresSeconds) = int(*secs);
        } else if (auto* field = name == "max_connections" ? &c.federationMaxConnections
                                 : name == "max_pending"   ? &c.federationMaxPending
                                 : name == "max_pending_per_source"
                                     ? &c.federationMaxPendingPerSource
                                 : name == "reserved_for_members" ? &c.federationReservedForMembers
                                                                  : nullptr) {
          auto n = fv.value<int64_t>();
          if (!n || *n < 0 || *n > 1000000)
            return configError("federation." + name + " must be 0..1000000");
          *field = int(*n);
        } else if (name == "hello_timeout_ms") {
          auto ms = fv.value<int64_t>();
          if (!ms || *ms < 100 || *ms > 60000)
            return configError("federation.hello_timeout_ms must be 100..60000");
          c.federationHelloTimeoutMs = int(*ms);
        } else if (name == "enabled") {
          auto b = fv.value<bool>();
          if (!b) return configError("federation.enabled must be true or false");
          c.federationEnabled = *b;
        } else {
          return configError("unknown key federation." + name);
        }
      }
    } else if (key == "admin") {
      const toml::table* admin = v.as_table();
      if (!admin) return configError("[admin] must be a table");
      for (const auto& [ak, av] : *admin) {
        std::string name(ak.str());
        if (name == "secure_cookie") {
          auto b = av.value<bool>();
          if (!b) return configError("admin.secure_cookie must be true or false");
          c.adminSecureCookie = *b;
        } else if (name == "allowed_origins") {
          auto list = stringList(av, "admin.allowed_origins");
          if (!list) return list.error();
          for (const auto& o : list.value())
            if (!looksLikeOrigin(o))
              return configError("admin.allowed_origins: not an origin like "
                                 "\"https://pbx.example.com\": " +
                                 o);
          c.adminAllowedOrigins = list.value();
        } else {
          return configError("unknown key admin." + name);
        }
      }
    } else if (key == "calls") {
      const toml::table* calls = v.as_table();
      if (!calls) return configError("[calls] must be a table");
      for (const auto& [ck, cv] : *calls) {
        std::string name(ck.str());
        if (name == "retention_days") {
          auto n = cv.value<int64_t>();
          if (!n || *n < 0 || *n > 36500)
            return configError("calls.retention_days must be 0 (keep forever) .. 36500");
          c.callRetentionDays = int(*n);
        } else {
          return configError("unknown key calls." + name);
        }
      }
    } else if (key == "media") {
      const toml::table* media = v.as_table();
      if (!media) return configError("[media] must be a table");
      for (const auto& [mk, mv] : *media) {
        std::string name(mk.str());
        if (name == "rtpengine") {
          auto list = stringList(mv, "media.rtpengine");
          if (!list) return list.error();
          if (list->size() == 1 && list->front() == "auto") {
            c.mediaOwnRtpengine = true;
            c.mediaRtpengine.clear();
            continue;
          }
          if (list->empty())
            return configError("media.rtpengine must be \"auto\" or a list of \"ip:port\"");
          for (const auto& a : list.value()) {
            auto addr = SockAddr::parse(a);
            if (!addr || addr->port == 0)
              return configError("media.rtpengine: not an ng address \"ip:port\": " + a);
          }
          c.mediaOwnRtpengine = false;
          c.mediaRtpengine = list.value();
        } else if (name == "port_min" || name == "port_max") {
          auto n = mv.value<int64_t>();
          if (!n || *n < 1024 || *n > 65535)
            return configError("media." + name + " must be 1024..65535");
          (name == "port_min" ? c.mediaPortMin : c.mediaPortMax) = int(*n);
        } else if (name == "interface") {
          auto s = mv.value<std::string>();
          auto ip = s ? IpAddress::parse(*s) : std::nullopt;
          if (!ip || ip->isAny())
            return configError("media.interface must be an IP address (not a wildcard)");
          c.mediaInterface = ip->toString();
        } else if (name == "music_on_hold") {
          // Checked when the node starts (media::checkWavFile): the file may not exist yet here.
          auto s = mv.value<std::string>();
          if (!s || (!s->empty() && s->front() != '/'))
            return configError("media.music_on_hold must be an absolute path to a WAV file");
          c.mediaMusicOnHold = *s;
        } else if (name == "anchor") {
          auto s = mv.value<std::string>();
          if (!s || (*s != "always" && *s != "off" && *s != "remote"))
            return configError("media.anchor must be \"always\", \"off\" or \"remote\"");
          c.mediaAnchor = *s;
        } else {
          return configError("unknown key media." + name);
        }
      }
    } else {
      return configError("unknown section " + key);
    }
  }
  if (c.mediaPortMin > c.mediaPortMax)
    return configError("media.port_min must not be above media.port_max");
  if (c.federationMaxPending > 0 && c.federationReservedForMembers >= c.federationMaxPending)
    return configError("federation.reserved_for_members must be below federation.max_pending");
  return c;
}

} // namespace verbund::app

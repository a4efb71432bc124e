#pragma once
// Node configuration file (TOML). Only what a node needs before its database is open lives here:
// listen addresses, data directory, log level. Everything else is stored in SQLite.
#include "base/result.h"
#include "sip/auth/digest.h"

#include <string>
#include <vector>

namespace verbund::app {

struct NodeConfig {
  std::string nodeName = "verbund";
  // default: $STATE_DIRECTORY (systemd), else /var/lib/verbund for root, else
  // $HOME/.local/share/verbund
  std::string dataDir;
  std::string logLevel = "info";
  std::vector<std::string> sipUdp{"0.0.0.0:5060"};
  std::vector<std::string> sipTcp{"0.0.0.0:5060"};
  std::vector<std::string> sipTls; // e.g. "0.0.0.0:5061"; needs tlsCert/tlsKey
  std::string tlsCert, tlsKey, tlsCa;
  std::string sipAdvertise; // host[:port] written into Contact; default: first bound address
  // Digest challenges offered to phones, in this order (RFC 8760 §2.4: a client uses the
  // topmost one it supports). MD5 comes first by default because common phones and tools
  // (baresip 1.0, SIPp 3.6) answer only the first challenge and fail on SHA-256; a site whose
  // phones all speak SHA-256 sets sip.digest_algorithms = ["SHA-256", "MD5"].
  std::vector<sip::DigestAlgorithm> digestAlgorithms{sip::DigestAlgorithm::Md5,
                                                     sip::DigestAlgorithm::Sha256};
  // Digest brute-force policy for every method (REGISTER, INVITE, SUBSCRIBE): auth_max_failures
  // failed checks from one address (IPv6: /64) within auth_failure_window_s refuse its
  // authenticated requests with 403 for auth_block_s. 0 failures: never block (still logged).
  int authMaxFailures = 10;
  int authFailureWindowSeconds = 60;
  int authBlockSeconds = 300;
  // RFC 3261 §22.4: the digest uri must name the Request-URI. true also accepts a digest uri
  // without user part naming this node ("sip:host:port", as SIPp 3.6 sends): the response is
  // then not bound to the number dialled. For test tools only.
  bool digestUriWithoutUser = false;
  int noAnswerSeconds = 30;
  int maxForwards = 5;            // call-forwarding hops per call (issue 12)
  int transferRecallSeconds = 30; // [sip] transfer_recall_seconds; 0: no recall
  // [sip] nat_expires: registration expiry of phones behind NAT over UDP (their refreshes keep
  // the NAT binding open); 0: no limit. pbx::RegistrarConfig::natExpires.
  int natExpiresSeconds = 30;
  // RFC 4028 session timers on every call leg (0: off): a call whose phone or far side died
  // ends within this interval. min_se below the RFC's 90 s is accepted for tests.
  int sessionExpiresSeconds = 1800;
  int minSessionExpiresSeconds = 90;
  // Overload control (docs/architecture.md): queue delay above which new INVITE/REGISTER/
  // SUBSCRIBE are refused with 503 (0: off), and the cap on server transactions awaiting a final
  // response (0: none).
  int overloadQueueDelayMs = 150;
  int overloadMaxTransactions = 20000;
  // SIP over TCP/TLS: connection limits (docs/architecture.md "Connection limits"). 0 for
  // max_connections derives it from the open-file limit, which the node raises at start.
  int sipMaxConnections = 0;
  int sipMaxConnectionsPerSource = 256; // an office of phones behind one NAT
  int sipMaxPendingPerSource = 32;      // connections that have not sent a complete message
  int sipFirstMessageTimeoutMs = 10000; // an incoming connection's first message (TLS included)
  std::string adminListen = "127.0.0.1:8080";
  // [admin]: the session cookie gets "Secure" (set it when a TLS reverse proxy serves the UI);
  // origins such a proxy serves the UI under ("https://pbx.example.com"), accepted by the
  // admin API's Origin/Host checks besides IP addresses and localhost.
  bool adminSecureCookie = false;
  std::vector<std::string> adminAllowedOrigins;

  // [calls] retention_days: call records that started more than this many days ago are deleted
  // at start and daily (0: kept forever).
  int callRetentionDays = 0;

  // [federation] (docs/federation-api.md)
  bool federationEnabled = true;
  std::string federationListen = "0.0.0.0:3090";    // control plane (mutual TLS)
  std::string federationSipListen = "0.0.0.0:5061"; // SIP over TLS between nodes
  std::vector<std::string> federationAdvertise;     // IPs peers use; default: first non-loopback
  int federationFallbackMs = 1000;
  // RFC 4028 session timers of calls between nodes (0: off): with the link down, a call whose
  // other node ended it is ended here too within a bound (docs/federation-protocol.md "Calls
  // across a cut"). min_se below the RFC's 90 s is accepted for tests.
  int federationSessionExpiresSeconds = 90;
  int federationMinSessionExpiresSeconds = 90;
  // Control-plane connection limits: 0 for max_connections derives it from the open-file limit.
  // Pending = before TLS + hello completed, which must happen within hello_timeout_ms.
  int federationMaxConnections = 0;
  int federationMaxPending = 64;
  int federationMaxPendingPerSource = 4;
  int federationReservedForMembers = 16; // of both caps, for known members' addresses only
  int federationHelloTimeoutMs = 2000;

  // [media] (docs/architecture.md "Media"): rtpengine = "auto" starts and supervises the node's
  // own rtpengine; a list of "ip:port" names external instances' ng addresses instead (round
  // robin, failover to the next).
  bool mediaOwnRtpengine = true;
  std::vector<std::string> mediaRtpengine;
  int mediaPortMin = 40000; // RTP port range of the own rtpengine
  int mediaPortMax = 49999;
  std::string mediaInterface; // IP the own rtpengine relays RTP on; default: the SIP address
  // Music on hold (media/music_on_hold.h): a WAV file; empty: the node's own
  // <data_dir>/music-on-hold.wav. The admin API can set another one (kept in the database).
  std::string mediaMusicOnHold;
  // Which calls' media go through the relay: "always" (default), "off", "remote" (only calls
  // with another node or the external line; two phones of this site talk directly).
  std::string mediaAnchor = "always";
};

// Every key loadConfig accepts, as "section.key" ("sip.udp"); any other key is an error. The
// configuration file of the Debian package (debian/verbund.toml) shows each one (a unit test
// checks it).
const std::vector<std::string>& configKeys();

// Loads a TOML file; unknown keys are errors so that typos do not pass silently.
Result<NodeConfig> loadConfig(const std::string& path);
// The built-in default configuration, with the default data directory filled in.
NodeConfig defaultConfig();

} // namespace verbund::app

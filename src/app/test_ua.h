#pragma once
// A small user agent on the SIP core, used to exercise the core with SIPp before the PBX exists
// (`verbund testua`). It answers OPTIONS and REGISTER (optionally behind digest auth), answers
// INVITEs after a configurable delay with an SDP answer, accepts BYE and CANCEL, and can hang up
// calls itself. Single-threaded: everything runs on the stack's event loop.
#include "base/clock.h"
#include "sip/auth/digest.h"
#include "sip/transaction/transaction_layer.h"

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

namespace verbund::app {

struct TestUaConfig {
  Duration answerDelay{0};                  // after the 180; 0 answers at once
  Duration hangupAfter{0};                  // 0: never hang up ourselves
  std::map<std::string, std::string> users; // digest credentials; empty: no auth
  std::string realm = "verbund.test";
  // Challenges offered, most preferred first (RFC 8760 §2.4); empty: the digest default
  // (SHA-256, MD5). Clients that only read the first challenge (SIPp 3.6) need MD5 first.
  std::vector<sip::DigestAlgorithm> algorithms;
};

class TestUa final : public sip::TransactionUser {
public:
  TestUa(sip::TransactionLayer& layer, Timers& timers, TestUaConfig config);

  void onRequest(sip::ServerTxId tx, const sip::Message& request) override;
  void onAck(const sip::Message& ack) override;
  void onCancel(sip::ServerTxId inviteTx, const sip::Message& cancel) override;
  void onServerTxTerminated(sip::ServerTxId tx, sip::ServerTxEnd how) override;

  struct Stats {
    uint64_t invites = 0, answered = 0, cancelled = 0, byesReceived = 0, byesSent = 0,
             byeFailures = 0, authChallenges = 0, authOk = 0, authFailed = 0, options = 0,
             registers = 0;
  };
  const Stats& stats() const { return stats_; }
  size_t activeCalls() const { return calls_.size(); }

private:
  struct Call {
    sip::ServerTxId inviteTx = 0;
    std::string callId, localTag, remoteTag;
    std::string localUri, remoteUri; // our To, their From (name-addr text without tags)
    std::string remoteTarget;        // their Contact URI
    std::vector<std::string> routeSet;
    sip::Peer peer; // where their requests come from: in-dialog requests go back there
    uint32_t localCSeq = 0;
    TimerId answerTimer = 0;
    TimerId hangupTimer = 0;
    bool answered = false;
  };

  bool authorize(sip::ServerTxId tx, const sip::Message& request);
  void handleInvite(sip::ServerTxId tx, const sip::Message& request);
  void answer(const std::string& key);
  void hangup(const std::string& key);
  static std::string callKey(std::string_view callId, std::string_view localTag);

  sip::TransactionLayer& layer_;
  Timers& timers_;
  TestUaConfig config_;
  std::unique_ptr<sip::DigestServer> digest_;
  std::unordered_map<std::string, Call> calls_;                 // by Call-ID + local tag
  std::unordered_map<sip::ServerTxId, std::string> byInviteTx_; // ringing INVITEs
  Stats stats_;
};

} // namespace verbund::app

#pragma once
// The INVITE usage (RFC 3261 §13-§15, RFC 3311 UPDATE, RFC 6026): one InviteSession per dialog,
// on either side, plus one ClientInvite per INVITE we send, which owns the early and confirmed
// dialogs that forking creates (RFC 3261 §13.2.2.4: one dialog per To tag).
//
// SDP is opaque here: bodies pass through with their content type, so a B2BUA can relay offers and
// answers between legs.
#include "sip/dialog/dialog_manager.h"
#include "sip/dialog/dialog_usage.h"
#include "sip/dialog/uac_request.h"

#include <map>
#include <span>
#include <string>
#include <string_view>

namespace verbund::sip {

class InviteSession;
class ClientInvite;

// Why a session ended.
enum class InviteEnd : uint8_t {
  LocalBye,    // we sent BYE
  RemoteBye,   // the peer sent BYE
  Cancelled,   // UAS: CANCEL received; UAC: our CANCEL succeeded (487)
  Rejected,    // UAS: we answered non-2xx; UAC: the INVITE got a non-2xx final response
  NoAck,       // UAS: no ACK for our 2xx within 64*T1 (BYE sent, RFC 3261 §13.3.1.4)
  ForkLost,    // UAC: another fork answered (this one got ACK+BYE or its early dialog expired)
  DialogError, // 481/408 or a transaction timeout inside the dialog (RFC 3261 §12.2.1.2)
};
std::string_view inviteEndName(InviteEnd e);

// Application callbacks for every INVITE usage of a DialogManager.
class InviteHandler {
public:
  virtual ~InviteHandler() = default;
  // UAS: a new INVITE outside any dialog. Answer through session.provisional() / accept() /
  // reject(), now or later.
  virtual void onNewSession(InviteSession& session, const Message& invite) = 0;
  // UAC: a provisional response; `session` is null for one without To tag (no early dialog).
  virtual void onProvisional(ClientInvite& invite, InviteSession* session,
                             const Message& response) {}
  // UAC: a 2xx arrived and was ACKed. UAS: the ACK for our 2xx arrived.
  virtual void onConnected(InviteSession& session, const Message& message) {}
  // UAC: the INVITE failed: non-2xx final response, or (response null) timeout / transport error
  // with status 408 / 503 (RFC 3261 §8.1.3.1). Early sessions get onTerminated first.
  virtual void onFailure(ClientInvite& invite, int status, const Message* response) {}
  // A re-INVITE or UPDATE from the peer. Answer with session.respond(tx, ...); a 2xx makes its
  // Contact the new remote target. The default rejects it with 488.
  virtual void onOffer(InviteSession& session, ServerTxId tx, const Message& request);
  // The final response to our re-INVITE or UPDATE (after 491 retries gave up or succeeded).
  virtual void onOfferAnswered(InviteSession& session, Method method, const Message& response) {}
  // Another request inside the dialog (INFO, REFER, MESSAGE, NOTIFY, OPTIONS, ...). Return false
  // to have it answered 501.
  virtual bool onRequest(InviteSession& session, ServerTxId tx, const Message& request) {
    return false;
  }
  // The session is over; it is destroyed after this call returns (from the event loop).
  virtual void onTerminated(InviteSession& session, InviteEnd why, const Message* message) {}
};

// The set of dialogs created by one INVITE we sent (RFC 3261 §13.2.2.4).
class ClientInvite final : public Usage {
public:
  ~ClientInvite() override;
  const std::string& callId() const { return callId_; }
  const std::string& localTag() const { return fromTag_; }
  ClientTxId transaction() const { return tx_; }
  bool finalReceived() const { return final_; }
  // Early/confirmed sessions by remote tag.
  const std::map<std::string, UsageId>& sessions() const { return sessions_; }
  // RFC 3261 §9.1: cancels the INVITE (the CANCEL waits for a provisional response). A 2xx that
  // still arrives is ACKed and the dialog ended with BYE.
  Result<void> cancel(std::span<const HeaderField> extraHeaders = {});

private:
  friend class DialogManager;
  friend class InviteSession;
  ClientInvite(DialogManager& m, UsageId id, DialogManager::InviteParams params);
  Result<void> start();
  Result<void> sendInvite(std::optional<std::pair<std::string, std::string>> auth);
  void onResponse(const Message& response);
  void onFailure(ClientTxFailure why);
  InviteSession& sessionFor(const Message& response);
  void endEarlySessions(InviteEnd why, const Message* response);
  void maybeRetire();

  DialogManager::InviteParams params_;
  std::string callId_, fromTag_, contact_;
  uint32_t cseq_ = 1;
  MessagePtr request_; // the INVITE as sent (the last one, after auth)
  Peer target_;
  ClientTxId tx_ = 0;
  bool final_ = false;
  bool cancelled_ = false;
  int authAttempts_ = 0;
  UsageId answered_ = 0; // the first session that got a 2xx
  std::map<std::string, UsageId> sessions_;
  // ACKs of forks we ended, resent when their 2xx is retransmitted.
  std::map<std::string, std::pair<std::string, Peer>> lostAcks_;
  TimerId earlyExpiry_ = 0; // RFC 3261 §13.2.2.4: early dialogs of other forks end at 64*T1
};

class InviteSession final : public DialogUsage {
public:
  enum class State : uint8_t {
    Early,      // 1xx with tag received (UAC) or INVITE received, not answered 2xx (UAS)
    WaitingAck, // UAS: 2xx sent, its ACK not yet here
    Confirmed,
    Terminating, // BYE sent
    Terminated,
  };
  ~InviteSession() override;

  State state() const { return state_; }
  bool isUac() const { return dialog().isUac(); }
  UsageId clientInvite() const { return clientInvite_; }
  // UAS: the initial INVITE's server transaction (0 once answered finally).
  ServerTxId inviteTransaction() const { return inviteTx_; }

  // ---- UAS, initial INVITE ----
  // RFC 3261 §13.3.1.1: a provisional response with our tag and Contact (not 100).
  Result<void> provisional(int status = 180, std::string_view contentType = {},
                           std::string_view body = {}, const ExtraHeaders& headers = {});
  // RFC 3261 §13.3.1.4: 200 with Contact; retransmitted until the ACK arrives.
  Result<void> accept(std::string_view contentType = {}, std::string_view body = {},
                      const ExtraHeaders& headers = {});
  // RFC 3261 §13.3.1.3: a non-2xx final response; the session ends.
  Result<void> reject(int status, std::string_view reason = {}, const ExtraHeaders& headers = {});

  // ---- Inside the confirmed dialog ----
  // RFC 3261 §14.1: a re-INVITE; refused while another INVITE is in progress either way. A 491
  // answer is retried after the §14.1 random time.
  Result<void> reinvite(std::string_view contentType = {}, std::string_view body = {},
                        const ExtraHeaders& headers = {});
  // RFC 3311: an UPDATE (also in early dialogs).
  Result<void> update(std::string_view contentType = {}, std::string_view body = {},
                      const ExtraHeaders& headers = {});
  // Answers a request handed over by onOffer() or onRequest().
  Result<void> respond(ServerTxId tx, int status, std::string_view contentType = {},
                       std::string_view body = {}, const ExtraHeaders& headers = {});
  // Sends another request inside the dialog (INFO, REFER, MESSAGE, ...).
  Result<ClientTxId> request(std::string_view method, std::string_view contentType = {},
                             std::string_view body = {}, const ExtraHeaders& headers = {},
                             std::function<void(const Message&)> onFinal = {});
  // Ends the session: BYE when confirmed (or waiting for ACK), CANCEL for the UAC's INVITE
  // before it is answered, 480 for an unanswered UAS INVITE.
  Result<void> end();

private:
  friend class DialogManager;
  friend class ClientInvite;
  InviteSession(DialogManager& m, UsageId id, Dialog dialog, UsageId clientInvite,
                ServerTxId inviteTx);

  void onRequest(ServerTxId tx, const Message& request) override;
  void onAck(const Message& ack) override;
  void onCancel(ServerTxId inviteTx, const Message& cancel) override;
  void onServerTxEnd(ServerTxId tx, ServerTxEnd how) override;
  void onStray2xx(const Message& response) override;

  // UAC: responses to the initial INVITE for this dialog.
  void uacProvisional(const Message& response);
  void uac2xx(const Message& response, bool keep);
  void sendAck(const Message& response);

  void onOfferRequest(ServerTxId tx, const Message& request);
  Result<void> sendOffer(Method method, std::string contentType, std::string body,
                         ExtraHeaders headers);
  void onOfferResponse(Method method, const Message& response);
  void onOfferFailure(Method method);
  void start2xxRetransmission(std::string bytes, const Peer& to, uint32_t cseq);
  void stop2xxRetransmission();
  void retransmitTick();
  void sendBye();
  void terminate(InviteEnd why, const Message* message);
  std::string buildResponse(ServerTxId tx, int status, std::string_view reason,
                            std::string_view contentType, std::string_view body,
                            const ExtraHeaders& headers, bool contact);

  State state_ = State::Early;
  UsageId clientInvite_ = 0;
  ServerTxId inviteTx_ = 0; // UAS: initial INVITE until its final response
  // UAC: the ACK for the last 2xx, resent when that 2xx is retransmitted.
  std::string ack_;
  uint32_t ackCSeq_ = 0;
  Peer ackPeer_;
  // UAS: our 2xx to an INVITE awaiting its ACK (RFC 3261 §13.3.1.4).
  std::string pending2xx_;
  Peer pending2xxPeer_;
  uint32_t pending2xxCSeq_ = 0;
  Duration retransmitInterval_{0};
  TimerId retransmitTimer_ = 0;
  TimerId noAckTimer_ = 0;
  bool byeAfterAck_ = false; // RFC 3261 §15: no BYE before the ACK for our 2xx
  // Offer/answer transactions in progress (RFC 3261 §14, RFC 3311 §5).
  ClientTxId outgoingInvite_ = 0;
  ServerTxId incomingInvite_ = 0;
  ClientTxId outgoingUpdate_ = 0;
  ServerTxId incomingUpdate_ = 0;
  // RFC 3261 §14.1: the re-INVITE/UPDATE to retry after a 491.
  struct PendingOffer {
    Method method;
    std::string contentType, body;
    ExtraHeaders headers;
  };
  std::optional<PendingOffer> retryOffer_;
  std::optional<PendingOffer> lastOffer_;
  TimerId glareTimer_ = 0;
};

} // namespace verbund::sip

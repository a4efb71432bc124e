#pragma once
// The INVITE usage (RFC 3261 §13-§15, RFC 3311 UPDATE, RFC 4028 session timers, RFC 6026): one
// InviteSession per dialog, on either side, plus one ClientInvite per INVITE we send, which owns
// the early and confirmed dialogs that forking creates (RFC 3261 §13.2.2.4: one dialog per To tag).
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
  LocalBye,       // we sent BYE
  RemoteBye,      // the peer sent BYE
  Cancelled,      // UAS: CANCEL received; UAC: our CANCEL succeeded (487)
  Rejected,       // UAS: we answered non-2xx; UAC: the INVITE got a non-2xx final response
  NoAck,          // UAS: no ACK for our 2xx within 64*T1 (BYE sent, RFC 3261 §13.3.1.4)
  ForkLost,       // UAC: another fork answered (this one got ACK+BYE or its early dialog expired)
  DialogError,    // 481/408 or a transaction timeout inside the dialog (RFC 3261 §12.2.1.2)
  SessionExpired, // RFC 4028 §10: no session refresh in time (BYE sent)
};
std::string_view inviteEndName(InviteEnd e);

// How the application's re-INVITE or UPDATE is handled.
struct OfferOptions {
  // RFC 3261 §14.1: retry after a 491 by ourselves. A B2BUA relaying an offer of one leg turns this
  // off and passes the 491 back to the leg that made the offer, so that its UA retries.
  bool retryGlare = true;
};

// Application callbacks for every INVITE usage of a DialogManager.
//
// Outcome contract for the application's reinvite()/update():
//  - every final response (2xx and every non-2xx except 408/481) reaches onOfferAnswered with
//    that response, once; a 491 only when the offer was sent with retryGlare off (otherwise it
//    is retried after the §14.1 time and the retry's outcome is reported);
//  - 408, 481, a transaction timeout or a transport failure end the dialog (RFC 3261
//    §12.2.1.2): BYE (not after a 481) and onTerminated(DialogError); no onOfferAnswered.
// The dialog layer's own session refreshes (RFC 4028) are never reported, except when they end
// the session (onTerminated with DialogError, or SessionExpired for a refresh that never came).
// A bodyless UPDATE from the peer is a pure session refresh and answered 200 by the layer.
class InviteHandler {
public:
  virtual ~InviteHandler() = default;
  // UAS: a new INVITE outside any dialog. Answer through session.provisional() / accept() /
  // reject(), now or later.
  virtual void onNewSession(InviteSession& session, const Message& invite) = 0;
  // UAC: a provisional response; `session` is null for one without To tag (no early dialog).
  virtual void onProvisional(ClientInvite& invite, InviteSession* session,
                             const Message& response) {}
  // UAC: a 2xx arrived. It was ACKed, unless our INVITE had no body and the 2xx carries the
  // peer's offer: then session.ackPending() is true and the application sends its answer with
  // session.ack() (RFC 3261 §13.2.2.4, RFC 3264 §5). UAS: the ACK for our 2xx arrived (its body,
  // if any, is the answer to an offer we made in the 2xx).
  virtual void onConnected(InviteSession& session, const Message& message) {}
  // UAC: the INVITE failed: non-2xx final response, or (response null) timeout / transport error
  // with status 408 / 503 (RFC 3261 §8.1.3.1). Early sessions get onTerminated first.
  virtual void onFailure(ClientInvite& invite, int status, const Message* response) {}
  // A re-INVITE or UPDATE from the peer. Answer with session.respond(tx, ...); a 2xx makes its
  // Contact the new remote target. The default rejects it with 488.
  virtual void onOffer(InviteSession& session, ServerTxId tx, const Message& request);
  // The final response to our re-INVITE or UPDATE (see the contract above). For a 2xx to a
  // bodyless re-INVITE that carries the peer's offer, the ACK is held as after the initial INVITE
  // (session.ackPending()). Also called with Method::Ack when the ACK to our 2xx of an offerless
  // re-INVITE from the peer carries the answer.
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
  Result<void> sendInvite();
  bool retry(const Message& response);
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
  std::optional<std::pair<std::string, std::string>> auth_; // credentials of the last retry
  // RFC 4028 §7.1: the Session-Expires and Min-SE we ask for (raised by a 422, §7.4).
  uint32_t sessionExpires_ = 0, minSE_ = 0;
  SessionTimerConfig timerConfig_; // InviteParams::sessionTimer or the configured one
  bool intervalRetried_ = false;
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
  // RFC 3261 §14.1: a re-INVITE; refused with error code 491 while another INVITE is in progress
  // either way (or waiting for its ACK, or for a §14.1 retry), 500 outside a confirmed dialog.
  // A 491 answer is retried after the §14.1 random time unless options.retryGlare is off.
  Result<void> reinvite(std::string_view contentType = {}, std::string_view body = {},
                        const ExtraHeaders& headers = {}, OfferOptions options = {});
  // RFC 3311: an UPDATE (also in early dialogs); refused with 491 while another UPDATE is in
  // progress either way.
  Result<void> update(std::string_view contentType = {}, std::string_view body = {},
                      const ExtraHeaders& headers = {}, OfferOptions options = {});
  // UAC: true while the ACK for a 2xx is held because our INVITE (initial or re-INVITE) had no
  // body and the 2xx carries the peer's offer.
  bool ackPending() const { return ackHeld_; }
  // Sends the held ACK with our answer (RFC 3261 §13.2.2.4, RFC 3264 §5). Without ack() within
  // 64*T1 the ACK goes out without body and the session ends with BYE (DialogError).
  Result<void> ack(std::string_view contentType, std::string_view body);
  // RFC 4028: the negotiated session interval in seconds (0: no session timer) and whether this
  // side sends the refreshes.
  uint32_t sessionInterval() const { return sessionInterval_; }
  bool isRefresher() const { return refresher_ == Refresher::Local; }
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
  void sendAck(uint32_t cseq, std::string_view contentType = {}, std::string_view body = {});
  void holdAck(uint32_t cseq);
  void releaseAck(std::string_view contentType, std::string_view body);

  // RFC 3261 §14.1 / RFC 3311: a re-INVITE or UPDATE we send.
  struct PendingOffer {
    Method method;
    std::string contentType, body;
    ExtraHeaders headers;
    OfferOptions options;
    bool refresh = false; // RFC 4028: our own session refresh, never shown to the application
  };
  void onOfferRequest(ServerTxId tx, const Message& request);
  Result<void> sendOffer(PendingOffer offer);
  void onOfferResponse(const PendingOffer& offer, const Message& response);
  void onOfferFailure(const PendingOffer& offer);
  void retryAfterGlare(const PendingOffer& offer, const Message& response);

  // RFC 4028 session timer.
  void timerFromRequest(const Message& request, bool initial);
  void timerFromResponse(const Message& response, uint32_t asked);
  void addTimerHeaders(MessageBuilder& b, bool response, const ExtraHeaders& app) const;
  void restartSessionTimer();
  void sendRefresh();
  void sessionExpired();
  void rememberAllow(const Message& m);
  void rememberSent(std::string_view contentType, std::string_view body);
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
  // UAC: the ACK for the 2xx with CSeq ackCSeq_ waits for the application's answer (ack()).
  bool ackHeld_ = false;
  TimerId heldAckTimer_ = 0;
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
  std::optional<PendingOffer> retryOffer_;
  TimerId glareTimer_ = 0;
  // The last session description we sent and that was accepted (initial offer or answer, 2xx,
  // ACK, re-INVITE, UPDATE): a re-INVITE refresh carries it again, unchanged (RFC 4028 §7.4; the
  // same o= version is no change, RFC 3264 §8).
  std::string sentContentType_, sentBody_;
  // RFC 4028: the negotiated interval (seconds, 0: none), who refreshes, whether the peer
  // supports the extension (our answers then carry Require: timer, §9), and the one timer: the
  // refresh (refresher) or the expiry (the other side).
  enum class Refresher : uint8_t { None, Local, Remote };
  Refresher refresher_ = Refresher::None;
  // This dialog's configuration: the creating INVITE's (InviteParams::sessionTimer, or
  // DialogConfig::sessionTimerFor on the UAS side), else DialogConfig::sessionTimer.
  SessionTimerConfig timerConfig_;
  uint32_t sessionInterval_ = 0;
  bool peerTimer_ = false;
  TimerId sessionTimer_ = 0;
  bool peerAllowsUpdate_ = false; // RFC 3311 §5.1: refresh by UPDATE only when the peer allows it
};

} // namespace verbund::sip

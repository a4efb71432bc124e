#pragma once
// Dialog state (RFC 3261 §12): identity, URIs, sequence numbers, remote target and route set, and
// the construction of requests inside the dialog. No I/O and no timers: the usages
// (invite_session.h, subscription.h) own a Dialog and do the sending.
//
// Everything is copied out of the messages that create or refresh the dialog, so a Dialog does not
// keep any Message alive.
#include "base/result.h"
#include "sip/message/builder.h"
#include "sip/message/message.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::sip {

// RFC 3261 §12: Call-ID, local tag, remote tag.
struct DialogId {
  std::string callId;
  std::string localTag;
  std::string remoteTag;
  friend bool operator==(const DialogId&, const DialogId&) = default;
};

struct DialogIdHash {
  size_t operator()(const DialogId& id) const noexcept;
};

// The dialog an incoming request belongs to, seen from this side: local tag = its To tag.
DialogId dialogIdOfRequest(const Message& request);
// The dialog a response to our request belongs to: local tag = its From tag.
DialogId dialogIdOfResponse(const Message& response);

// Where and how an in-dialog request goes (RFC 3261 §12.2.1.1).
struct DialogTarget {
  std::string requestUri;          // remote target, or the first route when it is a strict router
  std::vector<std::string> routes; // Route header values, in order
  std::string nextHop;             // URI to resolve (RFC 3263) to find the destination
};

class Dialog {
public:
  enum class State : uint8_t { Early, Confirmed };

  // RFC 3261 §12.1.2: the UAC side, from the request we sent and a response with a To tag (a 1xx
  // creates an early dialog, a 2xx a confirmed one). Errors when the response has no To tag.
  static Result<Dialog> fromUac(const Message& request, const Message& response);
  // RFC 3261 §12.1.1: the UAS side, from the received request, the To tag we answer with and the
  // Contact URI we put in our responses. `confirmed` for requests whose 2xx confirms at once
  // (SUBSCRIBE); an INVITE dialog starts early.
  static Result<Dialog> fromUas(const Message& request, std::string_view localTag,
                                std::string_view localContact, bool confirmed = false);
  // RFC 6665 §4.1.2.4: a NOTIFY may create the subscriber's dialog before the 2xx to SUBSCRIBE.
  // The NOTIFY is a request from the remote side to a dialog that we started as UAC.
  static Result<Dialog> fromUacNotify(const Message& subscribe, const Message& notify);

  const DialogId& id() const { return id_; }
  State state() const { return state_; }
  bool early() const { return state_ == State::Early; }
  void confirm() { state_ = State::Confirmed; }
  bool secure() const { return secure_; }
  bool isUac() const { return uac_; }

  // From/To header values of requests we send: URI and display name as first written, with tags.
  const std::string& localHeader() const { return local_; }
  const std::string& remoteHeader() const { return remote_; }
  const std::string& remoteTarget() const { return remoteTarget_; }
  const std::vector<std::string>& routeSet() const { return routeSet_; }
  const std::string& localContact() const { return localContact_; }
  void setLocalContact(std::string contact) { localContact_ = std::move(contact); }

  // Sequence numbers; nullopt is the RFC's "empty".
  std::optional<uint32_t> localCSeq() const { return localCSeq_; }
  std::optional<uint32_t> remoteCSeq() const { return remoteCSeq_; }
  // RFC 3261 §12.2.1.1: increments the local sequence number and returns it (1 when empty).
  uint32_t nextLocalCSeq();

  // RFC 3261 §12.2.1.1: Request-URI, Route headers and next hop (loose or strict routing).
  DialogTarget target() const;
  // A request inside the dialog: start line, Via, Max-Forwards, Route, From, To, Call-ID, CSeq
  // (with `cseq`, which the caller takes from nextLocalCSeq() or, for ACK, the INVITE). Contact is
  // added when `withContact` (target refresh requests, RFC 3261 §12.2.1.1). More headers and the
  // body follow through the builder.
  MessageBuilder request(std::string_view method, std::string_view via, uint32_t cseq,
                         bool withContact) const;

  // RFC 3261 §12.2.2: checks and records the CSeq of a request from the remote side. Errors with
  // 500 when it is out of order (lower than, or equal to, the last one).
  Result<void> acceptRemoteCSeq(const Message& request);
  // Target refresh (RFC 3261 §12.2, RFC 6665 §4.1.2.2): the remote target becomes the Contact of
  // the message, when it carries exactly one usable Contact.
  void refreshTarget(const Message& message);
  // RFC 3261 §13.2.2.4: a 2xx to the INVITE recomputes an early dialog's route set and target and
  // confirms it.
  void confirmFromResponse(const Message& response);

private:
  Dialog() = default;
  void setRouteSet(const Message& m, bool reverse);

  DialogId id_;
  State state_ = State::Early;
  bool uac_ = false;
  bool secure_ = false;
  std::string local_, remote_;
  std::string remoteTarget_;
  std::vector<std::string> routeSet_;
  std::string localContact_;
  std::optional<uint32_t> localCSeq_, remoteCSeq_;
};

} // namespace verbund::sip

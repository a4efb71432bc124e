#pragma once
// Base of the objects the DialogManager owns: invite sessions, client INVITEs, subscriptions. The
// application holds their UsageId and looks them up; the manager destroys a finished usage from a
// zero-delay timer, so a reference handed to a callback stays valid for the whole callback.
#include "sip/dialog/dialog.h"
#include "sip/transaction/transaction_layer.h"

#include <cstdint>
#include <functional>
#include <optional>

namespace verbund::sip {

class DialogManager;
using UsageId = uint64_t; // 0: none

class Usage {
public:
  virtual ~Usage() = default;
  Usage(const Usage&) = delete;
  Usage& operator=(const Usage&) = delete;

  UsageId id() const { return id_; }
  bool retired() const { return retired_; }
  // Free for the application (e.g. the id of its call leg).
  uint64_t appData = 0;

protected:
  Usage(DialogManager& manager, UsageId id) : manager_(manager), id_(id) {}
  DialogManager& manager_;

private:
  friend class DialogManager;
  UsageId id_;
  bool retired_ = false;
};

// A usage of a dialog (RFC 5057 terminology): owns the Dialog and receives the requests the
// manager routes to it.
class DialogUsage : public Usage {
public:
  // No route set, and the remote target resolves to a private address (IpAddress::isPrivate)
  // that is not the one the remote side's messages come from: the remote is behind NAT.
  static bool behindNat(const DialogTarget& t, const Peer& resolved, const Peer& source);
  bool hasDialog() const { return dialog_.has_value(); }
  Dialog& dialog() { return *dialog_; }
  const Dialog& dialog() const { return *dialog_; }

protected:
  using Usage::Usage;
  friend class DialogManager;

  // A request inside the dialog, CSeq already checked (RFC 3261 §12.2.2). ACK and CANCEL never
  // come here.
  virtual void onRequest(ServerTxId tx, const Message& request) = 0;
  virtual void onAck(const Message& ack) {}
  virtual void onCancel(ServerTxId inviteTx, const Message& cancel) {}
  virtual void onServerTxEnd(ServerTxId tx, ServerTxEnd how) {}
  virtual void onStray2xx(const Message& response) {}

  // Builds and sends a request inside the dialog with the next local CSeq (or `cseq` when not 0)
  // through a client transaction. `extra` may add headers and a body. Callbacks are dropped once
  // this usage is retired.
  Result<ClientTxId> sendInDialog(std::string_view method, bool withContact,
                                  const std::function<void(MessageBuilder&)>& extra,
                                  std::function<void(const Message&)> onResponse,
                                  std::function<void(ClientTxFailure)> onFailure);
  // Where in-dialog requests go: the next hop of the dialog resolved, or (when the resolver cannot
  // resolve it, or the remote is behind NAT: see behindNat) the address the remote side last
  // sent from.
  std::optional<Peer> nextHopPeer() const;

  std::optional<Dialog> dialog_;
  std::optional<Peer> remotePeer_; // source of the last request or response from the remote
};

} // namespace verbund::sip

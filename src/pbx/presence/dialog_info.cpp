#include "pbx/presence/dialog_info.h"

namespace verbund::pbx {

std::string_view lineStateName(LineState s) {
  switch (s) {
  case LineState::Idle:
    return "idle";
  case LineState::Ringing:
    return "ringing";
  case LineState::Busy:
    return "busy";
  case LineState::Unknown:
    return "unknown";
  }
  return "unknown";
}

bool parseLineState(std::string_view name, LineState& out) {
  for (LineState s : {LineState::Idle, LineState::Ringing, LineState::Busy, LineState::Unknown})
    if (name == lineStateName(s)) {
      out = s;
      return true;
    }
  return false;
}

std::string_view dialogStateName(DialogState s) {
  switch (s) {
  case DialogState::Trying:
    return "trying";
  case DialogState::Proceeding:
    return "proceeding";
  case DialogState::Early:
    return "early";
  case DialogState::Confirmed:
    return "confirmed";
  case DialogState::Terminated:
    return "terminated";
  }
  return "terminated";
}

bool parseDialogState(std::string_view name, DialogState& out) {
  for (DialogState s : {DialogState::Trying, DialogState::Proceeding, DialogState::Early,
                        DialogState::Confirmed, DialogState::Terminated})
    if (name == dialogStateName(s)) {
      out = s;
      return true;
    }
  return false;
}

std::string_view dialogDirectionName(DialogDirection d) {
  switch (d) {
  case DialogDirection::None:
    return "";
  case DialogDirection::Initiator:
    return "initiator";
  case DialogDirection::Recipient:
    return "recipient";
  }
  return "";
}

LineState deriveLineState(const std::vector<DialogInfo>& dialogs) {
  bool busy = false, ringing = false;
  for (const DialogInfo& d : dialogs) {
    if (d.state == DialogState::Terminated) continue;
    if (d.state == DialogState::Confirmed || d.direction == DialogDirection::Initiator)
      busy = true; // talking, or placing a call: nothing to pick up
    else
      ringing = true; // RFC 4235 §3.7.1: trying/proceeding/early, offered to the user
  }
  return busy ? LineState::Busy : ringing ? LineState::Ringing : LineState::Idle;
}

} // namespace verbund::pbx

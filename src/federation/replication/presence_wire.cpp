#include "federation/replication/presence_wire.h"

#include "pbx/directory/directory.h"

#include <limits>
#include <set>

namespace verbund::federation {

namespace {

using json = nlohmann::json;

Error invalid(const std::string& field, std::string_view reason) {
  return Error{400, field + ": " + std::string(reason)};
}

const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

// Valid UTF-8 without C0/C1 control characters, DEL, or line/paragraph separators.
bool cleanUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto b0 = uint8_t(s[i]);
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (b0 < 0x80) {
      len = 1, cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1Fu, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0Fu, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07u, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      auto b = uint8_t(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029) return false;
    i += len;
  }
  return true;
}

// An optional string member: missing or null is "".
Result<std::string> text(const json& obj, const char* name, const std::string& path,
                         size_t maxBytes) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return invalid(path, "must be a string");
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > maxBytes) return invalid(path, "at most " + std::to_string(maxBytes) + " bytes");
  if (!cleanUtf8(s)) return invalid(path, "control characters or invalid UTF-8");
  return s;
}

Result<std::string> requiredText(const json& obj, const char* name, const std::string& path,
                                 size_t maxBytes) {
  auto s = text(obj, name, path, maxBytes);
  if (!s) return s;
  if (s->empty()) return invalid(path, "required");
  return s;
}

Result<int64_t> optionalInt(const json& obj, const char* name, int64_t min, int64_t max) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return int64_t(0);
  if (!v->is_number_integer()) return invalid(name, "must be an integer");
  if (v->is_number_unsigned()) {
    auto u = v->get<uint64_t>();
    if (u > uint64_t(max)) return invalid(name, "out of range");
    return int64_t(u);
  }
  auto n = v->get<int64_t>();
  if (n < min || n > max) return invalid(name, "out of range");
  return n;
}

Result<std::string> validOwner(const json& j) {
  const json* v = field(j, "owner");
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty())
    return invalid("owner", "required string");
  if (auto r = pbx::validateOwner("owner", v->get_ref<const std::string&>()); !r) return r.error();
  return v->get<std::string>();
}

Result<std::string> validExtension(const json& j, const std::string& path) {
  const json* v = field(j, "extension");
  if (v == nullptr || !v->is_string()) return invalid(path, "required string");
  if (auto r = pbx::validateExtension(path, v->get_ref<const std::string&>()); !r) return r.error();
  return v->get<std::string>();
}

json participantJson(const pbx::Participant& p) {
  return json{{"identity", p.identity}, {"display", p.display}, {"target", p.target}};
}

Result<pbx::Participant> participantFromJson(const json& obj, const char* name,
                                             const std::string& path) {
  const json* v = field(obj, name);
  if (v == nullptr || v->is_null()) return pbx::Participant{};
  if (!v->is_object()) return invalid(path, "must be an object");
  pbx::Participant p;
  auto identity = text(*v, "identity", path + ".identity", kMaxPresenceUriBytes);
  if (!identity) return identity.error();
  p.identity = std::move(*identity);
  auto display = text(*v, "display", path + ".display", kMaxPresenceDisplayBytes);
  if (!display) return display.error();
  p.display = std::move(*display);
  auto target = text(*v, "target", path + ".target", kMaxPresenceUriBytes);
  if (!target) return target.error();
  p.target = std::move(*target);
  return p;
}

Result<pbx::DialogInfo> dialogAt(const json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path, "must be an object");
  pbx::DialogInfo d;
  auto id = requiredText(j, "id", path + ".id", kMaxDialogIdBytes);
  if (!id) return id.error();
  d.id = std::move(*id);
  auto callId = text(j, "callId", path + ".callId", kMaxDialogIdBytes);
  if (!callId) return callId.error();
  d.callId = std::move(*callId);
  auto localTag = text(j, "localTag", path + ".localTag", kMaxDialogIdBytes);
  if (!localTag) return localTag.error();
  d.localTag = std::move(*localTag);
  auto remoteTag = text(j, "remoteTag", path + ".remoteTag", kMaxDialogIdBytes);
  if (!remoteTag) return remoteTag.error();
  d.remoteTag = std::move(*remoteTag);
  auto direction = text(j, "direction", path + ".direction", 16);
  if (!direction) return direction.error();
  if (direction->empty())
    d.direction = pbx::DialogDirection::None;
  else if (*direction == pbx::dialogDirectionName(pbx::DialogDirection::Initiator))
    d.direction = pbx::DialogDirection::Initiator;
  else if (*direction == pbx::dialogDirectionName(pbx::DialogDirection::Recipient))
    d.direction = pbx::DialogDirection::Recipient;
  else
    return invalid(path + ".direction", "\"initiator\", \"recipient\" or \"\"");
  auto state = requiredText(j, "state", path + ".state", 16);
  if (!state) return state.error();
  if (!pbx::parseDialogState(*state, d.state))
    return invalid(path + ".state", "trying, proceeding, early, confirmed or terminated");
  auto event = text(j, "stateEvent", path + ".stateEvent", kMaxStateEventBytes);
  if (!event) return event.error();
  d.stateEvent = std::move(*event);
  const json* code = field(j, "stateCode");
  if (code != nullptr && !code->is_null()) {
    if (!code->is_number_integer()) return invalid(path + ".stateCode", "must be an integer");
    bool inRange = code->is_number_unsigned()
                       ? code->get<uint64_t>() <= 699
                       : code->get<int64_t>() >= 0 && code->get<int64_t>() <= 699;
    if (!inRange) return invalid(path + ".stateCode", "0 or a SIP status code");
    d.stateCode = int(code->get<int64_t>());
    if (d.stateCode != 0 && d.stateCode < 100)
      return invalid(path + ".stateCode", "0 or a SIP status code");
  }
  auto local = participantFromJson(j, "local", path + ".local");
  if (!local) return local.error();
  d.local = std::move(*local);
  auto remote = participantFromJson(j, "remote", path + ".remote");
  if (!remote) return remote.error();
  d.remote = std::move(*remote);
  return d;
}

Result<std::vector<pbx::DialogInfo>> dialogsAt(const json& obj, const std::string& path) {
  std::vector<pbx::DialogInfo> out;
  const json* list = field(obj, "dialogs");
  if (list == nullptr || list->is_null()) return out; // idle
  if (!list->is_array()) return invalid(path, "must be an array");
  if (list->size() > kMaxPresenceDialogs) return invalid(path, "at most 16 dialogs");
  std::set<std::string> ids;
  size_t i = 0;
  for (const auto& e : *list) {
    std::string p = path + "[" + std::to_string(i++) + "]";
    auto d = dialogAt(e, p);
    if (!d) return d.error();
    if (!ids.insert(d->id).second) return invalid(p + ".id", "listed twice");
    out.push_back(std::move(*d));
  }
  return out;
}

json dialogsJson(const std::vector<pbx::DialogInfo>& dialogs) {
  json a = json::array();
  for (const auto& d : dialogs) a.push_back(toJson(d));
  return a;
}

} // namespace

json toJson(const pbx::DialogInfo& d) {
  return json{{"id", d.id},
              {"callId", d.callId},
              {"localTag", d.localTag},
              {"remoteTag", d.remoteTag},
              {"direction", pbx::dialogDirectionName(d.direction)},
              {"state", pbx::dialogStateName(d.state)},
              {"stateEvent", d.stateEvent},
              {"stateCode", d.stateCode},
              {"local", participantJson(d.local)},
              {"remote", participantJson(d.remote)}};
}

Result<pbx::DialogInfo> dialogFromJson(const json& j) {
  return dialogAt(j, "dialog");
}

json presenceMessage(const std::string& owner, const std::string& extension,
                     const std::vector<pbx::DialogInfo>& dialogs) {
  return json{{"t", "presence"},
              {"owner", owner},
              {"extension", extension},
              {"dialogs", dialogsJson(dialogs)}};
}

Result<PresenceUpdate> presenceFromJson(const json& j) {
  if (!j.is_object()) return invalid("presence", "must be an object");
  PresenceUpdate u;
  auto owner = validOwner(j);
  if (!owner) return owner.error();
  u.owner = std::move(*owner);
  auto ext = validExtension(j, "extension");
  if (!ext) return ext.error();
  u.extension = std::move(*ext);
  auto dialogs = dialogsAt(j, "dialogs");
  if (!dialogs) return dialogs.error();
  u.dialogs = std::move(*dialogs);
  return u;
}

json presenceSyncMessage(const std::string& owner, const std::vector<pbx::UserPresence>& users) {
  json list = json::array();
  for (const auto& p : users)
    list.push_back({{"extension", p.key.extension}, {"dialogs", dialogsJson(p.dialogs)}});
  return json{{"t", "presence-sync"}, {"owner", owner}, {"users", std::move(list)}};
}

json presenceSyncMessage(const std::string& owner, const std::vector<pbx::UserDialogs>& users) {
  json list = json::array();
  for (const auto& u : users)
    list.push_back({{"extension", u.extension}, {"dialogs", dialogsJson(u.dialogs)}});
  return json{{"t", "presence-sync"}, {"owner", owner}, {"users", std::move(list)}};
}

Result<PresenceSync> presenceSyncFromJson(const json& j) {
  if (!j.is_object()) return invalid("presence-sync", "must be an object");
  PresenceSync s;
  auto owner = validOwner(j);
  if (!owner) return owner.error();
  s.owner = std::move(*owner);
  const json* list = field(j, "users");
  if (list == nullptr || list->is_null()) return s;
  if (!list->is_array()) return invalid("users", "must be an array");
  if (list->size() > kMaxPresenceSyncUsers) return invalid("users", "too many users");
  std::set<std::string> seen;
  size_t i = 0;
  for (const auto& e : *list) {
    std::string path = "users[" + std::to_string(i++) + "]";
    if (!e.is_object()) return invalid(path, "must be an object");
    pbx::UserDialogs u;
    auto ext = validExtension(e, path + ".extension");
    if (!ext) return ext.error();
    u.extension = std::move(*ext);
    if (!seen.insert(u.extension).second) return invalid(path + ".extension", "listed twice");
    auto dialogs = dialogsAt(e, path + ".dialogs");
    if (!dialogs) return dialogs.error();
    u.dialogs = std::move(*dialogs);
    s.users.push_back(std::move(u));
  }
  return s;
}

json toJson(const pbx::CallOutcome& o) {
  json j{{"t", "call-outcome"},
         {"correlationId", o.correlationId},
         {"relatedCorrelationId", o.relatedCorrelationId},
         {"caller", o.caller},
         {"callerName", o.callerName},
         {"callerOwner", o.callerOwner},
         {"callee", o.callee},
         {"calleeName", o.calleeName},
         {"calleeOwner", o.calleeOwner},
         {"answeredBy", o.answeredBy},
         {"answeredByName", o.answeredByName},
         {"answeredByOwner", o.answeredByOwner},
         {"disposition", pbx::dispositionName(o.disposition)},
         {"answerMs", o.answerMs},
         {"fallbackNumber", o.fallbackNumber},
         {"fallbackCaller", o.fallbackCaller},
         {"fallbackMs", o.fallbackMs}};
  // A transfer's call (optional; nodes before it ignore the keys).
  if (!o.transferredBy.empty()) {
    j["transferredBy"] = o.transferredBy;
    j["transferTarget"] = o.transferTarget;
    j["transferCorrelationId"] = o.transferCorrelationId;
  }
  return j;
}

Result<pbx::CallOutcome> callOutcomeFromJson(const json& j) {
  if (!j.is_object()) return invalid("call-outcome", "must be an object");
  pbx::CallOutcome o;
  auto printableId = [&](const char* name, bool required) -> Result<std::string> {
    auto s = text(j, name, name, kMaxOutcomeFieldBytes);
    if (!s) return s;
    if (required && s->empty()) return invalid(name, "required");
    for (char c : *s)
      if (c <= 0x20 || c >= 0x7F) return invalid(name, "printable ASCII only");
    return s;
  };
  auto corr = printableId("correlationId", true);
  if (!corr) return corr.error();
  o.correlationId = std::move(*corr);
  auto related = printableId("relatedCorrelationId", false);
  if (!related) return related.error();
  o.relatedCorrelationId = std::move(*related);

  struct Party {
    const char *number, *name, *owner;
    std::string *numberOut, *nameOut, *ownerOut;
  };
  const Party parties[] = {
      {"caller", "callerName", "callerOwner", &o.caller, &o.callerName, &o.callerOwner},
      {"callee", "calleeName", "calleeOwner", &o.callee, &o.calleeName, &o.calleeOwner},
      {"answeredBy", "answeredByName", "answeredByOwner", &o.answeredBy, &o.answeredByName,
       &o.answeredByOwner},
  };
  for (const auto& p : parties) {
    auto number = text(j, p.number, p.number, kMaxOutcomeFieldBytes);
    if (!number) return number.error();
    auto name = text(j, p.name, p.name, kMaxOutcomeFieldBytes);
    if (!name) return name.error();
    auto owner = text(j, p.owner, p.owner, 64);
    if (!owner) return owner.error();
    if (auto r = pbx::validateOwner(p.owner, *owner); !r) return r.error();
    *p.numberOut = std::move(*number);
    *p.nameOut = std::move(*name);
    *p.ownerOut = std::move(*owner);
  }
  auto disposition = requiredText(j, "disposition", "disposition", 32);
  if (!disposition) return disposition.error();
  auto d = pbx::dispositionFromName(*disposition);
  if (!d) return invalid("disposition", "unknown value");
  o.disposition = *d;
  auto answer = optionalInt(j, "answerMs", 0, std::numeric_limits<int64_t>::max());
  if (!answer) return answer.error();
  o.answerMs = *answer;
  // Fallback over the external line (optional: absent from nodes before them).
  for (auto [name, out] : {std::pair{"fallbackNumber", &o.fallbackNumber},
                           std::pair{"fallbackCaller", &o.fallbackCaller}}) {
    auto number = text(j, name, name, kMaxOutcomeFieldBytes);
    if (!number) return number.error();
    *out = std::move(*number);
  }
  auto fallbackAt = optionalInt(j, "fallbackMs", 0, std::numeric_limits<int64_t>::max());
  if (!fallbackAt) return fallbackAt.error();
  o.fallbackMs = *fallbackAt;
  for (auto [name, out] : {std::pair{"transferredBy", &o.transferredBy},
                           std::pair{"transferTarget", &o.transferTarget}}) {
    auto v = text(j, name, name, kMaxOutcomeFieldBytes);
    if (!v) return v.error();
    *out = std::move(*v);
  }
  auto transferId = printableId("transferCorrelationId", false);
  if (!transferId) return transferId.error();
  o.transferCorrelationId = std::move(*transferId);
  return o;
}

} // namespace verbund::federation

#include "http/directory_json.h"

#include <algorithm>
#include <string_view>

namespace verbund::http {

namespace {

// Field names in errors echo client input: cut them short.
std::string fieldName(std::string_view prefix, const std::string& key) {
  std::string k = key.size() > 40 ? key.substr(0, 40) + "..." : key;
  return std::string(prefix) + k;
}

Result<void> takeString(const nlohmann::json& v, const char* field,
                        std::optional<std::string>& out) {
  if (!v.is_string()) return Error{400, std::string(field) + ": string expected"};
  out = v.get<std::string>();
  return {};
}

Result<void> takeBool(const nlohmann::json& v, const char* field, std::optional<bool>& out) {
  if (!v.is_boolean()) return Error{400, std::string(field) + ": true or false expected"};
  out = v.get<bool>();
  return {};
}

// A forwarding target: a string, or null for off.
Result<void> takeTarget(const nlohmann::json& v, const char* field,
                        std::optional<std::string>& out) {
  if (v.is_null()) {
    out = std::string();
    return {};
  }
  if (!v.is_string()) return Error{400, std::string(field) + ": string expected (\"\" is off)"};
  out = v.get<std::string>();
  return {};
}

Result<pbx::GroupMember> parseMember(const nlohmann::json& v) {
  pbx::GroupMember m;
  // Shorthand: a member may be given as its extension string (a member of this node).
  if (v.is_string()) {
    m.extension = v.get<std::string>();
    return m;
  }
  if (!v.is_object()) return Error{400, "members: objects {owner, extension, loggedIn} expected"};
  bool haveExtension = false;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const auto& key = it.key();
    if (key == "owner") {
      if (it->is_null()) continue;
      if (!it->is_string()) return Error{400, "members.owner: string expected"};
      m.owner = it->get<std::string>();
    } else if (key == "extension") {
      if (!it->is_string()) return Error{400, "members.extension: string expected"};
      m.extension = it->get<std::string>();
      haveExtension = true;
    } else if (key == "loggedIn") {
      if (!it->is_boolean()) return Error{400, "members.loggedIn: true or false expected"};
      m.loggedIn = it->get<bool>();
    } else {
      return Error{400, fieldName("members.", key) + ": unknown field"};
    }
  }
  if (!haveExtension) return Error{400, "members.extension: required"};
  return m;
}

} // namespace

nlohmann::json toJson(const pbx::Forwarding& f) {
  return {{"always", f.always},
          {"busy", f.busy},
          {"noAnswer", f.noAnswer},
          {"noAnswerSeconds", f.noAnswerSeconds},
          {"unregistered", f.unregistered}};
}

Result<pbx::ForwardingInput> parseForwarding(const nlohmann::json& v) {
  if (!v.is_object()) return Error{400, "forward: object expected"};
  pbx::ForwardingInput in;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const auto& key = it.key();
    Result<void> r;
    if (key == "always")
      r = takeTarget(*it, "forward.always", in.always);
    else if (key == "busy")
      r = takeTarget(*it, "forward.busy", in.busy);
    else if (key == "noAnswer")
      r = takeTarget(*it, "forward.noAnswer", in.noAnswer);
    else if (key == "unregistered")
      r = takeTarget(*it, "forward.unregistered", in.unregistered);
    else if (key == "noAnswerSeconds") {
      if (!it->is_number_integer())
        return Error{400, "forward.noAnswerSeconds: an integer from 5 to 120"};
      // Unsigned values beyond int64 wrap negative and fail the range check.
      in.noAnswerSeconds = it->is_number_unsigned()
                               ? int64_t(std::min<uint64_t>(it->get<uint64_t>(), uint64_t(1) << 40))
                               : it->get<int64_t>();
    } else
      r = Error{400, fieldName("forward.", key) + ": unknown field"};
    if (!r) return r.error();
  }
  return in;
}

Result<pbx::UserInput> parseUserFeatures(const nlohmann::json& body) {
  if (!body.is_object()) return Error{400, "body: JSON object expected"};
  pbx::UserInput in;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const auto& key = it.key();
    if (key == "dnd") {
      if (auto r = takeBool(*it, "dnd", in.dnd); !r) return r.error();
    } else if (key == "forward") {
      auto f = parseForwarding(*it);
      if (!f) return f.error();
      in.forward = std::move(*f);
    } else {
      return Error{400, fieldName("", key) + ": unknown field"};
    }
  }
  return in;
}

nlohmann::json toJson(const pbx::User& u) {
  return {{"id", u.id},
          {"owner", u.owner},
          {"extension", u.extension},
          {"displayName", u.displayName},
          {"externalNumber", u.externalNumber},
          {"sipUser", u.sipUser},
          {"language", u.language},
          {"shared", u.shared},
          {"dnd", u.dnd},
          {"forward", toJson(u.forward)},
          {"version", u.version}};
}

nlohmann::json toJson(const pbx::GroupMember& m) {
  return {{"owner", m.owner}, {"extension", m.extension}, {"loggedIn", m.loggedIn}};
}

nlohmann::json toJson(const pbx::Group& g) {
  auto members = nlohmann::json::array();
  for (const auto& m : g.members) members.push_back(toJson(m));
  return {{"id", g.id},         {"owner", g.owner},   {"number", g.number},  {"name", g.name},
          {"members", members}, {"shared", g.shared}, {"version", g.version}};
}

Result<pbx::UserInput> parseUserInput(const nlohmann::json& body) {
  if (!body.is_object()) return Error{400, "body: JSON object expected"};
  pbx::UserInput in;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const auto& key = it.key();
    Result<void> r;
    if (key == "extension")
      r = takeString(*it, "extension", in.extension);
    else if (key == "displayName")
      r = takeString(*it, "displayName", in.displayName);
    else if (key == "externalNumber")
      r = takeString(*it, "externalNumber", in.externalNumber);
    else if (key == "sipUser")
      r = takeString(*it, "sipUser", in.sipUser);
    else if (key == "sipPassword")
      r = takeString(*it, "sipPassword", in.sipPassword);
    else if (key == "language")
      r = takeString(*it, "language", in.language);
    else if (key == "shared")
      r = takeBool(*it, "shared", in.shared);
    else if (key == "dnd")
      r = takeBool(*it, "dnd", in.dnd);
    else if (key == "forward") {
      auto f = parseForwarding(*it);
      if (!f) return f.error();
      in.forward = std::move(*f);
    } else if (key == "id" || key == "owner" || key == "version")
      continue; // read-only echoes
    else
      r = Error{400, fieldName("", key) + ": unknown field"};
    if (!r) return r.error();
  }
  return in;
}

Result<pbx::GroupInput> parseGroupInput(const nlohmann::json& body) {
  if (!body.is_object()) return Error{400, "body: JSON object expected"};
  pbx::GroupInput in;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const auto& key = it.key();
    Result<void> r;
    if (key == "number")
      r = takeString(*it, "number", in.number);
    else if (key == "name")
      r = takeString(*it, "name", in.name);
    else if (key == "shared")
      r = takeBool(*it, "shared", in.shared);
    else if (key == "members") {
      if (!it->is_array()) return Error{400, "members: array expected"};
      if (it->size() > pbx::kMaxGroupMembers) return Error{400, "members: at most 100 members"};
      std::vector<pbx::GroupMember> members;
      for (const auto& m : *it) {
        auto pm = parseMember(m);
        if (!pm) return pm.error();
        members.push_back(std::move(*pm));
      }
      in.members = std::move(members);
    } else if (key == "id" || key == "owner" || key == "version") {
      continue;
    } else {
      r = Error{400, fieldName("", key) + ": unknown field"};
    }
    if (!r) return r.error();
  }
  return in;
}

} // namespace verbund::http

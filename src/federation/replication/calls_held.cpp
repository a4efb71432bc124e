#include "federation/replication/calls_held.h"

#include "pbx/directory/directory.h"

#include <algorithm>

namespace verbund::federation {

namespace {
Error invalid(const std::string& field, std::string_view reason) {
  return Error{400, "calls-held " + field + ": " + std::string(reason)};
}

bool printableId(const std::string& s) {
  return !s.empty() && s.size() <= kMaxHeldIdBytes &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}
} // namespace

nlohmann::json callsHeldMessage(const std::string& owner, const std::vector<std::string>& calls) {
  return {{"t", "calls-held"}, {"owner", owner}, {"calls", calls}};
}

Result<CallsHeld> callsHeldFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return invalid("message", "must be an object");
  CallsHeld out;
  auto owner = j.find("owner");
  if (owner == j.end() || !owner->is_string()) return invalid("owner", "must be a string");
  out.owner = owner->get<std::string>();
  if (auto r = pbx::validateOwner("owner", out.owner); !r) return r.error();
  if (out.owner.empty()) return invalid("owner", "required");
  auto calls = j.find("calls");
  if (calls == j.end() || !calls->is_array()) return invalid("calls", "must be an array");
  if (calls->size() > kMaxCallsHeld)
    return invalid("calls", "at most " + std::to_string(kMaxCallsHeld) + " entries");
  out.calls.reserve(calls->size());
  for (size_t i = 0; i < calls->size(); ++i) {
    const auto& v = (*calls)[i];
    std::string field = "calls[" + std::to_string(i) + "]";
    if (!v.is_string()) return invalid(field, "must be a string");
    const auto& s = v.get_ref<const std::string&>();
    if (!printableId(s))
      return invalid(field, "1.." + std::to_string(kMaxHeldIdBytes) + " printable ASCII bytes");
    out.calls.push_back(s);
  }
  std::sort(out.calls.begin(), out.calls.end());
  out.calls.erase(std::unique(out.calls.begin(), out.calls.end()), out.calls.end());
  return out;
}

} // namespace verbund::federation

#pragma once
// JSON form of directory records and inputs. Parsing is strict: unknown fields and wrong types are
// 400 errors naming the field; it never throws, whatever the bytes.
#include "base/result.h"
#include "pbx/directory/directory.h"

#include <nlohmann/json.hpp>

namespace verbund::http {

nlohmann::json toJson(const pbx::User& u);
nlohmann::json toJson(const pbx::Group& g);
nlohmann::json toJson(const pbx::GroupMember& m);
nlohmann::json toJson(const pbx::Forwarding& f);

// Types and known fields only; the field rules are pbx::validate*Input (the directory applies
// them again on every change).
Result<pbx::UserInput> parseUserInput(const nlohmann::json& body);
Result<pbx::GroupInput> parseGroupInput(const nlohmann::json& body);
// {"always","busy","noAnswer","noAnswerSeconds","unregistered"}: present keys only; null is "".
Result<pbx::ForwardingInput> parseForwarding(const nlohmann::json& v);
// The body of PUT /api/v1/users/{id}/features: {"dnd": bool, "forward": {...}} (both optional).
Result<pbx::UserInput> parseUserFeatures(const nlohmann::json& body);

} // namespace verbund::http

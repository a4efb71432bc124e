// Fuzzes the admin API's body handling: bytes -> parseJsonBody -> user/group input parsing ->
// the directory's field rules -> error rendering. None of it may throw or crash.
#include "http/api.h"
#include "http/directory_json.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace verbund;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = http::parseJsonBody(text);
  if (!body) {
    (void)http::dumpJson(http::errorBody(body.error()));
    return 0;
  }
  auto user = http::parseUserInput(*body);
  if (user) {
    (void)pbx::validateUserInput(*user, true);
    auto r = pbx::validateUserInput(*user, false);
    if (!r) (void)http::dumpJson(http::errorBody(r.error()));
  } else {
    (void)http::dumpJson(http::errorBody(user.error()));
  }
  auto group = http::parseGroupInput(*body);
  if (group) {
    auto r = pbx::validateGroupInput(*group, true);
    if (!r) (void)http::dumpJson(http::errorBody(r.error()));
    if (r && group->members) {
      for (const auto& m : *group->members) (void)http::dumpJson(http::toJson(m));
    }
  } else {
    (void)http::dumpJson(http::errorBody(group.error()));
  }
  return 0;
}

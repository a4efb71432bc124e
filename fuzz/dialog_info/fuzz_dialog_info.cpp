// Fuzzes the dialog-info parser (RFC 4235 §4) and the writer on whatever the parser accepts.
// Properties: nothing crashes; what we write parses; writing is a fixed point after one round
// (build(parse(build(parse(x)))) == build(parse(x))).
#include "pbx/presence/dialog_info_xml.h"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace verbund::pbx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto doc = parseDialogInfo(in);
  (void)cleanXmlText(in.substr(0, 4096));
  if (!doc) return 0;
  (void)lineStateOf(*doc);
  std::string once = buildDialogInfo(*doc);
  auto again = parseDialogInfo(once);
  if (!again) std::abort();
  if (again->dialogs.size() != doc->dialogs.size()) std::abort();
  if (buildDialogInfo(*again) != once) std::abort();
  return 0;
}

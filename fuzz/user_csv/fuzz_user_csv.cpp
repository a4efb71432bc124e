// Fuzzes the users CSV codec (bulk import): bytes -> parseCsv -> usersFromCsv -> fileRowErrors.
// Whatever the input: no crash, records in file order with rows that never go back, no field over
// the limit, every mapped row and error row inside the file, the import's errors (one per row,
// each repeating the row before) mapped to file rows in order.
#include "pbx/directory/user_csv.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

using namespace verbund;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t lines = 1 + size_t(std::count(text.begin(), text.end(), '\n'));
  auto recs = pbx::parseCsv(text, 1000);
  if (recs) {
    check(recs->size() <= 1000);
    size_t last = 0;
    for (const auto& r : *recs) {
      check(r.row > last && r.row <= lines);
      last = r.row;
      check(!r.fields.empty());
      for (const auto& f : r.fields) check(f.size() <= pbx::kMaxCsvField);
    }
  } else {
    check(recs.error().code == 400 || recs.error().code == 413);
  }
  auto users = pbx::usersFromCsv(text);
  if (users) {
    for (const auto& r : users->rows) check(r.row >= 2 && r.row <= lines);
    for (const auto& e : users->errors) check(e.row >= 1 && e.row <= lines);
    std::vector<pbx::UserRowError> import;
    for (size_t i = 1; i <= users->rows.size(); ++i) import.push_back({i, "extension", "", i - 1});
    auto mapped = pbx::fileRowErrors(*users, import);
    check(mapped.size() == users->errors.size() + import.size());
    for (size_t i = 0; i < mapped.size(); ++i) {
      check(mapped[i].row >= 1 && mapped[i].row <= lines && mapped[i].otherRow < mapped[i].row);
      check(i == 0 || mapped[i - 1].row <= mapped[i].row);
    }
  } else {
    check(users.error().code == 400 || users.error().code == 413);
  }
  return 0;
}

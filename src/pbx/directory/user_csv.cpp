#include "pbx/directory/user_csv.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

namespace verbund::pbx {

namespace {

Error rowErr(size_t row, const std::string& reason) {
  return Error{400, "row " + std::to_string(row) + ": " + reason};
}

// Offset of the first byte that is not well-formed UTF-8 (RFC 3629), or npos.
size_t invalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = uint8_t(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0)
      n = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
      n = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
      n = 3, cp = c & 0x07, min = 0x10000;
    else
      return i;
    if (i + n >= s.size()) return i;
    for (size_t k = 1; k <= n; ++k) {
      auto d = uint8_t(s[i + k]);
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

size_t lineOf(std::string_view text, size_t offset) {
  return 1 + size_t(std::count(text.begin(), text.begin() + ptrdiff_t(offset), '\n'));
}

std::optional<bool> parseBool(const std::string& v) {
  std::string l;
  for (char c : v) l += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (l == "true" || l == "yes" || l == "1") return true;
  if (l == "false" || l == "no" || l == "0") return false;
  return std::nullopt;
}

} // namespace

Result<std::vector<CsvRecord>> parseCsv(std::string_view text, size_t maxRecords) {
  if (text.size() > kMaxCsvBytes)
    return Error{413, "file: larger than " + std::to_string(kMaxCsvBytes) + " bytes"};
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  if (auto bad = invalidUtf8(text); bad != std::string_view::npos)
    return rowErr(lineOf(text, bad), "not UTF-8");

  std::vector<CsvRecord> out;
  size_t i = 0, line = 1;
  while (i < text.size()) {
    CsvRecord rec;
    rec.row = line;
    bool anyQuoted = false;
    for (;;) { // one field per pass
      std::string field;
      if (i < text.size() && text[i] == '"') {
        anyQuoted = true;
        ++i;
        for (;;) {
          if (i >= text.size()) return rowErr(rec.row, "quoted field not closed");
          char c = text[i++];
          if (c == '"') {
            if (i < text.size() && text[i] == '"') {
              field += '"';
              ++i;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
          if (field.size() > kMaxCsvField)
            return rowErr(rec.row, "field longer than " + std::to_string(kMaxCsvField) + " bytes");
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' &&
            !(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n'))
          return rowErr(rec.row, "text after a closing quote");
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' &&
               !(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
          if (text[i] == '"') return rowErr(rec.row, "quote inside an unquoted field");
          field += text[i++];
          if (field.size() > kMaxCsvField)
            return rowErr(rec.row, "field longer than " + std::to_string(kMaxCsvField) + " bytes");
        }
      }
      rec.fields.push_back(std::move(field));
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      // End of record: CRLF, LF or the end of the text.
      if (i < text.size() && text[i] == '\r') ++i;
      if (i < text.size() && text[i] == '\n') {
        ++i;
        ++line;
      }
      break;
    }
    if (!anyQuoted && rec.fields.size() == 1 && rec.fields[0].empty()) continue; // blank line
    if (out.size() == maxRecords)
      return Error{413, "row " + std::to_string(rec.row) + ": more than " +
                            std::to_string(maxRecords) + " records"};
    out.push_back(std::move(rec));
  }
  return out;
}

Result<UserCsv> usersFromCsv(std::string_view text) {
  auto records = parseCsv(text, kMaxImportRows + 1);
  if (!records) return records.error();
  UserCsv out;
  if (records->empty()) {
    out.errors.push_back({1, "", "no header row"});
    return out;
  }
  const CsvRecord& header = records->front();
  constexpr size_t kNone = size_t(-1);
  std::array<size_t, std::size(kUserCsvColumns)> col;
  col.fill(kNone);
  for (size_t f = 0; f < header.fields.size(); ++f) {
    const std::string& name = header.fields[f];
    auto it = std::find(std::begin(kUserCsvColumns), std::end(kUserCsvColumns), name);
    if (it == std::end(kUserCsvColumns)) {
      out.errors.push_back({header.row, name, "unknown column"});
      continue;
    }
    size_t k = size_t(it - std::begin(kUserCsvColumns));
    if (col[k] != kNone) out.errors.push_back({header.row, name, "column given twice"});
    col[k] = f;
  }
  for (const char* required : {"extension", "displayName", "sipPassword"}) {
    auto it = std::find(std::begin(kUserCsvColumns), std::end(kUserCsvColumns), required);
    if (col[size_t(it - std::begin(kUserCsvColumns))] == kNone)
      out.errors.push_back({header.row, required, "required column missing"});
  }
  if (!out.errors.empty()) return out;

  for (size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& rec = (*records)[r];
    if (rec.fields.size() != header.fields.size()) {
      out.errors.push_back({rec.row, "",
                            std::to_string(rec.fields.size()) + " fields, the header has " +
                                std::to_string(header.fields.size())});
      continue;
    }
    auto cell = [&](size_t k) -> std::optional<std::string> {
      if (col[k] == kNone || rec.fields[col[k]].empty()) return std::nullopt;
      return rec.fields[col[k]];
    };
    UserCsvRow row;
    row.row = rec.row;
    row.input.extension = cell(0);
    row.input.displayName = cell(1);
    row.input.sipUser = cell(2);
    row.input.sipPassword = cell(3);
    row.input.externalNumber = cell(4);
    row.input.language = cell(5);
    if (auto shared = cell(6)) {
      auto b = parseBool(*shared);
      if (!b) {
        out.errors.push_back({rec.row, "shared", "true or false expected"});
        continue;
      }
      row.input.shared = *b;
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

std::vector<UserRowError> fileRowErrors(const UserCsv& csv,
                                        const std::vector<UserRowError>& importErrors) {
  auto fileRow = [&](size_t i) { return i >= 1 && i <= csv.rows.size() ? csv.rows[i - 1].row : 0; };
  std::vector<UserRowError> out = csv.errors;
  out.reserve(out.size() + importErrors.size());
  for (const auto& e : importErrors) {
    UserRowError f{fileRow(e.row), e.field, e.error, fileRow(e.otherRow)};
    if (e.otherRow) f.error = "also in row " + std::to_string(f.otherRow);
    out.push_back(std::move(f));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const UserRowError& a, const UserRowError& b) { return a.row < b.row; });
  return out;
}

} // namespace verbund::pbx

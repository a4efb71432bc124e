#pragma once
// Users as CSV (bulk import, issue 14): a pure codec, text in, rows out; no I/O.
//
// CSV per RFC 4180: fields separated by ',', records by CRLF or LF; a field in double quotes may
// hold ',', line breaks and "" (one quote). UTF-8 only (a leading byte order mark is skipped).
// The first record is the header; its names pick the columns in any order:
//   extension, displayName, sipPassword (required), sipUser, externalNumber, language, shared
// An empty cell means "not given" (sipUser: the extension, language: de, shared: true); shared
// takes true/false/yes/no/1/0. Records that are entirely empty are skipped.
// Rows are numbered by the line of the file on which the record starts: the header is row 1,
// and without quoted line breaks row N is line N.
#include "base/result.h"
#include "pbx/directory/directory.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx {

inline constexpr size_t kMaxCsvBytes = 16 << 20;
inline constexpr size_t kMaxCsvField = 1024;

struct CsvRecord {
  size_t row = 0; // line on which the record starts (1-based)
  std::vector<std::string> fields;
};

// The records of `text`, at most maxRecords. Error 400 "row N: reason" for an unterminated
// quoted field, a quote inside an unquoted field, text after a closing quote, a field longer than
// kMaxCsvField or invalid UTF-8; 413 for more than maxRecords or text over kMaxCsvBytes.
Result<std::vector<CsvRecord>> parseCsv(std::string_view text, size_t maxRecords);

struct UserCsvRow {
  size_t row = 0;
  UserInput input;
};
struct UserCsv {
  std::vector<UserCsvRow> rows;     // every data record that maps to a UserInput
  std::vector<UserRowError> errors; // header problems (row 1), wrong field counts, bad "shared"
};

inline constexpr std::string_view kUserCsvColumns[] = {
    "extension", "displayName", "sipUser", "sipPassword", "externalNumber", "language", "shared"};

// Parses and maps the file; a syntax error of the CSV itself is the Error (400). At most
// kMaxImportRows data records. Field rules (extension digits, ...) are the directory's, checked
// by the import, not here.
Result<UserCsv> usersFromCsv(std::string_view text);

// The errors of one CSV import in the file's rows, sorted by row: csv.errors plus the errors of
// Directory::importUsers over csv.rows' inputs (whose row and otherRow count csv.rows from 1; a
// repeat's "also in row N" is renamed to the file's row too). True to the file for every client,
// so the API, the CLI and the web UI name the same rows.
std::vector<UserRowError> fileRowErrors(const UserCsv& csv,
                                        const std::vector<UserRowError>& importErrors);

} // namespace verbund::pbx

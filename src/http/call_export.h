#pragma once
// Call records in the admin API: their JSON form (also of GET /api/v1/calls) and the export
//   GET /api/v1/calls/export?format=csv|json&extension=&disposition=&from=&to=
// with the filters of GET /api/v1/calls (from/to: start time in Unix ms, [from, to)), oldest
// first, every matching record (no limit). The answer is streamed: the records are read in
// pages of kExportPage on the node's loop and sent as chunks, so memory stays flat for any
// range. CSV columns: callCsvHeader() (README "Call records export"); JSON: {"calls": [...]}
// with the objects of GET /api/v1/calls.
#include "http/admin_server.h"
#include "pbx/calllog/call_log.h"

#include <nlohmann/json.hpp>
#include <string>

namespace verbund::http {

inline constexpr int kExportPage = 1000;

nlohmann::json callRecordJson(const pbx::CallRecord& record);

// The header line and one line of the CSV (RFC 4180: CRLF line ends, fields with a comma, quote
// or line break quoted, quotes doubled; a field starting with '=', '@', TAB or CR gets a leading
// apostrophe so that a spreadsheet does not run a caller name as a formula).
std::string callCsvHeader();
std::string callCsvRow(const pbx::CallRecord& record);
// "2026-01-01T00:00:00.000Z"; "" for 0.
std::string isoTime(int64_t unixMs);

void addCallExportRoute(AdminServer& server, pbx::CallLog& log);

} // namespace verbund::http

#pragma once
// application/dialog-info+xml (RFC 4235 §4) writing and reading, with pugixml.
//
// Writing escapes everything and first cleans each string (valid UTF-8, no control characters,
// bounded length), because identities come from untrusted SIP. Reading never throws and bounds
// what it accepts; every string it returns is cleaned the same way, so that
// build(parse(build(x))) == build(x).
//
// Line state extension. RFC 4235 has no "unknown"; we write
//   <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
//                xmlns:vb="urn:verbund:params:xml:ns:dialog-info-ext" vb:line="unknown" ...>
// The dialog-info element allows attributes of other namespaces (RFC 4235 §4.1, schema
// <xs:anyAttribute namespace="##other">), so phones ignore it. An unknown line is a full-state
// document without dialogs: a phone turns its BLF lamp off (never a stale "busy"); our own
// consumers (federation, admin UI) read vb:line.
#include "base/result.h"
#include "pbx/presence/dialog_info.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx {

inline constexpr std::string_view kDialogInfoContentType = "application/dialog-info+xml";
inline constexpr std::string_view kDialogInfoNamespace = "urn:ietf:params:xml:ns:dialog-info";
inline constexpr std::string_view kVerbundDialogInfoNamespace =
    "urn:verbund:params:xml:ns:dialog-info-ext";

// Bounds for untrusted documents and strings.
inline constexpr size_t kMaxDialogInfoBytes = 64 * 1024;
inline constexpr size_t kMaxDialogsPerDocument = 64;
inline constexpr size_t kMaxFieldBytes = 512;

// One document (RFC 4235 §4.1: <dialog-info>).
struct DialogInfoDocument {
  uint32_t version = 0;          // RFC 4235 §4.1: starts at 0, +1 per document of a subscription
  bool full = true;              // state="full" | "partial"
  std::string entity;            // the observed user's URI
  std::optional<LineState> line; // our extension attribute, when present
  std::vector<DialogInfo> dialogs;
};

// The document as text (UTF-8, with XML declaration). `line`, when set, is written as vb:line.
std::string buildDialogInfo(const DialogInfoDocument& doc);

// Parses a document. Elements are matched by local name (any namespace prefix); the root must be
// <dialog-info> with version, state and entity. Errors: 400-style messages.
Result<DialogInfoDocument> parseDialogInfo(std::string_view xml);

// The line state a document shows: its vb:line when present, else derived from its dialogs.
LineState lineStateOf(const DialogInfoDocument& doc);

// Cleans an untrusted string for XML: invalid UTF-8 becomes U+FFFD, control characters become
// spaces, non-characters U+FFFE/U+FFFF are dropped, cut to kMaxFieldBytes on a character
// boundary, surrounding spaces trimmed. Idempotent.
std::string cleanXmlText(std::string_view s);

} // namespace verbund::pbx

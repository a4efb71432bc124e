#include "pbx/presence/dialog_info_xml.h"

#include <pugixml.hpp>

#include <charconv>

namespace verbund::pbx {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD"; // U+FFFD

// Length and code point of the UTF-8 sequence at s[i], or 0 when it is not valid UTF-8 (overlong
// forms, surrogates and values above U+10FFFF are invalid, RFC 3629 §3).
size_t utf8Sequence(std::string_view s, size_t i, char32_t& cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  size_t len;
  char32_t min;
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::string_view localName(const char* name) {
  std::string_view n(name);
  auto colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

std::string_view prefixOf(const char* name) {
  std::string_view n(name);
  auto colon = n.find(':');
  return colon == std::string_view::npos ? std::string_view{} : n.substr(0, colon);
}

pugi::xml_node childNamed(pugi::xml_node parent, std::string_view name) {
  for (pugi::xml_node c = parent.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && localName(c.name()) == name) return c;
  return {};
}

std::optional<uint32_t> parseU32(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v > UINT32_MAX) return std::nullopt;
  return uint32_t(v);
}

void setAttr(pugi::xml_node n, const char* name, std::string_view value) {
  std::string v = cleanXmlText(value);
  if (!v.empty()) n.append_attribute(name).set_value(v.c_str());
}

void writeParticipant(pugi::xml_node dialog, const char* name, const Participant& p) {
  std::string identity = cleanXmlText(p.identity);
  std::string target = cleanXmlText(p.target);
  if (identity.empty() && target.empty()) return;
  pugi::xml_node n = dialog.append_child(name);
  if (!identity.empty()) {
    // RFC 4235 §4.1.6.1: <identity display="...">URI</identity>
    pugi::xml_node id = n.append_child("identity");
    setAttr(id, "display", p.display);
    id.text().set(identity.c_str());
  }
  if (!target.empty()) n.append_child("target").append_attribute("uri").set_value(target.c_str());
}

Participant readParticipant(pugi::xml_node dialog, std::string_view name) {
  Participant p;
  pugi::xml_node n = childNamed(dialog, name);
  if (!n) return p;
  if (pugi::xml_node id = childNamed(n, "identity")) {
    p.identity = cleanXmlText(id.child_value());
    p.display = cleanXmlText(id.attribute("display").value());
  }
  if (pugi::xml_node t = childNamed(n, "target"))
    p.target = cleanXmlText(t.attribute("uri").value());
  if (p.identity.empty()) p.display.clear(); // a name without a URI is not written either
  return p;
}

struct StringWriter final : pugi::xml_writer {
  std::string out;
  void write(const void* data, size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};

} // namespace

std::string cleanXmlText(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxFieldBytes));
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    size_t len = utf8Sequence(s, i, cp);
    std::string_view piece;
    char space = ' ';
    if (len == 0) {
      piece = kReplacement;
      len = 1;
    } else if (cp < 0x20 || cp == 0x7F) {
      piece = std::string_view(&space, 1); // XML 1.0 §2.2: no control characters
    } else if (cp == 0xFFFE || cp == 0xFFFF) {
      piece = {}; // not XML characters
    } else {
      piece = s.substr(i, len);
    }
    if (out.size() + piece.size() > kMaxFieldBytes) break;
    out.append(piece);
    i += len;
  }
  size_t b = out.find_first_not_of(' ');
  if (b == std::string::npos) return {};
  size_t e = out.find_last_not_of(' ');
  return out.substr(b, e - b + 1);
}

std::string buildDialogInfo(const DialogInfoDocument& doc) {
  pugi::xml_document x;
  pugi::xml_node decl = x.append_child(pugi::node_declaration);
  decl.append_attribute("version").set_value("1.0");
  decl.append_attribute("encoding").set_value("UTF-8");
  // RFC 4235 §4.1: <dialog-info xmlns=... version=... state=... entity=...>
  pugi::xml_node root = x.append_child("dialog-info");
  root.append_attribute("xmlns").set_value(std::string(kDialogInfoNamespace).c_str());
  if (doc.line)
    root.append_attribute("xmlns:vb").set_value(std::string(kVerbundDialogInfoNamespace).c_str());
  root.append_attribute("version").set_value(std::to_string(doc.version).c_str());
  root.append_attribute("state").set_value(doc.full ? "full" : "partial");
  root.append_attribute("entity").set_value(cleanXmlText(doc.entity).c_str());
  if (doc.line)
    root.append_attribute("vb:line").set_value(std::string(lineStateName(*doc.line)).c_str());
  size_t n = 0;
  for (const DialogInfo& d : doc.dialogs) {
    if (n == kMaxDialogsPerDocument) break; // our own parser's bound
    pugi::xml_node dn = root.append_child("dialog");
    std::string id = cleanXmlText(d.id);
    if (id.empty()) id = "d" + std::to_string(n); // RFC 4235 §4.1.1: id is required
    ++n;
    dn.append_attribute("id").set_value(id.c_str());
    setAttr(dn, "call-id", d.callId);
    setAttr(dn, "local-tag", d.localTag);
    setAttr(dn, "remote-tag", d.remoteTag);
    if (d.direction != DialogDirection::None)
      dn.append_attribute("direction")
          .set_value(std::string(dialogDirectionName(d.direction)).c_str());
    // RFC 4235 §4.1.2: <state event="..." code="...">early</state>
    pugi::xml_node st = dn.append_child("state");
    if (d.state == DialogState::Terminated) {
      setAttr(st, "event", d.stateEvent);
      if (d.stateCode >= 100 && d.stateCode <= 699)
        st.append_attribute("code").set_value(d.stateCode);
    }
    st.text().set(std::string(dialogStateName(d.state)).c_str());
    writeParticipant(dn, "local", d.local);
    writeParticipant(dn, "remote", d.remote);
  }
  StringWriter w;
  x.save(w, "  ", pugi::format_indent, pugi::encoding_utf8);
  return std::move(w.out);
}

Result<DialogInfoDocument> parseDialogInfo(std::string_view xml) {
  if (xml.size() > kMaxDialogInfoBytes) return makeError(413, "dialog-info document too large");
  pugi::xml_document x;
  pugi::xml_parse_result pr =
      x.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_auto);
  if (!pr) return makeError(400, std::string("dialog-info: ") + pr.description());
  pugi::xml_node root = x.document_element();
  if (!root || localName(root.name()) != "dialog-info")
    return makeError(400, "dialog-info: root is not <dialog-info>");
  // The namespace of the root, when declared, must be RFC 4235's.
  std::string_view prefix = prefixOf(root.name());
  std::string nsAttr = prefix.empty() ? "xmlns" : "xmlns:" + std::string(prefix);
  if (pugi::xml_attribute ns = root.attribute(nsAttr.c_str());
      ns && std::string_view(ns.value()) != kDialogInfoNamespace)
    return makeError(400, "dialog-info: wrong namespace");

  DialogInfoDocument doc;
  auto version = parseU32(root.attribute("version").value());
  if (!version) return makeError(400, "dialog-info: bad version");
  doc.version = *version;
  std::string_view state = root.attribute("state").value();
  if (state == "full")
    doc.full = true;
  else if (state == "partial")
    doc.full = false;
  else
    return makeError(400, "dialog-info: bad state");
  if (!root.attribute("entity")) return makeError(400, "dialog-info: no entity");
  doc.entity = cleanXmlText(root.attribute("entity").value());

  // Our line-state extension, under whatever prefix binds our namespace.
  for (pugi::xml_attribute a = root.first_attribute(); a; a = a.next_attribute()) {
    std::string_view name = a.name();
    if (name.substr(0, 6) != "xmlns:" || std::string_view(a.value()) != kVerbundDialogInfoNamespace)
      continue;
    std::string lineAttr = std::string(name.substr(6)) + ":line";
    LineState ls;
    if (parseLineState(root.attribute(lineAttr.c_str()).value(), ls)) doc.line = ls;
    break;
  }

  for (pugi::xml_node dn = root.first_child(); dn; dn = dn.next_sibling()) {
    if (dn.type() != pugi::node_element || localName(dn.name()) != "dialog") continue;
    if (doc.dialogs.size() == kMaxDialogsPerDocument)
      return makeError(413, "dialog-info: too many dialogs");
    DialogInfo d;
    d.id = cleanXmlText(dn.attribute("id").value());
    if (d.id.empty()) return makeError(400, "dialog-info: dialog without id");
    d.callId = cleanXmlText(dn.attribute("call-id").value());
    d.localTag = cleanXmlText(dn.attribute("local-tag").value());
    d.remoteTag = cleanXmlText(dn.attribute("remote-tag").value());
    std::string_view dir = dn.attribute("direction").value();
    d.direction = dir == "initiator"   ? DialogDirection::Initiator
                  : dir == "recipient" ? DialogDirection::Recipient
                                       : DialogDirection::None;
    pugi::xml_node st = childNamed(dn, "state");
    if (!st) return makeError(400, "dialog-info: dialog without state");
    if (!parseDialogState(cleanXmlText(st.child_value()), d.state))
      return makeError(400, "dialog-info: bad dialog state");
    d.stateEvent = cleanXmlText(st.attribute("event").value());
    if (auto code = parseU32(st.attribute("code").value()); code && *code >= 100 && *code <= 699)
      d.stateCode = int(*code);
    if (d.state != DialogState::Terminated) d.stateEvent.clear(), d.stateCode = 0;
    d.local = readParticipant(dn, "local");
    d.remote = readParticipant(dn, "remote");
    doc.dialogs.push_back(std::move(d));
  }
  return doc;
}

LineState lineStateOf(const DialogInfoDocument& doc) {
  return doc.line ? *doc.line : deriveLineState(doc.dialogs);
}

} // namespace verbund::pbx

#include "pbx/calls/sdp.h"

#include <algorithm>
#include <charconv>

namespace verbund::pbx::sdp {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    auto e = s.find(sep, start);
    if (e == std::string_view::npos) e = s.size();
    if (e > start) out.push_back(s.substr(start, e - start));
    start = e + 1;
  }
  return out;
}

std::optional<int> toInt(std::string_view s) {
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// RFC 3551 static payload types that phones commonly offer without rtpmap.
std::string staticEncoding(int pt) {
  switch (pt) {
  case 0:
    return "pcmu/8000";
  case 8:
    return "pcma/8000";
  case 9:
    return "g722/8000";
  case 18:
    return "g729/8000";
  case 3:
    return "gsm/8000";
  case 4:
    return "g723/8000";
  default:
    return {};
  }
}

bool sameCodec(const Codec& a, const Codec& b) {
  if (!a.encoding.empty() && !b.encoding.empty()) return a.encoding == b.encoding;
  return a.payload == b.payload && a.payload < 96;
}

} // namespace

std::optional<Description> parse(std::string_view text) {
  Description d;
  Media* cur = nullptr;
  for (auto rawLine : split(text, '\n')) {
    std::string_view line = rawLine;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 2 || line[1] != '=') continue;
    char kind = line[0];
    std::string_view v = line.substr(2);
    if (kind == 'c') {
      auto parts = split(v, ' ');
      if (parts.size() < 3) return std::nullopt;
      std::string addr(parts[2].substr(0, parts[2].find('/')));
      if (cur) {
        cur->address = addr;
        cur->addrType = std::string(parts[1]);
      } else {
        d.address = addr;
        d.addrType = std::string(parts[1]);
      }
    } else if (kind == 'm') {
      auto parts = split(v, ' ');
      if (parts.size() < 3) return std::nullopt;
      Media m;
      m.type = std::string(parts[0]);
      auto port = toInt(parts[1].substr(0, parts[1].find('/')));
      if (!port || *port < 0 || *port > 65535) return std::nullopt;
      m.port = *port;
      m.proto = std::string(parts[2]);
      for (size_t i = 3; i < parts.size(); ++i) {
        auto pt = toInt(parts[i]);
        if (!pt || *pt < 0 || *pt > 127) continue;
        m.codecs.push_back(Codec{*pt, staticEncoding(*pt), {}});
      }
      d.media.push_back(std::move(m));
      cur = &d.media.back();
    } else if (kind == 'a' &&
               (v == "sendrecv" || v == "sendonly" || v == "recvonly" || v == "inactive")) {
      (cur ? cur->direction : d.direction) = std::string(v);
    } else if (kind == 'a' && cur) {
      if (v.substr(0, 7) == "rtpmap:" || v.substr(0, 5) == "fmtp:") {
        bool rtpmap = v[0] == 'r';
        v.remove_prefix(rtpmap ? 7 : 5);
        auto sp = v.find(' ');
        if (sp == std::string_view::npos) continue;
        auto pt = toInt(v.substr(0, sp));
        if (!pt) continue;
        for (auto& c : cur->codecs) {
          if (c.payload != *pt) continue;
          if (rtpmap) {
            // "PCMU/8000[/channels]": compare name and clock rate
            auto enc = lower(v.substr(sp + 1));
            auto second = enc.find('/', enc.find('/') + 1);
            c.encoding = enc.substr(0, second);
          } else {
            c.fmtp = std::string(v.substr(sp + 1));
          }
        }
      }
    }
  }
  if (d.media.empty()) return std::nullopt;
  for (auto& m : d.media)
    if (m.address.empty()) {
      m.address = d.address;
      m.addrType = d.addrType;
    }
  return d;
}

std::string_view directionOf(const Description& d, const Media& m) {
  if (!m.direction.empty()) return m.direction;
  if (!d.direction.empty()) return d.direction;
  return "sendrecv";
}

bool holdsOtherParty(const Description& offer) {
  bool audio = false;
  for (const auto& m : offer.media) {
    if (lower(m.type) != "audio" || m.port == 0) continue;
    audio = true;
    auto dir = directionOf(offer, m);
    // RFC 2543 §B.5 (kept in RFC 3264 §8.4 for compatibility): c=0.0.0.0 holds.
    bool nullAddress = m.address == "0.0.0.0";
    if (!nullAddress && (dir == "sendrecv" || dir == "recvonly")) return false;
  }
  return audio;
}

bool holdsOtherParty(std::string_view offerText) {
  auto d = parse(offerText);
  return d && holdsOtherParty(*d);
}

std::optional<std::string> answerFrom(const Description& offer, const Description& peer,
                                      uint64_t sessionVersion) {
  std::string addrType = peer.media.empty() ? "IP4" : peer.media[0].addrType;
  std::string addr = peer.media.empty() ? peer.address : peer.media[0].address;
  std::string out = "v=0\r\no=verbund " + std::to_string(sessionVersion) + " " +
                    std::to_string(sessionVersion) + " IN " + addrType + " " + addr +
                    "\r\ns=-\r\nt=0 0\r\n";
  bool kept = false;
  std::vector<bool> used(peer.media.size(), false);
  for (const auto& om : offer.media) {
    const Media* pm = nullptr;
    for (size_t i = 0; i < peer.media.size(); ++i) {
      // A stream without a connection address (none at media or session level) is unusable.
      if (!used[i] && peer.media[i].type == om.type && peer.media[i].port != 0 &&
          !peer.media[i].address.empty()) {
        pm = &peer.media[i];
        used[i] = true;
        break;
      }
    }
    std::vector<const Codec*> common;
    if (pm) {
      for (const auto& oc : om.codecs)
        if (std::any_of(pm->codecs.begin(), pm->codecs.end(),
                        [&](const Codec& pc) { return sameCodec(oc, pc); }))
          common.push_back(&oc);
    }
    if (!pm || common.empty()) {
      // RFC 3264 §6: a rejected stream keeps its m= line with port 0.
      out += "m=" + om.type + " 0 " + om.proto;
      for (const auto& c : om.codecs) out += " " + std::to_string(c.payload);
      out += "\r\n";
      continue;
    }
    kept = true;
    out += "m=" + om.type + " " + std::to_string(pm->port) + " " + om.proto;
    for (const auto* c : common) out += " " + std::to_string(c->payload);
    out += "\r\nc=IN " + pm->addrType + " " + pm->address + "\r\n";
    for (const auto* c : common) {
      if (!c->encoding.empty()) {
        // Keep the offer's payload numbers (RFC 3264 §6.1) with the codec's proper name.
        std::string enc = c->encoding;
        if (enc.rfind("pcmu", 0) == 0 || enc.rfind("pcma", 0) == 0 || enc.rfind("g7", 0) == 0)
          for (auto& ch : enc) ch = char(std::toupper(static_cast<unsigned char>(ch)));
        out += "a=rtpmap:" + std::to_string(c->payload) + " " + enc + "\r\n";
      }
      if (!c->fmtp.empty()) out += "a=fmtp:" + std::to_string(c->payload) + " " + c->fmtp + "\r\n";
    }
    out += "a=" + (pm->direction.empty() ? std::string("sendrecv") : pm->direction) + "\r\n";
  }
  if (!kept) return std::nullopt;
  return out;
}

} // namespace verbund::pbx::sdp

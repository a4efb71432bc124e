#include "media/music_on_hold.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sys/stat.h>

namespace verbund::media {

namespace {

uint32_t le32(std::string_view b, size_t at) {
  return uint32_t(uint8_t(b[at])) | uint32_t(uint8_t(b[at + 1])) << 8 |
         uint32_t(uint8_t(b[at + 2])) << 16 | uint32_t(uint8_t(b[at + 3])) << 24;
}
uint16_t le16(std::string_view b, size_t at) {
  return uint16_t(uint8_t(b[at]) | uint8_t(b[at + 1]) << 8);
}
void put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += char((v >> (8 * i)) & 0xff);
}
void put16(std::string& out, uint16_t v) {
  out += char(v & 0xff);
  out += char(v >> 8);
}

Error bad(std::string what) {
  return makeError(400, "not a WAV file rtpengine plays: " + what);
}

constexpr uint16_t kPcm = 1, kAlaw = 6, kUlaw = 7, kExtensible = 0xfffe;
constexpr size_t kHeaderReadBytes = 64 * 1024; // the data chunk must start within this

} // namespace

const char* wavFormatName(uint16_t format) {
  switch (format) {
  case kPcm:
    return "pcm";
  case kAlaw:
    return "alaw";
  case kUlaw:
    return "ulaw";
  default:
    return "unknown";
  }
}

// RIFF WAVE: "RIFF" size "WAVE", then chunks (id, little-endian size, data padded to even size).
Result<WavInfo> parseWavHeader(std::string_view b, uint64_t fileSize) {
  if (b.size() < 12 || b.substr(0, 4) != "RIFF" || b.substr(8, 4) != "WAVE")
    return bad("no RIFF/WAVE header");
  WavInfo info;
  bool haveFmt = false;
  size_t at = 12;
  while (true) {
    if (at + 8 > b.size()) return bad(haveFmt ? "no data chunk" : "no fmt chunk");
    std::string_view id = b.substr(at, 4);
    uint32_t size = le32(b, at + 4);
    size_t body = at + 8;
    if (id == "fmt ") {
      if (haveFmt) return bad("two fmt chunks");
      if (size < 16 || body + 16 > b.size()) return bad("short fmt chunk");
      info.format = le16(b, body);
      info.channels = le16(b, body + 2);
      info.sampleRate = le32(b, body + 4);
      info.bitsPerSample = le16(b, body + 14);
      if (info.format == kExtensible) {
        // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
        if (size < 40 || body + 26 > b.size()) return bad("short extensible fmt chunk");
        info.format = le16(b, body + 24);
      }
      haveFmt = true;
    } else if (id == "data") {
      if (!haveFmt) return bad("data before fmt");
      break;
    }
    uint64_t next = uint64_t(body) + size + (size & 1);
    if (next > b.size()) return bad(haveFmt ? "no data chunk" : "no fmt chunk");
    at = size_t(next);
  }
  if (info.format != kPcm && info.format != kAlaw && info.format != kUlaw)
    return bad("audio format " + std::to_string(info.format) + " (want PCM, A-law or µ-law)");
  if (info.channels < 1 || info.channels > 2)
    return bad(std::to_string(info.channels) + " channels (want 1 or 2)");
  if (info.sampleRate < 8000 || info.sampleRate > 48000)
    return bad("sample rate " + std::to_string(info.sampleRate) + " (want 8000 to 48000)");
  bool pcmBits = info.bitsPerSample == 8 || info.bitsPerSample == 16;
  if ((info.format == kPcm && !pcmBits) || (info.format != kPcm && info.bitsPerSample != 8))
    return bad(std::to_string(info.bitsPerSample) + " bits per sample");
  uint64_t dataSize = le32(b, at + 4);
  uint64_t dataStart = at + 8;
  if (dataStart + dataSize > fileSize) dataSize = fileSize > dataStart ? fileSize - dataStart : 0;
  uint64_t bytesPerSecond = uint64_t(info.sampleRate) * info.channels * (info.bitsPerSample / 8);
  if (dataSize < bytesPerSecond / 10) return bad("less than 100 ms of audio");
  info.durationMs = dataSize * 1000 / bytesPerSecond;
  return info;
}

Result<WavInfo> checkWavFile(const std::string& path) {
  if (path.empty() || path.front() != '/') return makeError(400, "not an absolute path");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return makeError(400, "no such file: " + path);
  if (!S_ISREG(st.st_mode)) return makeError(400, "not a regular file: " + path);
  if (uint64_t(st.st_size) > kMaxMusicBytes) return makeError(400, "file too large: " + path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return makeError(400, "cannot read " + path);
  std::string head(std::min<size_t>(kHeaderReadBytes, size_t(st.st_size)), '\0');
  in.read(head.data(), std::streamsize(head.size()));
  if (size_t(in.gcount()) != head.size()) return makeError(400, "cannot read " + path);
  return parseWavHeader(head, uint64_t(st.st_size));
}

// A slow arpeggio of soft sine tones with short fades, looped by rtpengine (repeat).
std::string defaultMusicWav() {
  constexpr uint32_t rate = 8000;
  constexpr double notes[] = {261.63, 329.63, 392.00, 523.25, 392.00, 329.63, 293.66, 349.23,
                              440.00, 587.33, 440.00, 349.23, 246.94, 293.66, 392.00, 493.88};
  constexpr uint32_t noteSamples = rate; // 1 s per note
  std::string pcm;
  pcm.reserve(std::size(notes) * noteSamples * 2);
  const double pi = std::acos(-1.0);
  for (double f : notes) {
    for (uint32_t i = 0; i < noteSamples; ++i) {
      double t = double(i) / rate;
      double env = std::min(1.0, std::min(t / 0.05, (double(noteSamples - i) / rate) / 0.3));
      double v = env * (0.7 * std::sin(2 * pi * f * t) + 0.3 * std::sin(2 * pi * f * 2 * t));
      put16(pcm, uint16_t(int16_t(std::lround(v * 6000))));
    }
  }
  std::string out = "RIFF";
  put32(out, uint32_t(36 + pcm.size()));
  out += "WAVEfmt ";
  put32(out, 16);
  put16(out, kPcm);
  put16(out, 1);
  put32(out, rate);
  put32(out, rate * 2);
  put16(out, 2);
  put16(out, 16);
  out += "data";
  put32(out, uint32_t(pcm.size()));
  return out + pcm;
}

std::vector<store::Migration> MusicOnHold::migrations() {
  return {{"media", 1, "media settings (music on hold)",
           "CREATE TABLE media_settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"}};
}

Result<std::unique_ptr<MusicOnHold>> MusicOnHold::open(store::Database& db, std::string configured,
                                                       std::string defaultPath) {
  std::unique_ptr<MusicOnHold> m(new MusicOnHold(db));
  m->configured_ = std::move(configured);
  m->default_ = std::move(defaultPath);
  // The node's own file: rewritten when missing or not ours any more (an older version).
  std::string want = defaultMusicWav();
  std::ifstream in(m->default_, std::ios::binary);
  std::string have((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (have != want) {
    std::string tmp = m->default_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(want.data(), std::streamsize(want.size()));
      if (!out) return makeError(500, "cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), m->default_.c_str()) != 0)
      return makeError(500, "cannot write " + m->default_);
  }
  auto rows = db.query("SELECT value FROM media_settings WHERE key = 'music_on_hold'");
  if (!rows) return rows.error();
  if (!rows->empty())
    if (auto v = store::asText(rows->front()[0])) m->fromAdmin_ = *v;
  return m;
}

const char* MusicOnHold::source() const {
  if (!fromAdmin_.empty()) return "admin";
  return configured_.empty() ? "default" : "config";
}

Result<WavInfo> MusicOnHold::set(const std::string& path) {
  const std::string& file = path.empty() ? fallback() : path;
  auto info = checkWavFile(file);
  if (!info) return info.error();
  auto w = path.empty()
               ? db_.exec("DELETE FROM media_settings WHERE key = 'music_on_hold'")
               : db_.exec("INSERT INTO media_settings(key, value) VALUES('music_on_hold', ?1) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                          {path});
  if (!w) return w.error();
  fromAdmin_ = path;
  return info;
}

Result<void> MusicOnHold::setConfigured(const std::string& path) {
  if (!path.empty())
    if (auto w = checkWavFile(path); !w) return w.error();
  configured_ = path;
  return {};
}

} // namespace verbund::media

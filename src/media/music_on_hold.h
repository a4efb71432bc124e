#pragma once
// Music on hold (issue 13 point 5): which audio file rtpengine plays to a held party.
//
// The file is a WAV the node checks before it accepts it (a pure codec, fuzzed: fuzz/wav_header):
// RIFF/WAVE with linear PCM (8 or 16 bit), A-law or µ-law, 1 or 2 channels, 8 to 48 kHz.
// rtpengine decodes the file itself (through its media player) and encodes it to each call's
// codec, so the file's rate and format need not match the call's.
//
// Where the path comes from, strongest first: set through the admin API (persisted in table
// `media_settings`), `[media] music_on_hold` of the configuration file, else the node's own
// default file `<data_dir>/music-on-hold.wav`, which the node writes at start from
// defaultMusicWav() (a short melody generated here: the project's own work, under its licence).
//
// Runs on the node's loop (the API posts its changes there); no locks.
#include "base/result.h"
#include "store/database.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::media {

struct WavInfo {
  uint16_t format = 0; // 1 linear PCM, 6 A-law, 7 µ-law
  uint16_t channels = 0;
  uint32_t sampleRate = 0;
  uint16_t bitsPerSample = 0;
  uint64_t durationMs = 0;
};
const char* wavFormatName(uint16_t format); // "pcm", "alaw", "ulaw", or "unknown"

// Upper bound of a music file (about 10 minutes of 48 kHz 16-bit stereo).
constexpr size_t kMaxMusicBytes = 128u * 1024 * 1024;

// Checks the header of a WAV file: the RIFF/WAVE form, a "fmt " chunk before a non-empty "data"
// chunk, and a format rtpengine plays (see the file comment). `bytes` may be only the start of
// the file, as long as it reaches the "data" chunk header; `fileSize` is the whole file's size
// (the data chunk may not claim more). Errors name what is wrong, for the admin API (status 400).
Result<WavInfo> parseWavHeader(std::string_view bytes, uint64_t fileSize);

// Reads the start of `path` and checks it: the file must exist, be a regular readable file and
// a WAV as above.
Result<WavInfo> checkWavFile(const std::string& path);

// The node's own music: about 16 s of a quiet melody, 8 kHz 16-bit mono linear PCM.
std::string defaultMusicWav();

class MusicOnHold {
public:
  static std::vector<store::Migration> migrations();
  // `configured`: `[media] music_on_hold`, empty for the node's default file, which is written
  // to `defaultPath` if it is missing or differs from defaultMusicWav().
  static Result<std::unique_ptr<MusicOnHold>> open(store::Database& db, std::string configured,
                                                   std::string defaultPath);

  // The file to play now.
  const std::string& path() const { return fromAdmin_.empty() ? fallback() : fromAdmin_; }
  // The path the configuration gives (configured or the node's default file).
  const std::string& fallback() const { return configured_.empty() ? default_ : configured_; }
  // "admin", "config" or "default".
  const char* source() const;
  // Sets the file (checked with checkWavFile, persisted); an empty path goes back to the
  // configuration's file. Returns the file's description.
  Result<WavInfo> set(const std::string& path);
  // A reloaded configuration's `[media] music_on_hold` (empty: the node's default file); the
  // file is checked with checkWavFile first. The admin's choice, if any, still comes first.
  Result<void> setConfigured(const std::string& path);

private:
  MusicOnHold(store::Database& db) : db_(db) {}
  store::Database& db_;
  std::string configured_, default_, fromAdmin_;
};

} // namespace verbund::media

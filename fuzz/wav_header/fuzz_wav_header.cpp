// Feeds arbitrary file starts to the music-on-hold WAV check (an admin names any file on the
// node): nothing may crash, and an accepted header must describe a format rtpengine plays.
#include "media/music_on_hold.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace verbund::media;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (uint64_t fileSize : {uint64_t(size), uint64_t(size) * 3, uint64_t(0)}) {
    auto info = parseWavHeader(input, fileSize);
    if (!info) continue;
    if (info->channels < 1 || info->channels > 2) __builtin_trap();
    if (info->sampleRate < 8000 || info->sampleRate > 48000) __builtin_trap();
    if (std::string_view(wavFormatName(info->format)) == "unknown") __builtin_trap();
  }
  return 0;
}

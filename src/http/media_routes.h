#pragma once
// The media relay in the admin API: `media` in GET /api/v1/status and the per-instance series of
// /metrics (the module's own counters and gauges come with every /metrics answer).
#include "http/admin_server.h"
#include "media/media_service.h"
#include "media/music_on_hold.h"

#include <nlohmann/json.hpp>

namespace verbund::http {

// {"state": "up", "mode": "auto", "instances": [{"address", "state", "lastPingMs",
// "lastPingRttMs", "restarts", "pid"}]}; lastPingMs is the wall-clock time (Unix ms) of the
// last answered ping, null before the first.
nlohmann::json mediaStatusJson(const media::MediaStatus& s);
std::string mediaMetricsText(const media::MediaStatus& s);
void addMediaRoutes(AdminServer& server, media::MediaService& media);

// GET/PUT /api/v1/media/music-on-hold: {"path", "source": "admin"|"config"|"default",
// "fallback": the configuration's file, "file": {"format", "channels", "sampleRate",
// "bitsPerSample", "durationMs"} or null when the file is not usable now}. PUT takes {"path":
// "/abs/file.wav"} (checked: it must exist and be a WAV rtpengine plays; 400 with field "path"
// otherwise) or {"path": ""} to go back to the configuration's file.
void addMusicOnHoldRoutes(AdminServer& server, media::MusicOnHold& music);

} // namespace verbund::http

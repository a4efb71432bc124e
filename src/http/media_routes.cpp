#include "http/media_routes.h"

#include "base/log.h"

namespace verbund::http {

namespace {
constexpr media::InstanceState kStates[] = {
    media::InstanceState::Starting,    media::InstanceState::Up,
    media::InstanceState::Down,        media::InstanceState::Unreachable,
    media::InstanceState::Unavailable, media::InstanceState::Stopped};

// Prometheus label values: backslash, quote and newline escaped.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
} // namespace

nlohmann::json mediaStatusJson(const media::MediaStatus& s) {
  nlohmann::json instances = nlohmann::json::array();
  for (const auto& i : s.instances) {
    nlohmann::json j = {{"address", i.address},
                        {"state", media::instanceStateName(i.state)},
                        {"lastPingMs", nullptr},
                        {"lastPingRttMs", nullptr},
                        {"restarts", i.restarts}};
    if (i.lastPingMs) j["lastPingMs"] = *i.lastPingMs;
    if (i.lastPingRttMs) j["lastPingRttMs"] = *i.lastPingRttMs;
    if (s.own) j["pid"] = i.pid;
    instances.push_back(std::move(j));
  }
  return {{"state", media::instanceStateName(s.state)},
          {"mode", s.own ? "auto" : "external"},
          {"instances", instances}};
}

std::string mediaMetricsText(const media::MediaStatus& s) {
  std::string out = "# HELP verbund_media_state Media relay state (1 for the current one)\n"
                    "# TYPE verbund_media_state gauge\n";
  for (auto st : kStates)
    out += std::string("verbund_media_state{state=\"") + media::instanceStateName(st) + "\"} " +
           (s.state == st ? "1" : "0") + "\n";
  out += "# HELP verbund_media_instance_up rtpengine instance answering ng pings (1) or not (0)\n"
         "# TYPE verbund_media_instance_up gauge\n";
  for (size_t i = 0; i < s.instances.size(); ++i) {
    const auto& in = s.instances[i];
    out += "verbund_media_instance_up{instance=\"" + std::to_string(i) + "\",address=\"" +
           label(in.address) + "\"} " + (in.state == media::InstanceState::Up ? "1" : "0") + "\n";
  }
  return out;
}

void addMediaRoutes(AdminServer& server, media::MediaService& media) {
  server.addStatus([&media](nlohmann::json& s) { s["media"] = mediaStatusJson(media.status()); });
  server.addMetrics([&media] { return mediaMetricsText(media.status()); });
}

namespace {
nlohmann::json musicJson(const media::MusicOnHold& music) {
  nlohmann::json j = {{"path", music.path()},
                      {"source", music.source()},
                      {"fallback", music.fallback()},
                      {"file", nullptr}};
  if (auto info = media::checkWavFile(music.path()))
    j["file"] = {{"format", media::wavFormatName(info->format)},
                 {"channels", info->channels},
                 {"sampleRate", info->sampleRate},
                 {"bitsPerSample", info->bitsPerSample},
                 {"durationMs", info->durationMs}};
  return j;
}
} // namespace

void addMusicOnHoldRoutes(AdminServer& server, media::MusicOnHold& music) {
  server.route(
      Method::Get, "/api/v1/media/music-on-hold",
      [&music](RequestContext&) -> Result<Response> { return Response::json(musicJson(music)); });
  server.route(
      Method::Put, "/api/v1/media/music-on-hold", [&music](RequestContext& c) -> Result<Response> {
        if (!c.body.is_object() || !c.body.contains("path") || !c.body["path"].is_string())
          return Error{400, "path: string expected"};
        std::string path = c.body["path"].get<std::string>();
        if (path.size() > 4096) return Error{400, "path: too long"};
        auto info = music.set(path);
        if (!info) return Error{info.error().code, "path: " + info.error().message};
        logger("http")->info("music on hold set to {} by {}", music.path(), c.principal.name);
        return Response::json(musicJson(music));
      });
}

} // namespace verbund::http

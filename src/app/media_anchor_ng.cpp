#include "app/media_anchor_ng.h"

#include "base/log.h"

namespace verbund::app {

namespace {
media::OfferRequest request(const pbx::AnchorRef& ref, const std::string& sdp) {
  media::OfferRequest r;
  r.call = {ref.key, ref.fromTag, ref.toTag, ref.branch};
  r.sdp = sdp;
  r.replace = {"origin", "session-connection"};
  r.extra.set("ICE", "remove");
  return r;
}
} // namespace

NgMediaAnchor::NgMediaAnchor(media::MediaService& media, std::function<std::string()> music)
    : media_(media), music_(std::move(music)) {
  media_.setEvents({[this](size_t instance) {
                      auto keys = media_.client().dropCallsOn(instance);
                      logger("media")->warn("media: rtpengine instance {} lost with {} session(s)",
                                            instance, keys.size());
                      relayLost(keys);
                    },
                    [this](size_t) { relayBack(); }});
}

NgMediaAnchor::~NgMediaAnchor() {
  media_.setEvents({});
}

void NgMediaAnchor::offer(const pbx::AnchorRef& ref, const std::string& sdp, SdpDone done) {
  media_.client().offer(request(ref, sdp), [done = std::move(done)](Result<media::SdpReply> r) {
    if (!r) return done(r.error());
    done(std::move(r->sdp));
  });
}

void NgMediaAnchor::answer(const pbx::AnchorRef& ref, const std::string& sdp, SdpDone done) {
  media_.client().answer(request(ref, sdp), [done = std::move(done)](Result<media::SdpReply> r) {
    if (!r) return done(r.error());
    done(std::move(r->sdp));
  });
}

void NgMediaAnchor::release(const pbx::AnchorRef& ref) {
  media::DeleteRequest d;
  d.call = {ref.key, ref.fromTag, ref.toTag, ref.branch};
  d.extra.set("delete-delay", int64_t(0));
  std::string key = ref.key;
  media_.client().deleteCall(d, [key](Result<media::bencode::Dict> r) {
    // "Unknown call-id": the relay restarted (its sessions are gone) or never had it.
    if (!r) logger("media")->debug("media: delete of {} failed: {}", key, r.error().message);
  });
}

// rtpengine's "play media": from-tag names the party that hears the file. Repeated (about two
// days of the default file) until "stop media" or the session's delete.
void NgMediaAnchor::playHold(const pbx::AnchorRef& ref) {
  media::PlayMediaRequest p;
  p.call = {ref.key, ref.fromTag, {}, {}};
  p.file = music_ ? music_() : std::string();
  p.repeatTimes = 10000;
  if (p.file.empty()) return;
  std::string key = ref.key, file = p.file;
  media_.client().playMedia(p, [key, file](Result<media::PlayMediaReply> r) {
    if (!r)
      logger("media")->warn("media: music on hold {} for {} not played: {}", file, key,
                            r.error().message);
  });
}

void NgMediaAnchor::stopHold(const pbx::AnchorRef& ref) {
  media::StopMediaRequest s;
  s.call = {ref.key, ref.fromTag, {}, {}};
  std::string key = ref.key;
  media_.client().stopMedia(s, [key](Result<void> r) {
    if (!r) logger("media")->debug("media: stop media for {} failed: {}", key, r.error().message);
  });
}

} // namespace verbund::app

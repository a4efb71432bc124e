#pragma once
// The call engine's media relay (pbx::MediaAnchor) over rtpengine's ng protocol: the node's
// MediaService (its own supervised rtpengine, or external instances).
//
// Flags (docs/architecture.md "Media"): the SDP's address is trusted as the first guess and
// rtpengine latches onto where RTP really comes from (symmetric RTP, its default); origin and
// session connection are replaced by the relay's; ICE candidates are removed (the relay is the
// only path). Deletes ask for no delete delay, so an ended call's session is gone at once.
#include "media/media_service.h"
#include "pbx/calls/media_anchor.h"

#include <functional>
#include <string>

namespace verbund::app {

class NgMediaAnchor final : public pbx::MediaAnchor {
public:
  // `music`: the file held parties hear (media::MusicOnHold::path, read at each hold).
  // Watches the service's instances: the sessions of one that went away are reported lost
  // (MediaAnchor::Watcher), an instance that answers again is reported back.
  NgMediaAnchor(media::MediaService& media, std::function<std::string()> music);
  ~NgMediaAnchor() override;
  bool available() override { return media_.available(); }
  void offer(const pbx::AnchorRef& ref, const std::string& sdp, SdpDone done) override;
  void answer(const pbx::AnchorRef& ref, const std::string& sdp, SdpDone done) override;
  void release(const pbx::AnchorRef& ref) override;
  void playHold(const pbx::AnchorRef& ref) override;
  void stopHold(const pbx::AnchorRef& ref) override;

private:
  media::MediaService& media_;
  std::function<std::string()> music_;
};

} // namespace verbund::app

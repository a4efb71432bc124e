#pragma once
// The call engine's seam to the media relay (docs/architecture.md "Media"): with anchoring, every
// SDP that crosses the B2BUA is handed to the relay first (an offer to `offer`, an answer to
// `answer`) and the relay's SDP goes to the other leg, so both phones send RTP to the relay.
// Implemented in app over media::NgClient (rtpengine's ng protocol); tests fake it.
//
// Names (what the relay sees): one relay session per call, `key` (made by the engine, unique per
// call); one tag per leg: "caller" for the call's inbound leg, "fork<N>" for its N-th fork (the
// answering fork's tag stays the tag of the call's other leg), "picker" for a pickup's picker;
// `branch` ("b<N>") tells the forks of one offer apart (each fork gets its own relay ports).
#include "base/result.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx {

struct AnchorRef {
  std::string key;     // the relay session (rtpengine call-id)
  std::string fromTag; // the leg whose SDP this is (offer: the offerer; answer: the offerer too)
  std::string toTag;   // answer: the answering leg; offer inside a dialog: the other leg
  std::string branch;  // a fork's branch (rtpengine via-branch), empty otherwise
};

class MediaAnchor {
public:
  using SdpDone = std::function<void(Result<std::string>)>;
  virtual ~MediaAnchor() = default;
  // Whether a relay answers now. False: a new call goes direct without asking (and anchoring
  // resumes with the first call after it is back).
  virtual bool available() = 0;
  // The relay's SDP for `sdp`, or an error (timeout, refused); `done` runs exactly once, later
  // (on the loop), also after the call ended.
  virtual void offer(const AnchorRef& ref, const std::string& sdp, SdpDone done) = 0;
  virtual void answer(const AnchorRef& ref, const std::string& sdp, SdpDone done) = 0;
  // Deletes the session (`toTag` and `branch` empty) or one fork's branch; nothing comes back.
  virtual void release(const AnchorRef& ref) = 0;
  // Music on hold (issue 13 point 5): the leg `ref.fromTag` of session `ref.key` hears the node's
  // music on hold file, repeated, until stopHold or the session's release (rtpengine ends a
  // session's players when it is deleted). Failures are logged by the implementation only: a
  // held party without music is no reason to touch the call.
  virtual void playHold(const AnchorRef& ref) {}
  virtual void stopHold(const AnchorRef& ref) {}

  // Relay failure (docs/architecture.md "Media" > "Relay failure"): the implementation reports
  // the sessions a relay took with it when it went away (the own rtpengine ended, an external
  // instance stopped answering), and when a relay answers again. The engine re-anchors those
  // calls (reanchor.cpp). Both run on the loop.
  struct Watcher {
    std::function<void(const std::vector<std::string>& keys)> lost;
    std::function<void()> back;
  };
  void watch(Watcher w) { watcher_ = std::move(w); }

protected:
  void relayLost(const std::vector<std::string>& keys) {
    if (watcher_.lost) watcher_.lost(keys);
  }
  void relayBack() {
    if (watcher_.back) watcher_.back();
  }

private:
  Watcher watcher_;
};

// [media] anchor: which calls go through the relay.
enum class AnchorMode : uint8_t {
  Always, // every call (the default)
  Off,    // none: SDP passes through, phones talk directly
  Remote, // only calls that leave the site: two phones registered here talk directly; calls
          // with another node or the external line (either way) are anchored
};
std::optional<AnchorMode> parseAnchorMode(std::string_view text);
std::string_view anchorModeName(AnchorMode m);

} // namespace verbund::pbx

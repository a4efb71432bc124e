#pragma once
// Just enough SDP (RFC 4566, RFC 3264) for a B2BUA that does not touch media but must, for
// pickup, join two phones that each sent an offer: build an answer to one side's offer from the
// other side's description (its address, port and the codecs both have); and, for music on hold,
// whether an offer puts the other party on hold.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace verbund::pbx::sdp {

struct Codec {
  int payload = -1;
  std::string encoding; // "PCMU/8000" (lower-cased name), empty for unknown static types
  std::string fmtp;
};

struct Media {
  std::string type; // "audio", "video"
  int port = 0;
  std::string proto;   // "RTP/AVP"
  std::string address; // media-level c= or the session-level one
  std::string addrType = "IP4";
  std::vector<Codec> codecs;
  std::string direction; // media-level sendrecv, sendonly, recvonly, inactive (empty: none)
};

struct Description {
  std::string address; // session-level c=
  std::string addrType = "IP4";
  std::string direction; // session-level direction attribute (empty: none)
  std::vector<Media> media;
};

// The direction a stream has in effect (RFC 4566 §6: the media-level attribute, else the
// session-level one, else sendrecv).
std::string_view directionOf(const Description& d, const Media& m);

// Whether `offer` (an initial offer, re-INVITE or UPDATE) puts the party that answers it on hold:
// it has at least one audio stream in use (port != 0) and none of them asks to receive, because
// each is sendonly or inactive (RFC 3264 §8.4) or has the connection address 0.0.0.0 (the
// RFC 2543 form). An offer that is sendrecv or recvonly again resumes the call.
bool holdsOtherParty(const Description& offer);
// The same on SDP text; false when the text does not parse.
bool holdsOtherParty(std::string_view offerText);

// Lenient parse: unknown lines are ignored; nullopt when there is no m= line or a line is broken.
std::optional<Description> parse(std::string_view text);

// RFC 3264 §6: an answer to `offer` whose media come from `peer` (address, port, codecs both
// support, in the offer's order). Media the peer lacks are rejected with port 0. nullopt when no
// stream can be kept.
std::optional<std::string> answerFrom(const Description& offer, const Description& peer,
                                      uint64_t sessionVersion);

} // namespace verbund::pbx::sdp

#pragma once
// The external line (SIP trunk) of a node: its settings, their validation, the redacted view for
// the API, the dial-out rule and the DID map. Pure data and functions; TrunkManager
// (trunk_manager.h) runs it on the event loop and trunk_store.h persists it.
#include "base/result.h"
#include "sip/message/types.h"

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace verbund::pbx {

enum class TrunkMode : uint8_t {
  Register, // we register with the carrier (digest auth); calls in both directions
  Ip,       // the carrier trusts our address and we trust its addresses; no registration
};
enum class TrunkTransport : uint8_t {
  Auto, // RFC 3263 decides (NAPTR, SRV, A)
  Udp,
  Tcp,
  Tls,
};
// How the caller's identity goes out on outbound calls.
enum class CallerIdMode : uint8_t {
  FromAndPai,  // the user's external number in From and in P-Asserted-Identity (RFC 3325)
  PaiOnly,     // From is the trunk account; the user's external number only in P-Asserted-Identity
  TrunkNumber, // always the trunk's number (defaultCallerId, else the username); no PAI
};

std::string_view trunkModeName(TrunkMode m); // "register", "ip"
std::optional<TrunkMode> trunkModeFromName(std::string_view s);
std::string_view trunkTransportName(TrunkTransport t); // "auto", "udp", "tcp", "tls"
std::optional<TrunkTransport> trunkTransportFromName(std::string_view s);
std::string_view callerIdModeName(CallerIdMode m); // "from-and-pai", "pai-only", "trunk-number"
std::optional<CallerIdMode> callerIdModeFromName(std::string_view s);

// A DID (the carrier's number for an inbound call) and the local extension or group number it
// rings.
struct DidRoute {
  std::string did;    // "+4930123456" or "030123456", as the carrier sends it
  std::string target; // extension or group number
  friend bool operator==(const DidRoute&, const DidRoute&) = default;
};

// Default for TrunkConfig::outboundPattern: an optional '+' and 3 to 20 digits.
inline constexpr std::string_view kDefaultOutboundPattern = R"(\+?[0-9]{3,20})";

struct TrunkConfig {
  bool enabled = false;
  TrunkMode mode = TrunkMode::Register;
  // The carrier's server: "sip.carrier.example", "192.0.2.7:5070" or a sip:/sips: URI. Also the
  // REGISTER Request-URI (RFC 3261 §10.2: the registrar's domain, no user part).
  std::string registrar;
  // Host part of our address of record, From and Request-URIs; empty: the registrar's host.
  std::string domain;
  std::string username;      // account, usually the main number (user part of the AOR)
  std::string authUser;      // digest user name; empty: username
  std::string password;      // secret: never logged, not in TrunkView
  std::string outboundProxy; // optional URI; then every request goes there with a Route header
  TrunkTransport transport = TrunkTransport::Udp;
  uint32_t expiry = 600; // requested registration time, seconds (60 .. 86400)
  std::vector<DidRoute> dids;
  std::string defaultTarget; // where DIDs that are not in `dids` ring; empty: they are refused
  // Dial-out rule: a dialled string that is not an internal extension or group goes out when it
  // starts with dialPrefix (which is stripped; empty: no prefix needed) and what remains fully
  // matches outboundPattern (ECMAScript; empty: kDefaultOutboundPattern). Whatever the pattern,
  // only '+' (leading), digits, '*' and '#' ever reach the carrier.
  std::string dialPrefix;
  std::string outboundPattern;
  CallerIdMode callerIdMode = CallerIdMode::FromAndPai;
  std::string defaultCallerId; // for callers without an external number; empty: username
  // IP trunks: further carrier addresses whose requests are trusted (besides the resolved
  // registrar and proxy addresses).
  std::vector<std::string> trustedAddresses;

  friend bool operator==(const TrunkConfig&, const TrunkConfig&) = default;
};

// What the API may show: everything but the password.
struct TrunkView {
  bool enabled = false;
  TrunkMode mode = TrunkMode::Register;
  std::string registrar, domain, username, authUser, outboundProxy;
  bool passwordSet = false;
  TrunkTransport transport = TrunkTransport::Udp;
  uint32_t expiry = 0;
  std::vector<DidRoute> dids;
  std::string defaultTarget, dialPrefix, outboundPattern;
  CallerIdMode callerIdMode = CallerIdMode::FromAndPai;
  std::string defaultCallerId;
  std::vector<std::string> trustedAddresses;
};
TrunkView redacted(const TrunkConfig& c);

// An update from the API leaves the password out to keep the stored one: call this with the
// current settings before saving.
void keepPasswordIfEmpty(TrunkConfig& incoming, const TrunkConfig& current);

// Checks every field (400 with "field: reason"). Disabled trunks are checked too, except that
// the required fields may be empty.
Result<void> validateTrunk(const TrunkConfig& c);

// Derived addresses.
std::string trunkDomain(const TrunkConfig& c); // domain, else the registrar's host
std::string
registrarRequestUri(const TrunkConfig& c); // "sip:carrier.example" (with port, if given)
// The URI whose RFC 3263 resolution gives the next hop: the outbound proxy or the registrar,
// with the configured transport as a transport parameter.
std::string nextHopUri(const TrunkConfig& c);
std::optional<sip::TransportType> toTransportType(TrunkTransport t); // nullopt for Auto

// The dial-out rule, compiled once.
class DialPlan {
public:
  // The config must have passed validateTrunk (an invalid pattern matches nothing).
  explicit DialPlan(const TrunkConfig& c);
  // The number to send to the carrier for `dialled`, or nullopt when it does not go out.
  // (Internal extensions and groups are excluded by the caller, which knows them.)
  std::optional<std::string> external(std::string_view dialled) const;

private:
  std::string prefix_;
  std::optional<std::regex> pattern_;
};

// The DID map. Numbers compare after removing visual separators (RFC 3966: - . ( ) and spaces).
class DidMap {
public:
  explicit DidMap(const TrunkConfig& c);
  // Target for a DID, or nullopt when it is unknown (and there is no default target).
  std::optional<std::string> lookup(std::string_view did, bool useDefault = true) const;

private:
  std::unordered_map<std::string, std::string> routes_; // normalised DID -> target
  std::string defaultTarget_;
};

// "+49 (30) 123-456" -> "+4930123456"; other characters are kept.
std::string normalizeNumber(std::string_view s);
// Whether `s` is a phone number we can put in a SIP URI user part: optional leading '+', then
// 1 to 32 of digits, '*' and '#'.
bool isDialString(std::string_view s);

} // namespace verbund::pbx

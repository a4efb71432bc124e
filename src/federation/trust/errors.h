#pragma once
// Error codes of the trust module, carried in verbund::Error::code. Callers (the admin API, the
// control plane) switch on them; the message is for humans and never contains secrets.
#include "base/result.h"

#include <string>

namespace verbund::federation {

enum class TrustErrc : int {
  kInvalidArgument = 4201, // a field given by the caller failed validation (message names it)
  kWeakPassphrase,         // passphrase rules not met (creating a bundle)
  kTooLarge,               // bundle or list beyond the size/count limits
  kCorrupt,                // not a Verbund bundle/list, or damaged
  kWrongPassphrase,        // the bundle's key could not be decrypted with the passphrase
  kKeyMismatch,            // the CA key does not belong to the CA certificate
  kExpired,                // a certificate's validity ended
  kNotYetValid,            // a certificate's validity has not started
  kOtherFederation,        // certificate not issued by this federation's CA
  kSelfSigned,             // peer presented a self-signed certificate
  kRevoked,                // node or key is on the revocation list
  kMissingNodeUri,         // certificate lacks the urn:verbund:node:<id> name
  kInvalidCertificate,     // any other certificate problem
  kBadSignature,           // a signed list/entry does not verify against the CA
  kStorage,                // database or data-directory problem
  kInternal,               // OpenSSL failed on data we produced ourselves
  kNotMember,              // the node id is not in the member list (and may not join here)
  kPinMismatch,            // a member presented a key other than the one pinned for its id
  kStaleCa,                // signed by an earlier CA of this federation (made before a removal)
};

inline Error trustError(TrustErrc code, std::string message) {
  return Error{static_cast<int>(code), std::move(message)};
}

inline bool isTrustError(const Error& e, TrustErrc code) {
  return e.code == static_cast<int>(code);
}

} // namespace verbund::federation

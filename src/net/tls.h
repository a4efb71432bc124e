#pragma once
// The TLS settings every Verbund TLS context shares (SIP over TLS, federation links).
#include "base/result.h"

#include <memory>
#include <string>

namespace asio::ssl {
class context;
}

namespace verbund::net {

struct TlsBaseline {
  bool requireTls13 = false; // else TLS 1.2 is the floor (RFC 8996: no 1.0/1.1)
  // Session resumption. Off where every connection must present (and have verified) the peer's
  // certificate afresh (federation links).
  bool resumption = true;
  // Needed for resumption when clients are asked for certificates.
  std::string sessionContext = "verbund";
};

// A fresh context: protocol floor, no compression, no renegotiation, server cipher preference.
Result<std::shared_ptr<asio::ssl::context>> makeTlsContext(const TlsBaseline& baseline);

} // namespace verbund::net

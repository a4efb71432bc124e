#pragma once
// Binding SIP listeners and loading TLS material, shared by `serve` and `testua`.
#include "base/result.h"
#include "sip/transport/transport_manager.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace verbund::app {

struct ListenSpec {
  sip::TransportType type;
  std::string addr;
};

// Binds every listener; returns the first bound address per transport ("udp", "tcp", "tls").
Result<nlohmann::json> bindListeners(sip::TransportManager& tm,
                                     const std::vector<ListenSpec>& specs);

// TLS from PEM files; peers are verified against `ca` when it is given.
Result<void> loadTls(sip::TransportManager& tm, const std::string& cert, const std::string& key,
                     const std::string& ca);

// Writes `info` plus the pid as JSON to `path` atomically (tests wait for this file).
void writeReadyFile(const std::string& path, nlohmann::json info);

} // namespace verbund::app

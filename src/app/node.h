#pragma once
// A running node: owns and wires every module on one event loop (docs/architecture.md).
// Construction order is dependency order; destruction runs in reverse.
#include "app/config.h"
#include "base/asio_timers.h"
#include "base/result.h"

#include <asio/io_context.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace verbund::app {

class Node {
public:
  ~Node();
  // Opens the data directory and database, binds the SIP listeners and the admin API.
  static Result<std::unique_ptr<Node>> start(asio::io_context& io, const NodeConfig& config);
  // Bound addresses: {"udp": "...", "tcp": "...", "tls": "...", "admin": "..."}.
  const nlohmann::json& bound() const;
  const std::string& nodeId() const;
  // module -> highest migration this binary knows (what `verbund restore` accepts).
  static std::map<std::string, int> schemaVersions();
  void stop();
  // The configuration file SIGHUP and POST /api/v1/reload read again ("" : built-in defaults).
  void setConfigPath(const std::string& path);
  // Reloads what can change without a restart (README "Reload"): log level, overload,
  // digest-throttle and SIP connection limits, the trunk's stored settings. Answers {"applied":
  // [keys], "restartNeeded": [changed keys that only a restart applies]}; a file that does not load
  // changes nothing.
  Result<nlohmann::json> reload();

  struct Impl;

private:
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace verbund::app

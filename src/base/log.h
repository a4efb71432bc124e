#pragma once
// Logging goes through spdlog. Modules log through their own named logger so levels can be set
// per module. Never log secrets (passwords, digest responses' HA1, private keys).
#include <memory>
#include <spdlog/spdlog.h>
#include <string>

namespace verbund {

// Returns the logger of a module ("sip", "transport", ...), creating it on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& module);

// Sets the level of every logger, existing and future: "trace", "debug", "info", "warn", "error".
void setLogLevel(const std::string& level);

} // namespace verbund

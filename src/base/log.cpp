#include "base/log.h"

#include <mutex>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace verbund {

namespace {
std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
} // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto l = spdlog::get(module)) return l;
  auto l = spdlog::stderr_color_mt(module);
  l->set_level(g_level);
  return l;
}

void setLogLevel(const std::string& level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_level = spdlog::level::from_str(level);
  spdlog::set_level(g_level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

} // namespace verbund

#include "base/metrics.h"

#include <mutex>

namespace verbund {

namespace {
std::mutex& registryMutex() {
  static std::mutex m;
  return m;
}
std::vector<Counter*>& registry() {
  static std::vector<Counter*> r;
  return r;
}
} // namespace

Counter::Counter(const char* name, const char* help) : name_(name), help_(help) {
  std::lock_guard<std::mutex> lock(registryMutex());
  registry().push_back(this);
}

const std::vector<Counter*>& allCounters() {
  return registry();
}

std::string renderPrometheus() {
  std::lock_guard<std::mutex> lock(registryMutex());
  std::string out;
  for (const Counter* c : registry()) {
    out += "# HELP ";
    out += c->name();
    out += ' ';
    out += c->help();
    out += "\n# TYPE ";
    out += c->name();
    out += " counter\n";
    out += c->name();
    out += ' ';
    out += std::to_string(c->value());
    out += '\n';
  }
  return out;
}

} // namespace verbund

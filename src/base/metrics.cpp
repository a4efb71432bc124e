#include "base/metrics.h"

#include <cstdio>
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
std::vector<Gauge*>& gaugeRegistry() {
  static std::vector<Gauge*> r;
  return r;
}

void header(std::string& out, const char* name, const char* help, const char* type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}
} // namespace

Counter::Counter(const char* name, const char* help) : name_(name), help_(help) {
  std::lock_guard<std::mutex> lock(registryMutex());
  registry().push_back(this);
}

Gauge::Gauge(const char* name, const char* help) : name_(name), help_(help) {
  std::lock_guard<std::mutex> lock(registryMutex());
  gaugeRegistry().push_back(this);
}

const std::vector<Counter*>& allCounters() {
  return registry();
}

const std::vector<Gauge*>& allGauges() {
  return gaugeRegistry();
}

std::string renderPrometheus() {
  std::lock_guard<std::mutex> lock(registryMutex());
  std::string out;
  for (const Counter* c : registry()) {
    header(out, c->name(), c->help(), "counter");
    out += c->name();
    out += ' ';
    out += std::to_string(c->value());
    out += '\n';
  }
  for (const Gauge* g : gaugeRegistry()) {
    header(out, g->name(), g->help(), "gauge");
    char value[32];
    std::snprintf(value, sizeof value, "%.6g", g->value());
    out += g->name();
    out += ' ';
    out += value;
    out += '\n';
  }
  return out;
}

} // namespace verbund

#pragma once
// Process-wide counters and gauges, exported in Prometheus text format. Both are relaxed atomics so
// any thread can update them without a lock.
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace verbund {

class Counter {
public:
  Counter(const char* name, const char* help);
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }
  const char* name() const { return name_; }
  const char* help() const { return help_; }

private:
  const char* name_;
  const char* help_;
  std::atomic<uint64_t> v_{0};
};

// A value that goes up and down (a level, not a total), e.g. a queue delay in seconds. The last
// set() wins; a gauge written by one event loop is meant to have one writer.
class Gauge {
public:
  Gauge(const char* name, const char* help);
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }
  const char* name() const { return name_; }
  const char* help() const { return help_; }

private:
  const char* name_;
  const char* help_;
  std::atomic<double> v_{0};
};

// All counters constructed so far (counters are static objects and never destroyed early).
const std::vector<Counter*>& allCounters();
const std::vector<Gauge*>& allGauges();
std::string renderPrometheus();

} // namespace verbund

#include "net/admission.h"

#include <cstring>

namespace verbund::net {

Admission::Ticket& Admission::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    release();
    admission_ = std::move(o.admission_);
    key_ = o.key_;
    pending_ = o.pending_;
    o.admission_ = nullptr;
  }
  return *this;
}

void Admission::Ticket::firstMessage() {
  if (!admission_ || !pending_) return;
  pending_ = false;
  admission_->firstMessage(key_);
}

void Admission::Ticket::release() {
  if (!admission_) return;
  auto a = std::move(admission_);
  admission_ = nullptr;
  a->release(key_, pending_);
}

Admission::Admission(AdmissionLimits limits, ConnectionMetrics metrics)
    : limits_(limits), metrics_(metrics) {}

uint64_t Admission::sourceKey(const IpAddress& ip) {
  uint64_t key = 0;
  if (!ip.v6) {
    uint32_t v4 = 0;
    std::memcpy(&v4, ip.bytes.data(), 4);
    return (uint64_t{1} << 32) | v4; // cannot collide with a /64 whose top bits are 0...01
  }
  std::memcpy(&key, ip.bytes.data(), 8); // the /64 prefix
  return key ^ 0x9e3779b97f4a7c15ull;
}

std::string_view Admission::verdictName(Verdict v) {
  switch (v) {
  case Verdict::Admit:
    return "admitted";
  case Verdict::GlobalCap:
    return "connection limit reached";
  case Verdict::PerSourceCap:
    return "per-source connection limit reached";
  case Verdict::PendingCap:
    return "limit of connections awaiting their first message reached";
  case Verdict::PendingPerSourceCap:
    return "per-source limit of connections awaiting their first message reached";
  }
  return "refused";
}

Admission::Verdict Admission::admit(const std::shared_ptr<Admission>& self, const IpAddress& source,
                                    bool privileged, Ticket& ticket) {
  Admission& a = *self;
  const AdmissionLimits& l = a.limits_;
  size_t reserve = privileged ? 0 : l.reserved;
  if (a.open_ + reserve >= l.maxConnections) return Verdict::GlobalCap;
  if (a.pending_ + reserve >= l.maxPending) return Verdict::PendingCap;
  uint64_t key = sourceKey(source);
  auto it = a.bySource_.find(key);
  if (!privileged && it != a.bySource_.end()) {
    if (l.maxPerSource != 0 && it->second.open >= l.maxPerSource) return Verdict::PerSourceCap;
    if (l.maxPendingPerSource != 0 && it->second.pending >= l.maxPendingPerSource)
      return Verdict::PendingPerSourceCap;
  }
  Counts& c = it != a.bySource_.end() ? it->second : a.bySource_[key];
  ++c.open;
  ++c.pending;
  ++a.open_;
  ++a.pending_;
  ticket = Ticket();
  ticket.admission_ = self;
  ticket.key_ = key;
  ticket.pending_ = true;
  a.publish();
  return Verdict::Admit;
}

size_t Admission::openFrom(const IpAddress& source) const {
  auto it = bySource_.find(sourceKey(source));
  return it == bySource_.end() ? 0 : it->second.open;
}

size_t Admission::pendingFrom(const IpAddress& source) const {
  auto it = bySource_.find(sourceKey(source));
  return it == bySource_.end() ? 0 : it->second.pending;
}

void Admission::firstMessage(uint64_t key) {
  auto it = bySource_.find(key);
  if (it == bySource_.end() || it->second.pending == 0 || pending_ == 0) return;
  --it->second.pending;
  --pending_;
  publish();
}

void Admission::release(uint64_t key, bool pending) {
  auto it = bySource_.find(key);
  if (it == bySource_.end()) return;
  if (pending && it->second.pending > 0) {
    --it->second.pending;
    --pending_;
  }
  if (it->second.open > 0) {
    --it->second.open;
    --open_;
  }
  if (it->second.open == 0) bySource_.erase(it);
  publish();
}

void Admission::publish() {
  if (metrics_.open) metrics_.open->set(static_cast<double>(open_));
  if (metrics_.pending) metrics_.pending->set(static_cast<double>(pending_));
}

} // namespace verbund::net

#include "sip/dns/server_locator.h"

#include "base/log.h"

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>

namespace verbund::sip {

namespace {

// The transport a URI names explicitly: nullopt when none, Error for ones we cannot use.
std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

Result<std::optional<TransportType>> explicitTransport(const Uri& uri) {
  std::string t = lower(uri.transportParam()); // case-insensitive (RFC 3261 §19.1.4)
  bool sips = uri.scheme == UriScheme::Sips;
  if (t.empty()) return std::optional<TransportType>{};
  if (t == "udp") {
    if (sips) return makeError(400, "sips: URI with transport=udp");
    return std::optional<TransportType>{TransportType::Udp};
  }
  if (t == "tcp")
    return std::optional<TransportType>{sips ? TransportType::Tls : TransportType::Tcp};
  if (t == "tls") return std::optional<TransportType>{TransportType::Tls};
  return makeError(400, "unsupported transport \"" + t + "\"");
}

bool supports(const std::vector<TransportType>& list, TransportType t) {
  return std::find(list.begin(), list.end(), t) != list.end();
}

} // namespace

std::string SipTarget::toString() const {
  return std::string(transportName(transport)) + " " + addr.toString();
}

std::string_view srvPrefix(TransportType t) {
  switch (t) {
  case TransportType::Udp:
    return "_sip._udp";
  case TransportType::Tcp:
    return "_sip._tcp";
  case TransportType::Tls:
    return "_sips._tcp";
  }
  return "_sip._udp";
}

uint16_t defaultPort(TransportType t) {
  return t == TransportType::Tls ? 5061 : 5060;
}

std::optional<std::vector<SipTarget>> locateNumeric(const Uri& uri) {
  auto ip = IpAddress::parse(uri.host);
  if (!ip) return std::nullopt;
  auto t = explicitTransport(uri);
  if (!t) return std::vector<SipTarget>{};
  // RFC 3263 §4.1: numeric host without transport: UDP for sip, TCP (TLS) for sips.
  TransportType transport =
      t->value_or(uri.scheme == UriScheme::Sips ? TransportType::Tls : TransportType::Udp);
  SipTarget target;
  target.transport = transport;
  target.addr.ip = *ip;
  target.addr.port = uri.port ? uri.port : defaultPort(transport);
  target.host = ip->toString();
  return std::vector<SipTarget>{target};
}

std::vector<UsableNaptr> usableNaptr(std::vector<NaptrRecord> records, bool sipsOnly,
                                     const std::vector<TransportType>& supported) {
  std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
    return a.order != b.order ? a.order < b.order : a.preference < b.preference;
  });
  std::vector<UsableNaptr> out;
  for (const auto& r : records) {
    // RFC 3263 §4.1: SIP uses "s" flags and no regular expression.
    if (lower(r.flags) != "s" || !r.regexp.empty() || r.replacement.empty()) continue;
    std::string service = lower(r.service);
    std::optional<TransportType> t;
    if (service == "sips+d2t")
      t = TransportType::Tls;
    else if (!sipsOnly && service == "sip+d2u")
      t = TransportType::Udp;
    else if (!sipsOnly && service == "sip+d2t")
      t = TransportType::Tcp;
    if (!t || !supports(supported, *t)) continue;
    out.push_back({*t, r.replacement});
  }
  return out;
}

std::vector<SrvRecord> orderSrv(std::vector<SrvRecord> records,
                                const std::function<uint32_t(uint32_t)>& random) {
  std::stable_sort(records.begin(), records.end(),
                   [](const auto& a, const auto& b) { return a.priority < b.priority; });
  std::vector<SrvRecord> out;
  out.reserve(records.size());
  size_t i = 0;
  while (i < records.size()) {
    size_t j = i;
    while (j < records.size() && records[j].priority == records[i].priority) ++j;
    // RFC 2782: zero-weight records first, then running sums; pick the first record whose
    // running sum is >= a random number in [0, sum].
    std::vector<SrvRecord> group(records.begin() + long(i), records.begin() + long(j));
    std::stable_partition(group.begin(), group.end(), [](const auto& r) { return r.weight == 0; });
    while (!group.empty()) {
      uint32_t sum = 0;
      for (const auto& r : group) sum += r.weight;
      uint32_t pick = random ? std::min(random(sum), sum) : 0;
      uint32_t running = 0;
      size_t chosen = group.size() - 1;
      for (size_t k = 0; k < group.size(); ++k) {
        running += group[k].weight;
        if (running >= pick) {
          chosen = k;
          break;
        }
      }
      out.push_back(std::move(group[chosen]));
      group.erase(group.begin() + long(chosen));
    }
    i = j;
  }
  return out;
}

// ---- The asynchronous procedure ----

struct ServerLocator::Op : std::enable_shared_from_this<Op> {
  using Targets = std::vector<SipTarget>;
  using Done = std::function<void(Targets)>;

  ServerLocator* loc = nullptr;
  std::weak_ptr<char> alive;
  std::string uriText;
  std::string host; // without brackets
  uint16_t port = 0;
  bool sips = false;
  std::optional<TransportType> transport;
  LocateCallback cb;
  std::string lastError;

  bool live() const { return !alive.expired(); }

  void noteError(DnsType type, const std::string& name, const DnsAnswer& a) {
    if (a.status == DnsAnswer::Status::Error)
      lastError = std::string(dnsTypeName(type)) + " " + name + ": " + a.error;
  }

  void finish(Targets found) {
    Targets out;
    for (auto& t : found)
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(std::move(t));
    auto done = std::move(cb);
    if (out.empty()) {
      std::string why = "no SIP server found for " + host;
      if (!lastError.empty()) why += " (DNS " + lastError + ")";
      done(makeError(503, why));
      return;
    }
    done(std::move(out));
  }

  // A and AAAA of `name`, each address with `port`.
  void hosts(const std::string& name, uint16_t p, TransportType t, Done done) {
    struct Acc {
      std::vector<IpAddress> v4, v6;
      int left = 0;
    };
    auto acc = std::make_shared<Acc>();
    acc->left = loc->config_.ipv6 ? 2 : 1;
    auto self = shared_from_this();
    auto one = [self, acc, name, p, t, done](DnsType type, const DnsAnswer& a) {
      if (!self->live()) return;
      self->noteError(type, name, a);
      (type == DnsType::A ? acc->v4 : acc->v6) = a.addresses;
      if (--acc->left > 0) return;
      Targets out;
      auto add = [&](const std::vector<IpAddress>& ips) {
        for (const auto& ip : ips) out.push_back({t, SockAddr{ip, p}, name});
      };
      if (self->loc->config_.preferIpv6) {
        add(acc->v6);
        add(acc->v4);
      } else {
        add(acc->v4);
        add(acc->v6);
      }
      done(std::move(out));
    };
    loc->dns_.query(name, DnsType::A, [one](const DnsAnswer& a) { one(DnsType::A, a); });
    if (loc->config_.ipv6)
      loc->dns_.query(name, DnsType::Aaaa, [one](const DnsAnswer& a) { one(DnsType::Aaaa, a); });
  }

  // Runs `n` lookups in parallel and concatenates their results in index order.
  void all(size_t n, std::function<void(size_t, Done)> start, Done done) {
    if (n == 0) {
      done({});
      return;
    }
    struct Acc {
      std::vector<Targets> parts;
      size_t left = 0;
    };
    auto acc = std::make_shared<Acc>();
    acc->parts.resize(n);
    acc->left = n;
    for (size_t i = 0; i < n; ++i)
      start(i, [acc, done, i](Targets t) {
        acc->parts[i] = std::move(t);
        if (--acc->left > 0) return;
        Targets out;
        for (auto& part : acc->parts)
          for (auto& x : part) out.push_back(std::move(x));
        done(std::move(out));
      });
  }

  // SRV of `name` (RFC 2782 order), then the addresses of every target.
  void srv(const std::string& name, TransportType t, Done done) {
    auto self = shared_from_this();
    loc->dns_.query(name, DnsType::Srv, [self, name, t, done](const DnsAnswer& a) {
      if (!self->live()) return;
      self->noteError(DnsType::Srv, name, a);
      std::vector<SrvRecord> records;
      for (auto& r : orderSrv(a.srv, [self](uint32_t n) { return self->loc->random(n); }))
        if (!r.target.empty() && r.target != ".") records.push_back(std::move(r));
      self->all(
          records.size(),
          [self, records, t](size_t i, Done d) {
            self->hosts(records[i].target, records[i].port, t, std::move(d));
          },
          done);
    });
  }

  void start() {
    if (port) {
      // RFC 3263 §4.2: a port but no numeric host: A/AAAA.
      TransportType t = transport.value_or(sips ? TransportType::Tls : TransportType::Udp);
      auto self = shared_from_this();
      hosts(host, port, t, [self](Targets ts) { self->finish(std::move(ts)); });
      return;
    }
    if (transport) {
      // §4.2: transport known, no port: SRV for that transport, else A/AAAA.
      TransportType t = *transport;
      auto self = shared_from_this();
      srv(std::string(srvPrefix(t)) + "." + host, t, [self, t](Targets ts) {
        if (!ts.empty()) return self->finish(std::move(ts));
        self->hosts(self->host, defaultPort(t), t,
                    [self](Targets h) { self->finish(std::move(h)); });
      });
      return;
    }
    naptr();
  }

  void naptr() {
    auto self = shared_from_this();
    loc->dns_.query(host, DnsType::Naptr, [self](const DnsAnswer& a) {
      if (!self->live()) return;
      self->noteError(DnsType::Naptr, self->host, a);
      auto usable = usableNaptr(a.naptr, self->sips, self->loc->config_.transports);
      self->all(
          usable.size(),
          [self, usable](size_t i, Done d) {
            self->srv(usable[i].srvName, usable[i].transport, std::move(d));
          },
          [self](Targets ts) {
            if (!ts.empty()) return self->finish(std::move(ts));
            self->srvFallback();
          });
    });
  }

  // RFC 3263 §4.1: no (usable) NAPTR records: SRV for each transport we support.
  void srvFallback() {
    std::vector<TransportType> order;
    for (auto t : loc->config_.transports)
      if (!sips || t == TransportType::Tls) order.push_back(t);
    auto self = shared_from_this();
    all(
        order.size(),
        [self, order](size_t i, Done d) {
          self->srv(std::string(srvPrefix(order[i])) + "." + self->host, order[i], std::move(d));
        },
        [self](Targets ts) {
          if (!ts.empty()) return self->finish(std::move(ts));
          // RFC 3263 §4.2: no SRV records: A/AAAA with the default port; UDP for sip (or the
          // first transport we have), TLS for sips.
          TransportType t = self->sips ? TransportType::Tls : TransportType::Udp;
          const auto& ts2 = self->loc->config_.transports;
          if (!self->sips && !supports(ts2, t) && !ts2.empty()) t = ts2.front();
          self->hosts(self->host, defaultPort(t), t,
                      [self](Targets h) { self->finish(std::move(h)); });
        });
  }
};

ServerLocator::ServerLocator(DnsResolver& dns, LocatorConfig config)
    : dns_(dns), config_(std::move(config)) {}

ServerLocator::~ServerLocator() = default;

uint32_t ServerLocator::random(uint32_t n) {
  if (config_.random) return config_.random(n);
  return std::uniform_int_distribution<uint32_t>(0, n)(rng_);
}

void ServerLocator::locate(std::string_view uriText, LocateCallback cb) {
  auto later = [this, cb](Result<std::vector<SipTarget>> r) mutable {
    std::weak_ptr<char> weak = alive_;
    asio::post(dns_.ioContext(), [weak, cb = std::move(cb), r = std::move(r)]() mutable {
      if (!weak.expired()) cb(std::move(r));
    });
  };
  auto uri = parseUri(uriText);
  if (!uri) return later(makeError(400, "bad URI: " + uri.error().message));
  if (uri->scheme != UriScheme::Sip && uri->scheme != UriScheme::Sips)
    return later(makeError(400, "not a sip: or sips: URI"));
  if (auto numeric = locateNumeric(*uri)) {
    if (numeric->empty()) return later(makeError(400, "unsupported transport"));
    if (!supports(config_.transports, numeric->front().transport))
      return later(makeError(400, "transport not available"));
    return later(std::move(*numeric));
  }
  auto t = explicitTransport(*uri);
  if (!t) return later(t.error());
  if (*t && !supports(config_.transports, **t))
    return later(makeError(400, "transport not available"));
  auto op = std::make_shared<Op>();
  op->loc = this;
  op->alive = alive_;
  op->uriText = std::string(uriText);
  op->host = std::string(uri->host);
  op->port = uri->port;
  op->sips = uri->scheme == UriScheme::Sips;
  op->transport = *t;
  op->cb = std::move(cb);
  if (op->host.empty()) return later(makeError(400, "URI without host"));
  op->start();
}

} // namespace verbund::sip

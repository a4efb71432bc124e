#include "sip/dns/dns_resolver.h"

#include "base/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace verbund::sip {

namespace {

std::string normalizeName(std::string_view name) {
  std::string out(name);
  while (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

std::string cacheKey(std::string_view name, DnsType type) {
  return normalizeName(name) + '/' + std::to_string(int(type));
}

std::string stripDot(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string ucharText(const unsigned char* s) {
  return s ? std::string(reinterpret_cast<const char*>(s)) : std::string();
}

// Skips a possibly compressed domain name; returns the offset after it or nullopt.
std::optional<size_t> skipName(const unsigned char* d, size_t n, size_t pos) {
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= n) return std::nullopt;
    unsigned len = d[pos];
    if (len == 0) return pos + 1;
    if ((len & 0xC0) == 0xC0) return pos + 2 <= n ? std::optional<size_t>(pos + 2) : std::nullopt;
    if (len & 0xC0) return std::nullopt; // reserved label types
    pos += 1 + len;
  }
  return std::nullopt;
}

uint16_t be16(const unsigned char* p) {
  return uint16_t((p[0] << 8) | p[1]);
}
uint32_t be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::once_flag g_aresInit;
bool g_aresOk = false;

} // namespace

std::string_view dnsTypeName(DnsType t) {
  switch (t) {
  case DnsType::A:
    return "A";
  case DnsType::Aaaa:
    return "AAAA";
  case DnsType::Srv:
    return "SRV";
  case DnsType::Naptr:
    return "NAPTR";
  }
  return "?";
}

std::optional<uint32_t> lowestAnswerTtl(const unsigned char* d, size_t n) {
  if (!d || n < 12) return std::nullopt;
  unsigned qd = be16(d + 4), an = be16(d + 6);
  size_t pos = 12;
  for (unsigned i = 0; i < qd; ++i) {
    auto p = skipName(d, n, pos);
    if (!p || *p + 4 > n) return std::nullopt;
    pos = *p + 4;
  }
  std::optional<uint32_t> lowest;
  for (unsigned i = 0; i < an; ++i) {
    auto p = skipName(d, n, pos);
    if (!p || *p + 10 > n) return std::nullopt;
    uint32_t ttl = be32(d + *p + 4);
    if (ttl > 0x7fffffffu) ttl = 0; // RFC 2181 §8: treat as zero
    uint16_t rdlen = be16(d + *p + 8);
    pos = *p + 10 + rdlen;
    if (pos > n) return std::nullopt;
    lowest = lowest ? std::min(*lowest, ttl) : ttl;
  }
  return lowest;
}

// ---- c-ares on asio ----

struct DnsResolver::Impl {
  struct Watch {
    explicit Watch(asio::io_context& ctx, int socket) : sd(ctx, socket), fd(socket) {}
    asio::posix::stream_descriptor sd;
    int fd;
    bool wantRead = false, wantWrite = false;
    bool readArmed = false, writeArmed = false;
  };

  explicit Impl(asio::io_context& ctx) : io(ctx), timer(ctx) {}
  ~Impl() {
    if (channel) ares_destroy(channel);            // fails pending queries with ARES_EDESTRUCTION
    for (auto& [fd, w] : watches) w->sd.release(); // c-ares owns the fd; cancels our waits
  }

  static void sockState(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    if (!readable && !writable) {
      auto it = self->watches.find(fd);
      if (it != self->watches.end()) {
        it->second->sd.release();
        self->watches.erase(it);
      }
      return;
    }
    auto& w = self->watches[fd];
    if (!w) {
      try {
        w = std::make_shared<Watch>(self->io, fd);
      } catch (const std::exception& e) {
        // Cannot watch the socket: the query times out through the timer.
        logger("dns")->warn("cannot watch DNS socket: {}", e.what());
        self->watches.erase(fd);
        return;
      }
    }
    w->wantRead = readable != 0;
    w->wantWrite = writable != 0;
    self->arm(w);
  }

  void arm(const std::shared_ptr<Watch>& w) {
    if (w->wantRead && !w->readArmed) {
      w->readArmed = true;
      std::weak_ptr<Watch> weak = w;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_read,
                       [this, weak](const asio::error_code& ec) {
                         auto s = weak.lock();
                         if (!s) return; // released: `this` may be gone too
                         s->readArmed = false;
                         if (ec || !s->wantRead) return;
                         ares_process_fd(channel, s->fd, ARES_SOCKET_BAD);
                         afterProcess(s);
                       });
    }
    if (w->wantWrite && !w->writeArmed) {
      w->writeArmed = true;
      std::weak_ptr<Watch> weak = w;
      w->sd.async_wait(asio::posix::stream_descriptor::wait_write,
                       [this, weak](const asio::error_code& ec) {
                         auto s = weak.lock();
                         if (!s) return;
                         s->writeArmed = false;
                         if (ec || !s->wantWrite) return;
                         ares_process_fd(channel, ARES_SOCKET_BAD, s->fd);
                         afterProcess(s);
                       });
    }
  }

  void afterProcess(const std::shared_ptr<Watch>& s) {
    // The socket may have been closed (and its number reused) while c-ares processed it.
    auto it = watches.find(s->fd);
    if (it != watches.end() && it->second == s) arm(s);
    resetTimer();
  }

  void resetTimer() {
    timeval tv{};
    timeval* t = ares_timeout(channel, nullptr, &tv);
    if (!t) {
      timer.cancel();
      return;
    }
    auto delay = std::chrono::seconds(t->tv_sec) + std::chrono::microseconds(t->tv_usec);
    timer.expires_after(delay + std::chrono::milliseconds(1));
    std::weak_ptr<char> weak = alive;
    timer.async_wait([this, weak](const asio::error_code& ec) {
      if (ec || weak.expired()) return;
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); // timeouts
      resetTimer();
    });
  }

  asio::io_context& io;
  asio::steady_timer timer;
  ares_channel channel = nullptr;
  std::unordered_map<int, std::shared_ptr<Watch>> watches;
  std::shared_ptr<char> alive = std::make_shared<char>();
};

struct DnsResolver::Pending {
  DnsResolver* self;
  std::string key;
  DnsType type;
};

DnsResolver::DnsResolver(asio::io_context& io, DnsConfig config)
    : io_(io), config_(std::move(config)) {}

DnsResolver::~DnsResolver() {
  alive_.reset();
  impl_.reset(); // runs the EDESTRUCTION callbacks, which only free their Pending
}

Result<std::unique_ptr<DnsResolver>> DnsResolver::create(asio::io_context& io, DnsConfig config) {
  std::call_once(g_aresInit,
                 [] { g_aresOk = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS; });
  if (!g_aresOk) return makeError(500, "c-ares library initialisation failed");
  std::unique_ptr<DnsResolver> r(new DnsResolver(io, std::move(config)));
  r->impl_ = std::make_unique<Impl>(io);
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  opts.sock_state_cb = &Impl::sockState;
  opts.sock_state_cb_data = r->impl_.get();
  opts.timeout = int(std::max<int64_t>(1, r->config_.timeout.count()));
  opts.tries = std::max(1, r->config_.tries);
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  int st = ares_init_options(&r->impl_->channel, &opts, mask);
  if (st != ARES_SUCCESS)
    return makeError(500, std::string("c-ares init failed: ") + ares_strerror(st));
  if (!r->config_.servers.empty()) {
    std::string csv;
    for (const auto& s : r->config_.servers) {
      if (!csv.empty()) csv += ',';
      SockAddr a = s;
      if (a.port == 0) a.port = 53;
      csv += a.toString();
    }
    st = ares_set_servers_ports_csv(r->impl_->channel, csv.c_str());
    if (st != ARES_SUCCESS)
      return makeError(500, "bad DNS server list \"" + csv + "\": " + ares_strerror(st));
  }
  return r;
}

TimePoint DnsResolver::now() const {
  return config_.now ? config_.now() : Clock::now();
}

void DnsResolver::deliver(Callback cb, std::shared_ptr<const DnsAnswer> answer) {
  std::weak_ptr<char> weak = alive_;
  asio::post(io_, [weak, cb = std::move(cb), answer = std::move(answer)] {
    if (weak.expired()) return;
    cb(*answer);
  });
}

std::optional<DnsAnswer> DnsResolver::cached(std::string_view name, DnsType type) const {
  auto it = cache_.find(cacheKey(name, type));
  if (it == cache_.end() || it->second.expires <= now()) return std::nullopt;
  return *it->second.answer;
}

void DnsResolver::query(std::string_view name, DnsType type, Callback cb) {
  ++stats_.queries;
  std::string key = cacheKey(name, type);
  if (auto it = cache_.find(key); it != cache_.end()) {
    if (it->second.expires > now()) {
      ++stats_.cacheHits;
      deliver(std::move(cb), it->second.answer);
      return;
    }
    cache_.erase(it);
  }
  std::string host = normalizeName(name);
  if (host.empty() || host.size() > 253) {
    auto a = std::make_shared<DnsAnswer>();
    a->error = "invalid name";
    deliver(std::move(cb), std::move(a));
    return;
  }
  auto& waiters = inflight_[key];
  waiters.push_back(std::move(cb));
  if (waiters.size() > 1) return; // joins the query in flight
  ++stats_.sent;
  auto* p = new Pending{this, key, type};
  ares_query(
      impl_->channel, host.c_str(), 1 /* C_IN */, int(type),
      [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        std::unique_ptr<Pending> pending(static_cast<Pending*>(arg));
        if (status == ARES_EDESTRUCTION) return;
        DnsAnswer a;
        if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
          a.status = DnsAnswer::Status::NoData;
          a.error = status == ARES_ENOTFOUND ? "NXDOMAIN" : "no records";
        } else if (status != ARES_SUCCESS) {
          a.error = ares_strerror(status);
        } else {
          size_t size = alen > 0 ? size_t(alen) : 0;
          a.ttl = lowestAnswerTtl(abuf, size).value_or(0);
          int st = ARES_EBADRESP;
          switch (pending->type) {
          case DnsType::A: {
            hostent* he = nullptr;
            ares_addrttl ttls[32];
            int n = 32;
            st = ares_parse_a_reply(abuf, alen, &he, ttls, &n);
            if (he) ares_free_hostent(he);
            if (st == ARES_SUCCESS)
              for (int i = 0; i < n; ++i) {
                IpAddress ip;
                std::memcpy(ip.bytes.data(), &ttls[i].ipaddr, 4);
                a.addresses.push_back(ip);
              }
            break;
          }
          case DnsType::Aaaa: {
            hostent* he = nullptr;
            ares_addr6ttl ttls[32];
            int n = 32;
            st = ares_parse_aaaa_reply(abuf, alen, &he, ttls, &n);
            if (he) ares_free_hostent(he);
            if (st == ARES_SUCCESS)
              for (int i = 0; i < n; ++i) {
                IpAddress ip;
                ip.v6 = true;
                std::memcpy(ip.bytes.data(), &ttls[i].ip6addr, 16);
                a.addresses.push_back(ip);
              }
            break;
          }
          case DnsType::Srv: {
            ares_srv_reply* srv = nullptr;
            st = ares_parse_srv_reply(abuf, alen, &srv);
            for (auto* r = srv; st == ARES_SUCCESS && r; r = r->next)
              a.srv.push_back({r->priority, r->weight, r->port, stripDot(r->host)});
            if (srv) ares_free_data(srv);
            break;
          }
          case DnsType::Naptr: {
            ares_naptr_reply* naptr = nullptr;
            st = ares_parse_naptr_reply(abuf, alen, &naptr);
            for (auto* r = naptr; st == ARES_SUCCESS && r; r = r->next)
              a.naptr.push_back({r->order, r->preference, ucharText(r->flags),
                                 ucharText(r->service), ucharText(r->regexp),
                                 stripDot(r->replacement)});
            if (naptr) ares_free_data(naptr);
            break;
          }
          }
          bool empty = a.addresses.empty() && a.srv.empty() && a.naptr.empty();
          if (st == ARES_ENODATA || (st == ARES_SUCCESS && empty)) {
            a.status = DnsAnswer::Status::NoData;
            a.error = "no records";
          } else if (st != ARES_SUCCESS) {
            a.error = std::string("bad answer: ") + ares_strerror(st);
          } else {
            a.status = DnsAnswer::Status::Ok;
          }
        }
        pending->self->complete(pending->key, std::move(a));
      },
      p);
  impl_->resetTimer();
}

void DnsResolver::store(const std::string& key, const std::shared_ptr<const DnsAnswer>& answer) {
  Duration ttl;
  if (answer->status == DnsAnswer::Status::Ok)
    ttl = Duration(int64_t(std::min(answer->ttl, config_.maxTtl)) * 1000);
  else if (answer->status == DnsAnswer::Status::NoData)
    ttl = config_.negativeTtl;
  else
    return;
  if (ttl.count() <= 0) return;
  TimePoint t = now();
  if (cache_.size() >= config_.maxCacheEntries) {
    std::erase_if(cache_, [t](const auto& e) { return e.second.expires <= t; });
    if (cache_.size() >= config_.maxCacheEntries) cache_.erase(cache_.begin());
  }
  if (config_.maxCacheEntries == 0) return;
  cache_[key] = CacheEntry{answer, t + ttl};
}

void DnsResolver::complete(const std::string& key, DnsAnswer answer) {
  if (answer.status == DnsAnswer::Status::Error) {
    ++stats_.errors;
    logger("dns")->debug("DNS {} failed: {}", key, answer.error);
  }
  auto shared = std::make_shared<const DnsAnswer>(std::move(answer));
  store(key, shared);
  auto it = inflight_.find(key);
  if (it == inflight_.end()) return;
  auto waiters = std::move(it->second);
  inflight_.erase(it);
  for (auto& cb : waiters) deliver(std::move(cb), shared);
}

} // namespace verbund::sip

#include "net/listener.h"

#include "base/log.h"
#include "net/address.h"

#include <asio/ip/v6_only.hpp>

#include <cerrno>

namespace verbund::net {

namespace {
using asio::ip::tcp;
using namespace std::chrono_literals;
// After accept() failed for want of descriptors (or memory): the pending connection stays in the
// kernel's queue, so retrying at once would spin.
constexpr Duration kFdBackoff = 100ms;
constexpr Duration kErrorBackoff = 10ms;
constexpr Duration kLogInterval = 1000ms;

spdlog::logger& netLog() {
  static std::shared_ptr<spdlog::logger> l = verbund::logger("net");
  return *l;
}

bool outOfDescriptors(const asio::error_code& ec) {
  int e = ec.value();
  return ec.category() == asio::system_category() &&
         (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM);
}
} // namespace

StreamListener::StreamListener(asio::io_context& io, Timers& timers,
                               std::shared_ptr<Admission> admission, std::string name, Hooks hooks)
    : acceptor_(io), timers_(timers), admission_(std::move(admission)), name_(std::move(name)),
      hooks_(std::move(hooks)) {}

StreamListener::~StreamListener() {
  close();
}

Result<std::shared_ptr<StreamListener>> StreamListener::open(asio::io_context& io, Timers& timers,
                                                             const SockAddr& addr,
                                                             std::shared_ptr<Admission> admission,
                                                             std::string name, Hooks hooks,
                                                             bool v6Only) {
  std::shared_ptr<StreamListener> l(
      new StreamListener(io, timers, std::move(admission), std::move(name), std::move(hooks)));
  asio::error_code ec;
  auto ep = toEndpoint<tcp::endpoint>(addr);
  l->acceptor_.open(ep.protocol(), ec);
  if (!ec && addr.ip.v6 && v6Only) l->acceptor_.set_option(asio::ip::v6_only(true), ec);
  if (!ec) l->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l->acceptor_.bind(ep, ec);
  if (!ec) l->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return makeError(500, "cannot listen on " + addr.toString() + ": " + ec.message());
  auto local = l->acceptor_.local_endpoint(ec);
  if (ec) return makeError(500, "listener on " + addr.toString() + ": " + ec.message());
  l->local_ = fromEndpoint(local);
  l->accept();
  return l;
}

void StreamListener::close() {
  if (closed_) return;
  closed_ = true;
  if (backoffTimer_) timers_.cancel(std::exchange(backoffTimer_, 0));
  asio::error_code ignored;
  acceptor_.close(ignored);
}

void StreamListener::accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](const asio::error_code& ec, tcp::socket socket) {
        if (self->closed_ || ec == asio::error::operation_aborted) return;
        if (ec) {
          self->backOff(ec);
          return;
        }
        // Accept the next one first: whatever happens to this one, accepting never stops.
        self->accept();
        self->onAccepted(std::move(socket));
      });
}

void StreamListener::backOff(const asio::error_code& ec) {
  bool fd = outOfDescriptors(ec);
  if (fd && admission_->metrics().fdLimitErrors) admission_->metrics().fdLimitErrors->inc();
  if (logAllowed(lastErrorLog_, errorsSuppressed_)) {
    netLog().warn("{} accept on {}: {}{}", name_, local_.toString(), ec.message(),
                  errorsSuppressed_ ? " (" + std::to_string(errorsSuppressed_) + " more)" : "");
    errorsSuppressed_ = 0;
  }
  std::weak_ptr<StreamListener> w = weak_from_this();
  backoffTimer_ = timers_.after(fd ? kFdBackoff : kErrorBackoff, [w] {
    auto l = w.lock();
    if (!l || l->closed_) return;
    l->backoffTimer_ = 0;
    l->accept();
  });
}

bool StreamListener::logAllowed(std::optional<TimePoint>& last, uint64_t& suppressed) {
  TimePoint now = timers_.now();
  if (last && now - *last < kLogInterval) {
    ++suppressed;
    return false;
  }
  last = now;
  return true;
}

void StreamListener::onAccepted(tcp::socket socket) {
  asio::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return; // reset by the peer already; the socket closes with this scope
  SockAddr remote = fromEndpoint(ep);
  bool privileged = hooks_.privileged && hooks_.privileged(remote.ip);
  Admission::Ticket ticket;
  Admission::Verdict v = Admission::admit(admission_, remote.ip, privileged, ticket);
  if (v != Admission::Verdict::Admit) {
    const ConnectionMetrics& m = admission_->metrics();
    bool perSource =
        v == Admission::Verdict::PerSourceCap || v == Admission::Verdict::PendingPerSourceCap;
    if (Counter* c = perSource ? m.refusedPerSourceCap : m.refusedGlobalCap) c->inc();
    if (logAllowed(lastRefusalLog_, refusalsSuppressed_)) {
      netLog().warn(
          "{}: refused connection from {}: {}{}", name_, remote.toString(),
          Admission::verdictName(v),
          refusalsSuppressed_ ? " (" + std::to_string(refusalsSuppressed_) + " more refused)" : "");
      refusalsSuppressed_ = 0;
    }
    // Closed at once: the peer sees a reset/close instead of a silent wait in the backlog.
    socket.close(ec);
    return;
  }
  if (hooks_.onAccept) hooks_.onAccept(std::move(socket), remote, std::move(ticket));
}

} // namespace verbund::net

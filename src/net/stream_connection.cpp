#include "net/stream_connection.h"

#include "net/address.h"

#include <algorithm>
#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <openssl/err.h>

namespace verbund::net {

namespace {
using asio::ip::tcp;
// Queue entries gathered into one write; bounds the iovec handed to the kernel.
constexpr size_t kMaxWriteBatch = 64;
} // namespace

std::string_view closeReasonName(StreamConnection::CloseReason why) {
  using R = StreamConnection::CloseReason;
  switch (why) {
  case R::Local:
    return "closed locally";
  case R::PeerClosed:
    return "closed by the peer";
  case R::ConnectFailed:
    return "connect failed";
  case R::HandshakeFailed:
    return "TLS handshake failed";
  case R::SetupTimeout:
    return "connect/handshake timed out";
  case R::FirstMessageTimeout:
    return "no complete message in time";
  case R::Idle:
    return "idle";
  case R::ReadFailed:
    return "read failed";
  case R::WriteFailed:
    return "write failed";
  }
  return "closed";
}

StreamConnection::StreamConnection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
                                   Timers& timers, Options options, bool outgoing)
    : timers_(timers), options_(options), outgoing_(outgoing), ctx_(std::move(tls)),
      readBuffer_(std::make_unique<char[]>(options.readChunk)) {
  if (ctx_) {
    tls_ = std::make_unique<TlsStream>(std::move(socket), *ctx_);
  } else {
    plain_.emplace(std::move(socket));
  }
  lastActivity_ = timers_.now();
}

StreamConnection::~StreamConnection() = default;

StreamConnection::Ptr StreamConnection::accepted(tcp::socket socket,
                                                 std::shared_ptr<asio::ssl::context> tls,
                                                 Timers& timers, Options options,
                                                 Admission::Ticket ticket) {
  asio::error_code ignored;
  SockAddr remote, local;
  if (auto ep = socket.remote_endpoint(ignored); !ignored) remote = fromEndpoint(ep);
  if (auto ep = socket.local_endpoint(ignored); !ignored) local = fromEndpoint(ep);
  // Small messages (SIP requests, heartbeats) must not wait for Nagle / delayed ACK (~40 ms).
  socket.set_option(tcp::no_delay(true), ignored);
  Ptr c(new StreamConnection(std::move(socket), std::move(tls), timers, options, false));
  c->remote_ = remote;
  c->local_ = local;
  c->ticket_ = std::move(ticket);
  c->state_ = c->tls_ ? State::Handshaking : State::Connecting;
  c->armDeadlines();
  return c;
}

StreamConnection::Ptr StreamConnection::outgoing(asio::io_context& io,
                                                 std::shared_ptr<asio::ssl::context> tls,
                                                 Timers& timers, Options options) {
  Ptr c(new StreamConnection(tcp::socket(io), std::move(tls), timers, options, true));
  c->armDeadlines();
  return c;
}

tcp::socket& StreamConnection::socket() {
  return tls_ ? tls_->next_layer() : *plain_;
}

template <typename F> void StreamConnection::withStream(F&& f) {
  if (tls_) {
    f(*tls_);
  } else {
    f(*plain_);
  }
}

SSL* StreamConnection::ssl() {
  return tls_ ? tls_->native_handle() : nullptr;
}

void StreamConnection::armDeadlines() {
  std::weak_ptr<StreamConnection> w = weak_from_this();
  if (options_.connectTimeout.count() > 0)
    setupTimer_ = timers_.after(options_.connectTimeout, [w] {
      auto c = w.lock();
      if (!c) return;
      c->setupTimer_ = 0;
      if (c->state_ == State::Connecting || c->state_ == State::Handshaking)
        c->fail(CloseReason::SetupTimeout,
                c->state_ == State::Connecting ? "no connection" : "TLS handshake not finished");
    });
  if (options_.firstMessageTimeout.count() > 0)
    firstMessageTimer_ = timers_.after(options_.firstMessageTimeout, [w] {
      auto c = w.lock();
      if (!c) return;
      c->firstMessageTimer_ = 0;
      if (c->firstMessageSeen_ || c->state_ == State::Closed || c->state_ == State::Closing) return;
      if (c->options_.firstMessageTimeouts) c->options_.firstMessageTimeouts->inc();
      c->fail(CloseReason::FirstMessageTimeout,
              "no complete message within " +
                  std::to_string(c->options_.firstMessageTimeout.count()) + " ms");
    });
}

void StreamConnection::start() {
  if (state_ == State::Closed) return;
  if (tls_) {
    handshake();
  } else {
    open();
  }
}

void StreamConnection::connect(std::vector<tcp::endpoint> targets) {
  if (state_ != State::Connecting) return;
  if (targets.empty()) { // reported later, like every other connect failure
    asio::post(socket().get_executor(), [self = shared_from_this()] {
      self->fail(CloseReason::ConnectFailed, "no address to connect to");
    });
    return;
  }
  remote_ = fromEndpoint(targets.front());
  asio::async_connect(socket(), targets,
                      [self = shared_from_this()](const asio::error_code& ec, tcp::endpoint ep) {
                        if (self->state_ != State::Connecting) return;
                        if (ec) {
                          self->fail(CloseReason::ConnectFailed, ec.message());
                          return;
                        }
                        asio::error_code ignored;
                        self->remote_ = fromEndpoint(ep);
                        self->socket().set_option(tcp::no_delay(true), ignored);
                        if (auto local = self->socket().local_endpoint(ignored); !ignored)
                          self->local_ = fromEndpoint(local);
                        self->lastActivity_ = self->timers_.now();
                        if (self->tls_) {
                          self->handshake();
                        } else {
                          self->open();
                        }
                      });
}

void StreamConnection::handshake() {
  state_ = State::Handshaking;
  auto type = outgoing_ ? asio::ssl::stream_base::client : asio::ssl::stream_base::server;
  tls_->async_handshake(type, [self = shared_from_this()](const asio::error_code& ec) {
    if (self->state_ != State::Handshaking) return;
    if (ec) {
      ERR_clear_error();
      self->fail(CloseReason::HandshakeFailed, ec.message());
      return;
    }
    self->open();
  });
}

void StreamConnection::open() {
  state_ = State::Open;
  lastActivity_ = timers_.now();
  if (setupTimer_) {
    timers_.cancel(setupTimer_);
    setupTimer_ = 0;
  }
  auto self = shared_from_this();
  if (handler_.onOpen) {
    handler_.onOpen();
    if (state_ != State::Open) return;
  }
  if (options_.idleTimeout.count() > 0) armIdle(options_.idleTimeout);
  startRead();
  if (!queue_.empty() && inFlight_ == 0) startWrite();
}

void StreamConnection::startRead() {
  auto handler = [self = shared_from_this()](const asio::error_code& ec, size_t n) {
    if (self->state_ == State::Closed) return;
    if (self->state_ == State::Closing) { // draining until the peer closes
      if (ec) {
        self->closeNow();
      } else {
        self->startRead();
      }
      return;
    }
    if (ec) {
      ERR_clear_error();
      bool eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
      self->fail(eof ? CloseReason::PeerClosed : CloseReason::ReadFailed, ec.message());
      return;
    }
    self->lastActivity_ = self->timers_.now();
    if (self->handler_.onData) self->handler_.onData(std::string_view(self->readBuffer_.get(), n));
    if (self->state_ == State::Open || self->state_ == State::Closing) self->startRead();
  };
  auto buffer = asio::buffer(readBuffer_.get(), options_.readChunk);
  withStream([&](auto& stream) { stream.async_read_some(buffer, handler); });
}

StreamConnection::WriteResult StreamConnection::write(std::string bytes) {
  if (state_ == State::Closed || state_ == State::Closing) return WriteResult::Closed;
  if (queuedBytes_ + bytes.size() > options_.maxWriteQueueBytes) return WriteResult::QueueFull;
  queuedBytes_ += bytes.size();
  queue_.push_back(std::move(bytes));
  if (state_ == State::Open && inFlight_ == 0) startWrite();
  return WriteResult::Queued;
}

void StreamConnection::startWrite() {
  // Everything queued (bounded) in one write; deque elements do not move when more are appended,
  // so the buffers stay valid while the write is in flight.
  writeBuffers_.clear();
  for (const auto& s : queue_) {
    if (writeBuffers_.size() == kMaxWriteBatch) break;
    writeBuffers_.push_back(asio::buffer(s));
  }
  inFlight_ = writeBuffers_.size();
  auto handler = [self = shared_from_this()](const asio::error_code& ec, size_t) {
    if (self->state_ == State::Closed) return;
    if (ec) {
      ERR_clear_error();
      if (self->state_ == State::Closing) {
        self->closeNow();
      } else {
        self->fail(CloseReason::WriteFailed, ec.message());
      }
      return;
    }
    self->lastActivity_ = self->timers_.now();
    for (size_t i = 0; i < self->inFlight_; ++i) {
      self->queuedBytes_ -= self->queue_.front().size();
      self->queue_.pop_front();
    }
    self->inFlight_ = 0;
    if (!self->queue_.empty()) {
      self->startWrite();
    } else if (self->state_ == State::Closing) {
      asio::error_code ignored;
      self->socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  };
  withStream([&](auto& stream) { asio::async_write(stream, writeBuffers_, handler); });
}

void StreamConnection::firstMessage() {
  if (firstMessageSeen_) return;
  firstMessageSeen_ = true;
  if (firstMessageTimer_) {
    timers_.cancel(firstMessageTimer_);
    firstMessageTimer_ = 0;
  }
  ticket_.firstMessage();
}

void StreamConnection::armIdle(Duration in) {
  std::weak_ptr<StreamConnection> w = weak_from_this();
  idleTimer_ = timers_.after(in, [w] {
    if (auto c = w.lock()) c->onIdleTimer();
  });
}

void StreamConnection::onIdleTimer() {
  idleTimer_ = 0;
  if (state_ != State::Open) return;
  // Activity only stamps a time; the timer is re-armed for what is left (no timer per read).
  Duration quiet = std::chrono::duration_cast<Duration>(timers_.now() - lastActivity_);
  if (quiet >= options_.idleTimeout) {
    fail(CloseReason::Idle, "idle for " + std::to_string(quiet.count()) + " ms");
    return;
  }
  armIdle(options_.idleTimeout - quiet);
}

void StreamConnection::closeAfterFlush(Duration linger) {
  if (state_ != State::Open) {
    close();
    return;
  }
  state_ = State::Closing; // from here on no callback runs (the handler may be running now)
  if (idleTimer_) timers_.cancel(std::exchange(idleTimer_, 0));
  if (firstMessageTimer_) timers_.cancel(std::exchange(firstMessageTimer_, 0));
  std::weak_ptr<StreamConnection> w = weak_from_this();
  lingerTimer_ = timers_.after(linger, [w] {
    if (auto c = w.lock()) {
      c->lingerTimer_ = 0;
      c->closeNow();
    }
  });
  if (inFlight_ == 0) {
    asio::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

void StreamConnection::close() {
  closeNow();
}

void StreamConnection::abort() {
  if (state_ == State::Closed) return;
  asio::error_code ignored;
  socket().set_option(asio::socket_base::linger(true, 0), ignored);
  abortive_ = true;
  closeNow();
}

void StreamConnection::fail(CloseReason why, const std::string& detail) {
  if (state_ == State::Closed) return;
  bool notify = state_ != State::Closing;
  closeNow();
  if (notify && handler_.onClosed) handler_.onClosed(why, detail);
}

void StreamConnection::closeNow() {
  if (state_ == State::Closed) return;
  closedIn_ = state_;
  state_ = State::Closed;
  for (TimerId* t : {&setupTimer_, &firstMessageTimer_, &idleTimer_, &lingerTimer_})
    if (*t) timers_.cancel(std::exchange(*t, 0));
  // Closing the socket aborts pending operations; their handlers hold this object, so the TLS
  // stream they touch stays alive until they have run.
  asio::error_code ignored;
  // A shutdown would queue a FIN behind the unsent bytes; an abortive close resets instead.
  if (!abortive_) socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
  unsentAtClose_ = queuedBytes_;
  // The entries handed to a write still in flight stay until this object goes: that write's
  // completion may already be queued, and the TLS stream then copies the next buffer of the batch
  // before it sees the closed socket. Only what no write points at is dropped now.
  queue_.erase(queue_.begin() + std::ptrdiff_t(std::min(inFlight_, queue_.size())), queue_.end());
  queuedBytes_ = 0;
  ticket_.release();
}

} // namespace verbund::net

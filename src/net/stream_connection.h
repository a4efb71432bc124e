#pragma once
// One stream connection over TCP or TLS, the plumbing SIP transports and federation links share:
// connect (outgoing) or accept, TLS handshake, a read loop handing bytes to the owner's framing
// callback, a bounded write queue gathered into batched writes, and deadlines on the injected
// Timers (connect + handshake, first complete message, idle). Single-threaded: everything runs on
// the io_context's thread.
//
// States: Connecting (outgoing TCP connect) → Handshaking (TLS only) → Open → Closed;
// Open → Closing (closeAfterFlush: the queue drains, the write side is shut, then Closed).
//
// Ownership: shared_ptr, held by the owner and by pending Asio operations. The handler's
// callbacks must not own the connection (capture a weak_ptr or an id): a connection keeps its
// handler until it is destroyed. close() runs no callback; every other way of closing (peer,
// error, deadline) calls onClosed once. The owner must close its connections before the Timers
// go away (closing cancels the deadlines; destruction does not touch the Timers).
//
//   auto c = StreamConnection::accepted(std::move(socket), tlsContext, timers, options, ticket);
//   c->setHandler({.onOpen = ..., .onData = frame, .onClosed = forget});
//   c->start();
//   ...                  // in onData, once a whole message is framed:
//   c->firstMessage();   // the first-message deadline no longer applies
//   c->write(bytes);
#include "base/clock.h"
#include "base/metrics.h"
#include "base/net.h"
#include "net/admission.h"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct ssl_st SSL;

namespace asio::ssl {
class context;
template <typename Stream> class stream;
} // namespace asio::ssl

namespace verbund::net {

class StreamConnection : public std::enable_shared_from_this<StreamConnection> {
public:
  enum class State { Connecting, Handshaking, Open, Closing, Closed };
  enum class CloseReason {
    Local,               // close() / closeAfterFlush() (no onClosed)
    PeerClosed,          // orderly end of stream
    ConnectFailed,       // TCP connect refused / unreachable
    HandshakeFailed,     // TLS handshake failed
    SetupTimeout,        // not Open within connectTimeout
    FirstMessageTimeout, // firstMessage() not called within firstMessageTimeout
    Idle,                // nothing read or written for idleTimeout
    ReadFailed,
    WriteFailed,
  };
  struct Options {
    Duration connectTimeout{0};      // creation → Open (TCP connect + TLS handshake); 0: none
    Duration firstMessageTimeout{0}; // creation → firstMessage(); 0: none
    Duration idleTimeout{0};         // while Open, nothing read or written; 0: none
    size_t maxWriteQueueBytes = 4u << 20;
    size_t readChunk = 16 * 1024;
    Counter* firstMessageTimeouts = nullptr; // counted when that deadline closes a connection
  };
  struct Handler {
    // TCP connected (plain) or TLS handshake done; the peer certificate is available through
    // ssl(). Reading starts when it returns, unless the owner closed the connection.
    std::function<void()> onOpen;
    std::function<void(std::string_view bytes)> onData; // the framing callback
    std::function<void(CloseReason, const std::string& detail)> onClosed;
  };
  enum class WriteResult { Queued, Closed, QueueFull };
  using Ptr = std::shared_ptr<StreamConnection>;

  // An accepted socket; `tls` null for plain TCP. `ticket` (from the listener's Admission) is
  // released when the connection closes. Call start() once the handler is set.
  static Ptr accepted(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
                      Timers& timers, Options options, Admission::Ticket ticket = {});
  // An outgoing connection; call connect() once the handler is set.
  static Ptr outgoing(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, Timers& timers,
                      Options options);
  ~StreamConnection();
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  void setHandler(Handler handler) { handler_ = std::move(handler); }
  void start();                                               // accepted connections
  void connect(std::vector<asio::ip::tcp::endpoint> targets); // outgoing: tried in turn

  // Queues bytes; queued before Open they go out once open. QueueFull leaves the connection
  // open (the owner decides), Closed: nothing was queued.
  WriteResult write(std::string bytes);
  // The owner framed the first complete message: its deadline is off, the pending slot free.
  void firstMessage();
  // Closes at once (idempotent); no callback.
  void close();
  // Closes at once and drops what is still queued, in this process and in the kernel's send
  // buffer (SO_LINGER 0: the peer gets a reset, never the bytes later). For a peer that is gone
  // or cut off, so that requests queued for it are not delivered once the path returns.
  void abort();
  // Sends what is queued, shuts the write side and waits up to `linger` for the peer to close
  // (reading and discarding), then closes. No callbacks after this call.
  void closeAfterFlush(Duration linger);

  State state() const { return state_; }
  // The state the connection was in when it closed (e.g. where a deadline caught it).
  State closedIn() const { return closedIn_; }
  bool isOpen() const { return state_ == State::Open; }
  bool isClosed() const { return state_ == State::Closed; }
  bool isOutgoing() const { return outgoing_; }
  bool isTls() const { return tls_ != nullptr; }
  SSL* ssl(); // null for plain TCP
  const SockAddr& remote() const { return remote_; }
  const SockAddr& local() const { return local_; }
  size_t queuedBytes() const { return queuedBytes_; }
  // Bytes still queued when the connection closed (lost unless the peer got them otherwise).
  size_t unsentBytes() const { return unsentAtClose_; }

private:
  using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;
  StreamConnection(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls,
                   Timers& timers, Options options, bool outgoing);
  asio::ip::tcp::socket& socket();
  template <typename F> void withStream(F&& f);
  void armDeadlines();
  void handshake();
  void open();
  void startRead();
  void startWrite();
  void armIdle(Duration in);
  void onIdleTimer();
  void fail(CloseReason why, const std::string& detail);
  void closeNow();

  Timers& timers_;
  Options options_;
  bool outgoing_;
  State state_ = State::Connecting;
  State closedIn_ = State::Connecting;
  std::shared_ptr<asio::ssl::context> ctx_; // before the stream that uses it
  std::optional<asio::ip::tcp::socket> plain_;
  std::unique_ptr<TlsStream> tls_;
  Admission::Ticket ticket_;
  Handler handler_;
  SockAddr remote_;
  SockAddr local_;
  std::unique_ptr<char[]> readBuffer_;
  std::deque<std::string> queue_;
  size_t queuedBytes_ = 0;
  size_t unsentAtClose_ = 0;
  size_t inFlight_ = 0; // queue entries handed to the current write
  std::vector<asio::const_buffer> writeBuffers_;
  TimePoint lastActivity_{};
  TimerId setupTimer_ = 0;
  TimerId firstMessageTimer_ = 0;
  TimerId idleTimer_ = 0;
  TimerId lingerTimer_ = 0;
  bool firstMessageSeen_ = false;
  bool abortive_ = false; // abort(): no shutdown, SO_LINGER 0
};

std::string_view closeReasonName(StreamConnection::CloseReason why);

} // namespace verbund::net

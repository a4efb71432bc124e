#include "net/tls.h"

#include <asio/ssl/context.hpp>
#include <openssl/ssl.h>

namespace verbund::net {

Result<std::shared_ptr<asio::ssl::context>> makeTlsContext(const TlsBaseline& baseline) {
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  } catch (const std::exception& e) {
    return makeError(500, std::string("TLS context: ") + e.what());
  }
  SSL_CTX* h = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(h, baseline.requireTls13 ? TLS1_3_VERSION : TLS1_2_VERSION) !=
      1)
    return makeError(500, "TLS: cannot set minimum protocol version");
  uint64_t options =
      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (!baseline.resumption) options |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(h, options);
  if (baseline.resumption) {
    const auto* id = reinterpret_cast<const unsigned char*>(baseline.sessionContext.data());
    SSL_CTX_set_session_id_context(h, id, unsigned(baseline.sessionContext.size()));
  } else {
    SSL_CTX_set_session_cache_mode(h, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(h, 0);
  }
  return ctx;
}

} // namespace verbund::net

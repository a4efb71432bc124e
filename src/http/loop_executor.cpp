#include "http/loop_executor.h"

namespace verbund::http::detail {
Counter loopTimeouts("verbund_http_loop_timeouts_total",
                     "Admin API requests answered 503 because the node's loop was too busy");
} // namespace verbund::http::detail

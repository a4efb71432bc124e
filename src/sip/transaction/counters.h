#pragma once
// Counters of the transaction layer (process-wide, Prometheus names in transaction_layer.cpp).
#include "base/metrics.h"

namespace verbund::sip::tx_counters {

extern Counter created;
extern Counter terminated;
extern Counter timeouts;
extern Counter retransmissionsSent;
extern Counter retransmissionsAbsorbed;
extern Counter strayResponses;
extern Counter sent481;
extern Counter sent482;
extern Counter transportErrors;

} // namespace verbund::sip::tx_counters

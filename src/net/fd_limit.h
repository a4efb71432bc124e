#pragma once
// The process's open-file limit (RLIMIT_NOFILE) and the connection caps derived from it. Every
// TCP/TLS connection is a descriptor; a node whose connections can use them all has none left
// for its database, log files, UDP sockets or new listeners ("Too many open files"). So the soft
// limit is raised as far as the hard limit allows at start, and the global connection caps leave
// headroom below it.
#include <cstddef>
#include <cstdint>
#include <string>

namespace verbund::net {

struct FileLimit {
  uint64_t before = 0; // soft limit found at start
  uint64_t soft = 0;   // soft limit now
  uint64_t hard = 0;
  std::string error; // why it could not be raised ("" when it was, or did not need to be)
};

// Raises the soft RLIMIT_NOFILE towards the hard limit (an unlimited hard limit: towards
// `ceiling`, halving on refusal since the kernel's fs.nr_open may be lower).
FileLimit raiseFileLimit(uint64_t ceiling = uint64_t{1} << 20);
// The current soft limit (0 if unknown).
uint64_t currentFileLimit();

struct ConnectionBudget {
  size_t headroom = 0;   // descriptors kept for everything that is not a stream connection
  size_t sip = 0;        // SIP TCP + TLS connections, all listeners and outgoing together
  size_t federation = 0; // federation control-plane connections
};

// Splits `fileLimit` descriptors: headroom max(256, limit/8); of the rest 1/16 (16..1024) for
// the federation control plane, the remainder for SIP streams.
ConnectionBudget connectionBudget(uint64_t fileLimit);

} // namespace verbund::net

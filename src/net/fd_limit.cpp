#include "net/fd_limit.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/resource.h>

namespace verbund::net {

uint64_t currentFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  return rl.rlim_cur == RLIM_INFINITY ? uint64_t{1} << 20 : uint64_t(rl.rlim_cur);
}

FileLimit raiseFileLimit(uint64_t ceiling) {
  FileLimit out;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = std::string("getrlimit: ") + std::strerror(errno);
    return out;
  }
  auto value = [&](rlim_t v) { return v == RLIM_INFINITY ? ceiling : uint64_t(v); };
  out.before = value(rl.rlim_cur);
  out.soft = out.before;
  out.hard = value(rl.rlim_max);
  uint64_t target = std::min(out.hard, ceiling);
  if (rl.rlim_cur != RLIM_INFINITY && target > out.before) {
    // Above fs.nr_open the kernel refuses (EPERM) even under an unlimited hard limit.
    for (uint64_t want = target; want > out.before; want /= 2) {
      rlimit next = rl;
      next.rlim_cur = rlim_t(want);
      if (::setrlimit(RLIMIT_NOFILE, &next) == 0) {
        out.soft = want;
        break;
      }
      out.error = std::string("setrlimit: ") + std::strerror(errno);
    }
    if (out.soft > out.before) out.error.clear();
  }
  return out;
}

ConnectionBudget connectionBudget(uint64_t fileLimit) {
  ConnectionBudget b;
  uint64_t headroom = std::max<uint64_t>(256, fileLimit / 8);
  b.headroom = size_t(headroom);
  // Tiny limits (below the headroom) still get a few connections, as before this budget.
  uint64_t usable = fileLimit > headroom + 64 ? fileLimit - headroom : 64;
  b.federation = size_t(std::clamp<uint64_t>(usable / 16, 16, 1024));
  b.sip = size_t(usable > b.federation + 32 ? usable - b.federation : 32);
  return b;
}

} // namespace verbund::net

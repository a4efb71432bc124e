#pragma once
// The data directory's lock: a running node holds an exclusive flock on <data_dir>/verbund.lock
// for its whole life (the kernel drops it when the process ends, kill -9 included, so a stale
// lock cannot exist). `verbund restore` takes the same lock, which is how it knows that no node
// runs on the directory; a second node on the same directory is refused the same way. The file
// holds the holder's pid, for the message only.
#include "base/result.h"

#include <string>

namespace verbund::app {

inline constexpr const char* kLockFileName = "verbund.lock";

class DataDirLock {
public:
  DataDirLock() = default;
  ~DataDirLock();
  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  // Takes the lock without waiting: Error{409, "... is in use by process N"} when another
  // process holds it; other failures (no such directory, permissions) are Error{500}.
  static Result<DataDirLock> acquire(const std::string& dataDir);
  bool held() const { return fd_ >= 0; }

private:
  int fd_ = -1;
};

} // namespace verbund::app

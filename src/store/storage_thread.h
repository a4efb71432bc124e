#pragma once
// One background thread that runs storage jobs in the order they were posted, so that writes
// which may wait for the disk (a flush, a lock held by another process) never run on an event
// loop. The registrar posts its write-behind batches here.
//
// A job must not touch state of the posting thread except through what it captured; it reports
// back through atomics or by posting to the loop.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace verbund::store {

class StorageThread {
public:
  StorageThread();
  // Runs every job already posted, then joins.
  ~StorageThread();
  StorageThread(const StorageThread&) = delete;
  StorageThread& operator=(const StorageThread&) = delete;

  void post(std::function<void()> job);
  // Waits until every job posted before the call has run.
  void drain();

private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace verbund::store

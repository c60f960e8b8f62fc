// A thread that runs one subsystem generation's calls into plugin code
// (factory, Start, CheckHealth, Stop) one at a time. If a call hangs, the
// supervisor abandons the worker (Detach) and moves on; the hung call keeps
// what it captured (and so the plugin library) alive until it returns.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace esdb::host {

class LifecycleWorker {
 public:
  LifecycleWorker();
  ~LifecycleWorker();  // Join()s unless detached
  LifecycleWorker(const LifecycleWorker&) = delete;
  LifecycleWorker& operator=(const LifecycleWorker&) = delete;

  void Post(std::function<void()> task);
  // Lets the queued tasks finish, then joins the thread.
  void Join();
  // Lets the thread finish on its own; we no longer wait for it.
  void Detach();

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> tasks;
    bool closing = false;
  };
  static void Run(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace esdb::host

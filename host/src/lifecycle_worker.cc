#include "lifecycle_worker.h"

namespace esdb::host {

LifecycleWorker::LifecycleWorker() : state_(std::make_shared<State>()), thread_(&LifecycleWorker::Run, state_) {}

LifecycleWorker::~LifecycleWorker() { Join(); }

void LifecycleWorker::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->tasks.push_back(std::move(task));
  state_->cv.notify_one();
}

void LifecycleWorker::Join() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->closing = true;
    state_->cv.notify_one();
  }
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // destroyed from a task of its own: it exits by itself
    } else {
      thread_.join();
    }
  }
}

void LifecycleWorker::Detach() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->closing = true;
    state_->cv.notify_one();
  }
  if (thread_.joinable()) thread_.detach();
}

void LifecycleWorker::Run(std::shared_ptr<State> state) {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(state->mu);
      state->cv.wait(lock, [&] { return state->closing || !state->tasks.empty(); });
      if (state->tasks.empty()) return;  // closing and drained
      task = std::move(state->tasks.front());
      state->tasks.pop_front();
    }
    task();
    task = nullptr;  // release what it captured before waiting again
  }
}

}  // namespace esdb::host

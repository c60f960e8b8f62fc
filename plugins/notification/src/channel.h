// Channel<T>: the bounded, ordered hand-off from the notification subsystem
// to one subscriber's handlers.
//
// Producers Push() items; a drain task posted on the io_context calls the
// subscriber's batch handler with up to max_batch items at a time, never
// concurrently with itself. The handlers (std::function objects owned by the
// subscriber's library) are destroyed before Cancel() or Close() returns, so
// nothing of the subscriber's code is kept after it let go.
//
// Thread-safe. Lock order: callers may hold their own lock while calling
// Push/Drop/Signal (those never wait), but must not hold any lock a handler
// could take while calling Cancel/Close (those wait for a running handler).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "esdb/status.h"

namespace esdb_notification {

template <class T>
class Channel : public std::enable_shared_from_this<Channel<T>> {
 public:
  using BatchHandler = std::function<void(const std::vector<T>&)>;
  using DropHandler = std::function<void(const esdb::Status&)>;
  // Size of one item in bytes, for the byte limit.
  using SizeOf = size_t (*)(const T&);

  struct Limits {
    size_t max_items = 10000;
    size_t max_bytes = SIZE_MAX;
    size_t max_batch = 500;
  };

  Channel(boost::asio::io_context& io, Limits limits, SizeOf size_of, BatchHandler on_batch,
          std::function<void()> on_signal, DropHandler on_dropped)
      : io_(io),
        limits_(limits),
        size_of_(size_of),
        on_batch_(std::move(on_batch)),
        on_signal_(std::move(on_signal)),
        on_dropped_(std::move(on_dropped)) {}

  // Hook run on the drain task (outside the lock) after a batch was handed
  // over, while the queue holds fewer than half the item limit. Plugin-owned
  // code (the catch-up reader uses it to read the next page). Set before use.
  void SetOnRoom(std::function<void()> on_room) {
    std::lock_guard<std::mutex> lock(mu_);
    on_room_ = std::move(on_room);
  }

  // Queues items. False (nothing queued) when closed or when the limits would
  // be exceeded; the caller decides (usually Drop with kResourceExhausted).
  bool Push(std::vector<T> items) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    size_t bytes = 0;
    for (const T& item : items) bytes += size_of_(item);
    if (queue_.size() + items.size() > limits_.max_items || bytes_ + bytes > limits_.max_bytes) return false;
    for (T& item : items) queue_.push_back(Entry{std::move(item), false});
    bytes_ += bytes;
    ScheduleLocked();
    return true;
  }

  // Queues a call of the signal handler (e.g. "caught up") after the items
  // queued so far. False when closed.
  bool Signal() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    queue_.push_back(Entry{T{}, true});
    ScheduleLocked();
    return true;
  }

  // Ends the channel from a producer: queued items are discarded and the
  // drop handler runs on the drain task with `reason`. Never waits.
  // Idempotent; the first reason wins.
  void Drop(esdb::Status reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    ClearLocked();
    drop_reason_ = std::move(reason);
    drop_pending_ = true;
    ScheduleLocked();
  }

  // Ends the channel now: discards queued items, waits for a running handler
  // (unless called from inside it), calls the drop handler with `reason` on
  // this thread (or with the earlier Drop's reason if one is pending), and
  // destroys the handlers. No-op if already cancelled or dropped.
  void Close(esdb::Status reason) { Finish(std::move(reason), /*notify=*/true); }

  // Ends the channel for the subscriber: like Close but the drop handler is
  // not called. After it returns no handler runs again (from inside a
  // handler: none after the current one returns).
  void Cancel() { Finish(esdb::Status::OK(), /*notify=*/false); }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  struct Entry {
    T item;
    bool signal;
  };
  struct Handlers {
    BatchHandler on_batch;
    std::function<void()> on_signal;
    DropHandler on_dropped;
    std::function<void()> on_room;
  };

  void ClearLocked() {
    queue_.clear();
    bytes_ = 0;
  }

  Handlers TakeHandlersLocked() {
    return Handlers{std::move(on_batch_), std::move(on_signal_), std::move(on_dropped_), std::move(on_room_)};
  }

  void ScheduleLocked() {
    if (scheduled_ || running_) return;
    scheduled_ = true;
    boost::asio::post(io_, [weak = this->weak_from_this()] {
      if (auto self = weak.lock()) self->Drain();
    });
  }

  void Finish(esdb::Status reason, bool notify) {
    Handlers handlers;
    esdb::Status why;
    bool call_drop = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const bool inside = running_ && runner_ == std::this_thread::get_id();
      if (finished_) {
        // Someone else finished it; still wait out a drop handler running now.
        if (!inside) idle_.wait(lock, [this] { return !running_; });
        return;
      }
      if (drop_pending_) {
        why = drop_reason_;
        call_drop = true;
      } else if (!closed_) {
        why = std::move(reason);
        call_drop = notify;
      }
      closed_ = true;
      drop_pending_ = false;
      ClearLocked();
      if (inside) {
        // The handler that is running now calls us; the drain task destroys
        // the handlers once it returns.
        finished_ = true;
        if (call_drop && on_dropped_) {
          DropHandler drop = std::move(on_dropped_);
          lock.unlock();
          drop(why);
        }
        return;
      }
      idle_.wait(lock, [this] { return !running_; });
      finished_ = true;
      handlers = TakeHandlersLocked();
    }
    if (call_drop && handlers.on_dropped) handlers.on_dropped(why);
  }

  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    scheduled_ = false;
    if (finished_) {
      Handlers dead = TakeHandlersLocked();
      lock.unlock();
      return;  // `dead` is destroyed here, outside the lock
    }
    if (drop_pending_) {
      drop_pending_ = false;
      finished_ = true;
      Handlers handlers = TakeHandlersLocked();
      esdb::Status why = drop_reason_;
      running_ = true;
      runner_ = std::this_thread::get_id();
      lock.unlock();
      if (handlers.on_dropped) handlers.on_dropped(why);
      handlers = Handlers{};
      lock.lock();
      running_ = false;
      idle_.notify_all();
      return;
    }
    if (queue_.empty()) return;

    // One batch (or one signal) per task, so subscribers take turns.
    std::vector<T> batch;
    bool signal = false;
    if (queue_.front().signal) {
      signal = true;
      queue_.pop_front();
    } else {
      while (!queue_.empty() && !queue_.front().signal && batch.size() < limits_.max_batch) {
        bytes_ -= size_of_(queue_.front().item);
        batch.push_back(std::move(queue_.front().item));
        queue_.pop_front();
      }
    }
    running_ = true;
    runner_ = std::this_thread::get_id();
    lock.unlock();

    bool threw = false;
    try {
      if (signal) {
        if (on_signal_) on_signal_();
      } else {
        on_batch_(batch);
      }
    } catch (...) {
      threw = true;
    }
    batch.clear();

    std::function<void()> on_room;
    lock.lock();
    running_ = false;
    idle_.notify_all();
    if (finished_) {
      Handlers dead = TakeHandlersLocked();
      lock.unlock();
      return;
    }
    if (threw) {
      lock.unlock();
      Drop(esdb::Status::Internal("subscriber handler threw an exception"));
      return;
    }
    if (!queue_.empty() || drop_pending_) ScheduleLocked();
    if (!closed_ && queue_.size() * 2 < limits_.max_items) on_room = on_room_;
    lock.unlock();
    if (on_room) on_room();
  }

  boost::asio::io_context& io_;
  const Limits limits_;
  const SizeOf size_of_;

  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::deque<Entry> queue_;
  size_t bytes_ = 0;
  bool scheduled_ = false;    // a drain task is posted
  bool running_ = false;      // a handler runs now
  std::thread::id runner_;    // ...on this thread
  bool closed_ = false;       // no more items accepted
  bool drop_pending_ = false; // the drain task owes the drop handler a call
  bool finished_ = false;     // handlers are (being) destroyed; nothing runs again
  esdb::Status drop_reason_;
  BatchHandler on_batch_;
  std::function<void()> on_signal_;
  DropHandler on_dropped_;
  std::function<void()> on_room_;
};

}  // namespace esdb_notification

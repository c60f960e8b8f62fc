// The hand-off between the notification service's handlers (which must
// return at once) and the gRPC thread that writes a subscription's
// messages: a bounded queue of event batches, the caught-up mark and the
// drop reason. Past `max_events` queued events the queue takes nothing more
// and, once the writer has taken what it holds, hands out a `fell_behind`
// item: the writer then subscribes again from the last event it wrote (a
// catch-up from the store), so memory stays bounded and a slow client loses
// nothing. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "esdb/status.h"
#include "esdb/subscriptions.h"

namespace esdb_grpc {

class DeliveryQueue {
 public:
  struct Item {
    std::vector<esdb::SharedEvent> events;  // in order
    bool caught_up = false;                 // history delivered, live from here
    bool fell_behind = false;               // more than max_events came: this queue takes no more
  };

  explicit DeliveryQueue(size_t max_events) : max_events_(max_events) {}

  void PushEvents(const std::vector<esdb::SharedEvent>& events) {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropped_ || behind_) return;
    // One batch is always taken into an empty queue, so that each round
    // moves on, whatever the batch size.
    if (queued_ > 0 && queued_ + events.size() > max_events_) {
      behind_ = true;
    } else {
      queued_ += events.size();
      items_.push_back(Item{events, false, false});
    }
    cv_.notify_one();
  }
  void PushCaughtUp() {
    std::lock_guard<std::mutex> lock(mu_);
    if (behind_) return;  // the next subscription catches up again
    items_.push_back(Item{{}, true, false});
    cv_.notify_one();
  }
  void Drop(const esdb::Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dropped_) dropped_ = why;
    cv_.notify_one();
  }

  // The next item, waiting up to `wait`: nullopt on timeout or once dropped
  // (then `*dropped` is set; queued items before a drop are still handed
  // out); after the queued items of a queue that fell behind, an item with
  // `fell_behind` (again at each call).
  std::optional<Item> Pop(std::chrono::milliseconds wait, std::optional<esdb::Status>* dropped) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [&] { return !items_.empty() || dropped_ || behind_; });
    if (!items_.empty()) {
      Item item = std::move(items_.front());
      items_.pop_front();
      queued_ -= item.events.size();
      return item;
    }
    if (dropped_) {
      *dropped = dropped_;
      return std::nullopt;
    }
    if (behind_) return Item{{}, false, true};
    return std::nullopt;
  }

 private:
  const size_t max_events_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  size_t queued_ = 0;
  std::optional<esdb::Status> dropped_;
  bool behind_ = false;  // more than max_events_ came
};

}  // namespace esdb_grpc

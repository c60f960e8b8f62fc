// The hand-off between the notification service's handlers (which must
// return at once) and the gRPC thread that writes a subscription's
// messages: a bounded queue of event batches, the caught-up mark and the
// drop reason. Past `max_events` queued events the subscriber is dropped
// (RESOURCE_EXHAUSTED), so memory stays bounded. Thread-safe.
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
  };

  explicit DeliveryQueue(size_t max_events) : max_events_(max_events) {}

  void PushEvents(const std::vector<esdb::SharedEvent>& events) {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropped_) return;
    queued_ += events.size();
    if (queued_ > max_events_) {
      dropped_ = esdb::Status::ResourceExhausted("the subscriber fell more than " + std::to_string(max_events_) +
                                                 " events behind (subscriber_queue_events) and was dropped");
      items_.clear();
    } else {
      items_.push_back(Item{events, false});
    }
    cv_.notify_one();
  }
  void PushCaughtUp() {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(Item{{}, true});
    cv_.notify_one();
  }
  void Drop(const esdb::Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dropped_) dropped_ = why;
    cv_.notify_one();
  }

  // The next item, waiting up to `wait`: nullopt on timeout or once dropped
  // (then `*dropped` is set; queued items before a drop are still handed out).
  std::optional<Item> Pop(std::chrono::milliseconds wait, std::optional<esdb::Status>* dropped) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [&] { return !items_.empty() || dropped_; });
    if (!items_.empty()) {
      Item item = std::move(items_.front());
      items_.pop_front();
      queued_ -= item.events.size();
      return item;
    }
    if (dropped_) *dropped = dropped_;
    return std::nullopt;
  }

 private:
  const size_t max_events_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  size_t queued_ = 0;
  std::optional<esdb::Status> dropped_;
};

}  // namespace esdb_grpc

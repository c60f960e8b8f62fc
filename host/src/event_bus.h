// The host's event bus: topic pub/sub with retained events, a bounded queue
// per subscriber and delivery on a small pool of bus threads.
//
// Ordering: events are enqueued to subscribers under one lock, so every
// subscriber sees events in one global publish order, and a subscriber
// registering concurrently with a publish either gets the event replayed
// (retained) or live, never both, never neither.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "esdb/bus.h"

namespace spdlog {
class logger;
}

namespace esdb::host {

// Who owns a subscription: the host (0) or one generation of a subsystem.
using OwnerId = uint64_t;
inline constexpr OwnerId kHostOwner = 0;

class EventBusImpl {
 public:
  EventBusImpl(std::string node, std::shared_ptr<spdlog::logger> log, int threads = 4);
  ~EventBusImpl();
  EventBusImpl(const EventBusImpl&) = delete;
  EventBusImpl& operator=(const EventBusImpl&) = delete;

  // Publishes with `source` used when event.source is empty.
  Status Publish(Event event, const PublishOptions& options, const std::string& source);
  Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler, OwnerId owner);
  std::vector<EventPtr> Retained(const std::string& topic) const;

  // Cancels every subscription of `owner`; returns how many were active.
  size_t CancelOwnedBy(OwnerId owner);

  // Stops the delivery threads after cancelling every subscription.
  void Shutdown();

  // {"published", "delivered", "dropped", "subscribers"}.
  nlohmann::json Stats() const;

  const std::string& node() const { return node_; }

 private:
  struct Subscriber;
  class Control;
  friend class Control;

  void Drain(const std::shared_ptr<Subscriber>& sub);
  void Remove(const std::shared_ptr<Subscriber>& sub);
  void Enqueue(const std::shared_ptr<Subscriber>& sub, const EventPtr& event);
  std::vector<EventPtr> RetainedLocked(const std::string& topic) const;

  const std::string node_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;  // guards subscribers_ and retained_
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  struct RetainedEvent {
    uint64_t seq = 0;  // publish order, for replay in order
    EventPtr event;
  };
  std::map<std::string, std::map<std::string, RetainedEvent>> retained_;  // topic -> key -> event
  uint64_t retained_seq_ = 0;

  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<bool> shut_down_{false};
};

}  // namespace esdb::host

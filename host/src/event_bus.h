// The host's event bus: topic pub/sub with retained events, a bounded queue
// per subscriber and delivery on a small pool of bus threads.
//
// Ordering: events are enqueued to subscribers under one lock, so every
// subscriber sees events in one global publish order, and a subscriber
// registering concurrently with a publish either gets the event replayed
// (retained) or live, never both, never neither.
#pragma once

#include <atomic>
#include <chrono>
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
  // `remove_timeout_ms`: how long cancelling a subscription waits for its
  // running handler before giving up on it (see Remove).
  EventBusImpl(std::string node, std::shared_ptr<spdlog::logger> log, int threads = 4, int remove_timeout_ms = 10000);
  ~EventBusImpl();
  EventBusImpl(const EventBusImpl&) = delete;
  EventBusImpl& operator=(const EventBusImpl&) = delete;

  // Publishes with `source` used when event.source is empty.
  Status Publish(Event event, const PublishOptions& options, const std::string& source);
  // Who a subscription belongs to.
  struct Owner {
    OwnerId id = kHostOwner;
    std::string name = "host";  // names it in logs (a subsystem's name)
    // Held until the handler has been destroyed: the plugin library whose
    // code the handler is, so a handler still running when its subscription
    // is given up on keeps its code mapped.
    std::shared_ptr<const void> keep_alive;
    // How long cancel() waits for a running handler; -1: the bus's default.
    int remove_timeout_ms = -1;
  };
  Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler, Owner owner);
  Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler, OwnerId owner) {
    Owner o;
    o.id = owner;
    if (owner != kHostOwner) o.name = "owner " + std::to_string(owner);
    return Subscribe(options, std::move(handler), std::move(o));
  }
  std::vector<EventPtr> Retained(const std::string& topic) const;

  // What CancelOwnedBy and Shutdown did.
  struct CancelResult {
    size_t cancelled = 0;             // subscriptions that were active
    // "'<subscription>' of <owner name>" for each whose handler did not return
    // in time (including ones given up on earlier whose handler still runs).
    std::vector<std::string> stuck;
  };

  // Cancels every subscription of `owner`, waiting up to `timeout_ms`
  // (default: remove_timeout_ms) in all for running handlers.
  CancelResult CancelOwnedBy(OwnerId owner, int timeout_ms = -1);

  // Cancels every subscription and stops the delivery threads, waiting at
  // most `timeout_ms` in all (default: remove_timeout_ms). A thread still
  // inside a handler then is left running (logged, named); the bus must
  // then never be destroyed (the process exits instead). Returns the
  // subscriptions given up on. Idempotent.
  CancelResult Shutdown(int timeout_ms = -1);
  // Threads left inside a handler by Shutdown (0 after a clean one).
  size_t abandoned_threads() const { return abandoned_threads_.load(); }
  // Delivery threads that have not returned yet (abandoned ones included).
  size_t running_threads() const;

  // {"published", "delivered", "dropped", "subscribers"}.
  nlohmann::json Stats() const;

  const std::string& node() const { return node_; }

 private:
  struct Subscriber;
  class Control;
  friend class Control;

  void Drain(const std::shared_ptr<Subscriber>& sub);
  // Ends delivery to `sub`. Waits until `deadline` for a running handler to
  // return; false if it did not (the subscription is then abandoned: it is
  // logged, no further event is delivered, and the handler is destroyed by
  // the bus thread running it when it returns).
  bool Remove(const std::shared_ptr<Subscriber>& sub, std::chrono::steady_clock::time_point deadline);
  std::chrono::steady_clock::time_point RemoveDeadline(int timeout_ms) const;
  void Enqueue(const std::shared_ptr<Subscriber>& sub, const EventPtr& event);
  std::vector<EventPtr> RetainedLocked(const std::string& topic) const;

  const std::string node_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<std::atomic<bool>>> thread_done_;  // one per thread: its run() returned
  const int remove_timeout_ms_;
  std::atomic<size_t> abandoned_threads_{0};

  mutable std::mutex mu_;  // guards subscribers_ and retained_
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  std::vector<std::shared_ptr<Subscriber>> abandoned_;  // given up on by Remove; pruned once idle
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

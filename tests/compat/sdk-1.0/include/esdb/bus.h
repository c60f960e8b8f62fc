// The event bus: in-process topic pub/sub between subsystems.
//
// Delivery: each subscription has its own bounded queue and receives events
// one at a time, in publish order, on a host thread; a slow subscriber
// delays only itself. A late subscriber is never left behind: with
// replay_retained (the default) it first receives the retained events of its
// topics, atomically with registration, so "did persistence already become
// ready?" always has an answer.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "esdb/event.h"
#include "esdb/status.h"

namespace esdb {

// How publish() treats an event.
struct PublishOptions {
  // Keep this event as the retained one for (topic, retain_key), replacing the
  // previous one; late subscribers get it replayed. Default: not retained.
  bool retain = false;
  // Which retained slot the event replaces. Default (empty): the source, so
  // each subsystem has one retained state per topic.
  std::string retain_key;
};

// What to do when a subscriber's queue is full.
enum class OverflowPolicy {
  kDropNewest,  // drop the new event for this subscriber and count it (default)
  kCancel,      // cancel the subscription; the bus publishes subscriber_dropped
};

// What a subscription receives and how it is buffered.
struct SubscribeOptions {
  std::vector<std::string> topics;  // topics to receive; empty = every topic
  std::vector<std::string> types;   // event types to receive; empty = every type
  bool replay_retained = true;      // first deliver retained events of the topics
  size_t queue_limit = 65536;       // max undelivered events held for this subscriber
  OverflowPolicy overflow = OverflowPolicy::kDropNewest;
  std::string name;                 // shown in bus statistics and overflow warnings
};

// Called once per event, never concurrently with itself for one subscription.
// Must not throw (an exception is caught, logged and counted).
using EventHandler = std::function<void(const EventPtr&)>;

// Implemented by the host; ends one subscription.
class SubscriptionControl {
 public:
  virtual ~SubscriptionControl() = default;
  // Stops delivery. When it returns, the handler is not running and will not
  // run again (unless called from inside the handler itself, where it only
  // prevents further calls). Idempotent; thread-safe.
  virtual void cancel() = 0;
};

// Move-only handle of a subscription. Destroying it cancels the subscription.
// A subsystem must destroy (or cancel) all its handles in stop(); the host
// also cancels leftovers of a stopped subsystem before unloading it.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::shared_ptr<SubscriptionControl> control) : control_(std::move(control)) {}
  Subscription(Subscription&&) noexcept = default;
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      cancel();
      control_ = std::move(other.control_);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { cancel(); }

  // See SubscriptionControl::cancel. Safe on an empty handle.
  void cancel() {
    if (control_) {
      control_->cancel();
      control_.reset();
    }
  }
  bool active() const { return control_ != nullptr; }

 private:
  std::shared_ptr<SubscriptionControl> control_;
};

// The bus as a subsystem sees it (through Context::bus()). Thread-safe.
class EventBus {
 public:
  virtual ~EventBus() = default;

  // Publishes `event` to every matching subscription. Never blocks on
  // subscribers. The bus fills id, node, timestamp and source (the caller's
  // subsystem name) when empty. Fails only on an empty type or topic.
  virtual Status Publish(Event event, const PublishOptions& options) = 0;
  Status Publish(Event event) { return Publish(std::move(event), PublishOptions{}); }

  // Registers `handler` for the events selected by `options`. With
  // replay_retained, retained events of those topics are delivered first,
  // with no event lost or duplicated between replay and live delivery.
  virtual Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler) = 0;

  // The retained events of `topic` (every topic when empty), oldest first.
  virtual std::vector<EventPtr> Retained(const std::string& topic) const = 0;
};

}  // namespace esdb

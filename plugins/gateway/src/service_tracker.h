// Follows the service registry through the bus ("services" topic,
// retained): holds the event store and subscriptions services while they
// are provided and drops them when withdrawn, so the gateway answers 503
// instead of calling a withdrawn service. Thread-safe.
#pragma once

#include <memory>
#include <mutex>

#include "esdb/event.h"
#include "esdb/event_store.h"
#include "esdb/services.h"
#include "esdb/subscriptions.h"

namespace esdb_gateway {

class ServiceTracker {
 public:
  explicit ServiceTracker(esdb::ServiceRegistry* registry) : registry_(registry) {}

  // Handles service_provided / service_withdrawn.
  void OnEvent(const esdb::Event& e) {
    if (!e.data.is_object() || !e.data.contains("name") || !e.data["name"].is_string()) return;
    const std::string name = e.data["name"].get<std::string>();
    const bool provided = e.type == esdb::event_types::kServiceProvided;
    std::lock_guard<std::mutex> lock(mu_);
    if (name == esdb::services::kEventStore) {
      store_ = provided && registry_ ? registry_->Get<esdb::EventStore>(name) : nullptr;
    } else if (name == esdb::services::kSubscriptions) {
      subs_ = provided && registry_ ? registry_->Get<esdb::Subscriptions>(name) : nullptr;
    }
  }
  // Asks the registry directly (at start, before the bus replay arrives).
  void Refresh() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!registry_) return;
    store_ = registry_->Get<esdb::EventStore>(esdb::services::kEventStore);
    subs_ = registry_->Get<esdb::Subscriptions>(esdb::services::kSubscriptions);
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    store_.reset();
    subs_.reset();
    registry_ = nullptr;
  }
  std::shared_ptr<esdb::EventStore> store() {
    std::lock_guard<std::mutex> lock(mu_);
    return store_;
  }
  std::shared_ptr<esdb::Subscriptions> subs() {
    std::lock_guard<std::mutex> lock(mu_);
    return subs_;
  }

 private:
  std::mutex mu_;
  esdb::ServiceRegistry* registry_;
  std::shared_ptr<esdb::EventStore> store_;
  std::shared_ptr<esdb::Subscriptions> subs_;
};

}  // namespace esdb_gateway

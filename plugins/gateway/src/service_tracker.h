// Follows the service registry through the bus ("services" topic,
// retained): holds the event store and subscriptions services while they
// are provided and drops them when withdrawn, so the gateway answers 503
// instead of calling a withdrawn service. Thread-safe.
#pragma once

#include <memory>
#include <mutex>

#include "esdb/bus_events.h"
#include "esdb/event.h"
#include "esdb/event_store.h"
#include "esdb/event_store_acquire.h"
#include "esdb/services.h"
#include "esdb/subscriptions.h"
#include "esdb/subscriptions_acquire.h"

namespace esdb_gateway {

class ServiceTracker {
 public:
  explicit ServiceTracker(esdb::ServiceRegistry* registry) : registry_(registry) {}

  // Handles service_provided / service_withdrawn (esdb::WatchServices).
  void OnChange(const esdb::ServiceChange& change) {
    const std::string& name = change.name;
    std::lock_guard<std::mutex> lock(mu_);
    // Asked again on every change: with both event-store names offered,
    // the one still provided wins (/2 first, see AcquireEventStore()).
    if (esdb::IsEventStoreServiceName(name)) {
      store_ = registry_ ? AcquireStore() : nullptr;
    } else if (esdb::IsSubscriptionsServiceName(name)) {
      // Likewise /2 first, else a /1 provider adapted (AcquireSubscriptions()).
      subs_ = registry_ ? AcquireSubs() : nullptr;
    }
  }
  // Asks the registry directly (at start, before the bus replay arrives).
  void Refresh() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!registry_) return;
    store_ = AcquireStore();
    subs_ = AcquireSubs();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    store_.reset();
    subs_.reset();
    registry_ = nullptr;
  }
  std::shared_ptr<esdb::EventStoreV2> store() {
    std::lock_guard<std::mutex> lock(mu_);
    return store_;
  }
  std::shared_ptr<esdb::SubscriptionsV2> subs() {
    std::lock_guard<std::mutex> lock(mu_);
    return subs_;
  }

 private:
  // Requires mu_ and registry_. Null while no store is provided.
  std::shared_ptr<esdb::EventStoreV2> AcquireStore() {
    esdb::Result<std::shared_ptr<esdb::EventStoreV2>> store = esdb::AcquireEventStore(*registry_);
    return store.ok() ? std::move(store).value() : nullptr;
  }
  // Requires mu_ and registry_. Null while no subscriptions service is provided.
  std::shared_ptr<esdb::SubscriptionsV2> AcquireSubs() {
    esdb::Result<std::shared_ptr<esdb::SubscriptionsV2>> subs = esdb::AcquireSubscriptions(*registry_);
    return subs.ok() ? std::move(subs).value() : nullptr;
  }

  std::mutex mu_;
  esdb::ServiceRegistry* registry_;
  std::shared_ptr<esdb::EventStoreV2> store_;
  std::shared_ptr<esdb::SubscriptionsV2> subs_;
};

}  // namespace esdb_gateway

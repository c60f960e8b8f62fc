// The host's service registry. Each service pointer handed out holds a
// reference to its provider's library, so a consumer that is late to let go
// delays the unload instead of crashing.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "esdb/services.h"
#include "event_bus.h"

namespace esdb::host {

class ServiceRegistryImpl {
 public:
  explicit ServiceRegistryImpl(EventBusImpl* bus) : bus_(bus) {}

  // `keep_alive` is held by every copy handed out (the provider's library).
  // A name held by another generation of the same provider is taken over.
  // `interface_id` empty: an untyped (SDK 1.0) offer, taken as the
  // interface whose id is `name`.
  Status Provide(const std::string& name, const std::string& interface_id, std::shared_ptr<void> service,
                 OwnerId owner, const std::string& provider, std::shared_ptr<void> keep_alive);
  Status Withdraw(const std::string& name, OwnerId owner);
  // Withdraws every service of `owner`; returns their names.
  std::vector<std::string> WithdrawAllOf(OwnerId owner);
  std::shared_ptr<void> Find(const std::string& name) const;
  // See esdb::ServiceRegistry::FindAs().
  Result<std::shared_ptr<void>> FindAs(const std::string& name, const std::string& interface_id) const;
  std::vector<std::string> Names() const;

 private:
  struct Entry {
    std::shared_ptr<void> service;
    std::string interface_id;
    OwnerId owner;
    std::string provider;
  };
  void Announce(const char* type, const std::string& name, const std::string& provider);

  EventBusImpl* bus_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> services_;
};

}  // namespace esdb::host

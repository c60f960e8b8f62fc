// The service registry: how a subsystem finds another's service without a
// link-time or start-order dependency.
//
// A provider calls Provide() once it is ready to serve; the registry
// publishes service_provided (topic "services", retained per service name)
// so consumers learn of it however late they subscribe. When the provider is
// stopped the host withdraws its services first and publishes
// service_withdrawn; consumers drop their pointers and answer "unavailable"
// until a provider appears again.
//
// Service objects are abstract interfaces declared in SDK headers (see
// event_store.h). Names carry the interface version, e.g. "esdb.event_store/1".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "esdb/status.h"

namespace esdb {

// Well-known service names.
namespace services {
inline constexpr const char* kControl = "esdb.control/1";         // ControlService, by the host
inline constexpr const char* kEventStore = "esdb.event_store/1";  // EventStore, by the store plugin
}  // namespace services

// Thread-safe.
class ServiceRegistry {
 public:
  virtual ~ServiceRegistry() = default;

  // Offers `service` under `name`. AlreadyExists if another subsystem
  // provides that name. The pointer handed out to consumers keeps the
  // provider's library loaded, so a consumer that is late to let go delays
  // the unload instead of crashing; it must still not call a withdrawn
  // service (the provider answers Unavailable after its stop()).
  virtual Status Provide(const std::string& name, std::shared_ptr<void> service) = 0;

  // Withdraws a service this subsystem provides. NotFound if it does not.
  virtual Status Withdraw(const std::string& name) = 0;

  // The current provider of `name`, or null.
  virtual std::shared_ptr<void> Find(const std::string& name) const = 0;

  // Names currently provided.
  virtual std::vector<std::string> Names() const = 0;

  // Typed Find(). T must be the interface the name stands for.
  template <class T>
  std::shared_ptr<T> Get(const std::string& name) const {
    return std::static_pointer_cast<T>(Find(name));
  }
};

}  // namespace esdb

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
// Services are typed. A service interface is an abstract class declared in
// a header (the SDK's are event_store.h, storage.h, subscriptions.h,
// control.h, admin.h) that names itself with a static member
//
//   static constexpr const char* kInterfaceId = "esdb.event_store/2";
//
// The id changes whenever the class's virtual functions change (see
// docs/SDK_COMPATIBILITY.md). Provide<T>() records T's id next to the
// pointer and Get<T>() returns the pointer only when the ids are equal, so a
// consumer asking for the wrong interface gets an error, not a pointer of
// the wrong type. The SDK's services are offered under names equal to their
// interface ids; a provider may offer one object under several names (the
// store offers "esdb.event_store/2" and, for older consumers, "/1").
#pragma once

#include <concepts>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "esdb/status.h"

namespace esdb {

// Well-known service names. Each is also the kInterfaceId of the interface
// offered under it.
namespace services {
inline constexpr const char* kControl = "esdb.control/1";            // ControlService, by the host
inline constexpr const char* kEventStore = "esdb.event_store/1";     // EventStore (SDK 1.0), by the store plugin
inline constexpr const char* kEventStoreV2 = "esdb.event_store/2";   // EventStoreV2, the same object
}  // namespace services

// A class usable as a service interface: it declares its id.
template <class T>
concept ServiceInterface = requires {
  { T::kInterfaceId } -> std::convertible_to<const char*>;
};

// Thread-safe. Implemented by the host; plugins call it. Methods are only
// ever added at the end (docs/SDK_COMPATIBILITY.md).
class ServiceRegistry {
 public:
  virtual ~ServiceRegistry() = default;

  // --- SDK 1.0 (untyped; kept for plugins built against 1.0) -------------
  // Offers `service` under `name` with no interface id: a typed Get() then
  // accepts it only as the interface whose id equals `name`. Prefer the
  // typed Provide<T>() below.
  virtual Status Provide(const std::string& name, std::shared_ptr<void> service) = 0;

  // Withdraws a service this subsystem provides. NotFound if it does not.
  virtual Status Withdraw(const std::string& name) = 0;

  // The current provider of `name`, or null, unchecked. Prefer Get<T>().
  virtual std::shared_ptr<void> Find(const std::string& name) const = 0;

  // Names currently provided.
  virtual std::vector<std::string> Names() const = 0;

  // --- SDK 1.1 ------------------------------------------------------------
  // Offers `service` under `name` as the interface `interface_id`.
  // AlreadyExists if another subsystem provides that name; InvalidArgument
  // for an empty name or id or a null service. The pointer handed out to
  // consumers keeps the provider's library loaded, so a consumer that is
  // late to let go delays the unload instead of crashing; it must still not
  // call a withdrawn service (the provider answers Unavailable after its
  // stop()).
  virtual Status ProvideAs(const std::string& name, const char* interface_id, std::shared_ptr<void> service) = 0;

  // The provider of `name` if it was offered as `interface_id` (an untyped
  // 1.0 offer counts as the id equal to its name). NotFound when nothing is
  // provided under `name`; FailedPrecondition naming both ids when the
  // interface differs.
  virtual Result<std::shared_ptr<void>> FindAs(const std::string& name, const char* interface_id) const = 0;

  // Typed Provide(): offers `service` as interface T.
  template <ServiceInterface T>
  Status Provide(const std::string& name, std::shared_ptr<T> service) {
    return ProvideAs(name, T::kInterfaceId, std::static_pointer_cast<void>(std::move(service)));
  }

  // Typed lookup: the provider of `name` as interface T (see FindAs()).
  template <ServiceInterface T>
  Result<std::shared_ptr<T>> Get(const std::string& name) const {
    Result<std::shared_ptr<void>> found = FindAs(name, T::kInterfaceId);
    if (!found.ok()) return found.status();
    return std::static_pointer_cast<T>(std::move(found).value());
  }

  // A class without kInterfaceId cannot be offered typed: declare its id.
  template <class T>
    requires(!ServiceInterface<T> && !std::is_void_v<T>)
  Status Provide(const std::string& name, std::shared_ptr<T> service) = delete;

  // The same, null when not provided or provided as another interface
  // (for consumers that treat both as "not available yet").
  template <ServiceInterface T>
  std::shared_ptr<T> GetOrNull(const std::string& name) const {
    Result<std::shared_ptr<T>> found = Get<T>(name);
    return found.ok() ? std::move(found).value() : nullptr;
  }
};

}  // namespace esdb

#include "service_registry.h"

namespace esdb::host {

namespace {
// Holds the provider's object and, destroyed after it, its library.
struct Pinned {
  std::shared_ptr<void> keep_alive;
  std::shared_ptr<void> service;
  ~Pinned() { service.reset(); }  // the object goes first, the library after
};
}  // namespace

Status ServiceRegistryImpl::Provide(const std::string& name, const std::string& interface_id,
                                    std::shared_ptr<void> service, OwnerId owner, const std::string& provider,
                                    std::shared_ptr<void> keep_alive) {
  if (name.empty()) return Status::InvalidArgument("service name is empty");
  if (!service) return Status::InvalidArgument("service '" + name + "' is null");
  std::shared_ptr<void> replaced;  // released outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = services_.find(name);
    if (it != services_.end()) {
      // A new generation of the same subsystem (a reload) takes the service
      // over from the old one: that is how traffic switches builds.
      if (it->second.provider != provider || it->second.owner == owner) {
        return Status::AlreadyExists("service '" + name + "' is already provided by " + it->second.provider);
      }
      replaced = std::move(it->second.service);
    }
    void* raw = service.get();
    auto pinned = std::make_shared<Pinned>();
    pinned->keep_alive = std::move(keep_alive);
    pinned->service = std::move(service);
    services_[name] = Entry{std::shared_ptr<void>(pinned, raw), interface_id.empty() ? name : interface_id, owner,
                            provider};
    // Announced under the lock so provided/withdrawn reach the bus in order.
    Announce(event_types::kServiceProvided, name, provider);
  }
  return Status::OK();
}

Status ServiceRegistryImpl::Withdraw(const std::string& name, OwnerId owner) {
  std::shared_ptr<void> doomed;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  if (it == services_.end() || it->second.owner != owner) {
    return Status::NotFound("service '" + name + "' is not provided by this subsystem");
  }
  Announce(event_types::kServiceWithdrawn, name, it->second.provider);
  doomed = std::move(it->second.service);
  services_.erase(it);
  return Status::OK();
}

std::vector<std::string> ServiceRegistryImpl::WithdrawAllOf(OwnerId owner) {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, entry] : services_)
      if (entry.owner == owner) names.push_back(name);
  }
  for (const auto& n : names) (void)Withdraw(n, owner);
  return names;
}

std::shared_ptr<void> ServiceRegistryImpl::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.service;
}

Result<std::shared_ptr<void>> ServiceRegistryImpl::FindAs(const std::string& name,
                                                         const std::string& interface_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  if (it == services_.end()) return Status::NotFound("service '" + name + "' is not provided");
  if (it->second.interface_id != interface_id) {
    return Status::FailedPrecondition("service '" + name + "' is provided by " + it->second.provider +
                                      " as interface '" + it->second.interface_id + "', not '" + interface_id + "'");
  }
  return it->second.service;
}

std::vector<std::string> ServiceRegistryImpl::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, entry] : services_) out.push_back(name);
  return out;
}

void ServiceRegistryImpl::Announce(const char* type, const std::string& name, const std::string& provider) {
  Event e;
  e.type = type;
  e.topic = topics::kServices;
  e.data = {{"name", name}, {"provider", provider}};
  PublishOptions opts;
  opts.retain = true;
  opts.retain_key = name;
  (void)bus_->Publish(std::move(e), opts, provider);
}

}  // namespace esdb::host

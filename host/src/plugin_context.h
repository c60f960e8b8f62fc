// The Context one subsystem generation gets: its own io_context and
// threads, a bus and a registry that stamp it as source/owner, its config,
// data dir and logger, and the ready/failed reporting channel.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "esdb/subsystem.h"
#include "event_bus.h"
#include "plugin_library.h"
#include "service_registry.h"

namespace esdb::host {

// Called by ReportReady (ready=true) and ReportFailed (ready=false).
using ReportFunction = std::function<void(bool ready, const nlohmann::json& details, const Status& why)>;

class PluginContext : public esdb::Context {
 public:
  PluginContext(std::string name, std::string node, nlohmann::json config, std::filesystem::path data_dir,
                std::shared_ptr<spdlog::logger> logger, int threads, EventBusImpl* bus,
                ServiceRegistryImpl* registry, OwnerId owner, LibraryRef library, ReportFunction report,
                int stop_timeout_ms = 10000);
  ~PluginContext() override;

  const std::string& Name() const override { return name_; }
  const std::string& Node() const override { return node_; }
  const nlohmann::json& Config() const override { return config_; }
  const std::filesystem::path& DataDir() const override { return data_dir_; }
  std::shared_ptr<spdlog::logger> Logger() const override { return logger_; }
  boost::asio::io_context& Io() override { return io_; }
  EventBus& Bus() override { return bus_facade_; }
  ServiceRegistry& Services() override { return registry_facade_; }
  void ReportReady(const nlohmann::json& details) override;
  void ReportFailed(const Status& why) override;

  // Lets queued handlers run for up to `drain_ms`, then stops the
  // io_context and joins its threads. False if a handler is stuck (its
  // thread is then detached and the context must never be destroyed).
  bool StopIo(int drain_ms);

 private:
  class ScopedBus : public EventBus {
   public:
    // `stop_timeout_ms` bounds how long cancelling one of its subscriptions
    // waits for a running handler; `library` stays mapped while one runs.
    ScopedBus(EventBusImpl* bus, std::string source, OwnerId owner, LibraryRef library, int stop_timeout_ms)
        : bus_(bus), source_(std::move(source)) {
      owner_.id = owner;
      owner_.name = "subsystem " + source_;
      owner_.keep_alive = std::move(library);
      owner_.remove_timeout_ms = stop_timeout_ms;
    }
    Status Publish(Event event, const PublishOptions& options) override { return bus_->Publish(std::move(event), options, source_); }
    Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler) override {
      return bus_->Subscribe(options, std::move(handler), owner_);
    }
    std::vector<EventPtr> Retained(const std::string& topic) const override { return bus_->Retained(topic); }

   private:
    EventBusImpl* bus_;
    std::string source_;
    EventBusImpl::Owner owner_;
  };

  class ScopedRegistry : public ServiceRegistry {
   public:
    ScopedRegistry(ServiceRegistryImpl* reg, std::string provider, OwnerId owner, LibraryRef lib)
        : reg_(reg), provider_(std::move(provider)), owner_(owner), lib_(std::move(lib)) {}
    Status Provide(const std::string& name, std::shared_ptr<void> service) override {
      return reg_->Provide(name, std::string(), std::move(service), owner_, provider_, lib_);
    }
    Status ProvideAs(const std::string& name, const char* interface_id, std::shared_ptr<void> service) override {
      if (interface_id == nullptr || *interface_id == '\0') {
        return Status::InvalidArgument("service '" + name + "': empty interface id");
      }
      return reg_->Provide(name, interface_id, std::move(service), owner_, provider_, lib_);
    }
    Result<std::shared_ptr<void>> FindAs(const std::string& name, const char* interface_id) const override {
      return reg_->FindAs(name, interface_id == nullptr ? std::string() : std::string(interface_id));
    }
    Status Withdraw(const std::string& name) override { return reg_->Withdraw(name, owner_); }
    std::shared_ptr<void> Find(const std::string& name) const override { return reg_->Find(name); }
    std::vector<std::string> Names() const override { return reg_->Names(); }

   private:
    ServiceRegistryImpl* reg_;
    std::string provider_;
    OwnerId owner_;
    LibraryRef lib_;
  };

  const std::string name_;
  const std::string node_;
  const nlohmann::json config_;
  const std::filesystem::path data_dir_;
  std::shared_ptr<spdlog::logger> logger_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::atomic<int> running_threads_{0};
  ScopedBus bus_facade_;
  ScopedRegistry registry_facade_;
  ReportFunction report_;
  std::atomic<bool> reported_ready_{false};
};

}  // namespace esdb::host

// esdb testing kit: an esdb::Context for unit-testing a plugin in-process,
// without a host.
//
//   esdb::testing::FakeContext ctx({.name = "my_plugin", .config = {{"interval_ms", 10}}});
//   MySubsystem s;                                   // or PluginLibrary::Create()
//   REQUIRE(s.Start(ctx).ok());
//   ctx.Services().Provide<esdb::EventStoreV2>(...)... // or start the real provider in a FakeContext of its own
//   CHECK(ctx.WaitReady().ok());
//   CHECK(ctx.bus().WaitForEvent("my_event"));
//   REQUIRE(s.Stop().ok());
//   ctx.StopIo();                                    // before the subsystem (and its library) go
//
// What is real: a bus that delivers each subscription's events in order on
// a thread of its own, replays retained events atomically with the
// registration, stamps id/node/timestamp/source, and records every event; a
// service registry checked like the host's (typed: a service is handed out
// only as the interface it was offered as, an untyped SDK 1.0 offer counts
// as the interface named like the service; service_provided and
// service_withdrawn are published, retained per name); a data directory; a
// logger whose lines are kept; an io_context run by its own thread(s).
// ReportReady()/ReportFailed() are recorded, waitable, and published as
// subsystem_ready/subsystem_failed on topic lifecycle. Several contexts can
// share one FakeHost (bus + registry), so a plugin can be tested against a
// real provider started in the same process.
//
// Not there: the supervisor (no restarts, health checks, start/stop
// timeouts, manifest), control-plane events (system_ready), the
// withdrawal of a subsystem's services before its Stop() (call
// FakeContext::WithdrawAll() where the host would), library pinning.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "esdb/bus.h"
#include "esdb/plugin.h"
#include "esdb/services.h"
#include "esdb/status.h"
#include "esdb/subsystem.h"
#include "esdb/testing/temp_dir.h"

namespace esdb::testing {

// The bus. Thread-safe.
class FakeBus : public EventBus {
 public:
  explicit FakeBus(std::string node = "test-node");
  // Cancels every subscription still active (waiting for running handlers).
  ~FakeBus() override;

  // Fills id (a UUID v4), node, timestamp_us and, when empty, source ("test").
  Status Publish(Event event, const PublishOptions& options) override;
  using EventBus::Publish;
  Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler) override;
  std::vector<EventPtr> Retained(const std::string& topic) const override;

  // Every event published so far, oldest first.
  std::vector<EventPtr> Published() const;
  // The first published event (from the start) satisfying `pred`, waiting
  // up to `timeout_ms`; null if none.
  EventPtr WaitFor(const std::function<bool(const Event&)>& pred, int timeout_ms = 10000) const;
  // An event of `type` (and, when not empty, data.name == `name`).
  EventPtr WaitForEvent(const std::string& type, const std::string& name = "", int timeout_ms = 10000) const;
  // Events not delivered because a subscriber's queue was full.
  uint64_t Dropped() const { return dropped_.load(); }
  // Subscriptions not cancelled yet.
  size_t ActiveSubscriptions() const;

  struct Sub;  // internal

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::string node_;
  std::atomic<uint64_t> dropped_{0};
};

// The service registry that FakeContexts share. Thread-safe.
class FakeServices {
 public:
  explicit FakeServices(FakeBus& bus) : bus_(bus) {}

  // Offers `service` under `name` as `interface_id` ("" = untyped, taken as
  // the interface named `name`) on behalf of `provider`. Errors as the
  // host's: InvalidArgument (empty name, null service), AlreadyExists
  // (another provider, or the same `owner` again).
  Status Provide(const std::string& provider, const std::string& name, const std::string& interface_id,
                 std::shared_ptr<void> service, uint64_t owner = 0);
  template <ServiceInterface T>
  Status Provide(const std::string& provider, const std::string& name, std::shared_ptr<T> service) {
    return Provide(provider, name, T::kInterfaceId, std::static_pointer_cast<void>(std::move(service)));
  }
  // Withdraws `name` if `provider` provides it; else NotFound.
  Status Withdraw(const std::string& provider, const std::string& name);
  // Withdraws everything `provider` provides; their names.
  std::vector<std::string> WithdrawAllOf(const std::string& provider);
  std::shared_ptr<void> Find(const std::string& name) const;
  // NotFound, or FailedPrecondition naming both interface ids.
  Result<std::shared_ptr<void>> FindAs(const std::string& name, const std::string& interface_id) const;
  template <ServiceInterface T>
  Result<std::shared_ptr<T>> Get(const std::string& name) const {
    Result<std::shared_ptr<void>> found = FindAs(name, T::kInterfaceId);
    if (!found.ok()) return found.status();
    return std::static_pointer_cast<T>(std::move(found).value());
  }
  std::vector<std::string> Names() const;

 private:
  struct Entry {
    std::shared_ptr<void> service;
    std::string interface_id;
    std::string provider;
    uint64_t owner;
  };
  void Announce(const char* type, const std::string& name, const std::string& provider);

  FakeBus& bus_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> services_;
};

// What FakeContexts share: one bus, one registry.
struct FakeHost {
  explicit FakeHost(std::string node = "test-node") : bus(std::move(node)), services(bus) {}
  FakeBus bus;
  FakeServices services;
};

struct FakeContextOptions {
  std::string name = "test";              // Name(); the source of what it publishes
  nlohmann::json config = nlohmann::json::object();  // Config()
  std::filesystem::path data_dir{};       // DataDir(), created; empty: a fresh temporary one, removed after
  int io_threads = 1;                     // threads running Io()
  // How those threads run Io(): for a plugin loaded from a library, its
  // exported esdb_sdk_run_io (PluginLibrary::RunIo()), so the loop runs in
  // the plugin's copy of Asio as under the host. Null: io.run() here, right
  // for a subsystem compiled into the test.
  RunIoFunction* run_io = nullptr;
  std::string log_level = "debug";        // spdlog level name of Logger()
  bool log_to_stderr = false;             // also print the log lines
};

class FakeContext : public Context {
 public:
  // With a FakeHost of its own.
  explicit FakeContext(FakeContextOptions options = {});
  // Sharing `host` (which must outlive it) with other contexts.
  FakeContext(FakeHost& host, FakeContextOptions options);
  // StopIo(), then cancels subscriptions the subsystem left behind.
  ~FakeContext() override;

  // --- esdb::Context ---
  const std::string& Name() const override { return options_.name; }
  const std::string& Node() const override { return node_; }
  const nlohmann::json& Config() const override { return options_.config; }
  const std::filesystem::path& DataDir() const override { return data_dir_; }
  std::shared_ptr<spdlog::logger> Logger() const override { return logger_; }
  boost::asio::io_context& Io() override { return io_; }
  EventBus& Bus() override;
  ServiceRegistry& Services() override;
  void ReportReady(const nlohmann::json& details) override;
  using Context::ReportReady;
  void ReportFailed(const Status& why) override;

  // --- for the test ---
  FakeHost& host() { return *host_; }
  FakeBus& bus() { return host_->bus; }
  FakeServices& services() { return host_->services; }

  // OK once ReportReady() was called; the first ReportFailed() status if
  // that came first; Timeout after `timeout_ms` without either.
  Status WaitReady(int timeout_ms = 30000);
  bool ready() const;
  std::optional<nlohmann::json> ReadyDetails() const;  // what ReportReady() was given
  std::vector<Status> Failures() const;                // every ReportFailed(), in order
  // Withdraws every service this context provides, as the host does before Stop().
  std::vector<std::string> WithdrawAll();
  // Bus subscriptions made through Bus() and not cancelled: a subsystem
  // should have none left after its Stop().
  size_t ActiveSubscriptions() const;
  // The log lines so far ("[level] message").
  std::vector<std::string> LogLines() const;
  // Lets the queued Io() handlers run for up to `drain_ms`, then stops the
  // loop and joins its threads, as the host does after Stop(): true when the
  // loop ran out of work in time, false when it had to be stopped (a timer
  // or socket of the subsystem still waiting). Idempotent. Call it, and
  // destroy the context, before unloading a plugin's library: the queued
  // handlers are the plugin's code.
  bool StopIo(int drain_ms = 1000);

 private:
  class BusFacade;
  class RegistryFacade;
  struct LogSink;
  void Init();

  std::unique_ptr<FakeHost> own_host_;
  FakeHost* host_;
  FakeContextOptions options_;
  std::string node_;
  std::optional<TempDir> temp_data_;
  std::filesystem::path data_dir_;
  std::shared_ptr<LogSink> sink_;
  std::shared_ptr<spdlog::logger> logger_;
  uint64_t owner_;
  std::unique_ptr<BusFacade> bus_facade_;
  std::unique_ptr<RegistryFacade> registry_facade_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::atomic<int> running_threads_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<nlohmann::json> ready_details_;
  std::vector<Status> failures_;
};

}  // namespace esdb::testing

// Store: the event-store semantics, offered as "esdb.event_store/2" and "/1".
//
// Start() does not wait for persistence: it subscribes to the "services"
// topic (retained events replayed, so a late start still sees an earlier
// service_provided). When "esdb.storage/1" appears, the store recovers its
// state from it, provides the event store and reports ready. Until then the
// event store answers kUnavailable naming persistence.
//
// When storage is withdrawn (persistence stopping or restarting) the store
// drops it, answers kUnavailable and reports itself unhealthy (degraded),
// not failed: restarting the store would not bring persistence back, and it
// recovers by itself when storage is provided again. A withdrawal after the
// host announced its shutdown (system_stopping, on the same subscription, so
// seen first) is the planned stop of every subsystem: logged as info, not as
// a warning.
//
// Cluster mode (config "mode": "cluster"): the store also needs the log
// ("esdb.log/1"). A thread of its own (ClusterLoop) opens the store when
// both services are there — retrying while the log cannot be reached —,
// waits until this node has applied the log as far as it reached at open,
// and only then provides the event store and reports ready. A node whose
// data does not match the log fails with the reason (StoreCore::Open); one
// that stops applying (hooks.apply_failed) reports itself failed.
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/leader_lease.h>
#include <esdb/log.h>
#include <esdb/plugin.h>
#include <esdb/storage.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "store_core.h"
#include "store_options.h"
#include "store_service.h"

namespace esdb_store {
namespace {

class StoreSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    esdb::Result<StoreOptions> options = ParseStoreOptions(ctx.Config());
    if (!options.ok()) return options.status();
    options_ = *options;
    if (!options_.sync) ctx.Logger()->warn("durability=async: acknowledged appends may be lost on OS crash or power loss");
    service_ = std::make_shared<StoreService>("persistence is not ready: waiting for esdb.storage/1");
    esdb::SubscribeOptions so;
    so.topics = {esdb::topics::kServices, esdb::topics::kLifecycle};
    so.types = {esdb::event_types::kServiceProvided, esdb::event_types::kServiceWithdrawn,
                esdb::event_types::kSystemStopping};
    so.replay_retained = true;
    so.name = "store.services";
    // Not esdb::WatchServices: system_stopping must come on the same
    // subscription, so it is seen before persistence's withdrawal.
    esdb::Result<esdb::Subscription> sub =
        ctx.Bus().Subscribe(so, [this](const esdb::EventPtr& e) { OnServiceEvent(*e); });
    if (!sub.ok()) return sub.status();
    subscription_ = std::move(*sub);
    if (options_.cluster) {
      cluster_thread_ = std::thread([this] { ClusterLoop(); });
      ctx.Logger()->info("cluster mode: waiting for {} and {}", esdb::services::kStorage, esdb::services::kLog);
    } else {
      ctx.Logger()->info("waiting for {}", esdb::services::kStorage);
    }
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    subscription_.cancel();  // not under mu_: the handler takes it
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
    if (cluster_thread_.joinable()) cluster_thread_.join();
    std::shared_ptr<StoreCore> core;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (service_) core = service_->Detach("the store is stopped");
    }
    if (core) core->Close();
    core.reset();
    {
      std::lock_guard<std::mutex> lock(mu_);
      storage_.reset();
      log_.reset();
    }
    if (provided_) {
      for (const char* name : {esdb::services::kLeaderLease, esdb::services::kEventStoreV2, esdb::services::kEventStore}) {
        if (std::string_view(name) == esdb::services::kLeaderLease && !options_.cluster) continue;
        esdb::Status w = ctx_->Services().Withdraw(name);
        if (!w.ok() && w.code() != esdb::Code::kNotFound) ctx_->Logger()->warn("withdraw {}: {}", name, w.ToString());
      }
      provided_ = false;
    }
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    esdb::Health h;
    std::lock_guard<std::mutex> lock(mu_);
    if (degraded_) {
      h.healthy = false;
      h.message = "degraded: persistence withdrew esdb.storage/1; appends and reads answer unavailable";
    }
    if (service_) h.details = service_->Stats();
    return h;
  }

 private:
  // Offers the service: one object under both names, /2 for today's
  // consumers, /1 (its SDK 1.0 base) for plugins built against SDK 1.0; in
  // cluster mode also as esdb.leader_lease/1. All or none.
  esdb::Status ProvideService() {
    std::shared_ptr<esdb::EventStoreV2> store = service_;
    esdb::Status s = ctx_->Services().Provide<esdb::EventStoreV2>(esdb::services::kEventStoreV2, store);
    if (s.ok()) {
      s = ctx_->Services().Provide<esdb::EventStore>(esdb::services::kEventStore, store);
      if (!s.ok()) (void)ctx_->Services().Withdraw(esdb::services::kEventStoreV2);
    }
    if (s.ok() && options_.cluster) {
      s = ctx_->Services().Provide<esdb::LeaderLease>(esdb::services::kLeaderLease,
                                                      std::shared_ptr<esdb::LeaderLease>(service_));
      if (!s.ok()) {
        (void)ctx_->Services().Withdraw(esdb::services::kEventStore);
        (void)ctx_->Services().Withdraw(esdb::services::kEventStoreV2);
      }
    }
    return s;
  }

  void OnServiceEvent(const esdb::Event& e) {
    if (e.type == esdb::event_types::kSystemStopping) {
      std::lock_guard<std::mutex> lock(mu_);
      host_stopping_ = true;
      return;
    }
    esdb::Result<esdb::ServiceChange> change = esdb::DecodeServiceChange(e);
    if (!change.ok()) return;
    if (options_.cluster) return OnClusterServiceEvent(*change);
    if (change->name != esdb::services::kStorage) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    if (change->provided) {
      if (service_->attached()) return;
      esdb::Result<std::shared_ptr<esdb::Storage>> storage =
          ctx_->Services().Get<esdb::Storage>(esdb::services::kStorage);
      if (!storage.ok()) {
        // NotFound: withdrawn again already; its event follows.
        if (storage.status().code() != esdb::Code::kNotFound) ctx_->ReportFailed(storage.status());
        return;
      }
      StoreHooks hooks;
      hooks.logger = ctx_->Logger();
      esdb::Context* ctx = ctx_;
      hooks.publish = [ctx](esdb::Event ev) { ctx->Bus().Publish(std::move(ev)); };
      esdb::Result<std::shared_ptr<StoreCore>> core = StoreCore::Open(*storage, options_, hooks);
      if (!core.ok()) {
        if (core.status().code() == esdb::Code::kUnavailable) {
          ctx_->Logger()->warn("storage went away during recovery: {}", core.status().ToString());
          return;
        }
        ctx_->Logger()->error("recovery failed: {}", core.status().ToString());
        ctx_->ReportFailed(core.status());
        return;
      }
      service_->Attach(*core);
      degraded_ = false;
      if (!provided_) {
        const esdb::Status s = ProvideService();
        if (!s.ok()) {
          ctx_->ReportFailed(s);
          return;
        }
        provided_ = true;
      }
      const uint64_t next = (*core)->NextPosition();
      ctx_->Logger()->info("event store ready; next position {}", next);
      ctx_->ReportReady({{"service", esdb::services::kEventStoreV2},
                         {"next_position", next},
                         {"durability", options_.sync ? "sync" : "async"}});
    } else {
      std::shared_ptr<StoreCore> core =
          service_->Detach("persistence is not available: esdb.storage/1 was withdrawn");
      if (!core) return;
      core->Close();
      degraded_ = true;
      if (host_stopping_) {
        ctx_->Logger()->info("persistence withdrew {} as the host stops", esdb::services::kStorage);
      } else {
        ctx_->Logger()->warn("persistence withdrew {}; answering unavailable until it returns", esdb::services::kStorage);
      }
    }
  }

  // Cluster mode: the bus handler only notes which services are there.
  void OnClusterServiceEvent(const esdb::ServiceChange& change) {
    if (change.name != esdb::services::kStorage && change.name != esdb::services::kLog) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (change.name == esdb::services::kStorage) {
      storage_ = change.provided ? ctx_->Services().GetOrNull<esdb::Storage>(esdb::services::kStorage) : nullptr;
    } else {
      log_ = change.provided ? ctx_->Services().GetOrNull<esdb::Log>(esdb::services::kLog) : nullptr;
    }
    ++services_generation_;
    cv_.notify_all();
  }

  // Cluster mode: opens, catches up and serves while storage and the log
  // are both provided; closes when either goes. Runs until Stop().
  void ClusterLoop() {
    uint64_t seen_generation = UINT64_MAX;
    std::shared_ptr<StoreCore> core;  // the open one (attached once caught up)
    auto close_core = [&](const std::string& why) {
      if (!core) return;
      {
        std::lock_guard<std::mutex> lock(mu_);
        service_->Detach(why);
        degraded_ = provided_;
      }
      core->Close();
      core.reset();
    };
    auto last_report = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    auto report = [&](const std::string& what) {  // at most every 5 s
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report < std::chrono::seconds(5)) return;
      last_report = now;
      ctx_->Logger()->warn("{}", what);
    };
    for (;;) {
      std::shared_ptr<esdb::Storage> storage;
      std::shared_ptr<esdb::Log> log;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopped_ || services_generation_ != seen_generation; });
        if (stopped_) break;
        if (services_generation_ != seen_generation && core) {
          lock.unlock();
          close_core("the store is reopening: esdb.storage/1 or esdb.log/1 changed");
          lock.lock();
        }
        seen_generation = services_generation_;
        storage = storage_;
        log = log_;
        if (failed_) continue;
      }
      if (core || !storage || !log) continue;
      StoreHooks hooks;
      hooks.logger = ctx_->Logger();
      esdb::Context* ctx = ctx_;
      hooks.publish = [ctx](esdb::Event ev) { ctx->Bus().Publish(std::move(ev)); };
      hooks.apply_failed = [ctx](esdb::Status why) { ctx->ReportFailed(std::move(why)); };
      esdb::Result<std::shared_ptr<StoreCore>> opened = StoreCore::Open(storage, options_, hooks, log, ctx_->Node());
      if (!opened.ok()) {
        if (opened.status().code() == esdb::Code::kUnavailable) {
          report("cluster mode: the store cannot open yet: " + opened.status().message() + "; retrying");
          continue;
        }
        ctx_->Logger()->error("cluster mode: {}", opened.status().ToString());
        std::lock_guard<std::mutex> lock(mu_);
        failed_ = true;
        ctx_->ReportFailed(opened.status());
        continue;
      }
      core = *opened;
      // Serve only once this node has applied what the log held at open.
      esdb::Status caught_up;
      for (;;) {
        caught_up = core->WaitCaughtUp(std::chrono::milliseconds(1000));
        if (caught_up.code() != esdb::Code::kTimeout) break;
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_ || services_generation_ != seen_generation) break;
        report("cluster mode: catching up with the log: " + caught_up.message());
      }
      if (!caught_up.ok()) {
        if (caught_up.code() != esdb::Code::kTimeout && caught_up.code() != esdb::Code::kCancelled) {
          ctx_->ReportFailed(caught_up);  // stays failed until restarted
          std::lock_guard<std::mutex> lock(mu_);
          failed_ = true;
        }
        close_core("the store stopped applying the log: " + caught_up.message());
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      service_->Attach(core);
      degraded_ = false;
      if (!provided_) {
        const esdb::Status s = ProvideService();
        if (!s.ok()) {
          ctx_->ReportFailed(s);
          failed_ = true;
          continue;
        }
        provided_ = true;
      }
      const nlohmann::json stats = core->Stats();
      ctx_->Logger()->info("event store ready (cluster mode); next position {}", core->NextPosition());
      ctx_->ReportReady({{"service", esdb::services::kEventStoreV2},
                         {"mode", "cluster"},
                         {"next_position", core->NextPosition()},
                         {"cluster", stats["cluster"]}});
    }
    close_core("the store is stopped");
  }

  esdb::Context* ctx_ = nullptr;
  StoreOptions options_;
  std::condition_variable cv_;  // cluster mode: services_generation_ or stopped_ changed
  std::thread cluster_thread_;
  std::shared_ptr<esdb::Storage> storage_;  // cluster mode, guarded by mu_
  std::shared_ptr<esdb::Log> log_;          // cluster mode, guarded by mu_
  uint64_t services_generation_ = 0;        // cluster mode, guarded by mu_
  bool failed_ = false;                     // cluster mode, guarded by mu_: reported failed, waits for a restart
  esdb::Subscription subscription_;
  std::mutex mu_;
  std::shared_ptr<StoreService> service_;
  bool stopped_ = false;   // guarded by mu_
  bool degraded_ = false;  // guarded by mu_
  bool host_stopping_ = false;  // guarded by mu_: system_stopping was seen
  bool provided_ = false;  // set under mu_ by the handler; read by Stop() after the handler is cancelled
};

esdb::Subsystem* CreateStoreSubsystem() { return new StoreSubsystem(); }

}  // namespace
}  // namespace esdb_store

ESDB_PLUGIN(esdb_store::CreateStoreSubsystem, esdb_create_store)

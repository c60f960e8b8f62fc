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
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/plugin.h>
#include <esdb/storage.h>

#include <mutex>

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
    ctx.Logger()->info("waiting for {}", esdb::services::kStorage);
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    subscription_.cancel();  // not under mu_: the handler takes it
    std::shared_ptr<StoreCore> core;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      if (service_) core = service_->Detach("the store is stopped");
    }
    if (core) core->Close();
    core.reset();
    if (provided_) {
      for (const char* name : {esdb::services::kEventStoreV2, esdb::services::kEventStore}) {
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
  void OnServiceEvent(const esdb::Event& e) {
    if (e.type == esdb::event_types::kSystemStopping) {
      std::lock_guard<std::mutex> lock(mu_);
      host_stopping_ = true;
      return;
    }
    esdb::Result<esdb::ServiceChange> change = esdb::DecodeServiceChange(e);
    if (!change.ok() || change->name != esdb::services::kStorage) return;
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
        // One object under both names: /2 for today's consumers, /1 (its
        // SDK 1.0 base) for plugins built against SDK 1.0.
        std::shared_ptr<esdb::EventStoreV2> store = service_;
        esdb::Status s = ctx_->Services().Provide<esdb::EventStoreV2>(esdb::services::kEventStoreV2, store);
        if (s.ok()) {
          s = ctx_->Services().Provide<esdb::EventStore>(esdb::services::kEventStore, store);
          if (!s.ok()) (void)ctx_->Services().Withdraw(esdb::services::kEventStoreV2);
        }
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

  esdb::Context* ctx_ = nullptr;
  StoreOptions options_;
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

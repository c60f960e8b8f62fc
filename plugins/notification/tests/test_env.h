// A real event store (StoreCore over LevelDB in a temp dir) feeding a
// SubscriptionService, with an io_context run by two threads, as in the
// plugin. The store's events_appended hook goes straight to the service.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "leveldb_storage.h"
#include "store_core.h"
#include "subscription_service.h"

namespace esdb_notification_test {

class TestEnv {
 public:
  TestEnv() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("esdb-notification-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    logger_ = std::make_shared<spdlog::logger>("notification-test", std::make_shared<spdlog::sinks::null_sink_mt>());
    OpenStore();
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  ~TestEnv() {
    StopService();
    // Let the io threads finish whatever is still posted (a group's read
    // may be running) before the store goes away under it.
    work_.reset();
    for (auto& t : threads_) t.join();
    CloseStore();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void OpenStore() {
    auto storage = esdb_persistence::LevelDbStorage::Open(dir_ / "db", esdb_persistence::LevelDbOptions{});
    REQUIRE(storage.ok());
    esdb_store::StoreHooks hooks;
    hooks.publish = [this](esdb::Event e) {
      auto event = std::make_shared<const esdb::Event>(std::move(e));
      std::shared_ptr<esdb_notification::SubscriptionService> target;
      {
        std::lock_guard<std::mutex> lock(mu_);
        target = target_.lock();
      }
      if (target) target->OnStoreEvent(event);
    };
    hooks.logger = logger_;
    auto store = esdb_store::StoreCore::Open(storage.value(), esdb_store::StoreOptions{}, hooks);
    REQUIRE(store.ok());
    store_ = store.value();
  }

  void CloseStore() {
    if (store_) store_->Close();
    store_.reset();
  }

  // A started service that receives this store's append notifications;
  // it reads through `store` when given (e.g. a wrapper of store()).
  // With `cluster`, in cluster mode (groups only after BecomeLeader).
  std::shared_ptr<esdb_notification::SubscriptionService> StartService(std::shared_ptr<esdb::EventStoreV2> store = nullptr,
                                                                       bool cluster = false) {
    auto svc = std::make_shared<esdb_notification::SubscriptionService>(io_, store ? store : store_, logger_);
    if (cluster) svc->SetClusterMode();
    REQUIRE(svc->Start().ok());
    {
      std::lock_guard<std::mutex> lock(mu_);
      target_ = svc;
      service_ = svc;
    }
    return svc;
  }

  void StopService() {
    std::shared_ptr<esdb_notification::SubscriptionService> svc;
    {
      std::lock_guard<std::mutex> lock(mu_);
      svc = std::move(service_);
      target_.reset();
    }
    if (svc) svc->Stop(esdb::Status::Cancelled("test stops the service"));
  }

  esdb::EventStoreV2& store() { return *store_; }
  boost::asio::io_context& io() { return io_; }

  // Appends `n` events of `type` to `stream`, one append each.
  void Append(const std::string& stream, int n, const std::string& type = "test-event") {
    for (int i = 0; i < n; ++i) AppendBatch(stream, 1, type);
  }
  esdb::AppendResult AppendBatch(const std::string& stream, int n, const std::string& type = "test-event") {
    std::vector<esdb::ProposedEvent> events;
    for (int i = 0; i < n; ++i) {
      esdb::ProposedEvent e;
      e.event_type = type;
      e.data = "{\"n\":" + std::to_string(i) + "}";
      events.push_back(std::move(e));
    }
    auto r = store_->Append(stream, esdb::ExpectedVersion::Any(), std::move(events));
    REQUIRE(r.ok());
    return r.value();
  }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<esdb_store::StoreCore> store_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      boost::asio::make_work_guard(io_)};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::weak_ptr<esdb_notification::SubscriptionService> target_;
  std::shared_ptr<esdb_notification::SubscriptionService> service_;
};

// Polls `pred` until it holds or `limit` passes (a generous bound: the
// tests assert behaviour, not speed).
inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds limit = std::chrono::milliseconds(20000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

// Collects what a catch-up subscription delivers.
struct Collector {
  std::mutex mu;
  std::vector<esdb::SharedEvent> events;
  bool caught_up = false;
  std::optional<esdb::Status> dropped;

  esdb::SubscriptionHandlers Handlers() {
    esdb::SubscriptionHandlers h;
    h.on_events = [this](const std::vector<esdb::SharedEvent>& batch) {
      std::lock_guard<std::mutex> lock(mu);
      events.insert(events.end(), batch.begin(), batch.end());
    };
    h.on_caught_up = [this] {
      std::lock_guard<std::mutex> lock(mu);
      caught_up = true;
    };
    h.on_dropped = [this](const esdb::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      dropped = s;
    };
    return h;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return events.size();
  }
  std::vector<esdb::SharedEvent> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return events;
  }
};

}  // namespace esdb_notification_test

// Runs a gateway Server on its own io_context (two threads) with a fake
// ControlService and a minimal in-memory bus, for tests that do not need a
// whole host. No store: data routes answer 503.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "server.h"

namespace gwtest {

class FakeControl : public esdb::ControlService {
 public:
  std::atomic<bool> ready{false};
  nlohmann::json extra_details = nlohmann::json::object();  // the gateway's "details"; set before requests
  bool SystemReady() const override { return ready.load(); }
  nlohmann::json Status() const override {
    nlohmann::json not_ready = ready.load() ? nlohmann::json::array() : nlohmann::json::array({"store", "persistence"});
    return {{"node", "test-node"},
            {"system_ready", ready.load()},
            {"expected", {"store", "persistence", "gateway"}},
            {"not_ready", not_ready},
            {"subsystems",
             {{"gateway", {{"state", "ready"}, {"since_us", 1}, {"restarts", 0}, {"details", extra_details}}},
              {"store", {{"state", ready.load() ? "ready" : "starting"}, {"since_us", 1}, {"restarts", 2}}}}}};
  }
};

// Synchronous bus: Publish runs handlers on the caller's thread.
class TestBus : public esdb::EventBus {
 public:
  esdb::Status Publish(esdb::Event event, const esdb::PublishOptions& options) override {
    if (event.id.empty()) event.id = "ev-" + std::to_string(++next_);
    auto e = std::make_shared<const esdb::Event>(std::move(event));
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (options.retain) retained_[e->topic + "/" + options.retain_key] = e;
    for (auto& [id, sub] : subs_) {
      if (Matches(sub.options, *e)) sub.handler(e);
    }
    return esdb::Status::OK();
  }
  esdb::Result<esdb::Subscription> Subscribe(const esdb::SubscribeOptions& options,
                                             esdb::EventHandler handler) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    const uint64_t id = ++next_;
    if (options.replay_retained) {
      for (auto& [k, e] : retained_) {
        if (Matches(options, *e)) handler(e);
      }
    }
    subs_[id] = {options, std::move(handler)};
    return esdb::Subscription(std::make_shared<Control>(this, id));
  }
  std::vector<esdb::EventPtr> Retained(const std::string&) const override { return {}; }
  size_t subscriber_count() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return subs_.size();
  }

 private:
  struct Sub {
    esdb::SubscribeOptions options;
    esdb::EventHandler handler;
  };
  struct Control : esdb::SubscriptionControl {
    Control(TestBus* bus, uint64_t id) : bus(bus), id(id) {}
    void cancel() override {
      std::lock_guard<std::recursive_mutex> lock(bus->mu_);
      bus->subs_.erase(id);
    }
    TestBus* bus;
    uint64_t id;
  };
  static bool Matches(const esdb::SubscribeOptions& o, const esdb::Event& e) {
    auto in = [](const std::vector<std::string>& v, const std::string& s) {
      return v.empty() || std::find(v.begin(), v.end(), s) != v.end();
    };
    return in(o.topics, e.topic) && in(o.types, e.type);
  }
  std::recursive_mutex mu_;
  uint64_t next_ = 0;
  std::map<uint64_t, Sub> subs_;
  std::map<std::string, esdb::EventPtr> retained_;
};

class TestServer {
 public:
  explicit TestServer(nlohmann::json config = nlohmann::json::object()) : work_(io_.get_executor()) {
    if (!config.contains("listen_port")) config["listen_port"] = 0;
    auto parsed = esdb_gateway::ParseConfig(config);
    if (!parsed.ok()) throw std::runtime_error(parsed.status().ToString());
    esdb_gateway::ServerDeps deps;
    deps.logger = std::make_shared<spdlog::logger>("gateway-test", std::make_shared<spdlog::sinks::null_sink_mt>());
    deps.control = control;
    deps.bus = &bus;
    server_ = std::make_unique<esdb_gateway::Server>(io_, *parsed, std::move(deps));
    esdb::Status s = server_->Start();
    if (!s.ok()) throw std::runtime_error(s.ToString());
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~TestServer() { Stop(); }
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_result_ = server_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  bool stop_result() const { return stop_result_; }
  uint16_t port() const { return server_->endpoint().port(); }
  esdb_gateway::Server& server() { return *server_; }

  std::shared_ptr<FakeControl> control = std::make_shared<FakeControl>();
  TestBus bus;

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<esdb_gateway::Server> server_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
  bool stop_result_ = false;
};

}  // namespace gwtest

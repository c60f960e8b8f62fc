// The gateway subsystem: reads its config, follows the store and
// subscriptions services, serves HTTP, and
// announces where it listens (retained bus event "gateway_listening").
// It does not wait for the store: data routes answer 503 until it is there.
//
// io_threads io_contexts, each run by one thread: a session stays on one of
// them, so a request's read, handler and write never wake another thread
// or contend for a shared scheduler (Server spreads sessions round-robin).
// They are the gateway's own (not ctx.Io()) so their number follows its
// config and Stop() joins their threads.
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/control.h>
#include <esdb/plugin.h>

#include "server.h"
#include "service_tracker.h"

namespace esdb_gateway {
namespace {

class GatewaySubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    auto config = ParseConfig(ctx.Config());
    if (!config.ok()) return Fail(config.status());
    esdb::Status s = CheckSecurity(*config);
    if (!s.ok()) return Fail(s);
    for (const std::string& warning : SecurityWarnings(*config)) ctx.Logger()->warn("gateway: {}", warning);

    tracker_ = std::make_shared<ServiceTracker>(&ctx.Services());
    auto tracker = tracker_;
    auto sub = esdb::WatchServices(ctx.Bus(), "gateway-services", {},
                                   [tracker](const esdb::ServiceChange& change) { tracker->OnChange(change); });
    if (!sub.ok()) return Fail(sub.status());
    services_sub_ = std::move(sub.value());
    tracker_->Refresh();

    ServerDeps deps;
    deps.logger = ctx.Logger();
    deps.control = ctx.Services().GetOrNull<esdb::ControlService>(esdb::services::kControl);
    deps.store = [tracker] { return tracker->store(); };
    deps.subscriptions = [tracker] { return tracker->subs(); };
    deps.bus = &ctx.Bus();
    deps.admin = [services = &ctx.Services()] { return services->GetOrNull<esdb::AdminService>(esdb::services::kAdmin); };
    deps.subsystem_name = ctx.Name();
    if (!deps.control) ctx.Logger()->warn("gateway: service {} not found; control routes answer 503", esdb::services::kControl);

    std::vector<boost::asio::io_context*> ios;
    for (int i = 0; i < config->io_threads; ++i) {
      ios_.push_back(std::make_unique<boost::asio::io_context>(1));
      work_.emplace_back(ios_.back()->get_executor());
      ios.push_back(ios_.back().get());
    }
    server_ = std::make_unique<Server>(std::move(ios), *config, std::move(deps));
    s = server_->Start();
    if (!s.ok()) return Fail(s);
    for (auto& io : ios_) threads_.emplace_back([io = io.get()] { io->run(); });

    const auto endpoint = server_->endpoint();
    const nlohmann::json where = {{"address", endpoint.address().to_string()}, {"port", endpoint.port()}};
    Announce(esdb::event_types::kGatewayListening, where);
    ctx.Logger()->info("gateway listening on {}:{}", endpoint.address().to_string(), endpoint.port());
    ctx.ReportReady(where);
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (server_) {
      if (!server_->Stop()) ctx_->Logger()->error("gateway: stop left connections behind");
      Announce(esdb::event_types::kGatewayStopped, nlohmann::json::object());
    }
    work_.clear();
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    server_.reset();
    ios_.clear();  // destroys handlers still queued, in this library
    services_sub_.cancel();
    if (tracker_) tracker_->Clear();
    tracker_.reset();
    return esdb::Status::OK();
  }

 private:
  esdb::Status Fail(const esdb::Status& s) {
    ctx_->Logger()->error("gateway: {}", s.ToString());
    ctx_->ReportFailed(s);
    return s;
  }

  void Announce(const char* type, nlohmann::json data) {
    esdb::Event e;
    e.type = type;
    e.topic = esdb::topics::kGateway;
    e.data = std::move(data);
    esdb::PublishOptions options;
    options.retain = true;
    options.retain_key = "listener";
    ctx_->Bus().Publish(std::move(e), options);
  }

  esdb::Context* ctx_ = nullptr;
  std::shared_ptr<ServiceTracker> tracker_;
  esdb::Subscription services_sub_;
  std::vector<std::unique_ptr<boost::asio::io_context>> ios_;  // one per thread
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<Server> server_;
};

esdb::Subsystem* CreateGatewaySubsystem() { return new GatewaySubsystem(); }

}  // namespace
}  // namespace esdb_gateway

ESDB_PLUGIN(esdb_gateway::CreateGatewaySubsystem, esdb_create_gateway)

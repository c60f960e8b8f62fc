// The gateway subsystem: reads its config, follows the store and
// subscriptions services, serves HTTP on the host's io_context, and
// announces where it listens (retained bus event "gateway_listening").
// It does not wait for the store: data routes answer 503 until it is there.
#include <spdlog/spdlog.h>

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

    tracker_ = std::make_shared<ServiceTracker>(&ctx.Services());
    esdb::SubscribeOptions options;
    options.topics = {esdb::topics::kServices};
    options.types = {esdb::event_types::kServiceProvided, esdb::event_types::kServiceWithdrawn};
    options.name = "gateway-services";
    auto tracker = tracker_;
    auto sub = ctx.Bus().Subscribe(options, [tracker](const esdb::EventPtr& e) { tracker->OnEvent(*e); });
    if (!sub.ok()) return Fail(sub.status());
    services_sub_ = std::move(sub.value());
    tracker_->Refresh();

    ServerDeps deps;
    deps.logger = ctx.Logger();
    deps.control = ctx.Services().Get<esdb::ControlService>(esdb::services::kControl);
    deps.store = [tracker] { return tracker->store(); };
    deps.subscriptions = [tracker] { return tracker->subs(); };
    deps.bus = &ctx.Bus();
    if (!deps.control) ctx.Logger()->warn("gateway: service {} not found; control routes answer 503", esdb::services::kControl);

    server_ = std::make_unique<Server>(ctx.Io(), *config, std::move(deps));
    s = server_->Start();
    if (!s.ok()) return Fail(s);

    const auto endpoint = server_->endpoint();
    const nlohmann::json where = {{"address", endpoint.address().to_string()}, {"port", endpoint.port()}};
    Announce("gateway_listening", where);
    ctx.Logger()->info("gateway listening on {}:{}", endpoint.address().to_string(), endpoint.port());
    ctx.ReportReady(where);
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    if (server_) {
      if (!server_->Stop()) ctx_->Logger()->error("gateway: stop left connections behind");
      Announce("gateway_stopped", nlohmann::json::object());
      server_.reset();
    }
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
    e.topic = "gateway";
    e.data = std::move(data);
    esdb::PublishOptions options;
    options.retain = true;
    options.retain_key = "listener";
    ctx_->Bus().Publish(std::move(e), options);
  }

  esdb::Context* ctx_ = nullptr;
  std::shared_ptr<ServiceTracker> tracker_;
  esdb::Subscription services_sub_;
  std::unique_ptr<Server> server_;
};

esdb::Subsystem* CreateGatewaySubsystem() { return new GatewaySubsystem(); }

}  // namespace
}  // namespace esdb_gateway

ESDB_PLUGIN(esdb_gateway::CreateGatewaySubsystem, esdb_create_gateway)

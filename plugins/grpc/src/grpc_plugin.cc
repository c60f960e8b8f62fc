// The grpc subsystem: the EventStoreDB / KurrentDB client protocol on the
// store and notification services. Reads its config, follows the services
// through the registry (the gateway's ServiceTracker), serves gRPC (the
// appends and persistent Reads on gRPC's callback API, the other calls on
// its synchronous server) and announces where it listens (retained bus
// event "grpc_listening", topic "grpc"). It does not wait for the store:
// calls answer UNAVAILABLE naming the missing subsystem until it is there.
//
// Stop: the stopping flag ends subscriptions at once (open persistent
// subscriptions and BatchAppend calls are ended with UNAVAILABLE first, the
// latter once their appends in progress are answered); the server stops
// accepting, lets the calls in flight finish for drain_timeout_ms, then
// cancels the rest and joins its threads, so no gRPC thread runs plugin
// code after Stop() returns. The generated protocol code lives in
// libesdb_grpc_proto.so, which is never unloaded (see CMakeLists.txt).
#include <chrono>
#include <memory>
#include <random>

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/plugin.h>
#include <esdb/services.h>
#include <esdb/uuid.h>

#include "backend.h"
#include "config.h"
#include "gateway/src/service_tracker.h"
#include "info_services.h"
#include "persistent_service.h"
#include "streams_service.h"

namespace esdb_grpc {
namespace {

constexpr const char* kTopic = esdb::topics::kGrpc;
constexpr const char* kListening = esdb::event_types::kGrpcListening;
constexpr const char* kStopped = esdb::event_types::kGrpcStopped;

std::string RandomUuid() {
  std::random_device rd;
  std::string raw;
  for (int i = 0; i < 16; ++i) raw.push_back(static_cast<char>(rd() & 0xff));
  raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x40);
  raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);
  return esdb::FormatUuid(raw);
}

// gRPC's server credentials from the (already checked) PEM files: the
// certificate followed by the chain file, and the key.
esdb::Result<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(const esdb_plugin_shared::TlsConfig& tls) {
  auto cert = esdb_plugin_shared::ReadTlsFile("cert_file", tls.cert_file, "grpc");
  if (!cert.ok()) return cert.status();
  auto key = esdb_plugin_shared::ReadTlsFile("key_file", tls.key_file, "grpc");
  if (!key.ok()) return key.status();
  std::string chain = *cert;
  if (!tls.chain_file.empty()) {
    auto more = esdb_plugin_shared::ReadTlsFile("chain_file", tls.chain_file, "grpc");
    if (!more.ok()) return more.status();
    if (!chain.empty() && chain.back() != '\n') chain += '\n';
    chain += *more;
  }
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, chain});
  return grpc::SslServerCredentials(options);
}

class GrpcSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    auto config = ParseGrpcConfig(ctx.Config());
    if (!config.ok()) return Fail(config.status());
    std::shared_ptr<grpc::ServerCredentials> server_credentials = grpc::InsecureServerCredentials();
    if (config->tls.enabled()) {
      auto tls = TlsCredentials(config->tls);
      if (!tls.ok()) return Fail(tls.status());
      server_credentials = std::move(tls.value());
    }
    if (config->insecure_admin) {
      ctx.Logger()->warn("grpc: INSECURE DEV MODE: every caller has the admin role (insecure_admin)");
    }

    tracker_ = std::make_shared<esdb_gateway::ServiceTracker>(&ctx.Services());
    auto tracker = tracker_;
    auto sub = esdb::WatchServices(ctx.Bus(), "grpc-services", {},
                                   [tracker](const esdb::ServiceChange& change) { tracker->OnChange(change); });
    if (!sub.ok()) return Fail(sub.status());
    services_sub_ = std::move(sub.value());
    tracker_->Refresh();

    backend_ = std::make_shared<Backend>();
    backend_->config = *config;
    backend_->logger = ctx.Logger();
    backend_->store = [tracker] { return tracker->store(); };
    backend_->subscriptions = [tracker] { return tracker->subs(); };
    backend_->credentials = esdb_plugin_shared::Credentials(config->tokens, config->users);

    streams_ = std::make_unique<StreamsService>(backend_);
    persistent_ = std::make_unique<PersistentService>(backend_);
    features_ = std::make_unique<ServerFeaturesService>();
    gossip_ = std::make_unique<GossipService>(config->listen_address, config->listen_port, RandomUuid());

    // gRPC's locks are Abseil's. Debian's Abseil is built without NDEBUG,
    // so its lock-order deadlock detector is on: every lock taken (and
    // every lock destroyed) updates one process-wide graph under one global
    // spin lock, which gRPC's threads then contend for. Off, process-wide
    // (nothing else in the host uses Abseil); finding lock-order bugs in
    // gRPC is not this plugin's job.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

    const bool v6 = config->listen_address.find(':') != std::string::npos;
    const std::string where = (v6 ? "[" + config->listen_address + "]" : config->listen_address) + ":" +
                              std::to_string(config->listen_port);
    grpc::ServerBuilder builder;
    int bound_port = 0;
    builder.AddListeningPort(where, server_credentials, &bound_port);
    builder.RegisterService(streams_.get());
    builder.RegisterService(persistent_.get());
    builder.RegisterService(features_.get());
    builder.RegisterService(gossip_.get());
    builder.SetMaxReceiveMessageSize(config->max_receive_message_bytes);
    // The clients ping often; without these the server answers their pings
    // with GOAWAY ENHANCE_YOUR_CALM and drops the connection.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config->max_streams_per_connection);
    // No channelz (gRPC's introspection service, which the plugin does not
    // serve): its per-call counters are shared atomics on every call.
    builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
    grpc::ResourceQuota quota("esdb-grpc");
    quota.SetMaxThreads(config->max_concurrent_calls);
    builder.SetResourceQuota(quota);
    server_ = builder.BuildAndStart();
    if (!server_ || bound_port == 0) {
      server_.reset();
      return Fail(esdb::Status::Unavailable("grpc: cannot listen on " + where + " (address in use or not local?)"));
    }
    gossip_->SetPort(static_cast<uint16_t>(bound_port));
    // The cluster's members for Gossip.Read (retained: also those announced before).
    esdb::SubscribeOptions cluster_events;
    cluster_events.topics = {esdb::topics::kCluster};
    cluster_events.types = {esdb::event_types::kNodeJoined, esdb::event_types::kNodeLeft,
                            esdb::event_types::kLeaderElected};
    cluster_events.replay_retained = true;
    cluster_events.name = "grpc-gossip";
    GossipService* gossip = gossip_.get();
    auto cluster_sub =
        ctx.Bus().Subscribe(cluster_events, [gossip](const esdb::EventPtr& e) { gossip->OnClusterEvent(*e); });
    if (!cluster_sub.ok()) return Fail(cluster_sub.status());
    cluster_sub_ = std::move(*cluster_sub);

    const nlohmann::json at = {{"address", config->listen_address}, {"port", bound_port}, {"tls", config->tls.enabled()}};
    Announce(kListening, at);
    ctx.Logger()->info("grpc listening on {}:{} ({}; credentials: {} users, {} tokens)", config->listen_address,
                       bound_port, config->tls.enabled() ? "TLS" : "plaintext", config->users.size(),
                       config->tokens.size());
    ctx.ReportReady(at);
    return esdb::Status::OK();
  }

  // Details for /control/status: the append calls in progress (Append and
  // BatchAppend, counted against max_concurrent_calls).
  esdb::Health CheckHealth() override {
    esdb::Health h;
    if (backend_) h.details = {{"appends_in_progress", backend_->open_appends.load()}};
    return h;
  }

  esdb::Status Stop() override {
    if (backend_) backend_->stopping.store(true);
    if (persistent_) persistent_->EndReads(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    if (streams_) streams_->EndCalls(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    if (server_) {
      const int drain_ms = backend_ ? backend_->config.drain_timeout_ms : 0;
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(drain_ms));
      server_->Wait();
      server_.reset();
      Announce(kStopped, nlohmann::json::object());
    }
    cluster_sub_.cancel();
    streams_.reset();
    persistent_.reset();
    features_.reset();
    gossip_.reset();
    services_sub_.cancel();
    if (tracker_) tracker_->Clear();
    tracker_.reset();
    backend_.reset();
    return esdb::Status::OK();
  }

 private:
  esdb::Status Fail(const esdb::Status& s) {
    ctx_->Logger()->error("grpc: {}", s.ToString());
    ctx_->ReportFailed(s);
    return s;
  }

  void Announce(const char* type, nlohmann::json data) {
    esdb::Event e;
    e.type = type;
    e.topic = kTopic;
    e.data = std::move(data);
    esdb::PublishOptions options;
    options.retain = true;
    options.retain_key = "listener";
    ctx_->Bus().Publish(std::move(e), options);
  }

  esdb::Context* ctx_ = nullptr;
  std::shared_ptr<esdb_gateway::ServiceTracker> tracker_;
  esdb::Subscription services_sub_;
  esdb::Subscription cluster_sub_;  // feeds gossip_
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<StreamsService> streams_;
  std::unique_ptr<PersistentService> persistent_;
  std::unique_ptr<ServerFeaturesService> features_;
  std::unique_ptr<GossipService> gossip_;
  std::unique_ptr<grpc::Server> server_;
};

esdb::Subsystem* CreateGrpcSubsystem() { return new GrpcSubsystem(); }

}  // namespace
}  // namespace esdb_grpc

ESDB_PLUGIN(esdb_grpc::CreateGrpcSubsystem, esdb_create_grpc)

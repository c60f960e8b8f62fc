// Notification: subscriptions. Waits for the event store service, then
// provides "esdb.subscriptions/2" and "/1" (catch-up subscriptions and persistent
// groups) and feeds it the store's events_appended notifications. When the
// store goes away, the service is withdrawn and every subscriber is dropped
// with kUnavailable; it comes back when the store does.
//
// Cluster mode (the store's Stats() say "mode": "cluster"): the persistent
// groups run on the cluster's leader only. The plugin follows the cluster
// plugin's leader_elected (and node_joined / node_left, for the leader's addresses):
// when this node becomes leader it loads the groups and resumes each from its
// checkpoint; when another node leads, it stops them without a checkpoint and
// every group call answers esdb::NotLeaderStatus (esdb/not_leader.h) naming
// the leader. Catch-up subscriptions run on every node.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>

#include <esdb/bus_events.h>
#include <esdb/event_store_acquire.h>
#include <esdb/not_leader.h>
#include <esdb/plugin.h>
#include <esdb/subscriptions.h>

#include "subscription_service.h"

namespace esdb_notification {
namespace {

// Topic of this subsystem's own bus events (stored_state_skipped).
constexpr const char* kTopic = esdb::topics::kNotification;

class NotificationSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    ctx_ = &ctx;
    esdb::Result<ServiceOptions> options = ParseServiceOptions(ctx.Config());
    if (!options.ok()) return options.status();
    options_ = options.value();
    esdb::Result<esdb::Subscription> sub =
        esdb::WatchServices(ctx.Bus(), "notification.services", {esdb::services::kEventStoreV2, esdb::services::kEventStore},
                            [this](const esdb::ServiceChange& change) { OnStoreChange(change); });
    if (!sub.ok()) return sub.status();
    {
      std::lock_guard<std::mutex> lock(mu_);
      services_sub_ = std::move(sub.value());
    }
    esdb::SubscribeOptions co;
    co.topics = {esdb::topics::kCluster};
    co.types = {esdb::event_types::kLeaderElected, esdb::event_types::kNodeJoined, esdb::event_types::kNodeLeft};
    co.replay_retained = true;
    co.name = "notification.cluster";
    esdb::Result<esdb::Subscription> csub =
        ctx.Bus().Subscribe(co, [this](const esdb::EventPtr& e) { OnClusterEvent(*e); });
    if (!csub.ok()) return csub.status();
    std::lock_guard<std::mutex> lock(mu_);
    cluster_sub_ = std::move(csub.value());
    return esdb::Status::OK();
  }

  esdb::Status Stop() override {
    esdb::Subscription services;
    esdb::Subscription cluster;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      services = std::move(services_sub_);
      cluster = std::move(cluster_sub_);
    }
    services.cancel();  // waits for a running OnServiceEvent
    cluster.cancel();
    std::lock_guard<std::mutex> lock(mu_);
    Detach(esdb::Status::Cancelled("the notification subsystem is stopping"));
    return esdb::Status::OK();
  }

  esdb::Health CheckHealth() override {
    std::lock_guard<std::mutex> lock(mu_);
    esdb::Health h;
    if (service_) {
      h.details = service_->Stats();
    } else {
      h.message = "waiting for " + std::string(esdb::services::kEventStoreV2);
    }
    return h;
  }

 private:
  // leader_elected / node_joined / node_left (retained, replayed at
  // subscription). Addresses are kept for members only (and the leader's,
  // which not_leader answers name), not for every name ever heard.
  void OnClusterEvent(const esdb::Event& e) {
    esdb::Result<esdb::ClusterChange> change = esdb::DecodeClusterChange(e);
    if (!change.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (change->type == esdb::event_types::kNodeLeft) {
      if (change->node != leader_) addresses_.erase(change->node);
      return;
    }
    if (change->type == esdb::event_types::kNodeJoined) {
      Address& a = addresses_[change->node];
      if (a.http == change->http && a.grpc == change->grpc) return;
      a.http = change->http;
      a.grpc = change->grpc;
      if (change->node != leader_) return;
    } else {
      if (change->term < term_) return;
      leader_ = change->leader;
      term_ = change->term;
      auto http = e.data.find("http");
      if (http != e.data.end() && http->is_string() && !http->get<std::string>().empty()) {
        addresses_[leader_].http = http->get<std::string>();
      }
    }
    FollowLeaderLocked();
  }

  // Requires mu_. Cluster mode: runs the groups here iff this node leads.
  void FollowLeaderLocked() {
    if (!service_ || !cluster_) return;
    if (leader_.empty()) return;  // the service starts as "no leader known yet"
    if (leader_ == ctx_->Node()) {
      (void)service_->BecomeLeader();  // a failed load is logged and retried (BecomeLeader)
      return;
    }
    esdb::NotLeader l;
    l.leader = leader_;
    auto it = addresses_.find(leader_);
    if (it != addresses_.end()) {
      l.http = it->second.http;
      l.grpc = it->second.grpc;
    }
    service_->BecomeFollower(esdb::NotLeaderStatus(
        "this node (" + ctx_->Node() + ") is a follower; persistent subscription groups run on the cluster's leader "
        "only (term " + std::to_string(term_) + ")",
        l));
  }

  void OnStoreChange(const esdb::ServiceChange& change) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (change.provided) {
      Attach();
    } else {
      Detach(esdb::Status::Unavailable("the event store was withdrawn"));
    }
  }

  // Requires mu_.
  void Attach() {
    if (service_) return;
    esdb::Result<std::shared_ptr<esdb::EventStoreV2>> acquired = esdb::AcquireEventStore(ctx_->Services());
    if (!acquired.ok()) {
      // NotFound: withdrawn again already; wait for the next provided.
      if (acquired.status().code() != esdb::Code::kNotFound) ctx_->ReportFailed(acquired.status());
      return;
    }
    std::shared_ptr<esdb::EventStoreV2> store = std::move(acquired).value();
    auto service = std::make_shared<SubscriptionService>(ctx_->Io(), store, ctx_->Logger(), options_);
    const nlohmann::json store_stats = store->Stats();
    cluster_ = store_stats.is_object() && store_stats.value("mode", std::string()) == "cluster";
    if (cluster_) service->SetClusterMode();
    esdb::Status s = service->Start();
    if (!s.ok()) {
      service->Stop(s);
      ctx_->ReportFailed(s);
      return;
    }
    // Stored records Start skipped (its own state it could not read): one
    // bus event each, besides the log line and the health details.
    for (const nlohmann::json& problem : service->StoredStateProblems()) {
      esdb::Event e;
      e.topic = kTopic;
      e.type = esdb::event_types::kStoredStateSkipped;
      e.data = problem;
      ctx_->Bus().Publish(std::move(e));
    }
    esdb::SubscribeOptions so;
    so.topics = {esdb::topics::kStore};
    so.types = {esdb::event_types::kEventsAppended, esdb::event_types::kStreamDeleted};
    so.replay_retained = false;
    so.queue_limit = 1 << 20;
    so.name = "notification.store";
    std::weak_ptr<SubscriptionService> weak = service;
    esdb::Result<esdb::Subscription> sub = ctx_->Bus().Subscribe(so, [weak](const esdb::EventPtr& event) {
      if (auto svc = weak.lock()) svc->OnStoreEvent(event);
    });
    if (!sub.ok()) {
      service->Stop(sub.status());
      ctx_->ReportFailed(sub.status());
      return;
    }
    // Appends between the service's start and the bus subscription are
    // picked up by the next notification (the fan-out reads to the head).
    // (Not on an empty store: there is no event 0 yet, and announcing it
    // would let the fan-out skip the first real one.)
    if (const uint64_t next = store->NextPosition(); next > 0) service->OnEventsAppended(next - 1, {});
    // One object under both names (docs/SDK_COMPATIBILITY.md): /2 for
    // consumers built against SDK 1.1, /1 for those built against 1.0.
    esdb::Status ps = ctx_->Services().Provide<esdb::SubscriptionsV2>(esdb::services::kSubscriptionsV2, service);
    if (ps.ok()) {
      ps = ctx_->Services().Provide<esdb::Subscriptions>(esdb::services::kSubscriptions, service);
      if (!ps.ok()) (void)ctx_->Services().Withdraw(esdb::services::kSubscriptionsV2);
    }
    if (!ps.ok()) {
      sub.value().cancel();
      service->Stop(ps);
      ctx_->ReportFailed(ps);
      return;
    }
    service->SetHandlePin(ctx_->Services().Find(esdb::services::kSubscriptionsV2));
    store_sub_ = std::move(sub.value());
    service_ = std::move(service);
    FollowLeaderLocked();
    ctx_->Logger()->info("providing {} and {}{}", esdb::services::kSubscriptionsV2, esdb::services::kSubscriptions,
                         cluster_ ? " (cluster mode: persistent groups on the leader only)" : "");
    ctx_->ReportReady({{"service", esdb::services::kSubscriptionsV2},
                       {"stored_state_skipped", service_->StoredStateProblems()}});
  }

  // Requires mu_.
  void Detach(const esdb::Status& reason) {
    if (!service_) return;
    ctx_->Services().Withdraw(esdb::services::kSubscriptions);
    ctx_->Services().Withdraw(esdb::services::kSubscriptionsV2);
    store_sub_.cancel();
    service_->Stop(reason);
    service_.reset();
  }

  esdb::Context* ctx_ = nullptr;
  ServiceOptions options_;
  std::mutex mu_;
  bool stopping_ = false;
  esdb::Subscription services_sub_;
  esdb::Subscription store_sub_;
  esdb::Subscription cluster_sub_;
  std::shared_ptr<SubscriptionService> service_;
  // Cluster mode, as the store reported at the last Attach.
  bool cluster_ = false;
  // The leader as last announced, and where each node serves.
  struct Address {
    std::string http;
    std::string grpc;
  };
  std::string leader_;
  int64_t term_ = 0;
  std::map<std::string, Address> addresses_;
};

esdb::Subsystem* CreateNotificationSubsystem() { return new NotificationSubsystem(); }

}  // namespace
}  // namespace esdb_notification

ESDB_PLUGIN(esdb_notification::CreateNotificationSubsystem, esdb_create_notification)

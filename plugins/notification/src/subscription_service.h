// SubscriptionService: the implementation of esdb::SubscriptionsV2 (and so
// of esdb::Subscriptions) over an
// esdb::EventStoreV2. The plugin feeds it the store's events_appended
// notifications; tests call OnEventsAppended() directly.
//
// Live fan-out: one reader (serialised on the io_context) reads each new
// range of $all once and hands the shared events to every catch-up
// subscription, which keeps what it wants. Persistent groups read their own
// stream (they are few and each keeps its own position).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "catch_up.h"
#include "esdb/bus.h"
#include "esdb/subscriptions.h"
#include "persistent_group.h"

namespace spdlog {
class logger;
}

namespace esdb_notification {

// Limits of the whole service (the manifest's config may override them).
struct ServiceOptions {
  size_t max_catch_up_subscriptions = 10000;  // more: ResourceExhausted
  size_t max_groups = 1000;
  size_t max_consumers_per_group = 100;
  size_t fanout_read_batch = 1000;  // events per fan-out read of $all
};

// Parses a service options object: {"max_catch_up_subscriptions", "max_groups",
// "max_consumers_per_group", "fanout_read_batch"}; unknown keys are errors.
esdb::Result<ServiceOptions> ParseServiceOptions(const nlohmann::json& config);

// Name of the $-stream holding every group's definition (latest event wins).
inline constexpr const char* kGroupConfigStream = "$persistent-config";

class SubscriptionService : public esdb::SubscriptionsV2,
                            public std::enable_shared_from_this<SubscriptionService> {
 public:
  SubscriptionService(boost::asio::io_context& io, std::shared_ptr<esdb::EventStoreV2> store,
                      std::shared_ptr<spdlog::logger> logger, ServiceOptions options = {});
  ~SubscriptionService() override;

  // Loads persisted groups. Call once before serving. A stored definition
  // or checkpoint that does not parse or validate (the same checks as
  // CreateGroup) is logged, listed in StoredStateProblems() and skipped (a
  // skipped group is dropped from kGroupConfigStream at the next group
  // change); only a failing store read fails Start.
  esdb::Status Start();

  // Cluster mode (call before Start): the groups run on the cluster's leader
  // only. Start loads none; every group call answers the status last given
  // to BecomeFollower (initially: no leader known yet) until BecomeLeader.
  void SetClusterMode();
  // This node leads: loads the groups from kGroupConfigStream (what Start
  // does in single-node mode), each resuming from its checkpoint. No-op
  // while leading. When the load fails (the store's read failed) the
  // result says why, group calls answer unavailable, and the load is tried
  // again on the io_context after 200 ms, then twice as long each time up
  // to 5 s, until it succeeds, BecomeFollower is called, or Stop.
  esdb::Status BecomeLeader();
  // Another node leads (or none is known): stops every group WITHOUT writing
  // a checkpoint, drops its consumers with `not_leader`, and answers every
  // group call with it from now on.
  void BecomeFollower(const esdb::Status& not_leader);
  // The stored records Start skipped: [{"where": stream[@version][ entry],
  // "problem": why}], at most kMaxReportedProblems. Also in Stats().
  nlohmann::json StoredStateProblems() const;
  static constexpr size_t kMaxReportedProblems = 100;
  // Ends every subscription (on_dropped with `reason`), writes group
  // checkpoints, cancels timers. Afterwards every call answers kCancelled.
  void Stop(const esdb::Status& reason);

  // Handles returned from now on keep `pin` (e.g. the registry's pointer to
  // this service, which keeps the library loaded) until destroyed.
  void SetHandlePin(std::shared_ptr<void> pin);

  // New events are durable up to `last_position`. `streams` are the streams
  // appended to (empty: unknown, every group is told).
  void OnEventsAppended(uint64_t last_position, const std::vector<std::string>& streams);
  // A stream was deleted; hard = tombstoned.
  void OnStreamDeleted(const std::string& stream_id, bool hard);
  // Bus entry: topic "store" events (events_appended, stream_deleted).
  void OnStoreEvent(const esdb::EventPtr& event);

  // esdb::Subscriptions (/1: UpdateGroup keeps the group's /2 settings)
  esdb::Result<esdb::Subscription> SubscribeToStream(const esdb::StreamSubscriptionRequest& request,
                                                     esdb::SubscriptionHandlers handlers) override;
  esdb::Result<esdb::Subscription> SubscribeToAll(const esdb::AllSubscriptionRequest& request,
                                                  esdb::SubscriptionHandlers handlers) override;
  esdb::Status CreateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettings& settings) override;
  esdb::Status UpdateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettings& settings) override;
  esdb::Status DeleteGroup(const std::string& stream_id, const std::string& group) override;
  esdb::Result<esdb::GroupInfo> GetGroupInfo(const std::string& stream_id, const std::string& group) override;
  esdb::Result<std::vector<esdb::GroupInfo>> ListGroups(const std::string& stream_id) override;
  esdb::Result<esdb::Subscription> ConnectToGroup(const std::string& stream_id, const std::string& group,
                                                  esdb::ConsumerOptions options) override;
  esdb::Result<std::vector<esdb::PersistentMessage>> ReadNext(const std::string& stream_id,
                                                              const std::string& group, size_t count) override;
  esdb::Result<esdb::AckResult> Ack(const std::string& stream_id, const std::string& group,
                                    const std::vector<std::string>& event_ids) override;
  esdb::Result<esdb::AckResult> Nack(const std::string& stream_id, const std::string& group,
                                     const std::vector<std::string>& event_ids, esdb::NackAction action,
                                     const std::string& reason) override;
  esdb::Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group) override;
  nlohmann::json Stats() override;
  // esdb::SubscriptionsV2
  esdb::Status CreateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettingsV2& settings) override;
  esdb::Status UpdateGroup(const std::string& stream_id, const std::string& group,
                           const esdb::GroupSettingsV2& settings) override;
  esdb::Result<esdb::GroupInfoV2> GetGroupInfoV2(const std::string& stream_id, const std::string& group) override;
  esdb::Result<std::vector<esdb::GroupInfoV2>> ListGroupsV2(const std::string& stream_id) override;
  esdb::Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group,
                                      uint64_t max_count) override;

 private:
  using GroupKey = std::pair<std::string, std::string>;

  esdb::Result<esdb::Subscription> Register(CatchUpSubscription::Params params, esdb::SubscriptionHandlers handlers);
  void Forget(uint64_t id);
  void ScheduleFanout();
  void Fanout();
  esdb::Result<std::shared_ptr<PersistentGroup>> FindGroup(const std::string& stream_id, const std::string& group);
  // UpdateGroup's work; `keep_v2` (a /1 update): the group keeps its /2 settings.
  esdb::Status UpdateGroupImpl(const std::string& stream_id, const std::string& group,
                               const esdb::GroupSettingsV2& settings, bool keep_v2);
  // Writes every group's definition to kGroupConfigStream. Requires admin_mu_.
  esdb::Status SaveGroupsLocked();
  esdb::Status CheckRunning() const;
  // CheckRunning, then in cluster mode whether this node leads. Takes groups_mu_.
  esdb::Status CheckGroupsHere();
  // Start's loading of the stored definitions. Requires admin_mu_.
  esdb::Status LoadGroupsLocked();
  // BecomeLeader's load for attempt `epoch` (requires admin_mu_); a no-op
  // when leading or another attempt superseded it.
  esdb::Status LeadLocked(uint64_t epoch);
  // One entry of the stored definitions -> a running group. Requires admin_mu_.
  esdb::Status LoadGroupLocked(const nlohmann::json& entry);
  void ReportStoredStateProblem(const std::string& where, const std::string& problem);

  boost::asio::io_context& io_;
  const std::shared_ptr<esdb::EventStoreV2> store_;
  const std::shared_ptr<spdlog::logger> logger_;
  const ServiceOptions options_;
  std::atomic<bool> stopped_{false};
  SubscriptionCounters counters_;

  std::mutex subs_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<CatchUpSubscription>> subs_;
  uint64_t next_sub_id_ = 1;
  std::shared_ptr<void> pin_;

  std::mutex fanout_mu_;
  uint64_t fanout_next_ = 0;  // next position the fan-out reads
  uint64_t known_head_ = 0;   // one past the last position known durable
  bool fanout_scheduled_ = false;
  std::unique_ptr<boost::asio::steady_timer> fanout_retry_;
  std::atomic<uint64_t> fanout_reads_{0};

  // Serialises group administration and writes of the config stream; held
  // across store calls. Never taken on the store's notification path.
  std::mutex admin_mu_;
  std::mutex groups_mu_;  // guards groups_; never held across store calls
  std::map<GroupKey, std::shared_ptr<PersistentGroup>> groups_;
  // Cluster mode: groups run here only while leading_ (both under groups_mu_);
  // not_leader_ is the answer otherwise.
  bool cluster_ = false;
  bool leading_ = true;
  esdb::Status not_leader_;
  // A failed load as leader is retried (LeadLocked) by lead_retry_ while
  // lead_epoch_ is the attempt's (BecomeLeader, BecomeFollower and Stop
  // move it on); all three under groups_mu_. lead_retry_ is null once
  // stopped.
  static constexpr int kLeadRetryFirstMs = 200;
  static constexpr int kLeadRetryMaxMs = 5000;
  std::unique_ptr<boost::asio::steady_timer> lead_retry_;
  uint64_t lead_epoch_ = 0;
  int lead_retry_delay_ms_ = kLeadRetryFirstMs;
  std::atomic<uint64_t> lead_retries_{0};  // failed loads as leader, for Stats()

  mutable std::mutex problems_mu_;
  nlohmann::json stored_state_problems_ = nlohmann::json::array();
  uint64_t stored_state_problem_count_ = 0;
};

}  // namespace esdb_notification

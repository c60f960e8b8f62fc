// How a consumer gets the subscriptions service whatever SDK its provider
// was built against: "esdb.subscriptions/2" when offered, else a "/1"
// provider (built against SDK 1.0) behind an adapter that refuses what /1
// cannot do (a max_subscriber_count other than 0, a ReplayParked that stops
// early) with kInvalidArgument naming it, and shows the /2 settings at their
// defaults. Modelled on AcquireEventStore() (event_store_acquire.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "esdb/services.h"
#include "esdb/subscriptions.h"

namespace esdb {

// Whether a service_provided / service_withdrawn event's name concerns the
// subscriptions service (either version): re-run AcquireSubscriptions() then.
inline bool IsSubscriptionsServiceName(std::string_view name) {
  return name == services::kSubscriptionsV2 || name == services::kSubscriptions;
}

// A Subscriptions seen as a SubscriptionsV2. Thread-safe as the wrapped service.
class SubscriptionsV1Adapter final : public SubscriptionsV2 {
 public:
  explicit SubscriptionsV1Adapter(std::shared_ptr<Subscriptions> v1) : v1_(std::move(v1)) {}

  Result<Subscription> SubscribeToStream(const StreamSubscriptionRequest& request,
                                         SubscriptionHandlers handlers) override {
    return v1_->SubscribeToStream(request, std::move(handlers));
  }
  Result<Subscription> SubscribeToAll(const AllSubscriptionRequest& request, SubscriptionHandlers handlers) override {
    return v1_->SubscribeToAll(request, std::move(handlers));
  }
  Status CreateGroup(const std::string& stream_id, const std::string& group, const GroupSettings& settings) override {
    return v1_->CreateGroup(stream_id, group, settings);
  }
  Status UpdateGroup(const std::string& stream_id, const std::string& group, const GroupSettings& settings) override {
    return v1_->UpdateGroup(stream_id, group, settings);
  }
  Status DeleteGroup(const std::string& stream_id, const std::string& group) override {
    return v1_->DeleteGroup(stream_id, group);
  }
  Result<GroupInfo> GetGroupInfo(const std::string& stream_id, const std::string& group) override {
    return v1_->GetGroupInfo(stream_id, group);
  }
  Result<std::vector<GroupInfo>> ListGroups(const std::string& stream_id) override {
    return v1_->ListGroups(stream_id);
  }
  Result<Subscription> ConnectToGroup(const std::string& stream_id, const std::string& group,
                                      ConsumerOptions options) override {
    return v1_->ConnectToGroup(stream_id, group, std::move(options));
  }
  Result<std::vector<PersistentMessage>> ReadNext(const std::string& stream_id, const std::string& group,
                                                  size_t count) override {
    return v1_->ReadNext(stream_id, group, count);
  }
  Result<AckResult> Ack(const std::string& stream_id, const std::string& group,
                        const std::vector<std::string>& event_ids) override {
    return v1_->Ack(stream_id, group, event_ids);
  }
  Result<AckResult> Nack(const std::string& stream_id, const std::string& group,
                         const std::vector<std::string>& event_ids, NackAction action,
                         const std::string& reason) override {
    return v1_->Nack(stream_id, group, event_ids, action, reason);
  }
  Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group) override {
    return v1_->ReplayParked(stream_id, group);
  }
  nlohmann::json Stats() override { return v1_->Stats(); }

  Status CreateGroup(const std::string& stream_id, const std::string& group,
                     const GroupSettingsV2& settings) override {
    if (Status s = CheckV1(settings); !s.ok()) return s;
    return v1_->CreateGroup(stream_id, group, settings);
  }
  Status UpdateGroup(const std::string& stream_id, const std::string& group,
                     const GroupSettingsV2& settings) override {
    if (Status s = CheckV1(settings); !s.ok()) return s;
    return v1_->UpdateGroup(stream_id, group, settings);
  }
  Result<GroupInfoV2> GetGroupInfoV2(const std::string& stream_id, const std::string& group) override {
    Result<GroupInfo> info = v1_->GetGroupInfo(stream_id, group);
    if (!info.ok()) return info.status();
    return GroupInfoV2(info.value());
  }
  Result<std::vector<GroupInfoV2>> ListGroupsV2(const std::string& stream_id) override {
    Result<std::vector<GroupInfo>> list = v1_->ListGroups(stream_id);
    if (!list.ok()) return list.status();
    std::vector<GroupInfoV2> out;
    out.reserve(list->size());
    for (const GroupInfo& g : list.value()) out.emplace_back(g);
    return out;
  }
  Result<uint64_t> ReplayParked(const std::string& stream_id, const std::string& group, uint64_t max_count) override {
    if (max_count != kReplayAllParked) {
      return Status::InvalidArgument(std::string("replaying only some parked messages needs ") +
                                     services::kSubscriptionsV2 + "; the notification service offers " +
                                     services::kSubscriptions + " only");
    }
    return v1_->ReplayParked(stream_id, group);
  }

 private:
  static Status CheckV1(const GroupSettingsV2& settings) {
    if (settings.max_subscriber_count == 0) return Status::OK();
    return Status::InvalidArgument(std::string("max_subscriber_count other than 0 needs ") +
                                   services::kSubscriptionsV2 + "; the notification service offers " +
                                   services::kSubscriptions + " only");
  }

  std::shared_ptr<Subscriptions> v1_;
};

// The current subscriptions service: /2 if provided, else /1 adapted.
// NotFound when neither name is provided; the registry's FailedPrecondition
// when a name is provided as another interface.
inline Result<std::shared_ptr<SubscriptionsV2>> AcquireSubscriptions(const ServiceRegistry& registry) {
  Result<std::shared_ptr<SubscriptionsV2>> v2 = registry.Get<SubscriptionsV2>(services::kSubscriptionsV2);
  if (v2.ok() || v2.status().code() != Code::kNotFound) return v2;
  Result<std::shared_ptr<Subscriptions>> v1 = registry.Get<Subscriptions>(services::kSubscriptions);
  if (!v1.ok()) {
    if (v1.status().code() != Code::kNotFound) return v1.status();
    return Status::NotFound(std::string("neither ") + services::kSubscriptionsV2 + " nor " +
                            services::kSubscriptions + " is provided");
  }
  return std::shared_ptr<SubscriptionsV2>(std::make_shared<SubscriptionsV1Adapter>(std::move(v1).value()));
}

}  // namespace esdb

// SubscriptionService: the persistent-group registry (create, update,
// delete, connect, ack/nack, the stored $persistent-config), beside
// subscription_service.cc (start/stop, catch-up subscriptions, live fan-out).
#include "subscription_service.h"

#include <algorithm>
#include <cctype>

#include <spdlog/spdlog.h>

#include "esdb/group_settings.h"
#include "esdb/uuid.h"

namespace esdb_notification {
namespace {

// Disconnects a persistent-group consumer when its handle goes.
class ConsumerControl : public esdb::SubscriptionControl {
 public:
  ConsumerControl(std::weak_ptr<PersistentGroup> group, PersistentGroup::ConsumerRef ref, std::shared_ptr<void> pin)
      : group_(std::move(group)), ref_(std::move(ref)), pin_(std::move(pin)) {}

  void cancel() override {
    std::shared_ptr<Channel<esdb::PersistentMessage>> channel;
    {
      std::lock_guard<std::mutex> lock(mu_);
      channel = std::move(ref_.channel);
    }
    if (!channel) return;
    if (auto group = group_.lock()) group->Disconnect(ref_.id);
    channel->Cancel();
  }

 private:
  std::mutex mu_;
  std::weak_ptr<PersistentGroup> group_;
  PersistentGroup::ConsumerRef ref_;
  std::shared_ptr<void> pin_;
};

esdb::Status ValidateGroupName(const std::string& stream_id, const std::string& group) {
  if (stream_id.empty()) return esdb::Status::InvalidArgument("stream id must not be empty");
  if (stream_id.find("::") != std::string::npos)
    return esdb::Status::InvalidArgument("stream id '" + stream_id + "' must not contain '::' for a group");
  if (group.empty() || group.size() > 100)
    return esdb::Status::InvalidArgument("group name must have 1..100 characters");
  for (char c : group) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) {
      return esdb::Status::InvalidArgument("group name '" + group + "' may only contain [A-Za-z0-9_.-]");
    }
  }
  return esdb::Status::OK();
}

esdb::Result<std::vector<std::string>> CanonicalIds(const std::vector<std::string>& ids) {
  if (ids.empty()) return esdb::Status::InvalidArgument("no event ids given");
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    if (!esdb::IsUuid(id)) return esdb::Status::InvalidArgument("event id '" + id + "' is not a UUID");
    std::string lower = id;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    out.push_back(std::move(lower));
  }
  return out;
}

esdb::Result<std::optional<esdb::CompiledAllFilter>> GroupMatcher(const std::string& stream_id,
                                                        const esdb::GroupSettingsV2& settings) {
  if (stream_id != esdb::kAllStreamId) return std::optional<esdb::CompiledAllFilter>();
  esdb::Result<esdb::CompiledAllFilter> m = esdb::CompiledAllFilter::Compile(settings.filter);
  if (!m.ok()) return m.status();
  return std::optional<esdb::CompiledAllFilter>(std::move(m.value()));
}

}  // namespace

esdb::Status SubscriptionService::LoadGroupLocked(const nlohmann::json& g) {
  if (!g.is_object()) return esdb::Status::InvalidArgument("group entry is not an object");
  const auto stream_it = g.find("stream");
  const auto name_it = g.find("group");
  if (stream_it == g.end() || !stream_it->is_string() || name_it == g.end() || !name_it->is_string())
    return esdb::Status::InvalidArgument("group entry needs string fields \"stream\" and \"group\"");
  const std::string stream_id = stream_it->get<std::string>();
  const std::string name = name_it->get<std::string>();
  if (esdb::Status s = ValidateGroupName(stream_id, name); !s.ok()) return s;
  const auto settings_it = g.find("settings");
  esdb::Result<esdb::GroupSettingsV2> settings =
      esdb::GroupSettingsFromJson(settings_it == g.end() ? nlohmann::json() : *settings_it);
  if (!settings.ok()) return esdb::Status::InvalidArgument("group '" + name + "' on '" + stream_id + "': " +
                                                           settings.status().message());
  if (esdb::Status s = esdb::ValidateGroupSettings(*settings, stream_id); !s.ok()) {
    return esdb::Status::InvalidArgument("group '" + name + "' on '" + stream_id + "': " + s.message());
  }
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (groups_.count({stream_id, name}))
      return esdb::Status::AlreadyExists("group '" + name + "' on '" + stream_id + "' is defined twice");
    if (groups_.size() >= options_.max_groups)
      return esdb::Status::ResourceExhausted("group '" + name + "' on '" + stream_id + "' is beyond max_groups");
  }
  esdb::Result<std::optional<esdb::CompiledAllFilter>> matcher = GroupMatcher(stream_id, *settings);
  if (!matcher.ok()) return matcher.status();
  auto group = std::make_shared<PersistentGroup>(io_, store_, logger_, stream_id, name, *settings,
                                                 std::move(matcher.value()));
  std::string checkpoint_problem;
  esdb::Status s = group->Load(/*created=*/false, &checkpoint_problem);
  if (!s.ok()) return esdb::Status(s.code(), "group '" + name + "' on '" + stream_id + "': " + s.message());
  if (!checkpoint_problem.empty()) {
    ReportStoredStateProblem(CheckpointStreamName(stream_id, name), checkpoint_problem);
  }
  group->Poke();
  std::lock_guard<std::mutex> lock(groups_mu_);
  groups_[{stream_id, name}] = std::move(group);
  return esdb::Status::OK();
}

// --- persistent groups ----------------------------------------------------------

esdb::Status SubscriptionService::SaveGroupsLocked() {
  nlohmann::json groups = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    for (const auto& [key, group] : groups_) {
      groups.push_back({{"stream", key.first}, {"group", key.second}, {"settings", esdb::GroupSettingsToJson(group->settings())}});
    }
  }
  esdb::ProposedEvent p;
  p.event_type = "$persistent-subscription-config";
  p.data = nlohmann::json{{"groups", groups}}.dump();
  std::vector<esdb::ProposedEvent> events;
  events.push_back(std::move(p));
  esdb::Result<esdb::AppendResult> r = store_->Append(kGroupConfigStream, esdb::ExpectedVersion::Any(), std::move(events));
  if (!r.ok()) return r.status();
  return esdb::Status::OK();
}

esdb::Status SubscriptionService::CreateGroup(const std::string& stream_id, const std::string& group,
                                              const esdb::GroupSettings& settings) {
  return CreateGroup(stream_id, group, esdb::GroupSettingsV2(settings));
}

esdb::Status SubscriptionService::CreateGroup(const std::string& stream_id, const std::string& group,
                                              const esdb::GroupSettingsV2& settings) {
  if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
  if (esdb::Status s = ValidateGroupName(stream_id, group); !s.ok()) return s;
  if (esdb::Status s = esdb::ValidateGroupSettings(settings, stream_id); !s.ok()) return s;
  esdb::Result<std::optional<esdb::CompiledAllFilter>> matcher = GroupMatcher(stream_id, settings);
  if (!matcher.ok()) return matcher.status();
  std::lock_guard<std::mutex> admin(admin_mu_);
  if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
  size_t count = 0;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (groups_.count({stream_id, group}))
      return esdb::Status::AlreadyExists("group '" + group + "' on '" + stream_id + "' already exists");
    count = groups_.size();
  }
  if (count >= options_.max_groups)
    return esdb::Status::ResourceExhausted("too many groups (limit " + std::to_string(options_.max_groups) + ")");
  if (count == 0) {
    // Keep only the latest definition document.
    esdb::StreamMetadata md;
    md.max_count = 1;
    store_->SetMetadata(kGroupConfigStream, md);
  }
  auto g = std::make_shared<PersistentGroup>(io_, store_, logger_, stream_id, group, settings,
                                             std::move(matcher.value()));
  if (esdb::Status s = g->Load(/*created=*/true); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    groups_[{stream_id, group}] = g;
  }
  if (esdb::Status s = SaveGroupsLocked(); !s.ok()) {
    {
      std::lock_guard<std::mutex> lock(groups_mu_);
      groups_.erase({stream_id, group});
    }
    g->Stop(s, false);
    return s;
  }
  g->Poke();
  return esdb::Status::OK();
}

esdb::Status SubscriptionService::UpdateGroup(const std::string& stream_id, const std::string& group,
                                              const esdb::GroupSettings& settings) {
  return UpdateGroupImpl(stream_id, group, esdb::GroupSettingsV2(settings), /*keep_v2=*/true);
}

esdb::Status SubscriptionService::UpdateGroup(const std::string& stream_id, const std::string& group,
                                              const esdb::GroupSettingsV2& settings) {
  return UpdateGroupImpl(stream_id, group, settings, /*keep_v2=*/false);
}

esdb::Status SubscriptionService::UpdateGroupImpl(const std::string& stream_id, const std::string& group,
                                                  const esdb::GroupSettingsV2& requested, bool keep_v2) {
  if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
  if (esdb::Status s = ValidateGroupName(stream_id, group); !s.ok()) return s;
  if (esdb::Status s = esdb::ValidateGroupSettings(requested, stream_id); !s.ok()) return s;
  esdb::Result<std::optional<esdb::CompiledAllFilter>> matcher = GroupMatcher(stream_id, requested);
  if (!matcher.ok()) return matcher.status();
  std::lock_guard<std::mutex> admin(admin_mu_);
  auto found = FindGroup(stream_id, group);  // checks leadership again, under admin_mu_
  if (!found.ok()) return found.status();
  std::shared_ptr<PersistentGroup> g = found.value();
  const esdb::GroupSettingsV2 old = g->settings();
  esdb::GroupSettingsV2 settings = requested;
  if (keep_v2) settings.max_subscriber_count = old.max_subscriber_count;
  esdb::Result<std::optional<esdb::CompiledAllFilter>> old_matcher = GroupMatcher(stream_id, old);
  g->UpdateSettings(settings, std::move(matcher.value()));
  if (esdb::Status s = SaveGroupsLocked(); !s.ok()) {
    g->UpdateSettings(old, old_matcher.ok() ? std::move(old_matcher.value()) : std::nullopt);
    return s;
  }
  return esdb::Status::OK();
}

esdb::Status SubscriptionService::DeleteGroup(const std::string& stream_id, const std::string& group) {
  if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
  if (esdb::Status s = ValidateGroupName(stream_id, group); !s.ok()) return s;
  std::shared_ptr<PersistentGroup> g;
  {
    std::lock_guard<std::mutex> admin(admin_mu_);
    if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
    {
      std::lock_guard<std::mutex> lock(groups_mu_);
      auto it = groups_.find({stream_id, group});
      if (it == groups_.end())
        return esdb::Status::NotFound("group '" + group + "' on '" + stream_id + "' does not exist");
      g = it->second;
      groups_.erase(it);
    }
    if (esdb::Status s = SaveGroupsLocked(); !s.ok()) {
      std::lock_guard<std::mutex> lock(groups_mu_);
      groups_[{stream_id, group}] = g;
      return s;
    }
    esdb::Status ds = store_->DeleteStream(CheckpointStreamName(stream_id, group), esdb::ExpectedVersion::Any(), false);
    if (!ds.ok() && ds.code() != esdb::Code::kNotFound) {
      logger_->warn("group {}/{} deleted but its checkpoint stream was not: {}", stream_id, group, ds.ToString());
    }
  }
  g->Stop(esdb::Status::NotFound("group '" + group + "' on '" + stream_id + "' was deleted"), false);
  return esdb::Status::OK();
}

esdb::Result<std::shared_ptr<PersistentGroup>> SubscriptionService::FindGroup(const std::string& stream_id,
                                                                              const std::string& group) {
  if (esdb::Status s = CheckRunning(); !s.ok()) return s;
  if (esdb::Status s = ValidateGroupName(stream_id, group); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(groups_mu_);
  if (cluster_ && !leading_) return not_leader_;
  auto it = groups_.find({stream_id, group});
  if (it == groups_.end()) return esdb::Status::NotFound("group '" + group + "' on '" + stream_id + "' does not exist");
  return it->second;
}

esdb::Result<esdb::GroupInfo> SubscriptionService::GetGroupInfo(const std::string& stream_id, const std::string& group) {
  esdb::Result<esdb::GroupInfoV2> info = GetGroupInfoV2(stream_id, group);
  if (!info.ok()) return info.status();
  return esdb::GroupInfo(std::move(info.value()));
}

esdb::Result<std::vector<esdb::GroupInfo>> SubscriptionService::ListGroups(const std::string& stream_id) {
  esdb::Result<std::vector<esdb::GroupInfoV2>> list = ListGroupsV2(stream_id);
  if (!list.ok()) return list.status();
  std::vector<esdb::GroupInfo> out;
  out.reserve(list->size());
  for (esdb::GroupInfoV2& g : list.value()) out.push_back(esdb::GroupInfo(std::move(g)));
  return out;
}

esdb::Result<esdb::GroupInfoV2> SubscriptionService::GetGroupInfoV2(const std::string& stream_id,
                                                                    const std::string& group) {
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  return g.value()->Info();
}

esdb::Result<std::vector<esdb::GroupInfoV2>> SubscriptionService::ListGroupsV2(const std::string& stream_id) {
  if (esdb::Status s = CheckGroupsHere(); !s.ok()) return s;
  std::vector<std::shared_ptr<PersistentGroup>> groups;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    for (auto& [key, g] : groups_) {
      if (stream_id.empty() || key.first == stream_id) groups.push_back(g);
    }
  }
  std::vector<esdb::GroupInfoV2> out;
  for (auto& g : groups) out.push_back(g->Info());
  return out;
}

esdb::Result<esdb::Subscription> SubscriptionService::ConnectToGroup(const std::string& stream_id,
                                                                     const std::string& group,
                                                                     esdb::ConsumerOptions options) {
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  if (!options.on_messages) return esdb::Status::InvalidArgument("on_messages handler is required");
  if (options.in_flight_limit < 1 || options.in_flight_limit > 100000)
    return esdb::Status::InvalidArgument("in_flight_limit must be in 1..100000");
  if (g.value()->consumer_count() >= options_.max_consumers_per_group) {
    return esdb::Status::ResourceExhausted("group '" + group + "' has its maximum of " +
                                           std::to_string(options_.max_consumers_per_group) + " consumers");
  }
  esdb::Result<PersistentGroup::ConsumerRef> ref = g.value()->Connect(std::move(options));
  if (!ref.ok()) return ref.status();
  std::shared_ptr<void> pin;
  {
    std::lock_guard<std::mutex> lock(subs_mu_);
    pin = pin_;
  }
  return esdb::Subscription(std::make_shared<ConsumerControl>(g.value(), std::move(ref.value()), std::move(pin)));
}

esdb::Result<std::vector<esdb::PersistentMessage>> SubscriptionService::ReadNext(const std::string& stream_id,
                                                                                 const std::string& group,
                                                                                 size_t count) {
  if (count < 1 || count > 10000) return esdb::Status::InvalidArgument("count must be in 1..10000");
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  return g.value()->ReadNext(count);
}

esdb::Result<esdb::AckResult> SubscriptionService::Ack(const std::string& stream_id, const std::string& group,
                                                       const std::vector<std::string>& event_ids) {
  auto ids = CanonicalIds(event_ids);
  if (!ids.ok()) return ids.status();
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  return g.value()->Ack(ids.value());
}

esdb::Result<esdb::AckResult> SubscriptionService::Nack(const std::string& stream_id, const std::string& group,
                                                        const std::vector<std::string>& event_ids,
                                                        esdb::NackAction action, const std::string& reason) {
  auto ids = CanonicalIds(event_ids);
  if (!ids.ok()) return ids.status();
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  return g.value()->Nack(ids.value(), action, reason);
}

esdb::Result<uint64_t> SubscriptionService::ReplayParked(const std::string& stream_id, const std::string& group) {
  return ReplayParked(stream_id, group, esdb::kReplayAllParked);
}

esdb::Result<uint64_t> SubscriptionService::ReplayParked(const std::string& stream_id, const std::string& group,
                                                         uint64_t max_count) {
  auto g = FindGroup(stream_id, group);
  if (!g.ok()) return g.status();
  return g.value()->ReplayParked(max_count);
}

}  // namespace esdb_notification

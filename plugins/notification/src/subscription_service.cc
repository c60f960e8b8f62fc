#include "subscription_service.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "esdb/bus_events.h"
#include "esdb/config_reader.h"
#include "esdb/group_settings.h"
#include "esdb/uuid.h"

namespace esdb_notification {
namespace {

// Ends a catch-up subscription when the subscriber lets go of its handle.
class CatchUpControl : public esdb::SubscriptionControl {
 public:
  CatchUpControl(std::weak_ptr<SubscriptionService> service, std::shared_ptr<CatchUpSubscription> sub,
                 std::function<void(uint64_t)> forget, std::shared_ptr<void> pin)
      : service_(std::move(service)), sub_(std::move(sub)), forget_(std::move(forget)), pin_(std::move(pin)) {}

  void cancel() override {
    std::shared_ptr<CatchUpSubscription> sub;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sub = std::move(sub_);
    }
    if (!sub) return;
    sub->Cancel();
    if (service_.lock()) forget_(sub->id());
  }

 private:
  std::mutex mu_;
  std::weak_ptr<SubscriptionService> service_;
  std::shared_ptr<CatchUpSubscription> sub_;
  std::function<void(uint64_t)> forget_;
  std::shared_ptr<void> pin_;
};

esdb::Status ValidateLimits(const esdb::SubscriptionLimits& l) {
  if (l.max_buffered_events < 1 || l.max_buffered_events > 10000000)
    return esdb::Status::InvalidArgument("max_buffered_events must be in 1..10000000");
  if (l.max_buffered_bytes < 1024 || l.max_buffered_bytes > (uint64_t{4} << 30))
    return esdb::Status::InvalidArgument("max_buffered_bytes must be in 1024..4294967296");
  if (l.max_batch < 1 || l.max_batch > 10000) return esdb::Status::InvalidArgument("max_batch must be in 1..10000");
  if (l.read_batch < 1 || l.read_batch > 10000) return esdb::Status::InvalidArgument("read_batch must be in 1..10000");
  return esdb::Status::OK();
}

}  // namespace

esdb::Result<ServiceOptions> ParseServiceOptions(const nlohmann::json& config) {
  esdb::ConfigProblems problems;
  esdb::ConfigReader r(config, &problems);
  ServiceOptions o;
  for (auto [key, field] : {std::pair{"max_catch_up_subscriptions", &o.max_catch_up_subscriptions},
                            std::pair{"max_groups", &o.max_groups},
                            std::pair{"max_consumers_per_group", &o.max_consumers_per_group},
                            std::pair{"fanout_read_batch", &o.fanout_read_batch}}) {
    r.Int(key, 1, 10000000, field);
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus("notification config");
  return o;
}

SubscriptionService::SubscriptionService(boost::asio::io_context& io, std::shared_ptr<esdb::EventStoreV2> store,
                                         std::shared_ptr<spdlog::logger> logger, ServiceOptions options)
    : io_(io),
      store_(std::move(store)),
      logger_(std::move(logger)),
      options_(options),
      fanout_retry_(std::make_unique<boost::asio::steady_timer>(io_)),
      lead_retry_(std::make_unique<boost::asio::steady_timer>(io_)) {
  fanout_next_ = store_->NextPosition();
  known_head_ = fanout_next_;
}

SubscriptionService::~SubscriptionService() { Stop(esdb::Status::Cancelled("subscription service destroyed")); }

esdb::Status SubscriptionService::CheckRunning() const {
  if (stopped_) return esdb::Status::Cancelled("the subscription service is stopping");
  return esdb::Status::OK();
}

esdb::Status SubscriptionService::CheckGroupsHere() {
  if (esdb::Status s = CheckRunning(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(groups_mu_);
  if (cluster_ && !leading_) return not_leader_;
  return esdb::Status::OK();
}

void SubscriptionService::SetClusterMode() {
  std::lock_guard<std::mutex> lock(groups_mu_);
  cluster_ = true;
  leading_ = false;
  not_leader_ = esdb::Status::Unavailable(
      "no cluster leader is known yet: persistent subscription groups run on the cluster's leader only");
}

esdb::Status SubscriptionService::Start() {
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (cluster_) return esdb::Status::OK();  // loaded by BecomeLeader
  }
  std::lock_guard<std::mutex> admin(admin_mu_);
  return LoadGroupsLocked();
}

esdb::Status SubscriptionService::BecomeLeader() {
  std::lock_guard<std::mutex> admin(admin_mu_);
  uint64_t epoch = 0;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    lead_retry_delay_ms_ = kLeadRetryFirstMs;
    epoch = ++lead_epoch_;  // a retry of an earlier attempt is void now
  }
  return LeadLocked(epoch);
}

esdb::Status SubscriptionService::LeadLocked(uint64_t epoch) {
  if (stopped_) return esdb::Status::Cancelled("the subscription service is stopping");
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (!cluster_ || leading_ || epoch != lead_epoch_) return esdb::Status::OK();
  }
  esdb::Status s = LoadGroupsLocked();
  std::map<GroupKey, std::shared_ptr<PersistentGroup>> partial;
  esdb::Status answer;
  int retry_ms = 0;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (s.ok()) {
      leading_ = true;
      logger_->info("this node leads: {} persistent subscription group(s) run here", groups_.size());
    } else {
      retry_ms = lead_retry_delay_ms_;
      lead_retry_delay_ms_ = std::min(lead_retry_delay_ms_ * 2, kLeadRetryMaxMs);
      not_leader_ = esdb::Status::Unavailable("this node leads but could not load its persistent subscription "
                                              "groups yet (retrying): " + s.ToString());
      partial.swap(groups_);
      answer = not_leader_;
      // Tried again after retry_ms, unless another node leads meanwhile (or
      // this node again: BecomeLeader starts afresh) or the service stops.
      if (lead_retry_) {
        lead_retry_->expires_after(std::chrono::milliseconds(retry_ms));
        lead_retry_->async_wait([weak = weak_from_this(), epoch](const boost::system::error_code& ec) {
          if (ec) return;
          auto self = weak.lock();
          if (!self) return;
          std::lock_guard<std::mutex> admin(self->admin_mu_);
          (void)self->LeadLocked(epoch);
        });
      }
    }
  }
  for (auto& [key, group] : partial) group->Stop(answer, /*write_checkpoint=*/false);
  if (!s.ok()) {
    lead_retries_.fetch_add(1, std::memory_order_relaxed);
    logger_->error("loading the persistent subscription groups as leader (retried in {} ms): {}", retry_ms,
                   s.ToString());
  }
  return s;
}

void SubscriptionService::BecomeFollower(const esdb::Status& not_leader) {
  std::lock_guard<std::mutex> admin(admin_mu_);
  std::map<GroupKey, std::shared_ptr<PersistentGroup>> groups;
  bool was_leading = false;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (!cluster_) return;
    ++lead_epoch_;  // a pending retry of BecomeLeader's load is void
    if (lead_retry_) lead_retry_->cancel();
    was_leading = leading_;
    leading_ = false;
    not_leader_ = not_leader;
    groups.swap(groups_);
  }
  if (was_leading) logger_->info("this node no longer leads: {} persistent subscription group(s) stopped ({})",
                                 groups.size(), not_leader.ToString());
  for (auto& [key, group] : groups) group->Stop(not_leader, /*write_checkpoint=*/false);
}

esdb::Status SubscriptionService::LoadGroupsLocked() {
  esdb::ReadStreamRequest req;
  req.stream_id = kGroupConfigStream;
  req.from = -1;
  req.count = 1;
  req.direction = esdb::Direction::kBackward;
  esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
  if (!r.ok()) {
    if (r.status().code() == esdb::Code::kNotFound) return esdb::Status::OK();
    return r.status();  // the store failed (not our data): retried by a restart
  }
  if (r->events.empty()) return esdb::Status::OK();
  // Stored state is checked as strictly as a request (the same validators):
  // a record that does not load is reported and skipped, never fatal.
  const esdb::RecordedEvent& record = r->events.front();
  const std::string where = std::string(kGroupConfigStream) + "@" + std::to_string(record.version);
  nlohmann::json doc = nlohmann::json::parse(record.data, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("groups") || !doc["groups"].is_array()) {
    ReportStoredStateProblem(where, "group definitions are not a JSON object with a \"groups\" array");
    return esdb::Status::OK();
  }
  size_t index = 0;
  for (const nlohmann::json& g : doc["groups"]) {
    const std::string entry = where + " groups[" + std::to_string(index++) + "]";
    esdb::Status s = LoadGroupLocked(g);
    if (s.code() == esdb::Code::kIOError || s.code() == esdb::Code::kUnavailable || s.code() == esdb::Code::kCancelled)
      return s;  // the store failed, not the record: keep the group, fail this start (retried)
    if (!s.ok()) ReportStoredStateProblem(entry, s.message());
  }
  std::lock_guard<std::mutex> lock(groups_mu_);
  logger_->info("loaded {} persistent subscription group(s)", groups_.size());
  return esdb::Status::OK();
}

void SubscriptionService::ReportStoredStateProblem(const std::string& where, const std::string& problem) {
  logger_->error("stored state skipped: {}: {}", where, problem);
  std::lock_guard<std::mutex> lock(problems_mu_);
  if (stored_state_problems_.size() < kMaxReportedProblems) {
    stored_state_problems_.push_back({{"where", where}, {"problem", problem}});
  }
  ++stored_state_problem_count_;
}

nlohmann::json SubscriptionService::StoredStateProblems() const {
  std::lock_guard<std::mutex> lock(problems_mu_);
  return stored_state_problems_;
}

void SubscriptionService::Stop(const esdb::Status& reason) {
  if (stopped_.exchange(true)) return;
  // The timer goes now, while its io_context surely exists: a consumer may
  // hold this service (a pinned handle) past the io_context's end, and an
  // asio object destroyed after its io_context is undefined behaviour
  // (UBSan found it: the gateway dropped the last handle on its bus thread).
  std::unique_ptr<boost::asio::steady_timer> retry;
  {
    std::lock_guard<std::mutex> lock(fanout_mu_);
    retry = std::move(fanout_retry_);
  }
  if (retry) retry->cancel();
  retry.reset();
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    retry = std::move(lead_retry_);
    ++lead_epoch_;
  }
  if (retry) retry->cancel();
  retry.reset();
  std::unordered_map<uint64_t, std::shared_ptr<CatchUpSubscription>> subs;
  {
    std::lock_guard<std::mutex> lock(subs_mu_);
    subs.swap(subs_);
    pin_.reset();
  }
  for (auto& [id, sub] : subs) sub->Close(reason);
  std::map<GroupKey, std::shared_ptr<PersistentGroup>> groups;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    groups.swap(groups_);
  }
  for (auto& [key, group] : groups) group->Stop(reason, /*write_checkpoint=*/true);
}

void SubscriptionService::SetHandlePin(std::shared_ptr<void> pin) {
  std::lock_guard<std::mutex> lock(subs_mu_);
  pin_ = std::move(pin);
}

// --- catch-up subscriptions -------------------------------------------------

esdb::Result<esdb::Subscription> SubscriptionService::SubscribeToStream(const esdb::StreamSubscriptionRequest& request,
                                                                        esdb::SubscriptionHandlers handlers) {
  if (esdb::Status s = CheckRunning(); !s.ok()) return s;
  if (request.stream_id.empty()) return esdb::Status::InvalidArgument("stream id must not be empty");
  if (request.stream_id == esdb::kAllStreamId)
    return esdb::Status::InvalidArgument("use SubscribeToAll to subscribe to $all");
  if (request.from_version < esdb::kSubscribeFromEndVersion)
    return esdb::Status::InvalidArgument("from_version must be >= 0 or -1 (end)");
  if (esdb::Status s = ValidateLimits(request.limits); !s.ok()) return s;
  if (!handlers.on_events) return esdb::Status::InvalidArgument("on_events handler is required");
  CatchUpSubscription::Params p;
  p.is_all = false;
  p.stream_id = request.stream_id;
  p.from_version = request.from_version;
  p.limits = request.limits;
  p.name = request.name;
  return Register(std::move(p), std::move(handlers));
}

esdb::Result<esdb::Subscription> SubscriptionService::SubscribeToAll(const esdb::AllSubscriptionRequest& request,
                                                                     esdb::SubscriptionHandlers handlers) {
  if (esdb::Status s = CheckRunning(); !s.ok()) return s;
  if (esdb::Status s = ValidateLimits(request.limits); !s.ok()) return s;
  if (!handlers.on_events) return esdb::Status::InvalidArgument("on_events handler is required");
  esdb::Result<esdb::CompiledAllFilter> matcher = esdb::CompiledAllFilter::Compile(request.filter);
  if (!matcher.ok()) return matcher.status();
  CatchUpSubscription::Params p;
  p.is_all = true;
  p.from_position = request.from_position;
  p.matcher = std::move(matcher.value());
  p.limits = request.limits;
  p.name = request.name;
  return Register(std::move(p), std::move(handlers));
}

esdb::Result<esdb::Subscription> SubscriptionService::Register(CatchUpSubscription::Params params,
                                                               esdb::SubscriptionHandlers handlers) {
  std::shared_ptr<CatchUpSubscription> sub;
  std::shared_ptr<void> pin;
  {
    std::lock_guard<std::mutex> lock(subs_mu_);
    if (stopped_) return esdb::Status::Cancelled("the subscription service is stopping");
    if (subs_.size() >= options_.max_catch_up_subscriptions) {
      return esdb::Status::ResourceExhausted("too many subscriptions (limit " +
                                             std::to_string(options_.max_catch_up_subscriptions) + ")");
    }
    const uint64_t id = next_sub_id_++;
    sub = std::make_shared<CatchUpSubscription>(id, io_, store_, std::move(params), std::move(handlers), counters_);
    // Registered for live events before history is read (see catch_up.h).
    subs_[id] = sub;
    pin = pin_;
  }
  sub->Begin();
  std::weak_ptr<SubscriptionService> weak = weak_from_this();
  auto forget = [weak](uint64_t id) {
    if (auto self = weak.lock()) self->Forget(id);
  };
  return esdb::Subscription(std::make_shared<CatchUpControl>(weak, sub, std::move(forget), std::move(pin)));
}

void SubscriptionService::Forget(uint64_t id) {
  std::shared_ptr<CatchUpSubscription> sub;
  std::lock_guard<std::mutex> lock(subs_mu_);
  subs_.erase(id);
}

// --- live fan-out -------------------------------------------------------------

void SubscriptionService::OnEventsAppended(uint64_t last_position, const std::vector<std::string>& streams) {
  if (stopped_) return;
  {
    std::lock_guard<std::mutex> lock(fanout_mu_);
    known_head_ = std::max(known_head_, last_position + 1);
  }
  ScheduleFanout();
  std::vector<std::shared_ptr<PersistentGroup>> poke;
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    for (auto& [key, group] : groups_) {
      if (key.first == esdb::kAllStreamId || streams.empty() ||
          std::find(streams.begin(), streams.end(), key.first) != streams.end()) {
        poke.push_back(group);
      }
    }
  }
  for (auto& g : poke) g->Poke();
}

void SubscriptionService::OnStreamDeleted(const std::string& stream_id, bool hard) {
  if (!hard) return;
  std::vector<std::shared_ptr<CatchUpSubscription>> affected;
  {
    std::lock_guard<std::mutex> lock(subs_mu_);
    for (auto& [id, sub] : subs_) {
      if (!sub->params().is_all && sub->params().stream_id == stream_id) affected.push_back(sub);
    }
  }
  for (auto& sub : affected) sub->OnStreamTombstoned();
}

void SubscriptionService::OnStoreEvent(const esdb::EventPtr& event) {
  if (event->type == esdb::event_types::kEventsAppended) {
    esdb::Result<esdb::EventsAppended> appended = esdb::DecodeEventsAppended(*event);
    if (!appended.ok()) {
      logger_->warn("ignoring a malformed store event: {}", appended.status().message());
      return;
    }
    std::vector<std::string> streams;
    streams.reserve(appended->appends.size());
    for (esdb::AppendedRange& a : appended->appends) streams.push_back(std::move(a.stream));
    OnEventsAppended(appended->last_position, streams);
  } else if (event->type == esdb::event_types::kStreamDeleted) {
    esdb::Result<esdb::StreamDeleted> deleted = esdb::DecodeStreamDeleted(*event);
    if (!deleted.ok()) {
      logger_->warn("ignoring a malformed store event: {}", deleted.status().message());
      return;
    }
    OnStreamDeleted(deleted->stream, deleted->hard);
  }
}

void SubscriptionService::ScheduleFanout() {
  std::lock_guard<std::mutex> lock(fanout_mu_);
  if (fanout_scheduled_ || stopped_) return;
  fanout_scheduled_ = true;
  boost::asio::post(io_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->Fanout();
  });
}

void SubscriptionService::Fanout() {
  for (;;) {
    uint64_t from;
    {
      std::lock_guard<std::mutex> lock(fanout_mu_);
      if (stopped_ || fanout_next_ >= known_head_) {
        fanout_scheduled_ = false;
        return;
      }
      from = fanout_next_;
    }
    bool any_subscriber;
    {
      std::lock_guard<std::mutex> lock(subs_mu_);
      any_subscriber = !subs_.empty();
    }
    if (!any_subscriber) {
      // Nobody listens: a subscriber that registers later reads these as history.
      std::lock_guard<std::mutex> lock(fanout_mu_);
      fanout_next_ = std::max(fanout_next_, known_head_);
      continue;
    }
    esdb::ReadAllRequest req;
    req.from = from;
    req.count = options_.fanout_read_batch;
    req.filter.include_system = true;
    ++fanout_reads_;
    esdb::Result<esdb::ReadAllResult> r = store_->ReadAll(req);
    if (!r.ok() || r->events.empty()) {
      // Not readable yet (or the store hiccuped): try again shortly.
      if (!r.ok()) logger_->warn("fan-out read of $all from {} failed: {}", from, r.status().ToString());
      std::lock_guard<std::mutex> lock(fanout_mu_);
      if (!r.ok() || r->next_position <= from) {
        if (!fanout_retry_) {  // stopped meanwhile
          fanout_scheduled_ = false;
          return;
        }
        fanout_retry_->expires_after(std::chrono::milliseconds(r.ok() ? 1 : 100));
        fanout_retry_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
          if (ec) return;
          if (auto self = weak.lock()) self->Fanout();
        });
        return;  // fanout_scheduled_ stays true until the retry runs
      }
      fanout_next_ = r->next_position;
      continue;
    }
    std::vector<esdb::SharedEvent> events;
    events.reserve(r->events.size());
    for (esdb::RecordedEvent& e : r->events) events.push_back(std::make_shared<const esdb::RecordedEvent>(std::move(e)));
    const uint64_t next = std::max(r->next_position, events.back()->position + 1);
    // Snapshot the subscribers after the read: one registered later reads
    // these events as its history (see CatchUpSubscription).
    std::vector<std::shared_ptr<CatchUpSubscription>> subs;
    {
      std::lock_guard<std::mutex> lock(subs_mu_);
      subs.reserve(subs_.size());
      for (auto& [id, sub] : subs_) subs.push_back(sub);
    }
    std::vector<uint64_t> finished;
    for (auto& sub : subs) {
      sub->OnLive(events);
      if (sub->done()) finished.push_back(sub->id());
    }
    if (!finished.empty()) {
      std::lock_guard<std::mutex> lock(subs_mu_);
      for (uint64_t id : finished) subs_.erase(id);
    }
    std::lock_guard<std::mutex> lock(fanout_mu_);
    fanout_next_ = std::max(fanout_next_, next);
    known_head_ = std::max(known_head_, fanout_next_);
  }
}

nlohmann::json SubscriptionService::Stats() {
  size_t subs = 0;
  {
    std::lock_guard<std::mutex> lock(subs_mu_);
    subs = subs_.size();
  }
  size_t groups = 0, consumers = 0;
  const char* role = nullptr;  // cluster mode only
  {
    std::lock_guard<std::mutex> lock(groups_mu_);
    if (cluster_) role = leading_ ? "leader" : "follower";
    groups = groups_.size();
    for (auto& [key, g] : groups_) consumers += g->consumer_count();
  }
  uint64_t problems = 0;
  {
    std::lock_guard<std::mutex> lock(problems_mu_);
    problems = stored_state_problem_count_;
  }
  nlohmann::json stats{{"catch_up_subscriptions", subs},
                        {"groups", groups},
                        {"consumers", consumers},
                        {"events_delivered", counters_.events_delivered.load()},
                        {"subscribers_dropped", counters_.subscribers_dropped.load()},
                        {"catch_up_reads", counters_.catch_up_reads.load()},
                        {"fanout_reads", fanout_reads_.load()},
                        {"stored_state_problems", problems},
                        {"stored_state_skipped", StoredStateProblems()}};
  // Cluster mode: whether the groups run here (leader) or not (follower).
  if (role) {
    stats["groups_role"] = role;
    stats["groups_load_failures"] = lead_retries_.load(std::memory_order_relaxed);
  }
  return stats;
}

}  // namespace esdb_notification

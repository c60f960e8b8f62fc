#include "persistent_group.h"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace esdb_notification {
namespace {

size_t MessageBytes(const esdb::PersistentMessage&) { return 1; }

std::string GroupPrefix(const std::string& stream_id, const std::string& group) {
  return "$persistent-" + stream_id + "::" + group;
}

}  // namespace

std::string ParkedStreamName(const std::string& stream_id, const std::string& group) {
  return GroupPrefix(stream_id, group) + "-parked";
}
std::string CheckpointStreamName(const std::string& stream_id, const std::string& group) {
  return GroupPrefix(stream_id, group) + "-checkpoint";
}

PersistentGroup::PersistentGroup(boost::asio::io_context& io, std::shared_ptr<esdb::EventStoreV2> store,
                                 std::shared_ptr<spdlog::logger> logger, std::string stream_id, std::string group,
                                 esdb::GroupSettingsV2 settings, std::optional<esdb::CompiledAllFilter> matcher)
    : io_(io),
      store_(std::move(store)),
      logger_(std::move(logger)),
      stream_id_(std::move(stream_id)),
      group_(std::move(group)),
      is_all_(stream_id_ == esdb::kAllStreamId),
      parked_stream_(ParkedStreamName(stream_id_, group_)),
      checkpoint_stream_(CheckpointStreamName(stream_id_, group_)),
      settings_(std::move(settings)),
      matcher_(std::move(matcher)),
      timeout_timer_(std::make_unique<boost::asio::steady_timer>(io_)),
      checkpoint_timer_(std::make_unique<boost::asio::steady_timer>(io_)) {}

int64_t PersistentGroup::KeyOf(const esdb::RecordedEvent& e) const {
  return is_all_ ? static_cast<int64_t>(e.position) : e.version;
}

size_t PersistentGroup::ReadBatchLocked() const {
  return std::clamp<size_t>(settings_.max_in_flight, 10, 500);
}

esdb::Status PersistentGroup::Load(bool created, std::string* problem) {
  // Runs before the group is shared; still, no store call under mu_.
  bool lost_checkpoint = false;
  if (!created) {
    esdb::ReadStreamRequest req;
    req.stream_id = checkpoint_stream_;
    req.from = -1;
    req.count = 1;
    req.direction = esdb::Direction::kBackward;
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
    if (!r.ok() && r.status().code() != esdb::Code::kNotFound) return r.status();
    if (r.ok() && !r->events.empty()) {
      const esdb::RecordedEvent& record = r->events.front();
      const nlohmann::json doc = nlohmann::json::parse(record.data, nullptr, /*allow_exceptions=*/false);
      const auto cp = doc.is_object() ? doc.find("checkpoint") : doc.end();
      // -1 = nothing done yet; INT64_MAX is refused (next_read_ = cp + 1).
      if (cp != doc.end() && cp->is_number_integer() &&
          !(cp->is_number_unsigned() && cp->get<uint64_t>() >= static_cast<uint64_t>(INT64_MAX)) &&
          cp->get<int64_t>() >= -1) {
        std::lock_guard<std::mutex> lock(mu_);
        checkpoint_written_ = cp->get<int64_t>();
        next_read_ = checkpoint_written_ + 1;
        last_checkpoint_write_ = Clock::now();
        return esdb::Status::OK();
      }
      const std::string what = "checkpoint record at version " + std::to_string(record.version) +
                               " is not {\"checkpoint\": <integer >= -1>}; the group starts again from " +
                               (settings_.start_from >= 0 ? "start_from " + std::to_string(settings_.start_from)
                                                          : std::string("the beginning"));
      logger_->error("group {}/{}: {}", stream_id_, group_, what);
      if (problem != nullptr) *problem = what;
      created = true;        // as new (a fresh checkpoint is written below) ...
      lost_checkpoint = true;  // ... but from the beginning rather than the end
    }
  }
  // No checkpoint yet: start where the settings say.
  int64_t start = settings_.start_from;
  if (start == esdb::kGroupStartFromEnd && lost_checkpoint) start = 0;
  if (start == esdb::kGroupStartFromEnd) {
    if (is_all_) {
      start = static_cast<int64_t>(store_->NextPosition());
    } else {
      esdb::Result<int64_t> v = store_->StreamVersion(stream_id_);
      if (v.ok()) {
        start = v.value() + 1;
      } else if (v.status().code() == esdb::Code::kNotFound) {
        start = 0;
      } else {
        return v.status();
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_read_ = start;
  }
  if (created) {
    // Keep only the latest checkpoint (applied on read; scavenge reclaims).
    esdb::StreamMetadata md;
    md.max_count = 1;
    esdb::Status ms = store_->SetMetadata(checkpoint_stream_, md);
    if (!ms.ok()) logger_->warn("group {}/{}: cannot set checkpoint stream metadata: {}", stream_id_, group_, ms.ToString());
  }
  if (start > 0 || lost_checkpoint) {  // a lost checkpoint is replaced, so it is reported once
    esdb::Status s = AppendCheckpoint(start - 1);
    if (!s.ok()) return s;
  }
  return esdb::Status::OK();
}

void PersistentGroup::PumpSoon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pump_scheduled_ || stopped_) return;
    pump_scheduled_ = true;
  }
  boost::asio::post(io_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->pump_scheduled_ = false;
    }
    self->Pump();
  });
}

void PersistentGroup::Poke() {
  // Never takes mu_ here: the caller may be the store's writer thread.
  boost::asio::post(io_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      if (self->stopped_) return;
      self->at_head_ = false;
      ++self->pokes_;
    }
    self->Pump();
  });
}

bool PersistentGroup::FillOnce() {
  size_t batch = 0;
  int64_t from = 0;
  uint64_t generation = 0, pokes = 0;
  esdb::AllFilter filter;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (filling_) {
      // One read at a time; its result is what this caller wanted too.
      idle_cv_.wait(lock, [&] { return !filling_ || stopped_; });
      return !stopped_;
    }
    batch = ReadBatchLocked();
    if (stopped_ || at_head_ || ready_.size() >= batch) return false;
    filling_ = true;
    from = next_read_;
    generation = settings_generation_;
    pokes = pokes_;
    if (matcher_) filter = matcher_->filter();
  }
  // The read (and the store's filter evaluation) runs without mu_.
  std::vector<esdb::RecordedEvent> events;
  int64_t next = from;
  bool end = false;
  esdb::Status failed;
  if (is_all_) {
    esdb::ReadAllRequest req;
    req.from = static_cast<uint64_t>(from);
    req.count = batch;
    req.filter = std::move(filter);
    esdb::Result<esdb::ReadAllResult> r = store_->ReadAll(req);
    if (r.ok()) {
      events = std::move(r->events);
      next = static_cast<int64_t>(r->next_position);
      end = r->end_of_all;
    } else {
      failed = r.status();
    }
  } else {
    esdb::ReadStreamRequest req;
    req.stream_id = stream_id_;
    req.from = from;
    req.count = batch;
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
    if (r.ok()) {
      events = std::move(r->events);
      next = r->next_version;
      end = r->end_of_stream;
    } else if (r.status().code() == esdb::Code::kNotFound) {
      end = true;
    } else {
      failed = r.status();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  filling_ = false;
  idle_cv_.notify_all();
  if (stopped_) return false;
  if (generation != settings_generation_ || from != next_read_) return true;  // stale: read again
  if (!failed.ok()) {
    logger_->warn("group {}/{}: reading {} failed: {}", stream_id_, group_, is_all_ ? "$all" : "the stream",
                  failed.ToString());
    at_head_ = true;  // retried on the next append or timer
    return false;
  }
  for (esdb::RecordedEvent& e : events) {
    const int64_t key = KeyOf(e);
    if (key < next_read_) continue;
    outstanding_.insert(key);
    ready_.push_back(Message{std::make_shared<const esdb::RecordedEvent>(std::move(e)), 0, false});
  }
  next_read_ = std::max(next_read_, next);
  if (!ready_.empty()) next_read_ = std::max(next_read_, KeyOf(*ready_.back().event) + 1);
  // A poke during the read may announce events the read did not see.
  at_head_ = (end || events.empty()) && pokes == pokes_;
  return !events.empty() || !at_head_;
}

void PersistentGroup::Pump() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      DispatchReadyLocked();
      // Keep a page ready for pulls and the next dispatch.
      if (at_head_ || ready_.size() >= ReadBatchLocked()) break;
    }
    if (!FillOnce()) break;
  }
  MaybeCheckpoint(false);
}

PersistentGroup::Consumer* PersistentGroup::FindConsumerLocked(uint64_t id) {
  for (auto& c : consumers_) {
    if (c->id == id) return c.get();
  }
  return nullptr;
}

PersistentGroup::Consumer* PersistentGroup::PickConsumerLocked() {
  const size_t n = consumers_.size();
  if (n == 0) return nullptr;
  if (settings_.strategy == esdb::ConsumerStrategy::kDispatchToSingle) {
    for (auto& c : consumers_) {
      if (c->in_flight < c->limit) return c.get();
    }
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    Consumer* c = consumers_[(round_robin_next_ + i) % n].get();
    if (c->in_flight < c->limit) {
      round_robin_next_ = (round_robin_next_ + i + 1) % n;
      return c;
    }
  }
  return nullptr;
}

void PersistentGroup::MarkInFlightLocked(Message m, uint64_t consumer) {
  const std::string id = m.event->event_id;
  InFlight f{std::move(m), Clock::now() + std::chrono::milliseconds(settings_.message_timeout_ms), consumer};
  in_flight_[id] = std::move(f);
  ++delivered_total_;
}

void PersistentGroup::DispatchReadyLocked() {
  if (stopped_) return;
  std::unordered_map<Consumer*, std::vector<esdb::PersistentMessage>> batches;
  while (in_flight_.size() < settings_.max_in_flight && !ready_.empty()) {
    Consumer* c = PickConsumerLocked();
    if (c == nullptr) break;
    Message m = std::move(ready_.front());
    ready_.pop_front();
    batches[c].push_back(esdb::PersistentMessage{m.event, m.retry_count});
    ++c->in_flight;
    ++c->delivered;
    MarkInFlightLocked(std::move(m), c->id);
  }
  for (auto& [consumer, messages] : batches) {
    // Never refused, never waits: a consumer gets at most its limit in
    // flight, and the channel holds that many.
    consumer->channel->Push(std::move(messages));
  }
  ArmTimeoutLocked();
}

esdb::Result<PersistentGroup::ConsumerRef> PersistentGroup::Connect(esdb::ConsumerOptions options) {
  ConsumerRef ref;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
    if (settings_.max_subscriber_count != 0 && consumers_.size() >= settings_.max_subscriber_count) {
      return esdb::Status::ResourceExhausted("group '" + group_ + "' on '" + stream_id_ +
                                             "' has its max_subscriber_count of " +
                                             std::to_string(settings_.max_subscriber_count) + " consumers");
    }
    auto c = std::make_shared<Consumer>();
    c->id = next_consumer_id_++;
    c->name = options.name;
    c->limit = options.in_flight_limit;
    Channel<esdb::PersistentMessage>::Limits limits;
    limits.max_items = options.in_flight_limit + 1;
    limits.max_batch = options.in_flight_limit;
    c->channel = std::make_shared<Channel<esdb::PersistentMessage>>(io_, limits, &MessageBytes,
                                                                    std::move(options.on_messages), nullptr,
                                                                    std::move(options.on_dropped));
    consumers_.push_back(c);
    ref = ConsumerRef{c->id, c->channel};
  }
  PumpSoon();
  return ref;
}

void PersistentGroup::Disconnect(uint64_t consumer_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(consumers_.begin(), consumers_.end(), [&](auto& c) { return c->id == consumer_id; });
    if (it == consumers_.end()) return;
    consumers_.erase(it);
    if (round_robin_next_ >= consumers_.size()) round_robin_next_ = 0;
    // Its unacked messages go to the others now, in order, not counted as retries.
    std::vector<Message> back;
    for (auto f = in_flight_.begin(); f != in_flight_.end();) {
      if (f->second.consumer == consumer_id) {
        back.push_back(std::move(f->second.message));
        f = in_flight_.erase(f);
      } else {
        ++f;
      }
    }
    std::sort(back.begin(), back.end(),
              [&](const Message& a, const Message& b) { return KeyOf(*a.event) > KeyOf(*b.event); });
    for (Message& m : back) ready_.push_front(std::move(m));
  }
  PumpSoon();
}

esdb::Result<std::vector<esdb::PersistentMessage>> PersistentGroup::ReadNext(size_t count) {
  std::vector<esdb::PersistentMessage> out;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) {
        if (out.empty()) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
        return out;
      }
      while (out.size() < count && in_flight_.size() < settings_.max_in_flight && !ready_.empty()) {
        Message m = std::move(ready_.front());
        ready_.pop_front();
        out.push_back(esdb::PersistentMessage{m.event, m.retry_count});
        MarkInFlightLocked(std::move(m), 0);
      }
      ArmTimeoutLocked();
      if (out.size() >= count || in_flight_.size() >= settings_.max_in_flight || at_head_) break;
    }
    if (!FillOnce()) break;
  }
  return out;
}

std::optional<PersistentGroup::Message> PersistentGroup::TakeLocked(const std::string& id) {
  auto it = in_flight_.find(id);
  if (it != in_flight_.end()) {
    Message m = std::move(it->second.message);
    if (Consumer* c = FindConsumerLocked(it->second.consumer)) --c->in_flight;
    in_flight_.erase(it);
    return m;
  }
  // Timed out or handed back and waiting for redelivery: still ours.
  auto r = std::find_if(ready_.begin(), ready_.end(), [&](const Message& m) {
    return (m.retry_count > 0 || m.replayed) && m.event->event_id == id;
  });
  if (r != ready_.end()) {
    Message m = std::move(*r);
    ready_.erase(r);
    return m;
  }
  return std::nullopt;
}

std::optional<PersistentGroup::Message> PersistentGroup::TakeForReplyLocked(const std::string& id,
                                                                          esdb::AckResult* result,
                                                                          Consumer** consumer) {
  auto f = in_flight_.find(id);
  *consumer = f != in_flight_.end() ? FindConsumerLocked(f->second.consumer) : nullptr;
  std::optional<Message> m = TakeLocked(id);
  if (!m) {
    result->unknown_ids.push_back(id);
    return std::nullopt;
  }
  ++result->processed;
  return m;
}

void PersistentGroup::DoneLocked(const Message& m) {
  if (!m.replayed) outstanding_.erase(KeyOf(*m.event));
}

esdb::AckResult PersistentGroup::Ack(const std::vector<std::string>& event_ids) {
  esdb::AckResult result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& id : event_ids) {
      Consumer* c = nullptr;
      std::optional<Message> m = TakeForReplyLocked(id, &result, &c);
      if (!m) continue;
      if (c) ++c->acked;
      DoneLocked(*m);
      ++acked_total_;
    }
  }
  if (result.processed > 0) Pump();
  return result;
}

esdb::Result<esdb::AckResult> PersistentGroup::Nack(const std::vector<std::string>& event_ids,
                                                    esdb::NackAction action, const std::string& reason) {
  esdb::AckResult result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& id : event_ids) {
      Consumer* c = nullptr;
      std::optional<Message> m = TakeForReplyLocked(id, &result, &c);
      if (!m) continue;
      if (c) ++c->nacked;
      ++nacked_total_;
      switch (action) {
        case esdb::NackAction::kRetry:
          RetryLocked(std::move(*m), true);
          break;
        case esdb::NackAction::kPark:
          ParkLocked(std::move(*m), reason.empty() ? "parked by nack" : reason);
          break;
        case esdb::NackAction::kSkip:
          DoneLocked(*m);
          break;
      }
    }
  }
  if (result.processed > 0) {
    FlushParks();
    Pump();
  }
  return result;
}

void PersistentGroup::RetryLocked(Message m, bool count_retry) {
  if (count_retry) {
    if (m.retry_count + 1 > settings_.max_retry) {
      ParkLocked(std::move(m), "max retry count (" + std::to_string(settings_.max_retry) + ") exceeded");
      return;
    }
    ++m.retry_count;
    ++retried_total_;
  }
  ready_.push_front(std::move(m));
}

void PersistentGroup::ParkLocked(Message m, const std::string& reason) {
  // Still outstanding (the checkpoint stays below it) until FlushParks
  // has appended it to the parked stream.
  to_park_.emplace_back(std::move(m), reason);
}

void PersistentGroup::FlushParks() {
  std::vector<std::pair<Message, std::string>> parks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    parks.swap(to_park_);
  }
  for (auto& [m, reason] : parks) {
    const esdb::RecordedEvent& e = *m.event;
    esdb::ProposedEvent p;
    p.event_type = e.event_type;
    p.content_type = e.content_type;
    p.data = e.data;
    p.metadata = nlohmann::json{{"$original_stream", e.stream_id},
                                {"$original_version", e.version},
                                {"$original_position", e.position},
                                {"$original_event_id", e.event_id},
                                {"$retry_count", m.retry_count},
                                {"$reason", reason}}
                     .dump();
    std::vector<esdb::ProposedEvent> events;
    events.push_back(std::move(p));
    esdb::Result<esdb::AppendResult> r = store_->Append(parked_stream_, esdb::ExpectedVersion::Any(), std::move(events));
    std::lock_guard<std::mutex> lock(mu_);
    if (!r.ok()) {
      // Keep it: better delivered again than lost.
      logger_->error("group {}/{}: cannot park event {}: {}", stream_id_, group_, e.event_id, r.status().ToString());
      ready_.push_back(std::move(m));
      continue;
    }
    ++parked_total_;
    DoneLocked(m);
  }
}

void PersistentGroup::ArmTimeoutLocked() {
  if (stopped_ || in_flight_.empty()) return;
  Clock::time_point earliest = Clock::time_point::max();
  for (const auto& [id, f] : in_flight_) earliest = std::min(earliest, f.deadline);
  if (timeout_armed_for_ && *timeout_armed_for_ <= earliest) return;
  timeout_armed_for_ = earliest;
  timeout_timer_->expires_at(earliest);
  timeout_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->OnTimeout();
  });
}

void PersistentGroup::OnTimeout() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    timeout_armed_for_.reset();
    if (stopped_) return;
    const Clock::time_point now = Clock::now();
    std::vector<Message> expired;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (it->second.deadline <= now) {
        if (Consumer* c = FindConsumerLocked(it->second.consumer)) --c->in_flight;
        expired.push_back(std::move(it->second.message));
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    // Highest key first, so pushing each to the front keeps them in order.
    std::sort(expired.begin(), expired.end(),
              [&](const Message& a, const Message& b) { return KeyOf(*a.event) > KeyOf(*b.event); });
    for (Message& m : expired) {
      ++timed_out_total_;
      RetryLocked(std::move(m), true);
    }
  }
  FlushParks();
  Pump();
}

int64_t PersistentGroup::CheckpointLocked() const {
  if (!outstanding_.empty()) return *outstanding_.begin() - 1;
  return next_read_ - 1;
}

void PersistentGroup::MaybeCheckpoint(bool force) {
  for (;;) {
    int64_t cp = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (checkpoint_writing_) {
        if (!force) {
          checkpoint_again_ = true;  // the running writer writes again after
          return;
        }
        idle_cv_.wait(lock, [&] { return !checkpoint_writing_; });
      }
      cp = CheckpointLocked();
      if (cp <= checkpoint_written_) return;
      const Clock::time_point due = last_checkpoint_write_ + std::chrono::milliseconds(settings_.checkpoint_after_ms);
      if (!force && Clock::now() < due) {
        if (checkpoint_timer_armed_ || stopped_) return;
        checkpoint_timer_armed_ = true;
        checkpoint_timer_->expires_at(due);
        checkpoint_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
          if (ec) return;
          auto self = weak.lock();
          if (!self) return;
          {
            std::lock_guard<std::mutex> lock(self->mu_);
            self->checkpoint_timer_armed_ = false;
            if (self->stopped_) return;
          }
          self->MaybeCheckpoint(false);
        });
        return;
      }
      checkpoint_writing_ = true;
      checkpoint_again_ = false;
    }
    const esdb::Status s = AppendCheckpoint(cp);  // without mu_
    std::lock_guard<std::mutex> lock(mu_);
    checkpoint_writing_ = false;
    idle_cv_.notify_all();
    last_checkpoint_write_ = Clock::now();
    if (s.ok()) checkpoint_written_ = std::max(checkpoint_written_, cp);
    if (!checkpoint_again_ || !s.ok()) return;
    force = false;
  }
}

esdb::Status PersistentGroup::AppendCheckpoint(int64_t checkpoint) {
  esdb::ProposedEvent p;
  p.event_type = "$checkpoint";
  p.data = nlohmann::json{{"checkpoint", checkpoint}}.dump();
  std::vector<esdb::ProposedEvent> events;
  events.push_back(std::move(p));
  esdb::Result<esdb::AppendResult> r =
      store_->Append(checkpoint_stream_, esdb::ExpectedVersion::Any(), std::move(events));
  if (!r.ok()) {
    logger_->error("group {}/{}: cannot write checkpoint {}: {}", stream_id_, group_, checkpoint,
                   r.status().ToString());
    return r.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  checkpoint_written_ = std::max(checkpoint_written_, checkpoint);
  last_checkpoint_write_ = Clock::now();
  return esdb::Status::OK();
}

esdb::Result<uint64_t> PersistentGroup::ReplayParked(uint64_t max_count) {
  {
    // One replay at a time (the second would replay the same messages).
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [&] { return !replaying_ || stopped_; });
    if (stopped_) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
    replaying_ = true;
  }
  struct Done {
    PersistentGroup* g;
    ~Done() {
      std::lock_guard<std::mutex> lock(g->mu_);
      g->replaying_ = false;
      g->idle_cv_.notify_all();
    }
  } done{this};
  // The parked stream is read without mu_.
  esdb::StreamMetadata md;
  esdb::Result<esdb::StreamMetadata> mr = store_->GetMetadata(parked_stream_);
  if (mr.ok()) {
    md = mr.value();
  } else if (mr.status().code() != esdb::Code::kNotFound) {
    return mr.status();
  }
  int64_t from = md.truncate_before.value_or(0);
  std::vector<Message> replay;
  int64_t last_version = -1;
  while (replay.size() < max_count) {
    esdb::ReadStreamRequest req;
    req.stream_id = parked_stream_;
    req.from = from;
    req.count = std::min<uint64_t>(500, max_count - replay.size());
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
    if (!r.ok()) {
      if (r.status().code() == esdb::Code::kNotFound) break;
      return r.status();
    }
    for (const esdb::RecordedEvent& parked : r->events) {
      if (replay.size() >= max_count) break;  // the rest stay parked
      last_version = parked.version;
      // A record that is not a parked copy (written by someone else) is
      // reported and skipped; it is passed over by truncate_before below.
      const nlohmann::json meta = nlohmann::json::parse(parked.metadata, nullptr, /*allow_exceptions=*/false);
      const auto stream = meta.is_object() ? meta.find("$original_stream") : meta.end();
      const auto version = meta.is_object() ? meta.find("$original_version") : meta.end();
      if (stream == meta.end() || !stream->is_string() || version == meta.end() || !version->is_number_integer()) {
        logger_->warn("group {}/{}: skipping record {} of {}: its metadata has no $original_stream/$original_version",
                      stream_id_, group_, parked.version, parked_stream_);
        continue;
      }
      esdb::Result<esdb::RecordedEvent> original =
          store_->ReadEvent(stream->get<std::string>(), version->get<int64_t>());
      if (!original.ok()) {
        logger_->warn("group {}/{}: parked event {} has no original any more: {}", stream_id_, group_,
                      parked.event_id, original.status().ToString());
        continue;
      }
      replay.push_back(Message{std::make_shared<const esdb::RecordedEvent>(std::move(original.value())), 0, true});
    }
    if (r->end_of_stream || r->events.empty()) break;
    from = r->next_version;
  }
  if (last_version < 0) return uint64_t{0};
  md.truncate_before = last_version + 1;
  esdb::Status s = store_->SetMetadata(parked_stream_, md);
  if (!s.ok()) return s;  // nothing replayed: they stay parked
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = replay.rbegin(); it != replay.rend(); ++it) ready_.push_front(std::move(*it));
    replayed_total_ += replay.size();
  }
  Pump();
  return static_cast<uint64_t>(replay.size());
}

void PersistentGroup::UpdateSettings(const esdb::GroupSettingsV2& settings, std::optional<esdb::CompiledAllFilter> matcher) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t start_from = settings_.start_from;
    settings_ = settings;
    settings_.start_from = start_from;
    matcher_ = std::move(matcher);
    ++settings_generation_;
  }
  PumpSoon();
}

esdb::GroupSettingsV2 PersistentGroup::settings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return settings_;
}

size_t PersistentGroup::consumer_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumers_.size();
}

esdb::GroupInfoV2 PersistentGroup::Info() {
  esdb::GroupInfoV2 info;
  // Store calls first, without mu_.
  esdb::Result<int64_t> parked_version = store_->StreamVersion(parked_stream_);
  if (parked_version.ok() && parked_version.value() >= 0) {
    int64_t first = 0;
    esdb::Result<esdb::StreamMetadata> md = store_->GetMetadata(parked_stream_);
    if (md.ok()) first = md->truncate_before.value_or(0);
    info.parked = static_cast<uint64_t>(std::max<int64_t>(0, parked_version.value() + 1 - first));
  }
  std::lock_guard<std::mutex> lock(mu_);
  info.stream_id = stream_id_;
  info.group = group_;
  info.settings = settings_;
  info.max_subscriber_count = settings_.max_subscriber_count;
  info.status = at_head_ && ready_.empty() ? "live" : "catching_up";
  info.checkpoint = checkpoint_written_;
  info.next_to_read = next_read_;
  info.in_flight = in_flight_.size();
  info.ready = ready_.size();
  info.delivered_total = delivered_total_;
  info.acked_total = acked_total_;
  info.nacked_total = nacked_total_;
  info.retried_total = retried_total_;
  info.timed_out_total = timed_out_total_;
  info.parked_total = parked_total_;
  info.replayed_total = replayed_total_;
  info.parked_stream = parked_stream_;
  for (const auto& c : consumers_) {
    info.consumers.push_back(esdb::ConsumerInfo{c->id, c->name, c->in_flight, c->delivered, c->acked, c->nacked});
  }
  return info;
}

void PersistentGroup::Stop(const esdb::Status& reason, bool write_checkpoint) {
  std::vector<std::shared_ptr<Channel<esdb::PersistentMessage>>> channels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    idle_cv_.notify_all();
    timeout_timer_->cancel();
    checkpoint_timer_->cancel();
    for (auto& c : consumers_) channels.push_back(c->channel);
    consumers_.clear();
  }
  for (auto& ch : channels) ch->Close(reason);
  // Parks queued before the stop, then the final checkpoint (both appends
  // run without mu_; a checkpoint write already running is waited for).
  FlushParks();
  if (write_checkpoint) MaybeCheckpoint(true);
}

}  // namespace esdb_notification

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

PersistentGroup::PersistentGroup(boost::asio::io_context& io, std::shared_ptr<esdb::EventStore> store,
                                 std::shared_ptr<spdlog::logger> logger, std::string stream_id, std::string group,
                                 esdb::GroupSettings settings, std::optional<FilterMatcher> matcher)
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

esdb::Status PersistentGroup::Load(bool created) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!created) {
    esdb::ReadStreamRequest req;
    req.stream_id = checkpoint_stream_;
    req.from = -1;
    req.count = 1;
    req.direction = esdb::Direction::kBackward;
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
    if (r.ok() && !r->events.empty()) {
      try {
        const int64_t cp = nlohmann::json::parse(r->events.front().data).at("checkpoint").get<int64_t>();
        checkpoint_written_ = cp;
        next_read_ = cp + 1;
        last_checkpoint_write_ = Clock::now();
        return esdb::Status::OK();
      } catch (const std::exception& e) {
        return esdb::Status::Corruption("checkpoint of group '" + group_ + "' on '" + stream_id_ +
                                        "' does not parse: " + e.what());
      }
    }
    if (!r.ok() && r.status().code() != esdb::Code::kNotFound) return r.status();
  }
  // No checkpoint yet: start where the settings say.
  int64_t start = settings_.start_from;
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
  next_read_ = start;
  if (created) {
    // Keep only the latest checkpoint (applied on read; scavenge reclaims).
    esdb::StreamMetadata md;
    md.max_count = 1;
    esdb::Status ms = store_->SetMetadata(checkpoint_stream_, md);
    if (!ms.ok()) logger_->warn("group {}/{}: cannot set checkpoint stream metadata: {}", stream_id_, group_, ms.ToString());
  }
  if (start > 0) return WriteCheckpointLocked(start - 1);
  return esdb::Status::OK();
}

void PersistentGroup::PumpSoon() {
  if (pump_scheduled_ || stopped_) return;
  pump_scheduled_ = true;
  boost::asio::post(io_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    self->pump_scheduled_ = false;
    if (self->stopped_) return;
    self->DispatchLocked();
    self->MaybeCheckpointLocked(false);
  });
}

void PersistentGroup::Poke() {
  // Never takes mu_ here: the caller may be the store's writer thread, and
  // mu_ may be held by a store call waiting for that writer.
  boost::asio::post(io_, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (self->stopped_) return;
    self->at_head_ = false;
    self->DispatchLocked();
    self->MaybeCheckpointLocked(false);
  });
}

void PersistentGroup::FillLocked() {
  const size_t batch = ReadBatchLocked();
  while (ready_.size() < batch && !at_head_) {
    std::vector<esdb::RecordedEvent> events;
    int64_t next = next_read_;
    bool end = false;
    if (is_all_) {
      esdb::ReadAllRequest req;
      req.from = static_cast<uint64_t>(next_read_);
      req.count = batch;
      if (matcher_) req.filter = matcher_->filter();
      esdb::Result<esdb::ReadAllResult> r = store_->ReadAll(req);
      if (!r.ok()) {
        logger_->warn("group {}/{}: reading $all failed: {}", stream_id_, group_, r.status().ToString());
        at_head_ = true;  // retried on the next append or timer
        return;
      }
      events = std::move(r->events);
      next = static_cast<int64_t>(r->next_position);
      end = r->end_of_all;
    } else {
      esdb::ReadStreamRequest req;
      req.stream_id = stream_id_;
      req.from = next_read_;
      req.count = batch;
      esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
      if (!r.ok()) {
        if (r.status().code() != esdb::Code::kNotFound) {
          logger_->warn("group {}/{}: reading the stream failed: {}", stream_id_, group_, r.status().ToString());
        }
        at_head_ = true;
        return;
      }
      events = std::move(r->events);
      next = r->next_version;
      end = r->end_of_stream;
    }
    for (esdb::RecordedEvent& e : events) {
      const int64_t key = KeyOf(e);
      if (key < next_read_) continue;
      outstanding_.insert(key);
      ready_.push_back(Message{std::make_shared<const esdb::RecordedEvent>(std::move(e)), 0, false});
    }
    next_read_ = std::max(next_read_, next);
    if (!events.empty()) next_read_ = std::max(next_read_, KeyOf(*ready_.back().event) + 1);
    at_head_ = end || events.empty();
  }
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

void PersistentGroup::DispatchLocked() {
  if (stopped_) return;
  std::unordered_map<Consumer*, std::vector<esdb::PersistentMessage>> batches;
  while (in_flight_.size() < settings_.max_in_flight) {
    if (ready_.empty()) FillLocked();
    if (ready_.empty()) break;
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
    // Never refused: a consumer gets at most its limit in flight, and the
    // channel holds that many.
    consumer->channel->Push(std::move(messages));
  }
  if (!ready_.empty() || !at_head_) FillLocked();  // keep a page ready for pulls
  ArmTimeoutLocked();
}

esdb::Result<PersistentGroup::ConsumerRef> PersistentGroup::Connect(esdb::ConsumerOptions options) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
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
  PumpSoon();
  return ConsumerRef{c->id, c->channel};
}

void PersistentGroup::Disconnect(uint64_t consumer_id) {
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
  PumpSoon();
}

esdb::Result<std::vector<esdb::PersistentMessage>> PersistentGroup::ReadNext(size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
  std::vector<esdb::PersistentMessage> out;
  while (out.size() < count && in_flight_.size() < settings_.max_in_flight) {
    if (ready_.empty()) FillLocked();
    if (ready_.empty()) break;
    Message m = std::move(ready_.front());
    ready_.pop_front();
    out.push_back(esdb::PersistentMessage{m.event, m.retry_count});
    MarkInFlightLocked(std::move(m), 0);
  }
  ArmTimeoutLocked();
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

void PersistentGroup::DoneLocked(const Message& m) {
  if (!m.replayed) outstanding_.erase(KeyOf(*m.event));
}

esdb::AckResult PersistentGroup::Ack(const std::vector<std::string>& event_ids) {
  std::lock_guard<std::mutex> lock(mu_);
  esdb::AckResult result;
  for (const std::string& id : event_ids) {
    auto consumer = in_flight_.count(id) ? in_flight_[id].consumer : 0;
    std::optional<Message> m = TakeLocked(id);
    if (!m) {
      result.unknown_ids.push_back(id);
      continue;
    }
    if (Consumer* c = FindConsumerLocked(consumer)) ++c->acked;
    DoneLocked(*m);
    ++acked_total_;
    ++result.processed;
  }
  if (result.processed > 0) {
    DispatchLocked();
    MaybeCheckpointLocked(false);
  }
  return result;
}

esdb::Result<esdb::AckResult> PersistentGroup::Nack(const std::vector<std::string>& event_ids,
                                                    esdb::NackAction action, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  esdb::AckResult result;
  for (const std::string& id : event_ids) {
    auto consumer = in_flight_.count(id) ? in_flight_[id].consumer : 0;
    std::optional<Message> m = TakeLocked(id);
    if (!m) {
      result.unknown_ids.push_back(id);
      continue;
    }
    if (Consumer* c = FindConsumerLocked(consumer)) ++c->nacked;
    ++nacked_total_;
    ++result.processed;
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
  if (result.processed > 0) {
    DispatchLocked();
    MaybeCheckpointLocked(false);
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
  if (!r.ok()) {
    // Keep it: better delivered again than lost.
    logger_->error("group {}/{}: cannot park event {}: {}", stream_id_, group_, e.event_id, r.status().ToString());
    ready_.push_back(std::move(m));
    return;
  }
  ++parked_total_;
  DoneLocked(m);
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
  DispatchLocked();
  MaybeCheckpointLocked(false);
}

int64_t PersistentGroup::CheckpointLocked() const {
  if (!outstanding_.empty()) return *outstanding_.begin() - 1;
  return next_read_ - 1;
}

void PersistentGroup::MaybeCheckpointLocked(bool force) {
  const int64_t cp = CheckpointLocked();
  if (cp <= checkpoint_written_) return;
  const auto after = std::chrono::milliseconds(settings_.checkpoint_after_ms);
  const Clock::time_point due = last_checkpoint_write_ + after;
  if (force || Clock::now() >= due) {
    WriteCheckpointLocked(cp);
    return;
  }
  if (checkpoint_timer_armed_ || stopped_) return;
  checkpoint_timer_armed_ = true;
  checkpoint_timer_->expires_at(due);
  checkpoint_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    self->checkpoint_timer_armed_ = false;
    if (!self->stopped_) self->MaybeCheckpointLocked(false);
  });
}

esdb::Status PersistentGroup::WriteCheckpointLocked(int64_t checkpoint) {
  esdb::ProposedEvent p;
  p.event_type = "$checkpoint";
  p.data = nlohmann::json{{"checkpoint", checkpoint}}.dump();
  std::vector<esdb::ProposedEvent> events;
  events.push_back(std::move(p));
  esdb::Result<esdb::AppendResult> r =
      store_->Append(checkpoint_stream_, esdb::ExpectedVersion::Any(), std::move(events));
  last_checkpoint_write_ = Clock::now();
  if (!r.ok()) {
    logger_->error("group {}/{}: cannot write checkpoint {}: {}", stream_id_, group_, checkpoint,
                   r.status().ToString());
    return r.status();
  }
  checkpoint_written_ = checkpoint;
  return esdb::Status::OK();
}

esdb::Result<uint64_t> PersistentGroup::ReplayParked() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return esdb::Status::Cancelled("group '" + group_ + "' is stopping");
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
  for (;;) {
    esdb::ReadStreamRequest req;
    req.stream_id = parked_stream_;
    req.from = from;
    req.count = 500;
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(req);
    if (!r.ok()) {
      if (r.status().code() == esdb::Code::kNotFound) break;
      return r.status();
    }
    for (const esdb::RecordedEvent& parked : r->events) {
      last_version = parked.version;
      try {
        nlohmann::json meta = nlohmann::json::parse(parked.metadata);
        esdb::Result<esdb::RecordedEvent> original = store_->ReadEvent(
            meta.at("$original_stream").get<std::string>(), meta.at("$original_version").get<int64_t>());
        if (!original.ok()) {
          logger_->warn("group {}/{}: parked event {} has no original any more: {}", stream_id_, group_,
                        parked.event_id, original.status().ToString());
          continue;
        }
        replay.push_back(Message{std::make_shared<const esdb::RecordedEvent>(std::move(original.value())), 0, true});
      } catch (const std::exception& e) {
        logger_->warn("group {}/{}: parked event {} has bad metadata: {}", stream_id_, group_, parked.event_id,
                      e.what());
      }
    }
    if (r->end_of_stream || r->events.empty()) break;
    from = r->next_version;
  }
  if (last_version < 0) return uint64_t{0};
  md.truncate_before = last_version + 1;
  esdb::Status s = store_->SetMetadata(parked_stream_, md);
  if (!s.ok()) return s;  // nothing replayed: they stay parked
  for (auto it = replay.rbegin(); it != replay.rend(); ++it) ready_.push_front(std::move(*it));
  replayed_total_ += replay.size();
  DispatchLocked();
  return static_cast<uint64_t>(replay.size());
}

void PersistentGroup::UpdateSettings(const esdb::GroupSettings& settings, std::optional<FilterMatcher> matcher) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t start_from = settings_.start_from;
  settings_ = settings;
  settings_.start_from = start_from;
  matcher_ = std::move(matcher);
  PumpSoon();
}

esdb::GroupSettings PersistentGroup::settings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return settings_;
}

size_t PersistentGroup::consumer_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumers_.size();
}

esdb::GroupInfo PersistentGroup::Info() {
  std::lock_guard<std::mutex> lock(mu_);
  esdb::GroupInfo info;
  info.stream_id = stream_id_;
  info.group = group_;
  info.settings = settings_;
  info.status = at_head_ && ready_.empty() ? "live" : "catching_up";
  info.checkpoint = checkpoint_written_;
  info.next_to_read = next_read_;
  info.in_flight = in_flight_.size();
  info.ready = ready_.size();
  esdb::Result<int64_t> parked_version = store_->StreamVersion(parked_stream_);
  if (parked_version.ok() && parked_version.value() >= 0) {
    int64_t first = 0;
    esdb::Result<esdb::StreamMetadata> md = store_->GetMetadata(parked_stream_);
    if (md.ok()) first = md->truncate_before.value_or(0);
    info.parked = static_cast<uint64_t>(std::max<int64_t>(0, parked_version.value() + 1 - first));
  }
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
    if (write_checkpoint) MaybeCheckpointLocked(true);
    stopped_ = true;
    timeout_timer_->cancel();
    checkpoint_timer_->cancel();
    for (auto& c : consumers_) channels.push_back(c->channel);
    consumers_.clear();
  }
  for (auto& ch : channels) ch->Close(reason);
}

}  // namespace esdb_notification

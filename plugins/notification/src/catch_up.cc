#include "catch_up.h"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace esdb_notification {

size_t EventBytes(const esdb::SharedEvent& e) {
  if (!e) return 0;
  return e->data.size() + e->metadata.size() + e->stream_id.size() + e->event_type.size() + 64;
}

CatchUpSubscription::CatchUpSubscription(uint64_t id, boost::asio::io_context& io,
                                         std::shared_ptr<esdb::EventStoreV2> store, Params params,
                                         esdb::SubscriptionHandlers handlers, SubscriptionCounters& counters)
    : id_(id), io_(io), store_(std::move(store)), params_(std::move(params)), counters_(counters) {
  Channel<esdb::SharedEvent>::Limits limits;
  limits.max_items = params_.limits.max_buffered_events;
  limits.max_bytes = params_.limits.max_buffered_bytes;
  limits.max_batch = params_.limits.max_batch;
  channel_ = std::make_shared<Channel<esdb::SharedEvent>>(io_, limits, &EventBytes, std::move(handlers.on_events),
                                                          std::move(handlers.on_caught_up),
                                                          std::move(handlers.on_dropped));
}

void CatchUpSubscription::Begin() {
  channel_->SetOnRoom([weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (self->waiting_for_room_ && self->phase_ == Phase::kCatchingUp) {
      self->waiting_for_room_ = false;
      self->PostRead();
    }
  });
  std::lock_guard<std::mutex> lock(mu_);
  if (params_.is_all) {
    if (params_.from_position == esdb::kSubscribeFromEndPosition) params_.from_position = store_->NextPosition();
    next_position_ = params_.from_position;
  } else {
    if (params_.from_version == esdb::kSubscribeFromEndVersion) {
      esdb::Result<int64_t> v = store_->StreamVersion(params_.stream_id);
      if (v.ok()) {
        params_.from_version = v.value() + 1;
      } else if (v.status().code() == esdb::Code::kNotFound) {
        params_.from_version = 0;
      } else if (v.status().code() != esdb::Code::kStreamDeleted) {
        DropLocked(v.status());
        return;
      } else {
        DropLocked(esdb::Status::StreamDeleted("stream '" + params_.stream_id + "' is deleted"));
        return;
      }
    }
    next_version_ = params_.from_version;
  }
  PostRead();
}

void CatchUpSubscription::PostRead() {
  if (read_scheduled_) return;
  read_scheduled_ = true;
  boost::asio::post(io_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->ReadPage();
  });
}

bool CatchUpSubscription::DeliverLocked(std::vector<esdb::SharedEvent> events) {
  if (events.empty()) return true;
  const uint64_t last = events.back()->position;
  const size_t n = events.size();
  if (!channel_->Push(std::move(events))) return false;
  last_position_ = last;
  counters_.events_delivered += n;
  return true;
}

bool CatchUpSubscription::DeliverPageLocked(std::vector<esdb::SharedEvent>& page) {
  if (DeliverLocked(page)) {
    page.clear();
    return true;
  }
  // Hand over what fits; the rest waits until the subscriber makes room.
  size_t sent = 0;
  while (sent < page.size() && DeliverLocked({page[sent]})) ++sent;
  if (sent == 0 && channel_->queued() == 0 && !channel_->closed()) {
    // An empty buffer that cannot take one event: the event is too large.
    if (!DeliverLocked({page[0]})) {
      DropLocked(esdb::Status::ResourceExhausted(
          "event at position " + std::to_string(page.front()->position) + " is larger than the subscriber's buffer (" +
          std::to_string(params_.limits.max_buffered_bytes) + " bytes)"));
      return false;
    }
    sent = 1;
  }
  page.erase(page.begin(), page.begin() + static_cast<std::ptrdiff_t>(sent));
  if (page.empty()) return true;
  waiting_for_room_ = true;
  return false;
}

void CatchUpSubscription::DropLocked(esdb::Status reason) {
  if (phase_ == Phase::kDone) return;
  phase_ = Phase::kDone;
  live_buffer_.clear();
  unsent_page_.clear();
  ++counters_.subscribers_dropped;
  channel_->Drop(std::move(reason));
}

void CatchUpSubscription::ReadPage() {
  std::unique_lock<std::mutex> lock(mu_);
  read_scheduled_ = false;
  if (phase_ != Phase::kCatchingUp) return;

  if (!unsent_page_.empty()) {
    if (!DeliverPageLocked(unsent_page_)) return;
  }
  if (channel_->queued() + params_.limits.read_batch > params_.limits.max_buffered_events &&
      channel_->queued() > 0) {
    waiting_for_room_ = true;  // the subscriber is slow; read on when it has room
    return;
  }

  const bool is_all = params_.is_all;
  esdb::ReadStreamRequest stream_req;
  esdb::ReadAllRequest all_req;
  if (is_all) {
    all_req.from = next_position_;
    all_req.count = std::min(params_.limits.read_batch, params_.limits.max_buffered_events);
    all_req.filter = params_.matcher->filter();
  } else {
    stream_req.stream_id = params_.stream_id;
    stream_req.from = next_version_;
    stream_req.count = std::min(params_.limits.read_batch, params_.limits.max_buffered_events);
  }
  lock.unlock();

  // Read without the lock so live events keep flowing into the buffer.
  std::vector<esdb::RecordedEvent> events;
  bool end = false;
  uint64_t next_position = 0;
  int64_t next_version = 0;
  esdb::Status error;
  ++counters_.catch_up_reads;
  if (is_all) {
    esdb::Result<esdb::ReadAllResult> r = store_->ReadAll(all_req);
    if (r.ok()) {
      events = std::move(r->events);
      end = r->end_of_all;
      next_position = r->next_position;
    } else {
      error = r.status();
    }
  } else {
    esdb::Result<esdb::ReadStreamResult> r = store_->ReadStream(stream_req);
    if (r.ok()) {
      events = std::move(r->events);
      end = r->end_of_stream;
      next_version = r->next_version;
    } else if (r.status().code() == esdb::Code::kNotFound) {
      end = true;  // absent or soft-deleted: nothing yet, wait for live events
      next_version = stream_req.from;
    } else {
      error = r.status();
    }
  }

  lock.lock();
  if (phase_ != Phase::kCatchingUp) return;
  if (!error.ok()) {
    DropLocked(std::move(error));
    return;
  }
  if (events.empty() && !end) end = true;  // defensive: never spin on an empty page
  std::vector<esdb::SharedEvent> page;
  page.reserve(events.size());
  for (esdb::RecordedEvent& e : events) {
    if (last_position_ && e.position <= *last_position_) continue;
    page.push_back(std::make_shared<const esdb::RecordedEvent>(std::move(e)));
  }
  if (is_all) {
    next_position_ = std::max(next_position, next_position_);
  } else {
    next_version_ = std::max(next_version, next_version_);
  }
  unsent_page_ = std::move(page);
  if (!DeliverPageLocked(unsent_page_)) return;
  if (!end) {
    PostRead();
    return;
  }
  if (live_overflow_) {
    // Live events were lost while we read: read history further instead.
    live_overflow_ = false;
    live_buffer_.clear();
    PostRead();
    return;
  }
  // History is delivered: hand over the live buffer minus what history had.
  std::vector<esdb::SharedEvent> rest;
  for (esdb::SharedEvent& e : live_buffer_) {
    if (last_position_ && e->position <= *last_position_) continue;
    rest.push_back(std::move(e));
  }
  live_buffer_.clear();
  if (!DeliverLocked(std::move(rest))) {
    DropLocked(esdb::Status::ResourceExhausted(
        "subscriber is too slow: more than " + std::to_string(params_.limits.max_buffered_events) +
        " events or " + std::to_string(params_.limits.max_buffered_bytes) + " bytes buffered"));
    return;
  }
  phase_ = Phase::kLive;
  channel_->Signal();
}

bool CatchUpSubscription::Wants(const esdb::RecordedEvent& e) const {
  if (params_.is_all) return e.position >= params_.from_position && params_.matcher->Matches(e);
  return e.stream_id == params_.stream_id && e.version >= params_.from_version;
}

void CatchUpSubscription::OnLive(const std::vector<esdb::SharedEvent>& events) {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ == Phase::kDone) return;
  std::vector<esdb::SharedEvent> wanted;
  for (const esdb::SharedEvent& e : events) {
    if (last_position_ && e->position <= *last_position_) continue;
    if (Wants(*e)) wanted.push_back(e);
  }
  if (wanted.empty()) return;
  if (phase_ == Phase::kCatchingUp) {
    if (live_overflow_) return;
    if (live_buffer_.size() + wanted.size() > params_.limits.max_buffered_events) {
      live_overflow_ = true;
      live_buffer_.clear();
      return;
    }
    live_buffer_.insert(live_buffer_.end(), wanted.begin(), wanted.end());
    return;
  }
  if (!DeliverLocked(std::move(wanted))) {
    DropLocked(esdb::Status::ResourceExhausted(
        "subscriber is too slow: more than " + std::to_string(params_.limits.max_buffered_events) +
        " events or " + std::to_string(params_.limits.max_buffered_bytes) + " bytes buffered"));
  }
}

void CatchUpSubscription::OnStreamTombstoned() {
  std::lock_guard<std::mutex> lock(mu_);
  if (params_.is_all) return;
  DropLocked(esdb::Status::StreamDeleted("stream '" + params_.stream_id + "' was tombstoned"));
}

void CatchUpSubscription::Close(const esdb::Status& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = Phase::kDone;
    live_buffer_.clear();
    unsent_page_.clear();
  }
  channel_->Close(reason);
}

void CatchUpSubscription::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = Phase::kDone;
    live_buffer_.clear();
    unsent_page_.clear();
  }
  channel_->Cancel();
}

bool CatchUpSubscription::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_ == Phase::kDone;
}

bool CatchUpSubscription::live() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_ == Phase::kLive;
}

}  // namespace esdb_notification

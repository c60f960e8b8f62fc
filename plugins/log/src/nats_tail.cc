#include "nats_tail.h"

#include <spdlog/logger.h>

#include "nats_log.h"

namespace esdb_log {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

NatsTail::NatsTail(std::shared_ptr<NatsLog> log, uint64_t from, esdb::LogEntryHandler on_entry)
    : log_(std::move(log)), on_entry_(std::move(on_entry)), next_(from) {}

NatsTail::~NatsTail() {
  log_->RemoveTail(this);
  Shutdown();
}

void NatsTail::Begin() {
  last_activity_ms_.store(SteadyMs());
  // Under mu_, as Shutdown() sets stop_: a tail shut down first (its log
  // closing meanwhile) never starts a watchdog that nothing would join.
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

void NatsTail::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    Unsubscribe();
  });
}

void NatsTail::OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* c = static_cast<Consumer*>(closure);
  NatsTail* self = c->tail;
  jsMsgMetaData* meta = nullptr;
  if (c->dead.load() || natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
    natsMsg_Destroy(msg);
    return;
  }
  const uint64_t seq = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  self->last_activity_ms_.store(SteadyMs());
  const uint64_t expected = self->next_.load();
  if (seq < expected) {  // delivered before
    natsMsg_Destroy(msg);
    return;
  }
  if (seq > expected) {
    // A hole: entries expected..seq-1 did not come. Deliver nothing more from
    // this consumer; the watchdog re-creates it from `expected`.
    c->dead.store(true);
    natsMsg_Destroy(msg);
    self->log_->Log(3, "log tail: got entry " + std::to_string(seq) + " while expecting " +
                           std::to_string(expected) + "; re-reading from " + std::to_string(expected));
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->resubscribe_ = true;
    }
    self->cv_.notify_all();
    return;
  }
  esdb::LogEntry e;
  e.sequence = seq;
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) e.id = id;
  e.data.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  self->next_.store(seq + 1);
  self->log_->NoteSequence(seq);
  try {
    self->on_entry_(std::move(e));
  } catch (...) {
    self->log_->Log(4, "a log tail handler threw");
  }
  self->last_activity_ms_.store(SteadyMs());  // a handler that blocked long is not an idle consumer
}

void NatsTail::OnComplete(void* closure) {
  auto* c = static_cast<Consumer*>(closure);
  std::lock_guard<std::mutex> lock(c->mu);
  c->complete = true;
  c->cv.notify_all();
}

bool NatsTail::Subscribe() {
  auto c = std::make_unique<Consumer>();
  c->tail = this;
  const LogOptions& o = log_->options();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = o.stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = next_.load();
  so.Config.Heartbeat = static_cast<int64_t>(o.heartbeat_ms) * 1000000;
  so.Config.FlowControl = true;
  natsStatus s;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  {
    std::shared_lock<std::shared_mutex> lock(log_->conn_mu_);
    if (log_->js_ == nullptr) return false;
    s = js_Subscribe(&c->sub, log_->js_, o.subject.c_str(), &NatsTail::OnMessage, c.get(), nullptr, &so, &jerr);
    if (s == NATS_OK) {
      natsSubscription_SetOnCompleteCB(c->sub, &NatsTail::OnComplete, c.get());
      // Flow control bounds what the server sends ahead; no client-side
      // drops ("slow consumer") below that.
      natsSubscription_SetPendingLimits(c->sub, -1, -1);
    }
  }
  if (s != NATS_OK) {
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    log_->Log(3, "log tail: cannot create a consumer from entry " + std::to_string(next_.load()) + ": " +
                     natsStatus_GetText(s) + (detail != nullptr ? std::string(": ") + detail : std::string()) +
                     "; retrying");
    return false;
  }
  last_activity_ms_.store(SteadyMs());
  consumer_ = std::move(c);
  return true;
}

void NatsTail::Unsubscribe() {
  if (!consumer_) return;
  Consumer* c = consumer_.get();
  c->dead.store(true);
  natsSubscription_Unsubscribe(c->sub);
  std::unique_lock<std::mutex> lock(c->mu);
  if (!c->cv.wait_for(lock, std::chrono::seconds(10), [&] { return c->complete; })) {
    // Its callback may still run: keep its state alive for good rather than
    // free what it uses.
    lock.unlock();
    log_->Log(4, "log tail: a consumer did not complete within 10 s; leaking it");
    (void)consumer_.release();
    return;
  }
  lock.unlock();
  natsSubscription_Destroy(c->sub);
  consumer_.reset();
}

void NatsTail::WatchdogLoop() {
  const LogOptions& o = log_->options();
  for (;;) {
    bool hole = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(consumer_ ? o.heartbeat_ms : 250),
                   [&] { return stop_ || resubscribe_; });
      if (stop_) return;
      hole = resubscribe_;
      resubscribe_ = false;
    }
    if (hole) {
      Unsubscribe();
      Subscribe();
      continue;
    }
    if (!consumer_) {
      Subscribe();
      continue;
    }
    if (SteadyMs() - last_activity_ms_.load() < static_cast<int64_t>(o.watchdog_ms)) continue;
    // Idle for a while: is the log ahead of us?
    uint64_t last = log_->known_last_.load();
    if (last < next_.load()) {
      esdb::Result<uint64_t> l = log_->LastSequence();
      if (l.ok()) last = *l;
    }
    if (last >= next_.load()) {
      log_->Log(3, "log tail: nothing arrived for " + std::to_string(o.watchdog_ms) + " ms while the log holds up to " +
                       std::to_string(last) + "; re-creating the consumer from " + std::to_string(next_.load()));
      Unsubscribe();
      Subscribe();
    } else {
      last_activity_ms_.store(SteadyMs());
    }
  }
}

}  // namespace esdb_log

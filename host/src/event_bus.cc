#include "event_bus.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "clock.h"

namespace esdb::host {

namespace {
// Events one drain call delivers before yielding the bus thread to others.
constexpr int kDrainBatch = 256;

bool Contains(const std::vector<std::string>& set, const std::string& value) {
  return set.empty() || std::find(set.begin(), set.end(), value) != set.end();
}
}  // namespace

struct EventBusImpl::Subscriber {
  SubscribeOptions options;
  std::shared_ptr<const void> keep_alive;  // declared before handler: outlives it
  EventHandler handler;
  OwnerId owner = kHostOwner;
  std::string owner_name;
  int remove_timeout_ms = -1;

  std::mutex mu;  // guards everything below
  std::condition_variable idle_cv;
  std::deque<EventPtr> queue;
  bool scheduled = false;  // a Drain is posted or running
  bool running = false;    // the handler is being called
  std::thread::id running_thread;
  bool cancelled = false;
  uint64_t dropped = 0;

  bool Matches(const Event& e) const { return Contains(options.topics, e.topic) && Contains(options.types, e.type); }
  std::string Describe() const {
    return "'" + (options.name.empty() ? std::string("<unnamed>") : options.name) + "' of " + owner_name;
  }
};

class EventBusImpl::Control : public SubscriptionControl {
 public:
  Control(EventBusImpl* bus, std::weak_ptr<Subscriber> sub) : bus_(bus), sub_(std::move(sub)) {}
  void cancel() override {
    if (auto sub = sub_.lock()) bus_->Remove(sub, bus_->RemoveDeadline(sub->remove_timeout_ms));
  }

 private:
  EventBusImpl* bus_;
  std::weak_ptr<Subscriber> sub_;
};

EventBusImpl::EventBusImpl(std::string node, std::shared_ptr<spdlog::logger> log, int threads, int remove_timeout_ms)
    : node_(std::move(node)), log_(std::move(log)), work_(io_.get_executor()), remove_timeout_ms_(remove_timeout_ms) {
  for (int i = 0; i < threads; ++i) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    thread_done_.push_back(done);
    threads_.emplace_back([this, done] {
      io_.run();
      done->store(true);
    });
  }
}

EventBusImpl::~EventBusImpl() { Shutdown(); }

std::chrono::steady_clock::time_point EventBusImpl::RemoveDeadline(int timeout_ms) const {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? remove_timeout_ms_ : timeout_ms);
}

size_t EventBusImpl::running_threads() const {
  return static_cast<size_t>(
      std::count_if(thread_done_.begin(), thread_done_.end(), [](const auto& d) { return !d->load(); }));
}

EventBusImpl::CancelResult EventBusImpl::Shutdown(int timeout_ms) {
  CancelResult result;
  if (shut_down_.exchange(true)) return result;
  const auto deadline = RemoveDeadline(timeout_ms);
  std::vector<std::shared_ptr<Subscriber>> subs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    subs = subscribers_;
  }
  // Deliver what was published before the shutdown (bounded), then cancel.
  const auto deliver_until = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2));
  for (auto& s : subs) {
    std::unique_lock<std::mutex> lock(s->mu);
    s->idle_cv.wait_until(lock, deliver_until, [&] { return s->cancelled || (s->queue.empty() && !s->running); });
  }
  for (auto& s : subs) {
    ++result.cancelled;
    if (!Remove(s, deadline)) result.stuck.push_back(s->Describe());
  }
  work_.reset();
  io_.stop();
  // After stop() a thread returns from run() once its current handler does;
  // an idle one at once (a short grace even when the removals used up the
  // deadline, so only threads inside a handler are left behind).
  const auto join_until = std::max(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
  for (;;) {
    const bool all_done = std::all_of(thread_done_.begin(), thread_done_.end(), [](const auto& d) { return d->load(); });
    if (all_done || std::chrono::steady_clock::now() >= join_until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (!threads_[i].joinable()) continue;
    if (thread_done_[i]->load()) {
      threads_[i].join();
    } else {
      threads_[i].detach();  // inside a handler that does not return: left behind
      abandoned_threads_.fetch_add(1);
    }
  }
  if (abandoned_threads_.load() > 0 && log_) {
    log_->error("event bus: {} delivery thread(s) still inside a handler after the shutdown deadline; left running",
                abandoned_threads_.load());
  }
  threads_.clear();
  return result;
}

Status EventBusImpl::Publish(Event event, const PublishOptions& options, const std::string& source) {
  if (event.type.empty()) return Status::InvalidArgument("event type is empty");
  if (event.topic.empty()) return Status::InvalidArgument("event topic is empty (type " + event.type + ")");
  if (event.id.empty()) event.id = NewUuid();
  if (event.source.empty()) event.source = source;
  if (event.node.empty()) event.node = node_;
  if (event.timestamp_us == 0) event.timestamp_us = NowMicros();
  if (!event.data.is_object() && !event.data.is_array() && event.data.is_null()) event.data = nlohmann::json::object();
  auto shared = std::make_shared<const Event>(std::move(event));
  published_.fetch_add(1, std::memory_order_relaxed);

  std::lock_guard<std::mutex> lock(mu_);
  if (options.retain) {
    const std::string& key = options.retain_key.empty() ? shared->source : options.retain_key;
    retained_[shared->topic][key] = RetainedEvent{++retained_seq_, shared};
  }
  for (const auto& sub : subscribers_) {
    if (sub->Matches(*shared)) Enqueue(sub, shared);
  }
  return Status::OK();
}

// Called with mu_ held.
void EventBusImpl::Enqueue(const std::shared_ptr<Subscriber>& sub, const EventPtr& event) {
  bool cancel_it = false;
  {
    std::lock_guard<std::mutex> lock(sub->mu);
    if (sub->cancelled) return;
    if (sub->queue.size() >= sub->options.queue_limit) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      if (sub->dropped++ == 0 && log_) {
        log_->warn("bus subscriber '{}' is full ({} events queued); dropping events", sub->options.name,
                   sub->queue.size());
      }
      cancel_it = sub->options.overflow == OverflowPolicy::kCancel;
    } else {
      sub->queue.push_back(event);
      if (!sub->scheduled) {
        sub->scheduled = true;
        boost::asio::post(io_, [this, sub] { Drain(sub); });
      }
    }
  }
  if (cancel_it) {
    // Removal takes mu_, which our caller holds: do it from a bus thread.
    boost::asio::post(io_, [this, sub] {
      Remove(sub, RemoveDeadline(-1));
      Event e;
      e.type = "subscriber_dropped";
      e.topic = "bus";
      e.data = {{"subscriber", sub->options.name}, {"reason", "queue full"}};
      Publish(std::move(e), {}, "host");
    });
  }
}

void EventBusImpl::Drain(const std::shared_ptr<Subscriber>& sub) {
  for (int n = 0; n < kDrainBatch; ++n) {
    EventPtr event;
    {
      std::lock_guard<std::mutex> lock(sub->mu);
      if (sub->cancelled || sub->queue.empty()) {
        sub->scheduled = false;
        sub->idle_cv.notify_all();
        return;
      }
      event = std::move(sub->queue.front());
      sub->queue.pop_front();
      sub->running = true;
      sub->running_thread = std::this_thread::get_id();
    }
    try {
      sub->handler(event);  // only Drain touches handler while running
    } catch (const std::exception& ex) {
      if (log_) log_->error("bus subscriber '{}' threw on {}: {}", sub->options.name, event->type, ex.what());
    } catch (...) {
      if (log_) log_->error("bus subscriber '{}' threw on {}", sub->options.name, event->type);
    }
    delivered_.fetch_add(1, std::memory_order_relaxed);
    // Set when the subscription was cancelled meanwhile (by the handler
    // itself, or given up on while it ran); `keep` goes after `doomed`.
    std::shared_ptr<const void> keep;
    EventHandler doomed;
    {
      std::lock_guard<std::mutex> lock(sub->mu);
      sub->running = false;
      if (sub->cancelled) {
        doomed = std::move(sub->handler);
        keep = std::move(sub->keep_alive);
      }
      sub->idle_cv.notify_all();
    }
  }
  // More queued: yield to other subscribers, continue later.
  boost::asio::post(io_, [this, sub] { Drain(sub); });
}

Result<Subscription> EventBusImpl::Subscribe(const SubscribeOptions& options, EventHandler handler, Owner owner) {
  if (!handler) return Status::InvalidArgument("subscription handler is empty");
  if (options.queue_limit == 0) return Status::InvalidArgument("subscription queue_limit must be > 0");
  if (shut_down_) return Status::Cancelled("event bus is shut down");
  auto sub = std::make_shared<Subscriber>();
  sub->options = options;
  sub->keep_alive = std::move(owner.keep_alive);
  sub->handler = std::move(handler);
  sub->owner = owner.id;
  sub->owner_name = std::move(owner.name);
  sub->remove_timeout_ms = owner.remove_timeout_ms;

  std::lock_guard<std::mutex> lock(mu_);
  if (options.replay_retained) {
    for (const auto& ev : RetainedLocked("")) {
      if (sub->Matches(*ev)) Enqueue(sub, ev);
    }
  }
  subscribers_.push_back(sub);
  return Subscription(std::make_shared<Control>(this, sub));
}

bool EventBusImpl::Remove(const std::shared_ptr<Subscriber>& sub, std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), sub), subscribers_.end());
  }
  std::shared_ptr<const void> keep;  // released after `doomed`
  EventHandler doomed;
  bool idle = true;
  {
    std::unique_lock<std::mutex> lock(sub->mu);
    sub->cancelled = true;
    sub->queue.clear();
    // Inside the handler itself (it cancelled its own subscription): Drain
    // frees the handler once it returns. Otherwise wait until it is idle,
    // but not forever: a handler blocked for good (a deadlock in a plugin)
    // must not block whoever cancels (a stopping subsystem, the host's
    // shutdown). Drain frees such a handler if it ever returns.
    const bool from_handler = sub->running && sub->running_thread == std::this_thread::get_id();
    if (!from_handler) {
      idle = sub->idle_cv.wait_until(lock, deadline, [&] { return !sub->running; });
      if (idle) {
        doomed = std::move(sub->handler);
        keep = std::move(sub->keep_alive);
      }
    }
  }
  if (!idle) {
    if (log_) {
      log_->error("bus subscription {}: its handler is still running at the removal deadline (stuck?); giving up "
                  "on it: no further events, and its code stays loaded until it returns",
                  sub->Describe());
    }
    std::lock_guard<std::mutex> lock(mu_);
    abandoned_.push_back(sub);
  }
  // `doomed` (plugin code) is destroyed here, outside our locks.
  return idle;
}

EventBusImpl::CancelResult EventBusImpl::CancelOwnedBy(OwnerId owner, int timeout_ms) {
  std::vector<std::shared_ptr<Subscriber>> mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : subscribers_)
      if (s->owner == owner) mine.push_back(s);
  }
  const auto deadline = RemoveDeadline(timeout_ms);
  CancelResult result;
  for (auto& s : mine) {
    ++result.cancelled;
    if (!Remove(s, deadline)) result.stuck.push_back(s->Describe());
  }
  // Given up on earlier (e.g. by the subsystem's own cancel) and still running.
  std::vector<std::shared_ptr<Subscriber>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    abandoned = abandoned_;
  }
  std::vector<std::shared_ptr<Subscriber>> idle;
  for (const auto& s : abandoned) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->running) {
      idle.push_back(s);
    } else if (s->owner == owner &&
               std::find(mine.begin(), mine.end(), s) == mine.end()) {
      result.stuck.push_back(s->Describe());
    }
  }
  if (!idle.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : idle) abandoned_.erase(std::remove(abandoned_.begin(), abandoned_.end(), s), abandoned_.end());
  }
  return result;
}

std::vector<EventPtr> EventBusImpl::Retained(const std::string& topic) const {
  std::lock_guard<std::mutex> lock(mu_);
  return RetainedLocked(topic);
}

std::vector<EventPtr> EventBusImpl::RetainedLocked(const std::string& topic) const {
  std::vector<RetainedEvent> found;
  for (const auto& [t, slots] : retained_) {
    if (!topic.empty() && t != topic) continue;
    for (const auto& [key, r] : slots) found.push_back(r);
  }
  std::sort(found.begin(), found.end(), [](const RetainedEvent& a, const RetainedEvent& b) { return a.seq < b.seq; });
  std::vector<EventPtr> out;
  out.reserve(found.size());
  for (auto& r : found) out.push_back(std::move(r.event));
  return out;
}

nlohmann::json EventBusImpl::Stats() const {
  size_t subs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    subs = subscribers_.size();
  }
  return {{"published", published_.load()},
          {"delivered", delivered_.load()},
          {"dropped", dropped_.load()},
          {"subscribers", subs}};
}

}  // namespace esdb::host

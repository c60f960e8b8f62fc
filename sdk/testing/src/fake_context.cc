#include "esdb/testing/fake_context.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

namespace esdb::testing {

namespace {

std::string NewUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t a = rng(), b = rng();
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Selected(const SubscribeOptions& o, const Event& e) {
  auto in = [](const std::vector<std::string>& v, const std::string& x) {
    return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
  };
  return in(o.topics, e.topic) && in(o.types, e.type);
}

bool NameMatches(const Event& e, const std::string& name) {
  return name.empty() || (e.data.is_object() && e.data.value("name", "") == name);
}

}  // namespace

// --- FakeBus ---------------------------------------------------------------

// One subscription: its own queue, delivered in order on its own thread.
// The thread holds the Sub alive; it is detached and ends after the
// subscription is cancelled (having destroyed the handler first).
struct FakeBus::Sub {
  SubscribeOptions options;
  EventHandler handler;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<EventPtr> queue;
  bool cancelled = false;
  bool finished = false;  // the worker destroyed the handler and left
  std::thread::id worker;  // set by the worker itself

  void Run() {
    std::unique_lock<std::mutex> lock(mu);
    worker = std::this_thread::get_id();
    for (;;) {
      cv.wait(lock, [&] { return cancelled || !queue.empty(); });
      if (cancelled) break;
      EventPtr e = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      try {
        handler(e);
      } catch (...) {
        // The host logs and counts it; the subscription goes on.
      }
      lock.lock();
    }
    handler = nullptr;  // the plugin's code goes now, before cancel() returns
    finished = true;
    cv.notify_all();
  }

  void Cancel() {
    std::unique_lock<std::mutex> lock(mu);
    cancelled = true;
    queue.clear();
    cv.notify_all();
    // From inside the handler: only no further calls (as the host does).
    if (std::this_thread::get_id() == worker) return;
    cv.wait(lock, [&] { return finished; });
  }
};

struct FakeBus::State {
  mutable std::mutex mu;
  mutable std::condition_variable cv;  // a new event was recorded
  std::vector<std::shared_ptr<Sub>> subs;
  std::map<std::pair<std::string, std::string>, EventPtr> retained;
  std::vector<EventPtr> published;
};

namespace {
class FakeSubscriptionControl : public SubscriptionControl {
 public:
  FakeSubscriptionControl(std::shared_ptr<FakeBus::Sub> sub, std::function<void(FakeBus::Sub*)> remove)
      : sub_(std::move(sub)), remove_(std::move(remove)) {}
  void cancel() override {
    remove_(sub_.get());
    sub_->Cancel();
  }

 private:
  std::shared_ptr<FakeBus::Sub> sub_;
  std::function<void(FakeBus::Sub*)> remove_;  // from the bus's list, if the bus is still there
};
}  // namespace

FakeBus::FakeBus(std::string node) : state_(std::make_shared<State>()), node_(std::move(node)) {}

FakeBus::~FakeBus() {
  std::vector<std::shared_ptr<Sub>> subs;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    subs.swap(state_->subs);
  }
  for (auto& s : subs) s->Cancel();
}

Status FakeBus::Publish(Event event, const PublishOptions& options) {
  if (event.type.empty() || event.topic.empty()) return Status::InvalidArgument("event type and topic are required");
  if (event.id.empty()) event.id = NewUuid();
  if (event.node.empty()) event.node = node_;
  if (event.timestamp_us == 0) event.timestamp_us = NowUs();
  if (event.source.empty()) event.source = "test";
  auto e = std::make_shared<const Event>(std::move(event));
  std::lock_guard<std::mutex> lock(state_->mu);
  if (options.retain) {
    state_->retained[{e->topic, options.retain_key.empty() ? e->source : options.retain_key}] = e;
  }
  state_->published.push_back(e);
  for (auto& s : state_->subs) {
    if (!Selected(s->options, *e)) continue;
    std::lock_guard<std::mutex> sub_lock(s->mu);
    if (s->cancelled) continue;
    if (s->queue.size() >= s->options.queue_limit) {
      dropped_.fetch_add(1);
      continue;  // kDropNewest; kCancel is not modelled
    }
    s->queue.push_back(e);
    s->cv.notify_all();
  }
  state_->cv.notify_all();
  return Status::OK();
}

Result<Subscription> FakeBus::Subscribe(const SubscribeOptions& options, EventHandler handler) {
  if (!handler) return Status::InvalidArgument("handler is empty");
  auto sub = std::make_shared<Sub>();
  sub->options = options;
  sub->handler = std::move(handler);
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    // Replay and registration under one lock: nothing lost or doubled.
    if (options.replay_retained) {
      std::vector<EventPtr> replay;
      for (auto& [key, e] : state_->retained) {
        if (Selected(options, *e)) replay.push_back(e);
      }
      std::sort(replay.begin(), replay.end(),
                [](const EventPtr& a, const EventPtr& b) { return a->timestamp_us < b->timestamp_us; });
      sub->queue.assign(replay.begin(), replay.end());
    }
    state_->subs.push_back(sub);
    std::thread([sub] { sub->Run(); }).detach();
  }
  std::weak_ptr<State> weak = state_;
  auto remove = [weak](Sub* s) {
    if (auto state = weak.lock()) {
      std::lock_guard<std::mutex> lock(state->mu);
      auto& v = state->subs;
      v.erase(std::remove_if(v.begin(), v.end(), [&](const std::shared_ptr<Sub>& p) { return p.get() == s; }),
              v.end());
    }
  };
  return Subscription(std::make_shared<FakeSubscriptionControl>(sub, remove));
}

std::vector<EventPtr> FakeBus::Retained(const std::string& topic) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<EventPtr> out;
  for (auto& [key, e] : state_->retained) {
    if (topic.empty() || key.first == topic) out.push_back(e);
  }
  std::sort(out.begin(), out.end(),
            [](const EventPtr& a, const EventPtr& b) { return a->timestamp_us < b->timestamp_us; });
  return out;
}

std::vector<EventPtr> FakeBus::Published() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->published;
}

EventPtr FakeBus::WaitFor(const std::function<bool(const Event&)>& pred, int timeout_ms) const {
  std::unique_lock<std::mutex> lock(state_->mu);
  size_t checked = 0;
  EventPtr found;
  state_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    for (; checked < state_->published.size(); ++checked) {
      if (pred(*state_->published[checked])) {
        found = state_->published[checked];
        return true;
      }
    }
    return false;
  });
  return found;
}

EventPtr FakeBus::WaitForEvent(const std::string& type, const std::string& name, int timeout_ms) const {
  return WaitFor([&](const Event& e) { return e.type == type && NameMatches(e, name); }, timeout_ms);
}

size_t FakeBus::ActiveSubscriptions() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->subs.size();
}

// --- FakeServices ----------------------------------------------------------

Status FakeServices::Provide(const std::string& provider, const std::string& name, const std::string& interface_id,
                             std::shared_ptr<void> service, uint64_t owner) {
  if (name.empty()) return Status::InvalidArgument("service name is empty");
  if (!service) return Status::InvalidArgument("service '" + name + "' is null");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  if (it != services_.end() && (it->second.provider != provider || it->second.owner == owner)) {
    return Status::AlreadyExists("service '" + name + "' is already provided by " + it->second.provider);
  }
  services_[name] = Entry{std::move(service), interface_id.empty() ? name : interface_id, provider, owner};
  // Under the lock, as the host does, so provided/withdrawn reach the bus in order.
  Announce(event_types::kServiceProvided, name, provider);
  return Status::OK();
}

Status FakeServices::Withdraw(const std::string& provider, const std::string& name) {
  std::shared_ptr<void> doomed;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  if (it == services_.end() || it->second.provider != provider) {
    return Status::NotFound("service '" + name + "' is not provided by " + provider);
  }
  Announce(event_types::kServiceWithdrawn, name, provider);
  doomed = std::move(it->second.service);
  services_.erase(it);
  return Status::OK();
}

std::vector<std::string> FakeServices::WithdrawAllOf(const std::string& provider) {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, entry] : services_)
      if (entry.provider == provider) names.push_back(name);
  }
  for (const auto& n : names) (void)Withdraw(provider, n);
  return names;
}

std::shared_ptr<void> FakeServices::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.service;
}

Result<std::shared_ptr<void>> FakeServices::FindAs(const std::string& name, const std::string& interface_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(name);
  if (it == services_.end()) return Status::NotFound("service '" + name + "' is not provided");
  if (it->second.interface_id != interface_id) {
    return Status::FailedPrecondition("service '" + name + "' is provided by " + it->second.provider +
                                      " as interface '" + it->second.interface_id + "', not '" + interface_id + "'");
  }
  return it->second.service;
}

std::vector<std::string> FakeServices::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, entry] : services_) out.push_back(name);
  return out;
}

void FakeServices::Announce(const char* type, const std::string& name, const std::string& provider) {
  Event e;
  e.type = type;
  e.topic = topics::kServices;
  e.source = provider;
  e.data = {{"name", name}, {"provider", provider}};
  PublishOptions o;
  o.retain = true;
  o.retain_key = name;
  (void)bus_.Publish(std::move(e), o);
}

// --- FakeContext -----------------------------------------------------------

// Stamps the context's name as the source and tracks its subscriptions.
class FakeContext::BusFacade : public EventBus {
 public:
  explicit BusFacade(FakeContext& c) : c_(c) {}
  Status Publish(Event event, const PublishOptions& options) override {
    if (event.source.empty()) event.source = c_.options_.name;
    return c_.bus().Publish(std::move(event), options);
  }
  Result<Subscription> Subscribe(const SubscribeOptions& options, EventHandler handler) override {
    Result<Subscription> sub = c_.bus().Subscribe(options, std::move(handler));
    if (!sub.ok()) return sub.status();
    auto tracked = std::make_shared<Tracked>(std::move(sub).value());
    std::lock_guard<std::mutex> lock(mu_);
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(), [](const auto& w) { return w.expired(); }), subs_.end());
    subs_.push_back(tracked);
    return Subscription(tracked);
  }
  std::vector<EventPtr> Retained(const std::string& topic) const override { return c_.bus().Retained(topic); }

  size_t Active() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& w : subs_) {
      auto t = w.lock();
      if (t && t->active()) ++n;
    }
    return n;
  }
  void CancelAll() {
    std::vector<std::shared_ptr<Tracked>> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& w : subs_)
        if (auto t = w.lock()) live.push_back(t);
    }
    for (auto& t : live) t->cancel();
  }

 private:
  struct Tracked : SubscriptionControl {
    explicit Tracked(Subscription s) : inner(std::move(s)) {}
    void cancel() override {
      std::lock_guard<std::mutex> lock(mu);
      inner.cancel();
    }
    bool active() {
      std::lock_guard<std::mutex> lock(mu);
      return inner.active();
    }
    std::mutex mu;
    Subscription inner;
  };
  FakeContext& c_;
  mutable std::mutex mu_;
  std::vector<std::weak_ptr<Tracked>> subs_;
};

// Records the context's name as the provider.
class FakeContext::RegistryFacade : public ServiceRegistry {
 public:
  explicit RegistryFacade(FakeContext& c) : c_(c) {}
  Status Provide(const std::string& name, std::shared_ptr<void> service) override {
    return c_.services().Provide(c_.options_.name, name, "", std::move(service), c_.owner_);
  }
  Status ProvideAs(const std::string& name, const char* interface_id, std::shared_ptr<void> service) override {
    if (interface_id == nullptr || *interface_id == '\0') {
      return Status::InvalidArgument("service '" + name + "': empty interface id");
    }
    return c_.services().Provide(c_.options_.name, name, interface_id, std::move(service), c_.owner_);
  }
  Result<std::shared_ptr<void>> FindAs(const std::string& name, const char* interface_id) const override {
    return c_.services().FindAs(name, interface_id == nullptr ? "" : interface_id);
  }
  Status Withdraw(const std::string& name) override { return c_.services().Withdraw(c_.options_.name, name); }
  std::shared_ptr<void> Find(const std::string& name) const override { return c_.services().Find(name); }
  std::vector<std::string> Names() const override { return c_.services().Names(); }

 private:
  FakeContext& c_;
};

// Keeps formatted log lines; optionally prints them.
struct FakeContext::LogSink : spdlog::sinks::base_sink<std::mutex> {
  explicit LogSink(bool to_stderr) : to_stderr(to_stderr) {}
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string line = "[" + std::string(spdlog::level::to_string_view(msg.level).data(),
                                          spdlog::level::to_string_view(msg.level).size()) +
                       "] " + std::string(msg.payload.data(), msg.payload.size());
    if (to_stderr) std::fprintf(stderr, "%s: %s\n", std::string(msg.logger_name.data(), msg.logger_name.size()).c_str(),
                                line.c_str());
    std::lock_guard<std::mutex> lock(lines_mu);
    lines.push_back(std::move(line));
  }
  void flush_() override {}
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(lines_mu);
    return lines;
  }
  bool to_stderr;
  std::mutex lines_mu;
  std::vector<std::string> lines;
};

FakeContext::FakeContext(FakeContextOptions options)
    : own_host_(std::make_unique<FakeHost>()), host_(own_host_.get()), options_(std::move(options)) {
  Init();
}

FakeContext::FakeContext(FakeHost& host, FakeContextOptions options) : host_(&host), options_(std::move(options)) {
  Init();
}

void FakeContext::Init() {
  static std::atomic<uint64_t> next_owner{1};
  owner_ = next_owner++;
  node_ = "test-node";
  if (options_.config.is_null()) options_.config = nlohmann::json::object();
  if (options_.data_dir.empty()) {
    temp_data_.emplace("esdb-fake-" + options_.name);
    data_dir_ = temp_data_->path();
  } else {
    data_dir_ = options_.data_dir;
    std::filesystem::create_directories(data_dir_);
  }
  sink_ = std::make_shared<LogSink>(options_.log_to_stderr);
  // Not registered with spdlog: plugins never look loggers up by name.
  logger_ = std::make_shared<spdlog::logger>(options_.name, sink_);
  logger_->set_level(spdlog::level::from_str(options_.log_level));
  bus_facade_ = std::make_unique<BusFacade>(*this);
  registry_facade_ = std::make_unique<RegistryFacade>(*this);
  work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      io_.get_executor());
  for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
    running_threads_.fetch_add(1);
    threads_.emplace_back([this, run_io = options_.run_io] {
      for (;;) {
        try {
          if (run_io != nullptr) run_io(&io_);  // inside the plugin's copy of Asio
          else io_.run();
          break;
        } catch (const std::exception& e) {
          logger_->error("a handler threw out of the io_context: {}", e.what());
        } catch (...) {
          logger_->error("a handler threw out of the io_context");
        }
      }
      running_threads_.fetch_sub(1);
    });
  }
}

FakeContext::~FakeContext() {
  StopIo(0);
  bus_facade_->CancelAll();
}

EventBus& FakeContext::Bus() { return *bus_facade_; }
ServiceRegistry& FakeContext::Services() { return *registry_facade_; }

void FakeContext::ReportReady(const nlohmann::json& details) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_details_) return;  // later calls are ignored
    ready_details_ = details;
    cv_.notify_all();
  }
  Event e;
  e.type = event_types::kSubsystemReady;
  e.topic = topics::kLifecycle;
  e.source = options_.name;
  e.data = {{"name", options_.name}, {"details", details}};
  PublishOptions o;
  o.retain = true;
  (void)bus().Publish(std::move(e), o);
}

void FakeContext::ReportFailed(const Status& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.push_back(why);
    cv_.notify_all();
  }
  Event e;
  e.type = event_types::kSubsystemFailed;
  e.topic = topics::kLifecycle;
  e.source = options_.name;
  e.data = {{"name", options_.name}, {"error", why.ToString()}, {"code", CodeName(why.code())}};
  PublishOptions o;
  o.retain = true;
  (void)bus().Publish(std::move(e), o);
}

Status FakeContext::WaitReady(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return ready_details_.has_value() || !failures_.empty(); })) {
    return Status::Timeout(options_.name + " reported neither ready nor failed within " + std::to_string(timeout_ms) +
                           " ms");
  }
  if (ready_details_) return Status::OK();
  return failures_.front();
}

bool FakeContext::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_details_.has_value();
}

std::optional<nlohmann::json> FakeContext::ReadyDetails() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_details_;
}

std::vector<Status> FakeContext::Failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

std::vector<std::string> FakeContext::WithdrawAll() { return services().WithdrawAllOf(options_.name); }

size_t FakeContext::ActiveSubscriptions() const { return bus_facade_->Active(); }

std::vector<std::string> FakeContext::LogLines() const { return sink_->Lines(); }

bool FakeContext::StopIo(int drain_ms) {
  if (threads_.empty()) return true;
  work_.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  while (running_threads_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const bool drained = running_threads_.load() == 0;
  io_.stop();  // run() returns once the handlers running now return
  for (auto& t : threads_) t.join();
  threads_.clear();
  return drained;
}

}  // namespace esdb::testing

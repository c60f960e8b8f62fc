// The two plugin libraries, loaded with dlopen as the host would, driven
// through a small fake Context (bus with retained events, service
// registry): the store waits for storage without blocking its start,
// recovers when storage is provided, degrades when it is withdrawn,
// recovers again, and both libraries unload cleanly.
#include <dlfcn.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <thread>

#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include <esdb/event_store.h>
#include <esdb/plugin.h>
#include <esdb/storage.h>

#include "test_util.h"

using namespace esdb_store_test;

namespace {

// A bus delivering on one dispatcher thread; retained events per (topic, key).
class FakeBus : public esdb::EventBus {
 public:
  FakeBus() : thread_([this] { Run(); }) {}
  ~FakeBus() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  esdb::Status Publish(esdb::Event event, const esdb::PublishOptions& options) override {
    if (event.type.empty() || event.topic.empty()) return esdb::Status::InvalidArgument("type and topic required");
    auto e = std::make_shared<const esdb::Event>(std::move(event));
    std::lock_guard<std::mutex> lock(mu_);
    if (options.retain) retained_[{e->topic, options.retain_key.empty() ? e->source : options.retain_key}] = e;
    for (auto& s : subs_) {
      if (Matches(*s, *e)) queue_.emplace_back(s, e);
    }
    cv_.notify_all();
    return esdb::Status::OK();
  }

  esdb::Result<esdb::Subscription> Subscribe(const esdb::SubscribeOptions& options,
                                             esdb::EventHandler handler) override {
    auto sub = std::make_shared<Sub>();
    sub->bus = this;
    sub->options = options;
    sub->handler = std::move(handler);
    std::lock_guard<std::mutex> lock(mu_);
    if (options.replay_retained) {
      for (auto& [key, e] : retained_) {
        if (Matches(*sub, *e)) queue_.emplace_back(sub, e);
      }
    }
    subs_.push_back(sub);
    cv_.notify_all();
    return esdb::Subscription(sub);
  }

  std::vector<esdb::EventPtr> Retained(const std::string& topic) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<esdb::EventPtr> out;
    for (auto& [key, e] : retained_) {
      if (topic.empty() || key.first == topic) out.push_back(e);
    }
    return out;
  }

 private:
  struct Sub : esdb::SubscriptionControl {
    FakeBus* bus;
    esdb::SubscribeOptions options;
    esdb::EventHandler handler;
    bool cancelled = false;  // guarded by bus->mu_
    void cancel() override {
      std::unique_lock<std::mutex> lock(bus->mu_);
      cancelled = true;
      if (std::this_thread::get_id() == bus->thread_.get_id()) return;
      bus->cv_.wait(lock, [&] { return bus->running_ != this; });
      handler = nullptr;
    }
  };

  static bool Matches(const Sub& s, const esdb::Event& e) {
    auto in = [](const std::vector<std::string>& v, const std::string& x) {
      return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
    };
    return !s.cancelled && in(s.options.topics, e.topic) && in(s.options.types, e.type);
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto [sub, e] = queue_.front();
      queue_.pop_front();
      if (sub->cancelled) continue;
      running_ = sub.get();
      auto handler = sub->handler;
      lock.unlock();
      handler(e);
      lock.lock();
      running_ = nullptr;
      cv_.notify_all();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Sub* running_ = nullptr;
  std::deque<std::pair<std::shared_ptr<Sub>, esdb::EventPtr>> queue_;
  std::vector<std::shared_ptr<Sub>> subs_;
  std::map<std::pair<std::string, std::string>, esdb::EventPtr> retained_;
  std::thread thread_;
};

class FakeRegistry {
 public:
  explicit FakeRegistry(FakeBus& bus) : bus_(bus) {}
  // `interface_id` empty: untyped, taken as the id `name`.
  esdb::Status Provide(const std::string& provider, const std::string& name, const std::string& interface_id,
                       std::shared_ptr<void> service) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (services_.count(name)) return esdb::Status::AlreadyExists(name);
      services_[name] = {provider, std::move(service)};
      interfaces_[name] = interface_id.empty() ? name : interface_id;
    }
    Announce(esdb::event_types::kServiceProvided, name, provider);
    return esdb::Status::OK();
  }
  esdb::Status Withdraw(const std::string& provider, const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = services_.find(name);
      if (it == services_.end() || it->second.first != provider) return esdb::Status::NotFound(name);
      services_.erase(it);
      interfaces_.erase(name);
    }
    Announce(esdb::event_types::kServiceWithdrawn, name, provider);
    return esdb::Status::OK();
  }
  std::shared_ptr<void> Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = services_.find(name);
    return it == services_.end() ? nullptr : it->second.second;
  }
  esdb::Result<std::shared_ptr<void>> FindAs(const std::string& name, const std::string& interface_id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = services_.find(name);
    if (it == services_.end()) return esdb::Status::NotFound(name);
    if (interfaces_.at(name) != interface_id) return esdb::Status::FailedPrecondition(name + ": other interface");
    return it->second.second;
  }
  std::vector<std::string> Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (auto& [n, s] : services_) out.push_back(n);
    return out;
  }

 private:
  void Announce(const char* type, const std::string& name, const std::string& provider) {
    esdb::Event e;
    e.type = type;
    e.topic = esdb::topics::kServices;
    e.source = "host";
    e.data = {{"name", name}, {"provider", provider}};
    esdb::PublishOptions o;
    o.retain = true;
    o.retain_key = name;
    bus_.Publish(std::move(e), o);
  }
  FakeBus& bus_;
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<void>>> services_;
  std::map<std::string, std::string> interfaces_;  // name -> interface id
};

class FakeContext : public esdb::Context {
 public:
  FakeContext(std::string name, std::filesystem::path data, FakeBus& bus, FakeRegistry& registry)
      : name_(std::move(name)), data_(std::move(data)), bus_(bus), registry_(registry), services_(*this) {
    std::filesystem::create_directories(data_);
    logger_ = std::make_shared<spdlog::logger>(name_, std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  const std::string& Name() const override { return name_; }
  const std::string& Node() const override { return node_; }
  const nlohmann::json& Config() const override { return config_; }
  const std::filesystem::path& DataDir() const override { return data_; }
  std::shared_ptr<spdlog::logger> Logger() const override { return logger_; }
  boost::asio::io_context& Io() override { return io_; }
  esdb::EventBus& Bus() override { return bus_; }
  esdb::ServiceRegistry& Services() override { return services_; }
  void ReportReady(const nlohmann::json&) override {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = true;
    cv_.notify_all();
  }
  void ReportFailed(const esdb::Status& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = why;
    cv_.notify_all();
  }
  bool WaitReady() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return ready_ || !failed_.ok(); }) && ready_;
  }
  bool ready() {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_;
  }

 private:
  class Registry : public esdb::ServiceRegistry {
   public:
    explicit Registry(FakeContext& c) : c_(c) {}
    esdb::Status Provide(const std::string& name, std::shared_ptr<void> service) override {
      return c_.registry_.Provide(c_.name_, name, "", std::move(service));
    }
    esdb::Status ProvideAs(const std::string& name, const char* interface_id,
                           std::shared_ptr<void> service) override {
      return c_.registry_.Provide(c_.name_, name, interface_id, std::move(service));
    }
    esdb::Result<std::shared_ptr<void>> FindAs(const std::string& name, const char* interface_id) const override {
      return c_.registry_.FindAs(name, interface_id);
    }
    esdb::Status Withdraw(const std::string& name) override { return c_.registry_.Withdraw(c_.name_, name); }
    std::shared_ptr<void> Find(const std::string& name) const override { return c_.registry_.Find(name); }
    std::vector<std::string> Names() const override { return c_.registry_.Names(); }

   private:
    FakeContext& c_;
  };

  std::string name_, node_ = "test-node";
  nlohmann::json config_ = nlohmann::json::object();
  std::filesystem::path data_;
  FakeBus& bus_;
  FakeRegistry& registry_;
  Registry services_;
  std::shared_ptr<spdlog::logger> logger_;
  boost::asio::io_context io_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  esdb::Status failed_;
};

struct Plugin {
  Plugin(const char* path, const char* entry) : path(path) {
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    INFO(dlerror());
    REQUIRE(handle != nullptr);
    auto* version = reinterpret_cast<esdb::ApiVersionFunction*>(dlsym(handle, esdb::kApiVersionSymbol));
    REQUIRE(version != nullptr);
    CHECK(version() == esdb::kSdkApiVersion);
    // BOOST_DLL_ALIAS exports a variable holding the factory's address.
    auto* alias = static_cast<void* const*>(dlsym(handle, entry));
    REQUIRE(alias != nullptr);
    factory = reinterpret_cast<esdb::SubsystemFactory*>(*alias);
  }
  std::unique_ptr<esdb::Subsystem> Create() { return std::unique_ptr<esdb::Subsystem>(factory()); }
  // True when the library really left the process.
  bool Unload() {
    dlclose(handle);
    return dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD) == nullptr;
  }
  std::string path;
  void* handle = nullptr;
  esdb::SubsystemFactory* factory = nullptr;
};

template <class Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace

TEST_CASE("store waits for persistence, recovers, degrades on withdrawal, recovers again; both unload") {
  TempDir dir;
  Plugin persistence_lib(ESDB_PERSISTENCE_PLUGIN, "esdb_create_persistence");
  Plugin store_lib(ESDB_STORE_PLUGIN, "esdb_create_store");
  {
    FakeBus bus;
    FakeRegistry registry(bus);
    std::mutex mu;
    std::vector<esdb::EventPtr> store_events;
    auto watch = bus.Subscribe(esdb::SubscribeOptions{{esdb::topics::kStore}, {}, true, 1024, {}, "test"},
                               [&](const esdb::EventPtr& e) {
                                 std::lock_guard<std::mutex> lock(mu);
                                 store_events.push_back(e);
                               });
    REQUIRE(watch.ok());

    // The store starts first and does not wait.
    FakeContext store_ctx("store", dir.path / "store", bus, registry);
    auto store = store_lib.Create();
    REQUIRE(store->Start(store_ctx).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(store_ctx.ready());
    CHECK(registry.Find(esdb::services::kEventStore) == nullptr);

    FakeContext p_ctx("persistence", dir.path / "persistence", bus, registry);
    auto persistence = persistence_lib.Create();
    REQUIRE(persistence->Start(p_ctx).ok());
    REQUIRE(p_ctx.ready());
    REQUIRE(store_ctx.WaitReady());
    auto es = std::static_pointer_cast<esdb::EventStore>(registry.Find(esdb::services::kEventStore));
    REQUIRE(es);
    // Offered under both names, typed: /2 as EventStore, /1 as its 1.0 base.
    CHECK(registry.FindAs(esdb::services::kEventStore, esdb::EventStore::kInterfaceId).ok());
    CHECK(registry.FindAs(esdb::services::kEventStoreV1, esdb::EventStoreV1::kInterfaceId).ok());
    CHECK(registry.FindAs(esdb::services::kEventStoreV1, esdb::EventStore::kInterfaceId).status().code() ==
          esdb::Code::kFailedPrecondition);
    auto r = es->Append("plugin-stream", esdb::ExpectedVersion::NoStream(), {Ev("hello")});
    REQUIRE(r.ok());
    CHECK(Eventually([&] {
      std::lock_guard<std::mutex> lock(mu);
      return !store_events.empty() && store_events.back()->type == "events_appended";
    }));
    CHECK(std::filesystem::exists(dir.path / "persistence" / "leveldb" / "CURRENT"));

    // Persistence stops: the host withdraws, then stops it.
    REQUIRE(registry.Withdraw("persistence", esdb::services::kStorage).ok());
    REQUIRE(persistence->Stop().ok());
    persistence.reset();
    CHECK(Eventually([&] {
      auto a = es->Append("plugin-stream", esdb::ExpectedVersion::Any(), {Ev("x")});
      return a.status().code() == esdb::Code::kUnavailable &&
             a.status().message().find("persistence") != std::string::npos;
    }));
    CHECK(Eventually([&] { return !store->CheckHealth().healthy; }));

    // A new persistence instance: the store recovers by itself.
    auto persistence2 = persistence_lib.Create();
    FakeContext p_ctx2("persistence", dir.path / "persistence", bus, registry);
    REQUIRE(persistence2->Start(p_ctx2).ok());
    CHECK(Eventually([&] { return es->StreamVersion("plugin-stream").ok(); }));
    CHECK(*es->StreamVersion("plugin-stream") == 0);
    auto r2 = es->Append("plugin-stream", esdb::ExpectedVersion::Exact(0), {Ev("again")});
    REQUIRE(r2.ok());
    CHECK(r2->position == 1);
    CHECK(store->CheckHealth().healthy);

    REQUIRE(store->Stop().ok());
    CHECK(registry.Find(esdb::services::kEventStore) == nullptr);
    CHECK(es->Append("plugin-stream", esdb::ExpectedVersion::Any(), {Ev("x")}).status().code() ==
          esdb::Code::kUnavailable);
    store.reset();
    REQUIRE(registry.Withdraw("persistence", esdb::services::kStorage).ok());
    REQUIRE(persistence2->Stop().ok());
    persistence2.reset();
    es.reset();
    watch->cancel();
  }
  CHECK(store_lib.Unload());
  CHECK(persistence_lib.Unload());
}

#include "host.h"

#include <unistd.h>

#include <condition_variable>
#include <set>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "clock.h"
#include "host_config.h"
#include "log_format.h"

namespace esdb::host {

// The "esdb.admin/1" service: a thin face over the Host.
class HostAdmin : public esdb::AdminService {
 public:
  explicit HostAdmin(Host* host) : host_(host) {}
  Result<std::string> AddPlugin(const nlohmann::json& request, const std::string& correlation_id) override {
    return host_->AddFromRequest(request, correlation_id);
  }
  Result<std::string> RemovePlugin(const std::string& name, const std::string& correlation_id) override {
    return host_->RemoveSubsystem(name, correlation_id);
  }
  Result<std::string> ReloadPlugin(const std::string& name, const std::string& correlation_id) override {
    return host_->ReloadSubsystem(name, correlation_id);
  }
  nlohmann::json ListPlugins() const override { return host_->ListSubsystems(); }

 private:
  Host* host_;
};

namespace {
// How long the shutdown waits for queued control handlers, then for the
// control threads' current ones.
constexpr int kControlDrainMs = 5000;
// How long the shutdown waits for the bus (host subscriptions, delivery
// threads) and for library unloading. Subsystems have their own deadlines
// (stop_timeout_ms) before this.
constexpr int kBusShutdownMs = 2000;

std::shared_ptr<spdlog::sinks::sink> SharedSink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return sink;
}
}  // namespace

Host::Host(HostOptions options) : options_(std::move(options)) {
  if (options_.node.empty()) options_.node = DefaultNodeName();
  if (options_.plugin_dirs.empty()) options_.plugin_dirs = {DefaultPluginDir()};
  SharedSink()->set_formatter(MakeLogFormatter(options_.log_format));
  log_ = MakeLogger("host");
}

Host::~Host() {
  if (!Shutdown()) {
    // Threads are still inside plugin code and use these: never destroyed.
    (void)bus_.release();
    (void)watcher_.release();
  }
}

std::shared_ptr<spdlog::logger> Host::MakeLogger(const std::string& name) const {
  // Not registered in spdlog's registry: plugins share it and must not collide.
  auto logger = std::make_shared<spdlog::logger>(name, SharedSink());
  logger->set_level(spdlog::level::from_str(options_.log_level));
  return logger;
}

void Host::PublishHost(const char* type, nlohmann::json data, bool retain) {
  Event e;
  e.type = type;
  e.topic = topics::kLifecycle;
  e.data = std::move(data);
  PublishOptions opts;
  opts.retain = retain;
  opts.retain_key = "host";
  (void)bus_->Publish(std::move(e), opts, "host");
}

Status Host::Start() {
  if (started_) return Status::FailedPrecondition("host already started");
  started_ = true;
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return Status::IOError("cannot create data directory " + options_.data_dir.string() + ": " + ec.message());

  // ControlSystem first.
  bus_ = std::make_unique<EventBusImpl>(options_.node, log_);
  if (options_.on_bus_created) options_.on_bus_created(*bus_);
  registry_ = std::make_unique<ServiceRegistryImpl>(bus_.get());
  control_plane_ = std::make_shared<ControlPlane>(bus_.get());
  Status s = control_plane_->Start();
  if (!s.ok()) return s;
  // The host's own service; no library to keep alive.
  s = registry_->Provide(services::kControl, ControlService::kInterfaceId,
                         std::static_pointer_cast<esdb::ControlService>(control_plane_), kHostOwner, "host", nullptr);
  if (!s.ok()) return s;
  admin_ = std::make_shared<HostAdmin>(this);
  s = registry_->Provide(services::kAdmin, AdminService::kInterfaceId, std::static_pointer_cast<AdminService>(admin_),
                         kHostOwner, "host", nullptr);
  if (!s.ok()) return s;
  control_plane_->SetHealthSource([this] {
    nlohmann::json out = nlohmann::json::object();
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    for (const auto& [name, sub] : subsystems_) {
      auto h = sub->LastHealth();
      if (!h.is_null()) out[name] = std::move(h);
    }
    return out;
  });
  control_work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      control_io_.get_executor());
  for (int i = 0; i < 2; ++i) {
    control_running_.fetch_add(1);
    control_threads_.emplace_back([this] {
      control_io_.run();
      control_running_.fetch_sub(1);
    });
  }
  std::string plugin_dirs;
  for (const auto& d : options_.plugin_dirs) plugin_dirs += (plugin_dirs.empty() ? "" : ", ") + d.string();
  log_->info("control system started (node {}, data {}, plugins {})", options_.node, options_.data_dir.string(),
             plugin_dirs);

  env_.bus = bus_.get();
  env_.registry = registry_.get();
  env_.reaper = &reaper_;
  env_.plugin_dirs = options_.plugin_dirs;
  env_.node = options_.node;
  env_.data_root = std::filesystem::absolute(options_.data_dir);
  env_.log = log_;
  env_.make_logger = [this](const std::string& name) { return MakeLogger(name); };

  // Manifests: every valid one is expected; the rest are reported and skipped.
  auto files = ListManifestFiles(options_.manifests_dir);
  if (!files.ok()) return files.status();
  std::vector<Manifest> manifests;
  std::vector<std::pair<std::string, Status>> rejected;
  std::map<std::string, std::string> seen;
  for (const auto& f : *files) {
    auto m = ParseManifestFile(f, options_.plugin_dirs, options_.overrides);
    if (!m.ok()) {
      rejected.emplace_back(f.string(), m.status());
      continue;
    }
    if (auto it = seen.find(m->name); it != seen.end()) {
      rejected.emplace_back(f.string(), Status::AlreadyExists(f.string() + ": field 'name': duplicate subsystem name '" +
                                                              m->name + "' (already defined by " + it->second + ")"));
      continue;
    }
    seen[m->name] = m->file.string();
    manifests.push_back(std::move(m.value()));
  }
  nlohmann::json listed = nlohmann::json::array();
  for (const auto& m : manifests) {
    listed.push_back({{"name", m.name}, {"version", m.version}, {"critical", m.critical}});
  }
  PublishHost(event_types::kInitializationStarted,
              {{"node", options_.node},
               {"manifests_dir", options_.manifests_dir.string()},
               {"subsystems", listed},
               {"sequential", options_.sequential_start}},
              true);
  for (const auto& [file, status] : rejected) RejectManifest(file, status, "");

  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    for (auto& m : manifests) {
      auto sub = std::make_shared<ManagedSubsystem>(std::move(m), &env_, control_io_);
      subsystems_[sub->name()] = sub;
      launch_order_.push_back(sub);
    }
  }
  if (options_.sequential_start) {
    LaunchSequentially(0);
  } else {
    for (auto& sub : launch_order_) sub->Launch();  // all at once
  }
  if (options_.watch_manifests) {
    watcher_ = std::make_unique<ManifestWatcher>(
        control_io_, options_.manifests_dir, [this](const std::filesystem::path& f, bool changed) { OnManifestFile(f, changed); });
    Status w = watcher_->Start();
    if (!w.ok()) log_->warn("not watching {} for manifest changes: {}", options_.manifests_dir.string(), w.ToString());
  }
  return Status::OK();
}

void Host::RejectManifest(const std::string& file, const Status& status, const std::string& correlation_id,
                          const std::string& owner) {
  log_->error("manifest rejected: {}", status.message());
  Event e;
  e.type = event_types::kSubsystemFailed;
  e.topic = topics::kLifecycle;
  e.correlation_id = correlation_id;
  e.data = {{"name", std::filesystem::path(file).stem().string()},
            {"manifest", file},
            {"phase", "manifest"},
            {"error", status.message()},
            {"code", CodeName(status.code())},
            {"final", true}};
  if (!owner.empty()) e.data["subsystem"] = owner;
  (void)bus_->Publish(std::move(e), {}, "host");
}

std::shared_ptr<ManagedSubsystem> Host::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(subsystems_mu_);
  auto it = subsystems_.find(name);
  return it == subsystems_.end() ? nullptr : it->second;
}

Result<std::string> Host::AddSubsystem(Manifest manifest, const std::string& correlation_id) {
  const std::string op = correlation_id.empty() ? NewUuid() : correlation_id;
  std::shared_ptr<ManagedSubsystem> sub;
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    if (shut_down_) return Status::Unavailable("the host is stopping");
    if (subsystems_.count(manifest.name)) {
      return Status::AlreadyExists("a subsystem named '" + manifest.name + "' is already loaded");
    }
    sub = std::make_shared<ManagedSubsystem>(manifest, &env_, control_io_);
    subsystems_[manifest.name] = sub;
  }
  Event e;
  e.type = event_types::kSubsystemAdded;
  e.topic = topics::kLifecycle;
  e.correlation_id = op;
  e.data = {{"name", manifest.name},
            {"version", manifest.version},
            {"critical", manifest.critical},
            {"manifest", manifest.file.string()},
            {"library", manifest.library.string()}};
  PublishOptions opts;
  opts.retain = true;
  opts.retain_key = manifest.name;
  (void)bus_->Publish(std::move(e), opts, manifest.name);
  log_->info("adding subsystem {} {}", manifest.name, manifest.version);
  sub->Launch(nullptr, op);
  return op;
}

Result<std::string> Host::AddFromRequest(const nlohmann::json& request, const std::string& correlation_id) {
  if (!request.is_object()) return Status::InvalidArgument("the request must be a JSON object with \"path\" or \"manifest\"");
  for (const auto& [key, value] : request.items()) {
    if (key != "path" && key != "manifest") return Status::InvalidArgument("unknown field '" + key + "' (use \"path\" or \"manifest\")");
  }
  const bool has_path = request.contains("path"), has_inline = request.contains("manifest");
  if (has_path == has_inline) return Status::InvalidArgument("give exactly one of \"path\" or \"manifest\"");
  if (has_path) {
    if (!request["path"].is_string()) return Status::InvalidArgument("field 'path' must be a string");
    // Only metadata here (the caller may be an I/O thread): where the file
    // is and what it is. Reading and parsing it run on a control thread;
    // their outcome is reported on the bus under the operation id.
    auto file = ResolveManifestPath(request["path"].get<std::string>(), ManifestDirs());
    if (!file.ok()) return file.status();
    Status kind = StatManifestFile(*file);  // a FIFO, device, directory or too big: refused now
    if (!kind.ok()) return kind;
    {
      std::lock_guard<std::mutex> lock(subsystems_mu_);
      if (shut_down_) return Status::Unavailable("the host is stopping");
    }
    const std::string op = correlation_id.empty() ? NewUuid() : correlation_id;
    boost::asio::post(control_io_, [this, file = *file, op] { AddFromFile(file, op); });
    return op;
  }
  if (!request["manifest"].is_object()) return Status::InvalidArgument("field 'manifest' must be an object");
  auto m = ParseManifestText(request["manifest"].dump(), "inline manifest", options_.manifests_dir, options_.plugin_dirs,
                             options_.overrides);
  if (!m.ok()) return m.status();
  return AddSubsystem(std::move(m.value()), correlation_id);
}

std::vector<std::filesystem::path> Host::ManifestDirs() const {
  std::vector<std::filesystem::path> dirs = {options_.manifests_dir};
  dirs.insert(dirs.end(), options_.extra_manifest_dirs.begin(), options_.extra_manifest_dirs.end());
  return dirs;
}

void Host::AddFromFile(const std::filesystem::path& file, const std::string& correlation_id) {
  auto m = ParseManifestFile(file, options_.plugin_dirs, options_.overrides, /*follow_links=*/false);
  if (!m.ok()) {
    RejectManifest(file.string(), m.status(), correlation_id);
    return;
  }
  auto added = AddSubsystem(std::move(m.value()), correlation_id);
  if (!added.ok()) RejectManifest(file.string(), added.status(), correlation_id);
}

Result<std::string> Host::RemoveSubsystem(const std::string& name, const std::string& correlation_id) {
  const std::string op = correlation_id.empty() ? NewUuid() : correlation_id;
  std::shared_ptr<ManagedSubsystem> sub;
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    if (shut_down_) return Status::Unavailable("the host is stopping");
    auto it = subsystems_.find(name);
    if (it == subsystems_.end()) return Status::NotFound("no subsystem named '" + name + "'");
    sub = it->second;
    subsystems_.erase(it);
  }
  log_->info("removing subsystem {}", name);
  EventBusImpl* bus = bus_.get();
  Reaper* reaper = &reaper_;
  auto& io = control_io_;
  sub->Shutdown(
      [bus, reaper, &io, name, op, sub, log = log_] {
        // Stopped and let go of; the library goes once the last reference
        // to it does (a consumer may still hold one of its services a
        // moment): removed only once it is unmapped, or the wait is over.
        auto watch = sub->released_library();
        const std::string library = watch.path;
        AwaitUnload(io, reaper, std::move(watch), kBusShutdownMs,
                    [bus, name, op, library, log](const UnloadOutcome& unload) {
                      if (unload.state == "stuck") {
                        log->error("removed subsystem {}: its library {} is still mapped after {} ms: {}", name,
                                   library, unload.waited_ms, unload.reason);
                      }
                      Event e;
                      e.type = event_types::kSubsystemRemoved;
                      e.topic = topics::kLifecycle;
                      e.correlation_id = op;
                      e.data = {{"name", name},
                                {"library", library},
                                {"library_state", unload.state},
                                {"unload_wait_ms", unload.waited_ms}};
                      if (!unload.reason.empty()) e.data["library_note"] = unload.reason;
                      PublishOptions opts;
                      opts.retain = true;
                      opts.retain_key = name;
                      (void)bus->Publish(std::move(e), opts, name);
                    });
      },
      op);
  return op;
}

Result<std::string> Host::ReloadSubsystem(const std::string& name, const std::string& correlation_id) {
  const std::string op = correlation_id.empty() ? NewUuid() : correlation_id;
  auto sub = Find(name);
  if (!sub) return Status::NotFound("no subsystem named '" + name + "'");
  const auto current = sub->Describe();
  Result<Manifest> m = Status::Internal("unset");
  const std::string file = current["manifest"].value("file", "");
  if (!file.empty() && std::filesystem::exists(file)) {
    m = ParseManifestFile(file, options_.plugin_dirs, options_.overrides);  // the manifest may have changed too
  } else {
    m = ParseManifestText(current["manifest"].dump(), "manifest of " + name, options_.manifests_dir, options_.plugin_dirs,
                          {});
    if (m.ok()) m->library = current["manifest"].value("library", "");
  }
  if (!m.ok()) return m.status();
  if (m->name != name) {
    return Status::InvalidArgument(file + ": field 'name': the manifest now says '" + m->name + "', not '" + name + "'");
  }
  log_->info("reloading subsystem {} ({} -> {})", name, current.value("version", ""), m->version);
  auto log = log_;
  sub->Reload(std::move(m.value()), op, [log, name](const Status& s) {
    if (!s.ok()) log->warn("reload of {} did not complete: {}", name, s.ToString());
  });
  return op;
}

nlohmann::json Host::ListSubsystems() const {
  std::lock_guard<std::mutex> lock(subsystems_mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, sub] : subsystems_) out.push_back(sub->Describe());
  return out;
}

void Host::OnManifestFile(const std::filesystem::path& file, bool changed) {
  const auto abs = std::filesystem::absolute(file).lexically_normal();
  std::shared_ptr<ManagedSubsystem> owner;
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    for (const auto& [name, sub] : subsystems_) {
      if (sub->Describe()["manifest"].value("file", "") == abs.string()) owner = sub;
    }
  }
  if (!changed) {
    if (owner) {
      (void)RemoveSubsystem(owner->name(), "");
    } else {
      // A refused file that never loaded: nothing runs from it; status
      // stops listing it.
      Event e;
      e.type = kManifestRemoved;
      e.topic = topics::kLifecycle;
      e.data = {{"name", abs.stem().string()}, {"manifest", abs.string()}};
      (void)bus_->Publish(std::move(e), PublishOptions{}, "host");
    }
    return;
  }
  auto m = ParseManifestFile(abs, options_.plugin_dirs, options_.overrides);
  if (!m.ok()) {
    RejectManifest(abs.string(), m.status(), "", owner ? owner->name() : "");
    return;
  }
  if (owner && owner->name() == m->name) {
    if (owner->Describe()["manifest"] != m->ToJson()) (void)ReloadSubsystem(m->name, "");
    return;
  }
  if (owner) (void)RemoveSubsystem(owner->name(), "");  // the file now names another subsystem
  auto added = AddSubsystem(std::move(m.value()), "");
  if (!added.ok()) RejectManifest(abs.string(), added.status(), "");
}

void Host::RescanManifests() {
  boost::asio::post(control_io_, [this] {
    std::vector<std::filesystem::path> gone;
    {
      std::lock_guard<std::mutex> lock(subsystems_mu_);
      if (shut_down_) return;
      const auto dir = (std::filesystem::absolute(options_.manifests_dir) / "x").lexically_normal().parent_path();
      for (const auto& [name, sub] : subsystems_) {
        const std::filesystem::path file = sub->Describe()["manifest"].value("file", "");
        std::error_code ec;
        if (file.parent_path() == dir && !std::filesystem::exists(file, ec)) gone.push_back(file);
      }
    }
    log_->info("re-reading manifests in {}", options_.manifests_dir.string());
    for (const auto& f : gone) OnManifestFile(f, false);
    auto files = ListManifestFiles(options_.manifests_dir);
    if (!files.ok()) {
      log_->error("cannot re-read manifests: {}", files.status().ToString());
      return;
    }
    for (const auto& f : *files) OnManifestFile(f, true);
  });
}

bool Host::ControlLoopResponsive(int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    if (!started_ || shut_down_ || control_running_.load() == 0) return false;
  }
  // Shared with the handler: it may run after this call gave up waiting.
  struct Probe {
    std::mutex mu;
    std::condition_variable cv;
    bool ran = false;
  };
  auto probe = std::make_shared<Probe>();
  boost::asio::post(control_io_, [probe] {
    std::lock_guard<std::mutex> lock(probe->mu);
    probe->ran = true;
    probe->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(probe->mu);
  return probe->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return probe->ran; });
}

void Host::LaunchSequentially(size_t index) {
  if (index >= launch_order_.size()) return;
  launch_order_[index]->Launch([this, index] { LaunchSequentially(index + 1); });
}

bool Host::Shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu_);
  if (shut_down_ || !started_) return stuck_.empty();
  std::vector<std::shared_ptr<ManagedSubsystem>> all;
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    shut_down_ = true;
    for (auto& [name, sub] : subsystems_) all.push_back(sub);
  }
  if (watcher_) boost::asio::post(control_io_, [this] { watcher_->Stop(); });
  if (control_plane_) control_plane_->SetHealthSource(nullptr);  // it may outlive the host
  PublishHost(event_types::kSystemStopping, {{"subsystems", all.size()}}, true);
  if (!all.empty()) {
    log_->info("stopping {} subsystems", all.size());
    // Shared with the callbacks, which may outlive this call if a stop hangs.
    struct Countdown {
      std::mutex mu;
      std::condition_variable cv;
      std::set<std::string> remaining;
    };
    auto countdown = std::make_shared<Countdown>();
    for (auto& sub : all) countdown->remaining.insert(sub->name());
    for (auto& sub : all) {
      sub->Shutdown([countdown, name = sub->name()] {
        std::lock_guard<std::mutex> lock(countdown->mu);
        countdown->remaining.erase(name);
        countdown->cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(countdown->mu);
    if (!countdown->cv.wait_for(lock, std::chrono::milliseconds(options_.stop_deadline_ms),
                                [&] { return countdown->remaining.empty(); })) {
      for (const auto& name : countdown->remaining) stuck_.push_back("subsystem " + name);
      log_->error("subsystems did not stop within {} ms: {}", options_.stop_deadline_ms,
                  nlohmann::json(countdown->remaining).dump());
    }
  }
  if (control_work_) {
    // Let cancelled timers' handlers run (they hold generations and so
    // libraries), then stop; a bounded wait in case something re-arms.
    control_work_.reset();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kControlDrainMs);
    while (!control_io_.stopped() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    control_io_.stop();
    // A control thread returns once its current handler does; one that
    // does not (blocked in plugin code) is left behind.
    while (std::chrono::steady_clock::now() < deadline + std::chrono::milliseconds(kControlDrainMs) &&
           control_running_.load() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (control_running_.load() > 0) {
      stuck_.push_back(std::to_string(control_running_.load()) + " control thread(s)");
      log_->error("{} control thread(s) did not return; left running", control_running_.load());
      for (auto& t : control_threads_) t.detach();
    } else {
      for (auto& t : control_threads_) t.join();
    }
    control_threads_.clear();
  }
  if (stuck_.empty()) watcher_.reset();  // else a control thread may still use it
  all.clear();
  {
    std::lock_guard<std::mutex> lock(subsystems_mu_);
    subsystems_.clear();
    launch_order_.clear();
  }
  if (registry_) registry_->WithdrawAllOf(kHostOwner);
  if (control_plane_) control_plane_->Stop();
  if (bus_) {
    const auto bus_result = bus_->Shutdown(kBusShutdownMs);
    for (const auto& s : bus_result.stuck) stuck_.push_back("bus subscription " + s);
    if (bus_->abandoned_threads() > 0) stuck_.push_back(std::to_string(bus_->abandoned_threads()) + " bus thread(s)");
  }
  if (!reaper_.Flush(kBusShutdownMs)) {
    stuck_.push_back("library unloading");
    log_->error("unloading plugin libraries did not finish within {} ms", kBusShutdownMs);
  }
  if (stuck_.empty()) {
    log_->info("host stopped");
  } else {
    std::string which;
    for (const auto& s : stuck_) which += (which.empty() ? "" : "; ") + s;
    log_->error("host stopped, leaving stuck parts behind (their libraries stay loaded): {}", which);
  }
  log_->flush();
  return stuck_.empty();
}

}  // namespace esdb::host

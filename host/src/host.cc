#include "host.h"

#include <unistd.h>

#include <condition_variable>
#include <set>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "clock.h"

namespace esdb::host {

namespace {
std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "node1";
  return buf;
}

std::filesystem::path ExecutableDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::current_path() : exe.parent_path();
}

std::shared_ptr<spdlog::sinks::sink> SharedSink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return sink;
}
}  // namespace

Host::Host(HostOptions options) : options_(std::move(options)) {
  if (options_.node.empty()) options_.node = HostName();
  if (options_.plugin_dir.empty()) options_.plugin_dir = ExecutableDir() / "plugins";
  log_ = MakeLogger("host");
}

Host::~Host() { Shutdown(); }

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
  s = registry_->Provide(services::kControl, std::static_pointer_cast<esdb::ControlService>(control_plane_),
                         kHostOwner, "host", nullptr);
  if (!s.ok()) return s;
  control_work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      control_io_.get_executor());
  for (int i = 0; i < 2; ++i) control_threads_.emplace_back([this] { control_io_.run(); });
  log_->info("control system started (node {}, data {}, plugins {})", options_.node, options_.data_dir.string(),
             options_.plugin_dir.string());

  env_.bus = bus_.get();
  env_.registry = registry_.get();
  env_.reaper = &reaper_;
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
    auto m = ParseManifestFile(f, options_.plugin_dir, options_.overrides);
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
  for (const auto& [file, status] : rejected) {
    log_->error("manifest rejected: {}", status.message());
    Event e;
    e.type = event_types::kSubsystemFailed;
    e.topic = topics::kLifecycle;
    e.data = {{"name", std::filesystem::path(file).stem().string()},
              {"manifest", file},
              {"phase", "manifest"},
              {"error", status.message()},
              {"code", CodeName(status.code())},
              {"final", true}};
    (void)bus_->Publish(std::move(e), {}, "host");
  }

  for (auto& m : manifests) {
    subsystems_.push_back(std::make_shared<ManagedSubsystem>(std::move(m), &env_, control_io_));
  }
  if (options_.sequential_start) {
    LaunchSequentially(0);
  } else {
    for (auto& sub : subsystems_) sub->Launch();  // all at once
  }
  return Status::OK();
}

void Host::LaunchSequentially(size_t index) {
  if (index >= subsystems_.size()) return;
  subsystems_[index]->Launch([this, index] { LaunchSequentially(index + 1); });
}

void Host::Shutdown() {
  std::lock_guard<std::mutex> guard(shutdown_mu_);
  if (shut_down_ || !started_) return;
  shut_down_ = true;
  PublishHost(event_types::kSystemStopping, {{"subsystems", subsystems_.size()}}, true);
  if (!subsystems_.empty()) {
    log_->info("stopping {} subsystems", subsystems_.size());
    // Shared with the callbacks, which may outlive this call if a stop hangs.
    struct Countdown {
      std::mutex mu;
      std::condition_variable cv;
      size_t remaining = 0;
    };
    auto countdown = std::make_shared<Countdown>();
    countdown->remaining = subsystems_.size();
    for (auto& sub : subsystems_) {
      sub->Shutdown([countdown] {
        std::lock_guard<std::mutex> lock(countdown->mu);
        --countdown->remaining;
        countdown->cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(countdown->mu);
    if (!countdown->cv.wait_for(lock, std::chrono::milliseconds(options_.stop_deadline_ms),
                                [&] { return countdown->remaining == 0; })) {
      log_->error("{} subsystems did not stop within {} ms", countdown->remaining, options_.stop_deadline_ms);
    }
  }
  if (control_work_) {
    // Let cancelled timers' handlers run (they hold generations and so
    // libraries), then stop; a bounded wait in case something re-arms.
    control_work_.reset();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!control_io_.stopped() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    control_io_.stop();
    for (auto& t : control_threads_) t.join();
    control_threads_.clear();
  }
  subsystems_.clear();
  if (registry_) registry_->WithdrawAllOf(kHostOwner);
  if (control_plane_) control_plane_->Stop();
  if (bus_) bus_->Shutdown();
  reaper_.Flush();
  log_->info("host stopped");
}

}  // namespace esdb::host

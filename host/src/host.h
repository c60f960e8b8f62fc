// The host: ControlSystem (bus + ControlPlane) first, then every subsystem
// from the manifests, all started at once.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "control_plane.h"
#include "event_bus.h"
#include "esdb/admin.h"
#include "managed_subsystem.h"
#include "manifest_watcher.h"
#include "manifest.h"
#include "plugin_library.h"
#include "service_registry.h"

namespace spdlog {
class logger;
}

namespace esdb::host {

struct HostOptions {
  std::filesystem::path manifests_dir = "manifests";  // read at start and watched
  // Further directories from which the admin service may add a manifest by
  // path (not watched). Add-by-path takes only files inside manifests_dir
  // or one of these.
  std::vector<std::filesystem::path> extra_manifest_dirs;
  std::filesystem::path data_dir = "data";
  // The only directories plugin libraries are loaded from (see
  // CheckLibraryFile); bare library names are looked up in them in order.
  // Default: {<dir of the executable>/plugins} (or the installed one).
  std::vector<std::filesystem::path> plugin_dirs;
  std::string node;                  // default: the machine's host name
  std::string log_level = "info";
  // "text" or "json" (log_format.h): how every logger of the host, plugins'
  // included, writes its lines to stderr. Process-wide: the last Host
  // constructed decides.
  std::string log_format = "text";
  ConfigOverrides overrides;
  bool sequential_start = false;     // benchmark mode: one subsystem after another
  bool watch_manifests = true;       // hot add/remove/reload on manifest file changes
  int stop_deadline_ms = 30000;      // for the whole shutdown
  // Called right after the bus exists, before anything is published on it.
  std::function<void(EventBusImpl&)> on_bus_created;
};

class Host {
 public:
  explicit Host(HostOptions options);
  ~Host();  // Shutdown()

  // Starts the ControlSystem, reads the manifests and launches every
  // subsystem. Fails only if the ControlSystem cannot start or the
  // manifest directory cannot be read; bad manifests are reported as
  // subsystem_failed events and skipped.
  Status Start();

  // Stops every subsystem in parallel (each within its stop deadline),
  // releases the libraries and stops the bus. Every wait has a deadline:
  // whatever does not finish in time (a subsystem, a bus handler, a thread,
  // an unload) is logged by name and left behind, its library kept mapped.
  // Returns true if nothing was left behind; otherwise the process should
  // exit without destroying the host (threads still use it). Idempotent.
  bool Shutdown();
  // What the shutdown left behind (empty after a clean one).
  const std::vector<std::string>& stuck() const { return stuck_; }

  // Hot operations (also offered as the "esdb.admin/1" service). Each
  // returns the operation id (= correlation_id of the events it causes).
  Result<std::string> AddSubsystem(Manifest manifest, const std::string& correlation_id);
  Result<std::string> AddFromRequest(const nlohmann::json& request, const std::string& correlation_id);
  Result<std::string> RemoveSubsystem(const std::string& name, const std::string& correlation_id);
  Result<std::string> ReloadSubsystem(const std::string& name, const std::string& correlation_id);
  nlohmann::json ListSubsystems() const;
  // Re-reads the manifests directory as the watcher would see it (SIGHUP):
  // new files are added, changed ones reloaded, subsystems whose file is
  // gone removed, rejected files reported. Runs on a control thread; returns
  // at once. Nothing else is re-read. No-op after Shutdown().
  void RescanManifests();

  // True when the host's own control loop (manifest handling, hot
  // operations, the supervisor's work) ran a posted no-op within
  // `timeout_ms`: what the systemd watchdog is fed on. False before Start()
  // and after Shutdown(). Thread-safe.
  bool ControlLoopResponsive(int timeout_ms);

  EventBusImpl& bus() { return *bus_; }
  ControlPlane& control_plane() { return *control_plane_; }
  Reaper& reaper() { return reaper_; }
  const HostOptions& options() const { return options_; }
  std::shared_ptr<spdlog::logger> logger() const { return log_; }

 private:
  std::shared_ptr<spdlog::logger> MakeLogger(const std::string& name) const;
  void PublishHost(const char* type, nlohmann::json data, bool retain);
  void LaunchSequentially(size_t index);
  void OnManifestFile(const std::filesystem::path& file, bool changed);
  // Reports a manifest file that could not be used (subsystem_failed, phase
  // "manifest"); `owner`: the running subsystem the file belongs to, if any
  // (it keeps running with its previous manifest).
  void RejectManifest(const std::string& file, const Status& status, const std::string& correlation_id,
                      const std::string& owner = "");
  void AddFromFile(const std::filesystem::path& file, const std::string& correlation_id);
  std::vector<std::filesystem::path> ManifestDirs() const;
  std::shared_ptr<ManagedSubsystem> Find(const std::string& name) const;

  HostOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  Reaper reaper_;  // declared first of the runtime parts: destroyed last
  std::unique_ptr<EventBusImpl> bus_;
  std::unique_ptr<ServiceRegistryImpl> registry_;
  std::shared_ptr<ControlPlane> control_plane_;
  boost::asio::io_context control_io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> control_work_;
  std::vector<std::thread> control_threads_;
  std::atomic<int> control_running_{0};
  SupervisorEnv env_;
  mutable std::mutex subsystems_mu_;
  std::map<std::string, std::shared_ptr<ManagedSubsystem>> subsystems_;
  std::vector<std::shared_ptr<ManagedSubsystem>> launch_order_;  // initial set, manifest order
  std::shared_ptr<esdb::AdminService> admin_;
  std::unique_ptr<ManifestWatcher> watcher_;
  std::mutex shutdown_mu_;
  bool started_ = false;
  bool shut_down_ = false;
  std::vector<std::string> stuck_;  // see stuck()
};

}  // namespace esdb::host

// One subsystem under supervision (one_for_one): load its library, create
// and start instances ("generations"), watch health, restart with backoff
// within the manifest's intensity, stop with deadlines. All decisions run on
// one strand of the host's control io_context; calls into plugin code run
// on the generation's LifecycleWorker so a hung plugin never blocks the
// supervisor.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "library_unload.h"
#include "lifecycle_worker.h"
#include "manifest.h"
#include "plugin_context.h"
#include "plugin_library.h"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace esdb::host {

// What every ManagedSubsystem shares.
struct SupervisorEnv {
  EventBusImpl* bus = nullptr;
  ServiceRegistryImpl* registry = nullptr;
  Reaper* reaper = nullptr;
  std::vector<std::filesystem::path> plugin_dirs;  // where libraries may be loaded from
  std::string node;
  std::filesystem::path data_root;
  std::shared_ptr<spdlog::logger> log;                 // the host's logger
  std::function<std::shared_ptr<spdlog::logger>(const std::string&)> make_logger;
};

class ManagedSubsystem : public std::enable_shared_from_this<ManagedSubsystem> {
 public:
  enum class State { kIdle, kStarting, kReady, kRestarting, kFailed, kStopping, kStopped };

  ManagedSubsystem(Manifest manifest, SupervisorEnv* env, boost::asio::io_context& control_io);
  ~ManagedSubsystem();

  // Starts the first generation. Async; progress is reported on the bus.
  // `on_settled` (optional) runs once, when it first becomes ready or fails.
  void Launch(std::function<void()> on_settled = nullptr, std::string correlation_id = "");
  // Stops the current generation and releases the library; `done` runs on
  // the control strand when finished (or abandoned after the deadline).
  void Shutdown(std::function<void()> done, std::string correlation_id = "");
  // The library Shutdown() let go of, to follow its unloading (AwaitUnload).
  // Read it from `done`, or after it ran.
  const LibraryWatch& released_library() const { return released_library_; }
  // Replaces the running build with `manifest`'s library (a fresh,
  // content-addressed copy, so dlopen maps it anew). "overlap": the new
  // generation starts while the old one serves, takes over its services,
  // then the old one is drained; "stop_first": the old one stops first (for
  // subsystems that own an exclusive resource). A new build that fails
  // leaves (or brings back) the old one. `done` runs on the strand.
  void Reload(Manifest manifest, std::string correlation_id, std::function<void(const Status&)> done);

  // A snapshot for ListPlugins. Thread-safe.
  nlohmann::json Describe() const;
  // The current instance's latest health check: {"healthy", "message",
  // "details", "at_us"}; null before its first check. Thread-safe.
  nlohmann::json LastHealth() const;
  const std::string& name() const { return name_; }

 private:
  struct Generation;

  void StartAttempt();
  std::shared_ptr<Generation> NewGeneration(const Manifest& manifest, const LibraryRef& library);
  void RunStart(const std::shared_ptr<Generation>& gen);
  void StartCandidate();
  // A reload that cannot begin (stopping, another in progress, the library
  // cannot be copied): subsystem_failed (phase reload, reload_phase begin)
  // under `correlation_id`, then done(why). On strand_.
  void ReloadRefused(const Status& why, const std::string& correlation_id, std::function<void(const Status&)> done);
  void PromoteCandidate(const nlohmann::json& details);
  void ReloadFailed(const std::string& phase, const Status& why);
  void FinishReload(const Status& status);
  void UpdateInfo();
  void OnStartReturned(const std::shared_ptr<Generation>& gen, const Status& status, const std::string& phase);
  void OnReport(uint64_t gen_id, bool ready, const nlohmann::json& details, const Status& why);
  void Failure(const std::string& phase, const Status& why, bool give_up);
  bool AllowRestart(int* delay_ms);
  // Stops `gen` on its worker (bounded by the stop timeout), then runs
  // `done` on strand_. Counted in stops_in_flight_ until then.
  void StopGeneration(std::shared_ptr<Generation> gen, std::function<void()> done);
  // Runs `f` on strand_ once no generation is being stopped any more (at
  // once if none is): Shutdown() finishes only then, so the host never
  // exits, or lets go of the library, under a Stop() still running (one a
  // failure or a reload began).
  void WhenNoStopsInFlight(std::function<void()> f);
  void ScheduleHealthCheck();
  void OnHealth(uint64_t gen_id, bool healthy, const std::string& message, const nlohmann::json& details);
  void Publish(const char* type, nlohmann::json data, bool retain = true);
  void SetLastHealth(nlohmann::json health);
  void Settled();

  const std::string name_;
  Manifest manifest_;
  SupervisorEnv* env_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer start_timer_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer health_deadline_;
  boost::asio::steady_timer reload_timer_;

  State state_ = State::kIdle;
  LibraryRef library_;
  LibraryWatch released_library_;  // set by Shutdown() as it lets go of library_
  std::shared_ptr<Generation> current_;
  int stops_in_flight_ = 0;                           // StopGeneration() calls not done yet
  std::vector<std::function<void()>> after_stops_;  // WhenNoStopsInFlight()'s, in order
  int attempts_ = 0;
  int restarts_ = 0;
  std::deque<std::chrono::steady_clock::time_point> restart_times_;
  bool health_in_flight_ = false;
  int health_failures_ = 0;
  bool last_healthy_ = true;
  std::chrono::steady_clock::time_point attempt_started_;
  std::function<void()> on_settled_;
  std::string correlation_id_;  // of the operation in progress; stamped on its events

  // Reload in progress.
  std::shared_ptr<Generation> candidate_;
  LibraryRef candidate_library_;
  Manifest candidate_manifest_;
  std::function<void(const Status&)> reload_done_;
  std::string old_version_;
  int generation_ = 1;  // build generation: +1 per successful reload

  mutable std::mutex info_mu_;
  nlohmann::json info_;  // what Describe() returns, refreshed on the strand
  nlohmann::json last_health_;  // what LastHealth() returns, set on the strand
};

}  // namespace esdb::host

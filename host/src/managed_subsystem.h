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
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

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
  void Launch(std::function<void()> on_settled = nullptr);
  // Stops the current generation and releases the library; `done` runs on
  // the control strand when finished (or abandoned after the deadline).
  void Shutdown(std::function<void()> done);

  const Manifest& manifest() const { return manifest_; }

 private:
  struct Generation;

  void StartAttempt();
  void OnStartReturned(const std::shared_ptr<Generation>& gen, const Status& status, const std::string& phase);
  void OnReport(uint64_t gen_id, bool ready, const nlohmann::json& details, const Status& why);
  void Failure(const std::string& phase, const Status& why, bool give_up);
  bool AllowRestart(int* delay_ms);
  void StopGeneration(std::shared_ptr<Generation> gen, std::function<void()> done);
  void ScheduleHealthCheck();
  void OnHealth(uint64_t gen_id, bool healthy, const std::string& message, const nlohmann::json& details);
  void Publish(const char* type, nlohmann::json data, bool retain = true);
  void Settled();

  Manifest manifest_;
  SupervisorEnv* env_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer start_timer_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer health_deadline_;

  State state_ = State::kIdle;
  LibraryRef library_;
  std::shared_ptr<Generation> current_;
  int attempts_ = 0;
  int restarts_ = 0;
  std::deque<std::chrono::steady_clock::time_point> restart_times_;
  bool health_in_flight_ = false;
  int health_failures_ = 0;
  bool last_healthy_ = true;
  std::chrono::steady_clock::time_point attempt_started_;
  std::function<void()> on_settled_;
};

}  // namespace esdb::host

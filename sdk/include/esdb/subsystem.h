// The plugin contract: a Subsystem and the Context the host gives it.
//
// Lifecycle (driven by the host, one subsystem at a time never overlaps with
// itself; different subsystems run fully in parallel):
//   factory() -> Start(ctx) ... ctx.ReportReady() ... CheckHealth()* ... Stop() -> delete
// Start() may block (it runs on a host lifecycle thread, in parallel with the
// other subsystems' starts) or return at once and report later from any
// thread. Failing to report within the manifest's start_timeout_ms counts as
// a failure. After a failure the supervisor stops the instance, destroys it
// and creates a fresh one from the same library (one_for_one).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "esdb/bus.h"
#include "esdb/services.h"
#include "esdb/status.h"

namespace spdlog {
class logger;
}

namespace esdb {

// A subsystem's answer to a health check.
struct Health {
  bool healthy = true;    // false counts toward the manifest's unhealthy threshold
  std::string message;    // why, when unhealthy; shown in status
  nlohmann::json details = nlohmann::json::object();  // free-form; status shows the latest check's
};

// What the host gives a subsystem. One per subsystem instance; valid from
// Start() until the instance is destroyed. Thread-safe.
class Context {
 public:
  virtual ~Context() = default;

  // The manifest's name, e.g. "persistence".
  virtual const std::string& Name() const = 0;
  // This host's node name (--node; default: the host name).
  virtual const std::string& Node() const = 0;
  // The manifest's "config" object, untouched (an empty object by default).
  virtual const nlohmann::json& Config() const = 0;
  // A directory of this subsystem's own, "<--data>/<name>", created by the host.
  virtual const std::filesystem::path& DataDir() const = 0;
  // A logger created by the host. Plugins never create or register loggers
  // by name (spdlog's registry is shared with the host).
  virtual std::shared_ptr<spdlog::logger> Logger() const = 0;
  // This subsystem's own io_context, run by `threads` host threads (manifest,
  // default 1) through the plugin's exported esdb_sdk_run_io (so the loop
  // runs in the plugin's own copy of Asio). The host runs it until after
  // Stop() and destroys it, with any handlers still queued, before the
  // library is released. Do not call run()/stop()/restart() on it.
  virtual boost::asio::io_context& Io() = 0;
  // The event bus; Publish() stamps this subsystem's name as the source.
  virtual EventBus& Bus() = 0;
  // The service registry; Provide() records this subsystem as the provider.
  virtual ServiceRegistry& Services() = 0;

  // Says this subsystem is ready (publishes subsystem_ready with `details`).
  // Call once per Start(); later calls are ignored. Any thread.
  virtual void ReportReady(const nlohmann::json& details) = 0;
  void ReportReady() { ReportReady(nlohmann::json::object()); }
  // Says this subsystem has failed: before ready, the start failed; after,
  // it is broken. The supervisor restarts it (within the restart policy).
  virtual void ReportFailed(const Status& why) = 0;
};

// Implemented by every plugin.
class Subsystem {
 public:
  virtual ~Subsystem() = default;

  // Starts the subsystem. A non-ok Status (or an exception, which the host
  // catches) is a failed start. Must lead to ctx.ReportReady() or
  // ctx.ReportFailed() eventually, now or later.
  virtual Status Start(Context& ctx) = 0;

  // Stops the subsystem: stop admitting work, cancel timers and sockets,
  // cancel bus subscriptions, join threads of its own. When it returns,
  // nothing of the plugin may still run except handlers already queued on
  // ctx.Io() (the host drains those). Bounded by the manifest's
  // stop_timeout_ms; an overrun pins the library in memory. Called once,
  // also after a failed Start.
  virtual Status Stop() = 0;

  // Periodic health check (manifest health.interval_ms), bounded by
  // health.timeout_ms. Default: healthy. Called from a host thread.
  virtual Health CheckHealth() { return {}; }
};

}  // namespace esdb

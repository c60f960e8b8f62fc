// The host's admin service ("esdb.admin/1"): add, remove and reload
// subsystems in a running host. Provided by the host before any plugin
// starts. Thread-safe.
//
// Every operation is asynchronous: the call validates the request, starts
// the work and returns an operation id, which is the correlation_id of the
// lifecycle events the operation causes. Completion is on the bus:
//   add    -> subsystem_added, then subsystem_starting / subsystem_ready or subsystem_failed
//   remove -> subsystem_stopping, subsystem_stopped, subsystem_removed
//   reload -> subsystem_reloaded {old_version, new_version, generation}, or
//             subsystem_failed {phase: "reload"} with the old one still serving
// so a caller may wait for the event with its correlation_id, or not (a
// gateway reloading itself cannot wait for its own replacement).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb {

class AdminService {
 public:
  virtual ~AdminService() = default;

  // request: {"path": "<manifest file>"} (relative paths are resolved
  // against the manifests directory) or {"manifest": {...inline...}}.
  // Errors: InvalidArgument (bad manifest, naming file and field),
  // AlreadyExists (a subsystem of that name is loaded).
  virtual Result<std::string> AddPlugin(const nlohmann::json& request, const std::string& correlation_id) = 0;

  // Stops admitting work, stops, drains and releases the library.
  // NotFound if no such subsystem.
  virtual Result<std::string> RemovePlugin(const std::string& name, const std::string& correlation_id) = 0;

  // Re-reads the manifest file and loads the library from a
  // content-addressed copy, starts the new build, switches traffic and
  // drains the old one. A new build that fails leaves the old one serving.
  virtual Result<std::string> ReloadPlugin(const std::string& name, const std::string& correlation_id) = 0;

  // [{"name", "version", "state", "library", "loaded_from", "generation",
  //   "manifest": {...}, "critical", "unloadable"}]
  virtual nlohmann::json ListPlugins() const = 0;
};

namespace services {
inline constexpr const char* kAdmin = "esdb.admin/1";
}  // namespace services

}  // namespace esdb

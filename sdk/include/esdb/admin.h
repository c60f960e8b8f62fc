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
  static constexpr const char* kInterfaceId = "esdb.admin/1";  // services.h
  virtual ~AdminService() = default;

  // request: {"path": "<manifest file>"} or {"manifest": {...inline...}}.
  //
  // A path (relative: under the manifests directory) must resolve, symlinks
  // included, to a regular file of at most 1 MiB inside the manifests
  // directory or one of the host's further manifest directories
  // (--manifest-dir). The call looks only at the path and the file's
  // metadata (it never opens or reads the file, so it does not block and is
  // fine on an I/O thread): InvalidArgument (outside, not a regular file,
  // too big), NotFound (no such file). The file is then read and parsed on
  // a host thread; a manifest refused then (malformed, bad field, a name
  // already loaded) ends the operation with subsystem_failed {phase:
  // "manifest"} carrying the operation id. Error texts never quote the
  // file's content.
  //
  // An inline manifest is checked at once: InvalidArgument (bad manifest,
  // naming the field), AlreadyExists (a subsystem of that name is loaded).
  //
  // Either way the library is checked before it is loaded (the plugin
  // directories, permissions, an optional sha256 pin; see README.md
  // "Where libraries load from"); a refused one ends the operation with
  // subsystem_failed {phase: "load"}.
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

// The host's control service ("esdb.control/1"): the ControlPlane's view of
// every subsystem, for the gateway's status and readiness routes and for
// plugins that want the whole picture at once. Provided by the host before
// any plugin starts. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

namespace esdb {

class ControlService {
 public:
  static constexpr const char* kInterfaceId = "esdb.control/1";  // services.h
  virtual ~ControlService() = default;

  // True between system_ready and the next system_degraded.
  virtual bool SystemReady() const = 0;

  // {"node", "system_ready", "expected": [names], "not_ready": [names],
  //  "subsystems": {name: {"state", "since_us", "restarts", "critical",
  //  "version", "error", "health": {the latest check: "healthy", "message",
  //  "details", "at_us"}, "details": {...}}},
  //  "rejected_manifests": {file: {"error", "code", "at_us", "subsystem"?
  //  (the running subsystem the file belongs to; it keeps its previous
  //  manifest)}} until the file is added or its subsystem reloaded or removed}
  virtual nlohmann::json Status() const = 0;
};

}  // namespace esdb

// The ControlPlane: watches lifecycle events and keeps every subsystem's
// state; publishes system_ready when every expected (critical) subsystem is
// ready and system_degraded when one of them stops being ready or is given
// up on. Event-driven: it learns every state from the bus, so it can be
// restarted or observed by anyone the same way. The one exception is the
// latest health check of each subsystem (a check that changes nothing
// publishes no event): that it reads from the host (SetHealthSource).
//
// Expected set: the critical subsystems named by initialization_started or
// added later by subsystem_added; a subsystem whose manifest or library
// could not be loaded (subsystem_failed with phase "manifest"/"load") and a
// removed one (subsystem_removed) leave it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "esdb/control.h"
#include "event_bus.h"

namespace esdb::host {

// Published by the host (topic lifecycle, source "host") when a manifest
// file that was refused and never loaded is deleted: data {"name" (the
// file's stem), "manifest" (the file)}. The ControlPlane then drops it from
// status' rejected_manifests.
inline constexpr const char* kManifestRemoved = "manifest_removed";

class ControlPlane : public esdb::ControlService {
 public:
  explicit ControlPlane(EventBusImpl* bus);
  ~ControlPlane() override;

  // Subscribes to the lifecycle topic. Call once, before subsystems start.
  esdb::Status Start();
  void Stop();

  bool SystemReady() const override;
  nlohmann::json Status() const override;

  // Where Status() takes each subsystem's latest health check from (the
  // supervisor's; a check that changes nothing publishes no event): a
  // function returning {name: {"healthy", "message", "details", "at_us"}}.
  // Without one (or for a name it lacks), `health` is the last
  // health_changed event's. Set to null before the source goes away.
  void SetHealthSource(std::function<nlohmann::json()> source);

  // Blocks until system_ready has been published or `timeout_ms` passed.
  bool WaitSystemReady(int timeout_ms) const;
  // True once every expected subsystem is ready or finally failed.
  bool Settled() const;

 private:
  struct SubsystemState {
    std::string state = "pending";
    int64_t since_us = 0;
    int restarts = 0;
    bool critical = true;
    std::string version;
    std::string error;
    std::string phase;
    nlohmann::json health = nlohmann::json::object();
    std::deque<nlohmann::json> health_history;  // last kHealthHistory transitions
    int generation = 1;
    nlohmann::json details = nlohmann::json::object();
  };

  static constexpr size_t kHealthHistory = 20;
  void OnEvent(const EventPtr& e);
  void Evaluate(const Event& cause);  // with mu_ held
  void PublishSystem(const char* type, nlohmann::json data, const Event& cause);

  EventBusImpl* bus_;
  Subscription subscription_;
  mutable std::mutex source_mu_;  // not held with mu_
  std::function<nlohmann::json()> health_source_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool initialized_ = false;
  bool ready_ = false;
  bool degraded_ = false;
  bool stopping_ = false;
  int64_t init_started_us_ = 0;
  std::set<std::string> expected_;
  std::map<std::string, SubsystemState> subsystems_;
  // file -> {"error", "code", "at_us", "subsystem"? (a running subsystem
  // the file belongs to: it keeps its previous manifest)}; an entry goes when
  // the file is added, or its subsystem reloaded or removed.
  std::map<std::string, nlohmann::json> rejected_manifests_;
};

}  // namespace esdb::host

// Bus events: what subsystems tell each other. Immutable once published and
// shared by every subscriber (no per-subscriber copy).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace esdb {

// Topic names used by the host and the built-in subsystems. Third-party
// plugins may publish on their own topics; names starting with "esdb." or
// equal to one of these are reserved for their documented meaning.
namespace topics {
inline constexpr const char* kLifecycle = "lifecycle";  // subsystem_* and system_* events
inline constexpr const char* kCluster = "cluster";      // node_joined, cluster_formed, leader_elected...
inline constexpr const char* kServices = "services";    // service_provided, service_withdrawn
inline constexpr const char* kStore = "store";          // events_appended, stream_deleted...
}  // namespace topics

// Event type names the host publishes (topic lifecycle unless noted).
namespace event_types {
inline constexpr const char* kInitializationStarted = "initialization_started";
inline constexpr const char* kSubsystemAdded = "subsystem_added";
inline constexpr const char* kSubsystemStarting = "subsystem_starting";
inline constexpr const char* kSubsystemReady = "subsystem_ready";
inline constexpr const char* kSubsystemFailed = "subsystem_failed";
inline constexpr const char* kSubsystemRestarting = "subsystem_restarting";
inline constexpr const char* kSubsystemStopping = "subsystem_stopping";
inline constexpr const char* kSubsystemStopped = "subsystem_stopped";
inline constexpr const char* kSubsystemRemoved = "subsystem_removed";
inline constexpr const char* kSubsystemReloaded = "subsystem_reloaded";
inline constexpr const char* kHealthChanged = "health_changed";
inline constexpr const char* kSystemReady = "system_ready";
inline constexpr const char* kSystemDegraded = "system_degraded";
inline constexpr const char* kSystemStopping = "system_stopping";  // planned shutdown began
inline constexpr const char* kServiceProvided = "service_provided";    // topic services
inline constexpr const char* kServiceWithdrawn = "service_withdrawn";  // topic services
}  // namespace event_types

// One event on the bus. Fields the publisher leaves empty are filled by the
// bus at publish time (id, node, timestamp; source from the publishing
// subsystem's context).
struct Event {
  std::string id;              // UUID v4; assigned by the bus when empty
  std::string type;            // what happened, e.g. "subsystem_ready"; required
  std::string topic;           // routing key, e.g. "lifecycle"; required
  std::string source;          // publishing subsystem; the host stamps its events about a subsystem with
                               // that subsystem's name, others "host" or "control_plane" (README.md)
  std::string node;            // node name of the publishing host
  int64_t timestamp_us = 0;    // µs since the Unix epoch; assigned when 0
  std::string correlation_id;  // the request or flow this belongs to; may be empty
  std::string causation_id;    // id of the event that caused this one; may be empty
  nlohmann::json data = nlohmann::json::object();  // type-specific payload
};

// Published events are shared and immutable.
using EventPtr = std::shared_ptr<const Event>;

// The canonical JSON form of an event (what --print-events and the gateway show).
inline nlohmann::json EventToJson(const Event& e) {
  return nlohmann::json{{"id", e.id},
                        {"type", e.type},
                        {"topic", e.topic},
                        {"source", e.source},
                        {"node", e.node},
                        {"timestamp_us", e.timestamp_us},
                        {"correlation_id", e.correlation_id},
                        {"causation_id", e.causation_id},
                        {"data", e.data}};
}

}  // namespace esdb

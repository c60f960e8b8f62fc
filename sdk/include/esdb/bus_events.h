// The bus events the built-in plugins publish and others rely on: their
// topics, type names and payloads, as constants and small typed decoders
// (and, for the publishers, encoders), so a plugin author reads the payload
// here instead of in another plugin's source. The host's own lifecycle and
// service events are named in event.h; their payload fields are in
// README.md ("Readiness and lifecycle events").
//
// Decoders check the event's type and every field they return, and answer
// InvalidArgument naming the event type and the field that is wrong; fields
// a decoder does not return are ignored, so payloads may grow. Plain
// functions; thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/bus.h"
#include "esdb/event.h"
#include "esdb/status.h"

namespace esdb {

namespace topics {
inline constexpr const char* kGateway = "gateway";            // gateway_listening, circuit_*...
inline constexpr const char* kNotification = "notification";  // stored_state_skipped
inline constexpr const char* kGrpc = "grpc";                  // grpc_listening, grpc_stopped
}  // namespace topics

namespace event_types {
// topic store, by the store plugin
inline constexpr const char* kEventsAppended = "events_appended";  // once per durable commit group
inline constexpr const char* kStreamDeleted = "stream_deleted";
inline constexpr const char* kScavengeCompleted = "scavenge_completed";
// topic cluster, by the cluster plugin (retained)
inline constexpr const char* kNodeJoined = "node_joined";
inline constexpr const char* kNodeLeft = "node_left";
inline constexpr const char* kClusterFormed = "cluster_formed";
inline constexpr const char* kLeaderElected = "leader_elected";
// topic gateway, by the gateway plugin
inline constexpr const char* kGatewayListening = "gateway_listening";  // retained
inline constexpr const char* kGatewayStopped = "gateway_stopped";
inline constexpr const char* kCircuitOpened = "circuit_opened";  // retained per circuit
inline constexpr const char* kCircuitHalfOpen = "circuit_half_open";
inline constexpr const char* kCircuitClosed = "circuit_closed";
// topic grpc, by the grpc plugin (retained, one key for both)
inline constexpr const char* kGrpcListening = "grpc_listening";
inline constexpr const char* kGrpcStopped = "grpc_stopped";
// topic notification, by the notification plugin
inline constexpr const char* kStoredStateSkipped = "stored_state_skipped";
}  // namespace event_types

namespace bus_detail {
// The field `key` of `data` as T, or InvalidArgument naming it.
template <class T>
Status Field(const nlohmann::json& data, std::string_view type, const char* key, T* out, bool required = true) {
  auto it = data.find(key);
  if (it == data.end()) {
    return required ? Status::InvalidArgument(std::string(type) + ": field '" + key + "' is missing") : Status::OK();
  }
  bool fits;
  if constexpr (std::is_same_v<T, std::string>) fits = it->is_string();
  else if constexpr (std::is_same_v<T, bool>) fits = it->is_boolean();
  else if constexpr (std::is_unsigned_v<T>) fits = it->is_number_unsigned() || (it->is_number_integer() && it->template get<int64_t>() >= 0);
  else fits = it->is_number_integer();
  if (!fits) return Status::InvalidArgument(std::string(type) + ": field '" + key + "' has the wrong type");
  *out = it->template get<T>();
  return Status::OK();
}
inline Status Expect(const Event& e, const char* type) {
  if (e.type != type) return Status::InvalidArgument(std::string("expected a ") + type + " event, got " + e.type);
  if (!e.data.is_object()) return Status::InvalidArgument(std::string(type) + ": data is not an object");
  return Status::OK();
}
}  // namespace bus_detail

#define ESDB_BUS_FIELD_(...)                \
  do {                                      \
    Status s_ = bus_detail::Field(__VA_ARGS__); \
    if (!s_.ok()) return s_;                \
  } while (0)

// --- store ------------------------------------------------------------------

// One append of a commit group.
struct AppendedRange {
  std::string stream;
  int64_t first_version = 0;
  int64_t last_version = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  std::string correlation_id;  // from the append's CallContext; empty = none
  std::string causation_id;
};

// events_appended: published once per commit group with at least one
// committed append, after the group is written (and synced, unless the
// store's durability is "async") and its callers answered. Positions
// first..last are readable when it arrives. Each append's ids come from the
// caller's CallContext; the event's own correlation_id/causation_id are set
// when every append of the group shares them.
struct EventsAppended {
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  uint64_t count = 0;                  // events in the group
  std::vector<AppendedRange> appends;  // in commit order
};

inline nlohmann::json EncodeEventsAppended(const EventsAppended& v) {
  nlohmann::json appends = nlohmann::json::array();
  for (const AppendedRange& a : v.appends) {
    nlohmann::json j = {{"stream", a.stream},
                        {"first_version", a.first_version},
                        {"last_version", a.last_version},
                        {"first_position", a.first_position},
                        {"last_position", a.last_position}};
    if (!a.correlation_id.empty()) j["correlation_id"] = a.correlation_id;
    if (!a.causation_id.empty()) j["causation_id"] = a.causation_id;
    appends.push_back(std::move(j));
  }
  return {{"first_position", v.first_position},
          {"last_position", v.last_position},
          {"count", v.count},
          {"appends", std::move(appends)}};
}

inline Result<EventsAppended> DecodeEventsAppended(const Event& e) {
  const char* t = event_types::kEventsAppended;
  if (Status s = bus_detail::Expect(e, t); !s.ok()) return s;
  EventsAppended v;
  ESDB_BUS_FIELD_(e.data, t, "first_position", &v.first_position);
  ESDB_BUS_FIELD_(e.data, t, "last_position", &v.last_position);
  ESDB_BUS_FIELD_(e.data, t, "count", &v.count, false);
  auto appends = e.data.find("appends");
  if (appends != e.data.end()) {
    if (!appends->is_array()) return Status::InvalidArgument(std::string(t) + ": field 'appends' is not an array");
    for (const nlohmann::json& j : *appends) {
      if (!j.is_object()) return Status::InvalidArgument(std::string(t) + ": an entry of 'appends' is not an object");
      AppendedRange a;
      ESDB_BUS_FIELD_(j, t, "stream", &a.stream);
      ESDB_BUS_FIELD_(j, t, "first_version", &a.first_version, false);
      ESDB_BUS_FIELD_(j, t, "last_version", &a.last_version, false);
      ESDB_BUS_FIELD_(j, t, "first_position", &a.first_position, false);
      ESDB_BUS_FIELD_(j, t, "last_position", &a.last_position, false);
      ESDB_BUS_FIELD_(j, t, "correlation_id", &a.correlation_id, false);
      ESDB_BUS_FIELD_(j, t, "causation_id", &a.causation_id, false);
      v.appends.push_back(std::move(a));
    }
  }
  return v;
}

// stream_deleted: a soft delete (hard=false) or tombstone, written like an
// append; the event's correlation_id/causation_id are the delete's
// CallContext.
struct StreamDeleted {
  std::string stream;
  bool hard = false;
};

inline nlohmann::json EncodeStreamDeleted(const StreamDeleted& v) { return {{"stream", v.stream}, {"hard", v.hard}}; }

inline Result<StreamDeleted> DecodeStreamDeleted(const Event& e) {
  const char* t = event_types::kStreamDeleted;
  if (Status s = bus_detail::Expect(e, t); !s.ok()) return s;
  StreamDeleted v;
  ESDB_BUS_FIELD_(e.data, t, "stream", &v.stream);
  ESDB_BUS_FIELD_(e.data, t, "hard", &v.hard, false);
  return v;
}

// --- services (published by the host's registry, services.h) ---------------

// service_provided / service_withdrawn.
struct ServiceChange {
  std::string name;      // the service name, e.g. "esdb.event_store/2"
  std::string provider;  // the providing subsystem, or "host"
  bool provided = false;  // false: withdrawn
};

inline Result<ServiceChange> DecodeServiceChange(const Event& e) {
  const bool provided = e.type == event_types::kServiceProvided;
  const char* t = provided ? event_types::kServiceProvided : event_types::kServiceWithdrawn;
  if (Status s = bus_detail::Expect(e, t); !s.ok()) return s;
  ServiceChange v;
  v.provided = provided;
  ESDB_BUS_FIELD_(e.data, t, "name", &v.name);
  ESDB_BUS_FIELD_(e.data, t, "provider", &v.provider, false);
  return v;
}

// Calls `on_change` for every service_provided / service_withdrawn of the
// services in `names` (every service when empty), the retained ones first,
// so a consumer learns of a provider however long ago it came up. Runs on a
// bus thread: keep it short or post elsewhere. Ends when the returned
// Subscription is cancelled or destroyed. `subscriber_name` shows in bus
// statistics.
inline Result<Subscription> WatchServices(EventBus& bus, std::string subscriber_name, std::vector<std::string> names,
                                          std::function<void(const ServiceChange&)> on_change) {
  SubscribeOptions options;
  options.topics = {topics::kServices};
  options.types = {event_types::kServiceProvided, event_types::kServiceWithdrawn};
  options.replay_retained = true;
  options.name = std::move(subscriber_name);
  return bus.Subscribe(options, [names = std::move(names), on_change = std::move(on_change)](const EventPtr& e) {
    Result<ServiceChange> change = DecodeServiceChange(*e);
    if (!change.ok()) return;
    if (!names.empty() && std::find(names.begin(), names.end(), change->name) == names.end()) return;
    on_change(*change);
  });
}

// --- gateway ----------------------------------------------------------------

// gateway_listening, grpc_listening: the address and the bound port (useful
// with port 0).
struct Listening {
  std::string address;
  uint16_t port = 0;
};
using GatewayListening = Listening;

// `e` must be of type `type` (kGatewayListening or kGrpcListening).
inline Result<Listening> DecodeListening(const Event& e, const char* type) {
  const char* t = type;
  if (Status s = bus_detail::Expect(e, t); !s.ok()) return s;
  Listening v;
  ESDB_BUS_FIELD_(e.data, t, "address", &v.address);
  uint64_t port = 0;
  ESDB_BUS_FIELD_(e.data, t, "port", &port);
  if (port == 0 || port > 65535) return Status::InvalidArgument(std::string(t) + ": field 'port' is out of range");
  v.port = static_cast<uint16_t>(port);
  return v;
}

inline Result<GatewayListening> DecodeGatewayListening(const Event& e) {
  return DecodeListening(e, event_types::kGatewayListening);
}

// --- cluster ----------------------------------------------------------------

// node_joined / node_left: {"node"}, node_joined in cluster mode also
// "http" and "grpc" (where the node's gateway and grpc plugin listen, "host:port";
// empty while they do not; node_joined is published again when they change);
// cluster_formed: {"members", "size"};
// leader_elected: {"leader", "term"}, in cluster mode also "http" (the
// leader's HTTP address, empty before its gateway listens) and "sequence"
// (the log entry that granted the term), which this decoder does not read.
// One struct for the four.
struct ClusterChange {
  std::string type;                  // which of the four
  std::string node;                  // node_joined, node_left
  std::string http;                  // node_joined ("" when absent)
  std::string grpc;                  // node_joined ("" when absent)
  std::vector<std::string> members;  // cluster_formed
  std::string leader;                // leader_elected
  int64_t term = 0;                  // leader_elected
};

inline Result<ClusterChange> DecodeClusterChange(const Event& e) {
  if (!e.data.is_object()) return Status::InvalidArgument(e.type + ": data is not an object");
  ClusterChange v;
  v.type = e.type;
  const char* t = e.type.c_str();
  if (e.type == event_types::kNodeJoined || e.type == event_types::kNodeLeft) {
    ESDB_BUS_FIELD_(e.data, t, "node", &v.node);
    if (e.type == event_types::kNodeJoined) {
      ESDB_BUS_FIELD_(e.data, t, "http", &v.http, false);
      ESDB_BUS_FIELD_(e.data, t, "grpc", &v.grpc, false);
    }
  } else if (e.type == event_types::kClusterFormed) {
    auto members = e.data.find("members");
    if (members == e.data.end() || !members->is_array()) {
      return Status::InvalidArgument(e.type + ": field 'members' is missing or not an array");
    }
    for (const nlohmann::json& m : *members) {
      if (!m.is_string()) return Status::InvalidArgument(e.type + ": an entry of 'members' is not a string");
      v.members.push_back(m.get<std::string>());
    }
  } else if (e.type == event_types::kLeaderElected) {
    ESDB_BUS_FIELD_(e.data, t, "leader", &v.leader);
    ESDB_BUS_FIELD_(e.data, t, "term", &v.term);
  } else {
    return Status::InvalidArgument("not a cluster event: " + e.type);
  }
  return v;
}

#undef ESDB_BUS_FIELD_

}  // namespace esdb

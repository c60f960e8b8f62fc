#include "metrics.h"

#include <cmath>
#include <sstream>

namespace esdb_gateway {

std::string PromLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

namespace {

std::string MetricName(const std::string& raw) {
  std::string out;
  for (char c : raw) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

// Flattens a stats object: numbers become gauges `prefix_key`; objects of
// numbers become `prefix_key{key="..."}`.
void RenderStats(std::ostringstream& os, const std::string& prefix, const nlohmann::json& stats) {
  if (!stats.is_object()) return;
  for (const auto& [key, value] : stats.items()) {
    const std::string name = prefix + "_" + MetricName(key);
    if (value.is_number() || value.is_boolean()) {
      os << "# TYPE " << name << " gauge\n";
      os << name << " " << Num(value.is_boolean() ? (value.get<bool>() ? 1.0 : 0.0) : value.get<double>()) << "\n";
    } else if (value.is_object()) {
      bool header = false;
      for (const auto& [k, v] : value.items()) {
        if (!v.is_number()) continue;
        if (!header) {
          os << "# TYPE " << name << " gauge\n";
          header = true;
        }
        os << name << "{key=\"" << PromLabel(k) << "\"} " << Num(v.get<double>()) << "\n";
      }
    }
  }
}

// Cluster mode: the cluster subsystem's health details (its numbers as
// esdb_cluster_*, the leader as esdb_cluster_leader_info{node,http} 1, each
// member's applied log sequence and clock offset).
void RenderCluster(std::ostringstream& os, const nlohmann::json& details) {
  if (!details.is_object() || details.value("mode", "") != "cluster") return;
  RenderStats(os, "esdb_cluster", details);
  const auto leader = details.find("leader");
  if (leader != details.end() && leader->is_object()) {
    os << "# TYPE esdb_cluster_leader_info gauge\n";
    os << "esdb_cluster_leader_info{node=\"" << PromLabel(leader->value("node", "")) << "\",http=\""
       << PromLabel(leader->value("http", "")) << "\"} 1\n";
  }
  const auto members = details.find("members");
  if (members != details.end() && members->is_array()) {
    os << "# TYPE esdb_cluster_members gauge\nesdb_cluster_members " << members->size() << "\n";
    os << "# TYPE esdb_cluster_member_applied_sequence gauge\n";
    for (const auto& m : *members) {
      if (!m.is_object() || !m.contains("applied_sequence") || !m["applied_sequence"].is_number()) continue;
      os << "esdb_cluster_member_applied_sequence{node=\"" << PromLabel(m.value("node", "")) << "\"} "
         << Num(m["applied_sequence"].get<double>()) << "\n";
    }
    os << "# TYPE esdb_cluster_member_clock_offset_ms gauge\n";
    for (const auto& m : *members) {
      if (!m.is_object() || !m.contains("clock_offset_ms") || !m["clock_offset_ms"].is_number()) continue;
      os << "esdb_cluster_member_clock_offset_ms{node=\"" << PromLabel(m.value("node", "")) << "\"} "
         << Num(m["clock_offset_ms"].get<double>()) << "\n";
    }
  }
}

}  // namespace

void Metrics::ObserveRequest(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
  Histogram& h = latency_[route];
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  if (i < kBuckets.size()) ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
}

void Metrics::CountLimit(const std::string& limit) {
  std::lock_guard<std::mutex> lock(mu_);
  ++limits_[limit];
}

std::string Metrics::Render(const nlohmann::json& store_stats, const nlohmann::json& subscription_stats,
                            const nlohmann::json& control_status) const {
  std::ostringstream os;
  {
    std::lock_guard<std::mutex> lock(mu_);
    os << "# HELP esdb_http_requests_total HTTP requests by route and status.\n";
    os << "# TYPE esdb_http_requests_total counter\n";
    for (const auto& [key, count] : requests_) {
      os << "esdb_http_requests_total{route=\"" << PromLabel(key.first) << "\",status=\"" << key.second << "\"} "
         << count << "\n";
    }
    os << "# HELP esdb_http_request_duration_seconds HTTP request latency, read to response.\n";
    os << "# TYPE esdb_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
      uint64_t cumulative = 0;
      const std::string label = PromLabel(route);
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += h.buckets[i];
        os << "esdb_http_request_duration_seconds_bucket{route=\"" << label << "\",le=\"" << Num(kBuckets[i])
           << "\"} " << cumulative << "\n";
      }
      os << "esdb_http_request_duration_seconds_bucket{route=\"" << label << "\",le=\"+Inf\"} " << h.count << "\n";
      os << "esdb_http_request_duration_seconds_sum{route=\"" << label << "\"} " << Num(h.sum) << "\n";
      os << "esdb_http_request_duration_seconds_count{route=\"" << label << "\"} " << h.count << "\n";
    }
    os << "# HELP esdb_http_limit_hits_total Requests or connections refused by a configured limit.\n";
    os << "# TYPE esdb_http_limit_hits_total counter\n";
    for (const auto& [limit, count] : limits_) {
      os << "esdb_http_limit_hits_total{limit=\"" << PromLabel(limit) << "\"} " << count << "\n";
    }
  }
  os << "# TYPE esdb_http_open_connections gauge\nesdb_http_open_connections " << open_connections.load() << "\n";
  os << "# TYPE esdb_http_accepted_connections_total counter\nesdb_http_accepted_connections_total "
     << accepted_connections.load() << "\n";
  os << "# TYPE esdb_http_sse_streams gauge\nesdb_http_sse_streams " << sse_streams.load() << "\n";
  os << "# TYPE esdb_http_sse_dropped_slow_total counter\nesdb_http_sse_dropped_slow_total "
     << sse_dropped_slow.load() << "\n";
  os << "# TYPE esdb_http_sse_buffered_bytes gauge\nesdb_http_sse_buffered_bytes " << sse_buffered_bytes.load()
     << "\n";
  os << "# TYPE esdb_http_tls_reloads_total counter\nesdb_http_tls_reloads_total " << tls_reloads.load() << "\n";
  os << "# TYPE esdb_http_events_appended_total counter\nesdb_http_events_appended_total " << events_appended.load()
     << "\n";
  os << "# TYPE esdb_http_request_body_bytes_total counter\nesdb_http_request_body_bytes_total "
     << bytes_received.load() << "\n";

  RenderStats(os, "esdb_store", store_stats);
  RenderStats(os, "esdb_subscriptions", subscription_stats);

  if (control_status.is_object()) {
    os << "# HELP esdb_system_ready 1 between system_ready and system_degraded.\n";
    os << "# TYPE esdb_system_ready gauge\n";
    os << "esdb_system_ready " << (control_status.value("system_ready", false) ? 1 : 0) << "\n";
    const auto it = control_status.find("subsystems");
    if (it != control_status.end() && it->is_object()) {
      os << "# HELP esdb_subsystem_state 1 for the subsystem's current state.\n";
      os << "# TYPE esdb_subsystem_state gauge\n";
      for (const auto& [name, sub] : it->items()) {
        const std::string state = sub.is_object() && sub.contains("state") && sub["state"].is_string()
                                      ? sub["state"].get<std::string>()
                                      : "unknown";
        os << "esdb_subsystem_state{subsystem=\"" << PromLabel(name) << "\",state=\"" << PromLabel(state)
           << "\"} 1\n";
      }
      os << "# TYPE esdb_subsystem_restarts_total counter\n";
      for (const auto& [name, sub] : it->items()) {
        if (sub.is_object() && sub.contains("restarts") && sub["restarts"].is_number()) {
          os << "esdb_subsystem_restarts_total{subsystem=\"" << PromLabel(name) << "\"} "
             << Num(sub["restarts"].get<double>()) << "\n";
        }
      }
      const auto cluster = it->find("cluster");
      if (cluster != it->end() && cluster->is_object() && cluster->contains("health") &&
          (*cluster)["health"].is_object() && (*cluster)["health"].contains("details")) {
        RenderCluster(os, (*cluster)["health"]["details"]);
      }
    }
  }
  return os.str();
}

}  // namespace esdb_gateway

// The gateway's own metrics and their Prometheus text rendering.
// Thread-safe: counters are updated from every io thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace esdb_gateway {

class Metrics {
 public:
  // Latency histogram bucket bounds, seconds.
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,   5,     10};

  // One finished request of route `route` (the route name, or "unmatched").
  void ObserveRequest(const std::string& route, int status, double seconds);
  // A limit was hit ("body_bytes", "header_bytes", "connections", ...).
  void CountLimit(const std::string& limit);

  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> accepted_connections{0};
  std::atomic<int64_t> sse_streams{0};
  std::atomic<uint64_t> sse_dropped_slow{0};
  std::atomic<int64_t> sse_buffered_bytes{0};    // SSE bytes queued or being written, all clients
  std::atomic<uint64_t> tls_reloads{0};          // TLS files reloaded after a change
  std::atomic<uint64_t> events_appended{0};      // through this gateway
  std::atomic<uint64_t> bytes_received{0};       // request bodies

  // Renders everything, plus `store_stats` (EventStoreV2::Stats()),
  // `subscription_stats` (Subscriptions::Stats()) and `control_status`
  // (ControlService::Status(); in cluster mode also the cluster subsystem's
  // health details, as esdb_cluster_*); each may be null.
  std::string Render(const nlohmann::json& store_stats, const nlohmann::json& subscription_stats,
                     const nlohmann::json& control_status) const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};  // non-cumulative counts
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;                  // route -> histogram
  std::map<std::string, uint64_t> limits_;
};

// Escapes a Prometheus label value.
std::string PromLabel(const std::string& value);

}  // namespace esdb_gateway

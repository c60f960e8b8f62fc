// cluster_bench: HTTP appends through a 3-node cluster (three nats-servers,
// JetStream R=3, and three esdb-hosts in cluster mode, all on loopback)
// next to a single node (the default mode) in the same run, with the same
// client: events/s, latency p50/p99 and, in cluster mode, events per log
// entry. Then the catch-up speed of a new node: after the load phases a
// fourth host starts on an empty data directory; the time from its start to
// /health/ready, against the log entries and events the log holds.
// Everything shares this machine's cores; only ratios carry.
//
//   cluster_bench [--seconds S] [--conns N] [--batches 1,50] [--inflight N]
//
// --inflight sets the store's max_inflight_groups (log entries a node has
// published and not yet had acknowledged; default: the store's).
//
// The connections are spread over the nodes round-robin; each appends to a
// stream of its own with ES-ExpectedVersion: any.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/http.h"
#include "esdb/testing/temp_dir.h"
#include "support/nats_cluster.h"
#include "support/test_support.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Node {
  std::unique_ptr<esdb::testing::HostProcess> host;
  uint16_t port = 0;
};

// A host on the given manifests, its gateway on a port picked here (no
// --print-events: printing every bus event costs CPU a deployment does not
// spend), ready when /health/ready says so.
Node StartHost(const fs::path& root, const std::string& name, const std::vector<json>& manifests) {
  fs::create_directories(root / name / "manifests");
  for (const json& m : manifests) esdb::test::WriteManifest(root / name / "manifests", m);
  Node n;
  n.port = esdb::test::FreeLoopbackPort();
  esdb::testing::HostOptions o;
  o.manifests = root / name / "manifests";
  o.data = root / name / "data";
  o.ephemeral_gateway_port = false;
  o.print_events = false;
  o.log_level = "warn";
  o.args = {"--node", name};
  o.sets = {"gateway.listen_port=" + std::to_string(n.port), "gateway.max_connections=4096",
            // dev mode, deliberately: /metrics without a token on this throwaway host
            "gateway.insecure_admin=true"};
  n.host = std::make_unique<esdb::testing::HostProcess>(std::move(o));
  for (int i = 0; i < 1200; ++i) {
    if (esdb::testing::Http(n.port, "GET", "/health/ready", "", {}, 2000).status == 200) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "%s did not become ready:\n%s\n", name.c_str(), n.host->Stderr().c_str());
  std::exit(1);
}

// The log entries the node at `port` has applied (cluster mode: its store's
// subsystems.store.health.details.cluster.applied_sequence in /control/status), 0 if unknown.
uint64_t AppliedEntries(uint16_t port) {
  const json j = esdb::testing::Http(port, "GET", "/control/status").Json();
  const json* d = &j;
  for (const char* k : {"subsystems", "store", "health", "details", "cluster", "applied_sequence"}) {
    if (!d->is_object() || !d->contains(k)) return 0;
    d = &(*d)[k];
  }
  return d->is_number_unsigned() ? d->get<uint64_t>() : 0;
}

// Events appended and commit groups (log entries in cluster mode) so far, from /metrics.
std::pair<double, double> StoreCounters(uint16_t port) {
  double events = 0, groups = 0;
  auto r = esdb::testing::Http(port, "GET", "/metrics");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    if (line.empty() || line[0] == '#' || space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    if (name == "esdb_store_group_commits") groups = std::atof(line.c_str() + space + 1);
    if (name == "esdb_store_events_appended") events = std::atof(line.c_str() + space + 1);
  }
  return {events, groups};
}

struct Result {
  double events_per_s = 0, p50_ms = 0, p99_ms = 0, events_per_entry = 0;
  uint64_t events = 0;  // acknowledged
  int errors = 0;
};

Result Load(const std::vector<uint16_t>& ports, int conns, int batch, double seconds, const std::string& tag) {
  json events = json::array();
  for (int i = 0; i < batch; ++i) events.push_back({{"eventType", "bench"}, {"data", {{"i", i}, {"pad", std::string(250, 'x')}}}});
  const std::string body = events.dump();
  const auto before = StoreCounters(ports[0]);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> appended{0};
  std::atomic<int> errors{0};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(conns));
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      try {
        net::io_context io;
        tcp::socket socket(io);
        socket.connect({net::ip::make_address("127.0.0.1"), ports[static_cast<size_t>(c) % ports.size()]});
        beast::flat_buffer buffer;
        http::request<http::string_body> req{http::verb::post, "/streams/" + tag + "-" + std::to_string(c), 11};
        req.set(http::field::host, "x");
        req.set(http::field::content_type, "application/json");
        req.set("ES-ExpectedVersion", "any");
        req.body() = body;
        req.prepare_payload();
        while (!stop.load()) {
          const auto s = Clock::now();
          http::write(socket, req);
          http::response<http::string_body> res;
          http::read(socket, buffer, res);
          if (res.result_int() == 201) {
            appended.fetch_add(static_cast<uint64_t>(batch));
            latencies[static_cast<size_t>(c)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
          } else {
            errors.fetch_add(1);
          }
        }
      } catch (...) {
        errors.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.events = appended.load();
  r.events_per_s = static_cast<double>(r.events) / secs;
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  const auto after = StoreCounters(ports[0]);
  if (after.second > before.second) r.events_per_entry = (after.first - before.first) / (after.second - before.second);
  r.errors = errors.load();
  return r;
}

void Print(const char* mode, int conns, int batch, const Result& r) {
  std::printf("%-12s %5d x %-3d %12.0f %9.2f %9.2f %14.1f %7d\n", mode, conns, batch, r.events_per_s, r.p50_ms, r.p99_ms,
              r.events_per_entry, r.errors);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int conns = 64;
  std::vector<int> batches = {1, 50};
  int inflight = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--conns" && i + 1 < argc) {
      conns = std::atoi(argv[++i]);
    } else if (a == "--inflight" && i + 1 < argc) {
      inflight = std::atoi(argv[++i]);
    } else if (a == "--batches" && i + 1 < argc) {
      batches.clear();
      std::stringstream ss(argv[++i]);
      std::string item;
      while (std::getline(ss, item, ',')) batches.push_back(std::atoi(item.c_str()));
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--conns N] [--batches 1,50] [--inflight N]\n", argv[0]);
      return 2;
    }
  }
  esdb::testing::TempDir dir("esdb-cluster-bench");
  std::printf("cluster_bench: %d connections, %.0f s per row, events of ~300 bytes, %u hardware threads\n", conns,
              seconds, std::thread::hardware_concurrency());
  std::printf("%-12s %11s %12s %9s %9s %14s %7s\n", "mode", "conns x ev", "events/s", "p50 ms", "p99 ms",
              "ev/log entry", "errors");

  {  // single node, the default mode (durable: synced group commit)
    std::vector<json> m;
    for (const char* p : {"persistence", "store", "gateway"}) m.push_back(esdb::test::BuiltinManifest(p));
    Node n = StartHost(dir.path() / "single", "single", m);
    for (int b : batches) {
      Result r = Load({n.port}, conns, b, seconds, "s" + std::to_string(b));
      r.events_per_entry = 0;  // not a log
      Print("single node", conns, b, r);
    }
    n.host->Terminate();
  }

  esdb::test::NatsCluster nats(dir / "nats");
  if (!nats.WaitReady(60000)) {
    std::fprintf(stderr, "nats-servers not ready: %s\n", nats.Failure().c_str());
    return 1;
  }
  std::vector<json> m;
  for (const char* p : {"persistence", "store", "log", "gateway"}) {
    json j = esdb::test::BuiltinManifest(p);
    if (std::string(p) == "store") {
      j["config"]["mode"] = "cluster";
      j["start_timeout_ms"] = 120000;
      if (inflight > 0) j["config"]["max_inflight_groups"] = inflight;
    }
    if (std::string(p) == "log") j["config"]["servers"] = nats.ClientUrls();
    m.push_back(j);
  }
  std::vector<Node> nodes;
  for (const char* name : {"node-1", "node-2", "node-3"}) nodes.push_back(StartHost(dir.path() / "cluster", name, m));
  std::vector<uint16_t> ports;
  for (const Node& n : nodes) ports.push_back(n.port);
  uint64_t events = 0;
  for (int b : batches) {
    const Result r = Load(ports, conns, b, seconds, "c" + std::to_string(b));
    events += r.events;
    Print("3-node", conns, b, r);
  }
  // Catch-up: a fourth node on an empty data directory, from its start until
  // /health/ready (its store applied the log as far as it reached when the
  // store opened), against what the load phases left in the log.
  const uint64_t entries = AppliedEntries(ports[0]);
  const auto t0 = Clock::now();
  Node added = StartHost(dir.path() / "cluster", "node-4", m);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("catch-up     node-4 ready %.2f s after its start: %llu log entries (%.0f/s), %llu events (%.0f/s)\n",
              secs, static_cast<unsigned long long>(entries), static_cast<double>(entries) / secs,
              static_cast<unsigned long long>(events), static_cast<double>(events) / secs);
  added.host->Terminate();
  for (Node& n : nodes) n.host->Terminate();
  return 0;
}

// Cluster mode with real processes: three nats-servers (JetStream,
// clustered, loopback) and three esdb-hosts in cluster mode (store "mode":
// "cluster", the log plugin with the stream at 3 replicas). No mocks.
#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>
#include <leveldb/db.h>
#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/http.h"
#include "esdb/testing/temp_dir.h"
#include "support/nats_cluster.h"
#include "support/nats_ready.h"
#include "http_client.h"  // plugins/gateway/tests: SseReader
#include "support/test_support.h"
#include "gossip.grpc.pb.h"
#include "persistent.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using esdb::testing::Http;
using nlohmann::json;

// The manifests of one cluster-mode node: persistence, store (cluster
// mode), log (on `servers`, the stream with `replicas`), cluster
// (membership from heartbeats on the same servers) and gateway; with `grpc`
// also the grpc plugin, on an ephemeral port; with `notification` also the
// notification plugin (subscriptions, persistent groups on the leader).
fs::path ClusterManifests(const fs::path& dir, const std::vector<std::string>& servers, int replicas,
                          bool grpc = false, bool notification = false) {
  fs::create_directories(dir);
  std::vector<std::string> plugins = {"persistence", "store", "log", "cluster", "gateway"};
  if (grpc) plugins.push_back("grpc");
  if (notification) plugins.push_back("notification");
  for (const std::string& p : plugins) {
    json m = esdb::test::BuiltinManifest(p);
    if (p == "grpc") m["config"]["listen_port"] = 0;
    if (p == "store") {
      m["config"]["mode"] = "cluster";
      m["config"]["checkpoint_interval_ms"] = 500;  // divergence found within a second
      m["start_timeout_ms"] = 120000;
    }
    if (p == "cluster") {
      m["config"] = {{"mode", "cluster"}, {"servers", servers}, {"expected_nodes", 3}, {"heartbeat_ms", 200},
                     {"node_timeout_ms", 2000}, {"lease_ttl_ms", 2000}, {"lease_renew_ms", 250}};
    }
    if (p == "gateway") {
      m["config"]["insecure_admin"] = true;  // /control/* and /metrics without a token, on loopback
    }
    if (p == "log") {
      m["config"]["servers"] = servers;
      m["config"]["replicas"] = replicas;
    }
    esdb::test::WriteManifest(dir, m);
  }
  return dir;
}

struct Node {
  std::unique_ptr<esdb::testing::HostProcess> host;
  uint16_t port = 0;
};

Node StartNode(const fs::path& root, const std::string& name, const std::vector<std::string>& servers,
               int replicas = 3, const std::string& manifests = "manifests", bool grpc = false,
               bool notification = false) {
  esdb::testing::HostOptions o;
  o.manifests = ClusterManifests(root / name / manifests, servers, replicas, grpc, notification);
  o.data = root / name / "data";
  o.args = {"--node", name};
  o.log_level = "info";
  Node n;
  n.host = std::make_unique<esdb::testing::HostProcess>(std::move(o));
  esdb::Result<uint16_t> port = n.host->GatewayPort(60000);
  INFO(n.host->Stderr());
  REQUIRE(port.ok());
  n.port = *port;
  return n;
}

// Three nats-servers (in root/nats) and node-1 to node-3 on them (in
// root/<name>), each with its store ready. Destroyed in reverse: the hosts
// are killed before the servers.
struct ThreeNodes {
  esdb::test::NatsCluster nats;
  std::vector<std::string> servers;
  std::vector<Node> nodes;

  explicit ThreeNodes(const fs::path& root, bool grpc = false, bool notification = false) : nats(root / "nats") {
    esdb::test::RequireNatsReady(nats, 60000);
    servers = nats.ClientUrls();
    for (const char* name : {"node-1", "node-2", "node-3"}) {
      nodes.push_back(StartNode(root, name, servers, 3, "manifests", grpc, notification));
    }
    for (Node& n : nodes) {
      INFO(n.host->Stderr());
      REQUIRE(n.host->WaitForEvent("subsystem_ready", "store", 120000));
    }
  }
};

std::string Uuid(uint64_t a, uint64_t b) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-8%03llx-%012llx", static_cast<unsigned long long>(a >> 32),
                static_cast<unsigned long long>((a >> 16) & 0xffff), static_cast<unsigned long long>(a & 0xfff),
                static_cast<unsigned long long>(b >> 48 & 0xfff), static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// How many bus events of `type` about node `node` the host printed so far.
size_t CountClusterEvents(const esdb::testing::HostProcess& host, const std::string& type, const std::string& node) {
  size_t n = 0;
  for (const json& l : host.Lines()) {
    if (l.value("type", "") == type && l.contains("data") && l["data"].is_object() &&
        l["data"].value("node", "") == node) {
      ++n;
    }
  }
  return n;
}

// Waits until the host printed at least `count` such events.
bool WaitClusterEvents(const esdb::testing::HostProcess& host, const std::string& type, const std::string& node,
                       size_t count, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (CountClusterEvents(host, type, node) < count) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// Every event of $all (system streams included) as the node at `port`
// serves it, in order.
json ReadAll(uint16_t port) {
  json all = json::array();
  uint64_t from = 0;
  for (;;) {
    auto r = Http(port, "GET", "/streams/$all?from=" + std::to_string(from) + "&count=1000&include_system=true");
    if (r.status != 200) return json();
    json page = r.Json();
    for (auto& e : page["events"]) all.push_back(e);
    if (page["endOfAll"].get<bool>() || page["events"].empty()) break;
    from = page["nextPosition"].get<uint64_t>();
  }
  return all;
}


// Writers appending events with ids of their own to the nodes at `ports`
// (writer w to node w % 3) with ES-ExpectedVersion any, keeping the ids that
// were acknowledged (201) and the longest time between two acknowledgements.
class LoadWriters {
 public:
  LoadWriters(std::vector<uint16_t> ports, int writers, int timeout_ms) {
    for (size_t i = 0; i < ports.size(); ++i) ports_[i] = ports[i];
    last_ack_ = std::chrono::steady_clock::now();
    for (int w = 0; w < writers; ++w) {
      threads_.emplace_back([this, w, timeout_ms] {
        uint64_t seq = 0;
        while (!stop_.load()) {
          const std::string id = Uuid(static_cast<uint64_t>(w + 100) << 32 | ++seq, 0x5678);
          const json body = json::array({{{"eventId", id}, {"eventType", "load"}, {"data", {{"w", w}}}}});
          auto r = Http(ports_[static_cast<size_t>(w % 3)].load(), "POST", "/streams/load-" + std::to_string(w),
                        body.dump(), {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}}, timeout_ms);
          if (r.status == 201) {
            std::lock_guard<std::mutex> lock(mu_);
            acked_.insert(id);
            const auto now = std::chrono::steady_clock::now();
            longest_gap_ = std::max(longest_gap_, now - last_ack_);
            last_ack_ = now;
          } else {
            if (failed_.fetch_add(1) == 0) {
              std::lock_guard<std::mutex> lock(mu_);
              first_error_ = std::to_string(r.status) + " " + r.body + r.error;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }
      });
    }
  }
  ~LoadWriters() { Stop(); }
  void SetPort(size_t node, uint16_t port) { ports_[node] = port; }
  size_t Acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_.size();
  }
  // Waits until at least `n` appends were acknowledged.
  bool WaitAcked(size_t n, int timeout_s = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (Acked() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Acked() >= n;
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // After Stop().
  const std::set<std::string>& acked() const { return acked_; }
  int failed() const { return failed_.load(); }
  const std::string& first_error() const { return first_error_; }
  double longest_gap_ms() const { return std::chrono::duration<double, std::milli>(longest_gap_).count(); }

 private:
  std::array<std::atomic<uint16_t>, 3> ports_{};
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::mutex mu_;
  std::set<std::string> acked_;  // guarded by mu_
  std::string first_error_;      // guarded by mu_
  std::chrono::steady_clock::time_point last_ack_;  // guarded by mu_
  std::chrono::steady_clock::duration longest_gap_{};  // guarded by mu_
  std::vector<std::thread> threads_;
};

// What a node logged about the log and its applier (its NATS connection,
// consumers re-created, entries skipped, applying stopped): the last `max`
// such lines of its stderr, shown with a failed convergence check.
std::string LogPathLines(const Node& n, size_t max = 60) {
  std::vector<std::string> lines;
  const std::string text = n.host->Stderr();
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    for (const char* k : {"NATS", "log tail", "log entry", "log append", "applying", "applied", "refuses", "diverged",
                          "rebuild", "re-read"}) {
      if (line.find(k) != std::string::npos) {
        lines.push_back(line);
        break;
      }
    }
    start = end + 1;
  }
  std::string out;
  for (size_t i = lines.size() > max ? lines.size() - max : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

// Every node holds every acknowledged event exactly once, and all have the
// same $all as the first (waiting up to 60 s for them to converge). A
// failure shows what the nodes concerned logged about the log.
void CheckConverged(std::vector<Node>& nodes, const std::set<std::string>& acked) {
  std::vector<json> alls;
  for (Node& n : nodes) {
    json all;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      all = ReadAll(n.port);
      std::set<std::string> ids;
      size_t found = 0;
      if (all.is_array()) {
        for (const json& e : all) {
          ids.insert(e["id"].get<std::string>());
          if (acked.count(e["id"].get<std::string>())) ++found;
        }
      }
      if ((all.is_array() && found == acked.size() && ids.size() == all.size()) ||
          std::chrono::steady_clock::now() > deadline) {
        INFO("node " << alls.size() + 1 << " logged:\n" << LogPathLines(n));
        CHECK(found == acked.size());
        CHECK(ids.size() == all.size());  // no event twice
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    alls.push_back(all);
  }
  for (size_t i = 1; i < alls.size(); ++i) {
    INFO("node 1 logged:\n" << LogPathLines(nodes[0]) << "node " << i + 1 << " logged:\n" << LogPathLines(nodes[i]));
    CHECK(alls[0] == alls[i]);
  }
}
}  // namespace

TEST_CASE("cluster: writers on three nodes race on shared streams; every version is won once and every node "
          "has the same $all; a restarted node resumes and catches up; a duplicate node name and a node against "
          "another log are refused",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster");
  ThreeNodes cluster(dir.path());
  const std::vector<std::string>& servers = cluster.servers;
  std::vector<Node>& nodes = cluster.nodes;
  // Membership: every node hears every node (with its HTTP address) and the
  // cluster forms on each.
  for (Node& n : nodes) {
    for (size_t k = 0; k < nodes.size(); ++k) {
      const std::string name = "node-" + std::to_string(k + 1);
      const std::string http = "127.0.0.1:" + std::to_string(nodes[k].port);
      auto joined = n.host->WaitFor(
          [&](const json& l) {
            return l.value("type", "") == "node_joined" && l.contains("data") && l["data"].is_object() &&
                   l["data"].value("node", "") == name && l["data"].value("http", "") == http;
          },
          15000);
      CHECK(joined);
    }
    CHECK(n.host->WaitForEvent("cluster_formed", "", 15000));
  }

  // Writers: two per node, all on the same four streams, each append with
  // the exact version the writer believes is last; a 409 tells it the
  // current one.
  constexpr int kStreams = 4;
  constexpr int64_t kVersions = 60;  // per stream
  struct Win {
    int writer;
    std::string id;
  };
  std::mutex mu;
  std::map<std::pair<int, int64_t>, std::vector<Win>> wins;  // (stream, version) -> who got it
  std::atomic<int> conflicts{0}, errors{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&, w] {
      const uint16_t port = nodes[static_cast<size_t>(w % 3)].port;
      std::vector<int64_t> known(kStreams, -1);
      uint64_t seq = 0;
      for (int round = 0; round < 10000; ++round) {
        const int s = (round + w) % kStreams;
        if (known[static_cast<size_t>(s)] >= kVersions - 1) {
          bool all_done = true;
          for (int64_t k : known) all_done = all_done && k >= kVersions - 1;
          if (all_done) return;
          continue;
        }
        const std::string id = Uuid(static_cast<uint64_t>(w + 1) << 32 | ++seq, 0x1234);
        const json body = json::array({{{"eventId", id}, {"eventType", "raced"}, {"data", {{"writer", w}}}}});
        const int64_t expected = known[static_cast<size_t>(s)];
        auto r = Http(port, "POST", "/streams/race-" + std::to_string(s), body.dump(),
                      {{"ES-ExpectedVersion", std::to_string(expected)}, {"Content-Type", "application/json"}});
        if (r.status == 201) {
          const int64_t v = r.Json()["nextExpectedVersion"].get<int64_t>();
          std::lock_guard<std::mutex> lock(mu);
          wins[{s, v}].push_back({w, id});
          known[static_cast<size_t>(s)] = v;
        } else if (r.status == 409) {
          conflicts.fetch_add(1);
          json j = r.Json();
          known[static_cast<size_t>(s)] = j["current"].is_number() ? j["current"].get<int64_t>() : -1;
        } else {
          errors.fetch_add(1);
          UNSCOPED_INFO("append failed: " << r.status << " " << r.body << r.error);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  CHECK(errors.load() == 0);
  // Every version of every stream was won by exactly one writer, with the
  // version it expected + 1.
  for (int s = 0; s < kStreams; ++s) {
    for (int64_t v = 0; v < kVersions; ++v) {
      auto it = wins.find({s, v});
      INFO("stream race-" << s << " version " << v);
      REQUIRE(it != wins.end());
      CHECK(it->second.size() == 1);
    }
  }
  CHECK(wins.size() == static_cast<size_t>(kStreams * kVersions));
  // The race is real: some appends lost to another node's.
  WARN(conflicts.load() << " appends answered 409 for " << kStreams * kVersions << " versions");
  CHECK(conflicts.load() > 0);

  // Every node converges on the same $all: same events, ids, streams,
  // versions, positions, created times, in the same order.
  const size_t total = static_cast<size_t>(kStreams * kVersions);
  std::vector<json> alls(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    do {
      alls[i] = ReadAll(nodes[i].port);
      if (alls[i].is_array() && alls[i].size() >= total) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (std::chrono::steady_clock::now() < deadline);
    REQUIRE(alls[i].is_array());
    CHECK(alls[i].size() == total);
  }
  CHECK(alls[0] == alls[1]);
  CHECK(alls[0] == alls[2]);
  // Each stream read from each node holds the winners, in version order.
  for (int s = 0; s < kStreams; ++s) {
    for (Node& n : nodes) {
      auto r = Http(n.port, "GET", "/streams/race-" + std::to_string(s) + "?from=0&count=1000");
      REQUIRE(r.status == 200);
      json events = r.Json()["events"];
      REQUIRE(events.size() == static_cast<size_t>(kVersions));
      for (int64_t v = 0; v < kVersions; ++v) {
        CHECK(events[static_cast<size_t>(v)]["id"] == wins[{s, v}].front().id);
      }
    }
  }

  // An append resent to another node with the same ids is idempotent there.
  {
    const Win& w = wins[{0, 5}].front();
    const json body = json::array({{{"eventId", w.id}, {"eventType", "raced"}, {"data", {{"writer", w.writer}}}}});
    auto r = Http(nodes[static_cast<size_t>((w.writer + 1) % 3)].port, "POST", "/streams/race-0", body.dump(),
                  {{"ES-ExpectedVersion", "4"}, {"Content-Type", "application/json"}});
    CHECK(r.status == 201);
    CHECK(r.Json()["idempotent"] == true);
    CHECK(r.Json()["nextExpectedVersion"] == 5);
  }

  // node-2 stops; the others go on writing; node-2 restarts on its data,
  // resumes after the last entry it applied, catches up, and only then
  // serves.
  REQUIRE(nodes[1].host->Terminate() == 0);
  // The others see it leave (its goodbye).
  CHECK(WaitClusterEvents(*nodes[0].host, "node_left", "node-2", 1, 10000));
  CHECK(WaitClusterEvents(*nodes[2].host, "node_left", "node-2", 1, 10000));
  const size_t joined_before = CountClusterEvents(*nodes[0].host, "node_joined", "node-2");
  constexpr int kLater = 40;
  for (int i = 0; i < kLater; ++i) {
    const json body = json::array({{{"eventType", "later"}, {"data", {{"i", i}}}}});
    auto r = Http(nodes[static_cast<size_t>(i % 2 == 0 ? 0 : 2)].port, "POST", "/streams/later", body.dump(),
                  {{"ES-ExpectedVersion", std::to_string(i - 1)}, {"Content-Type", "application/json"}});
    REQUIRE(r.status == 201);
  }
  nodes[1] = StartNode(dir.path(), "node-2", servers);
  REQUIRE(nodes[1].host->WaitForEvent("subsystem_ready", "store", 120000));
  // ... and join again.
  CHECK(WaitClusterEvents(*nodes[0].host, "node_joined", "node-2", joined_before + 1, 10000));
  {
    const std::string log = nodes[1].host->Stderr();
    INFO(log);
    // Its second start, from the entry after the last one it had applied.
    const std::string marker = "node node-2 incarnation 2.";
    const size_t at = log.find(marker);
    REQUIRE(at != std::string::npos);
    const std::string applied = ", applied up to entry ";
    const size_t at2 = log.find(applied, at);
    REQUIRE(at2 != std::string::npos);
    CHECK(std::stoull(log.substr(at2 + applied.size(), 20)) > 0);
  }
  // Ready means caught up: its $all is already complete, without waiting.
  json restarted = ReadAll(nodes[1].port);
  REQUIRE(restarted.is_array());
  CHECK(restarted.size() == total + kLater);
  json first = ReadAll(nodes[0].port);
  CHECK(restarted == first);
  CHECK(ReadAll(nodes[2].port) == first);

  // A fourth host given node-3's name by mistake: its cluster subsystem
  // fails, saying so.
  {
    Node dup = StartNode(dir / "dup", "node-3", servers);
    auto failed = dup.host->WaitFor(
        [](const json& l) {
          return l.value("type", "") == "subsystem_failed" && l.contains("data") && l["data"].is_object() &&
                 l["data"].value("name", "") == "cluster";
        },
        20000);
    REQUIRE(failed);
    CHECK_THAT(failed->dump(), Catch::Contains("--node") && Catch::Contains("'node-3' is used by another node too"));
    CHECK(dup.host->Terminate() == 0);
  }

  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
  nodes.clear();

  // node-1's data against another log, which does not hold what it applied:
  // its store refuses to serve, saying why.
  esdb::test::NatsCluster other(dir / "other-nats", {.servers = 1});
  esdb::test::RequireNatsReady(other, 30000);
  Node lost = StartNode(dir.path(), "node-1", other.ClientUrls(), 1, "manifests-other");
  auto failed = lost.host->WaitForEvent("subsystem_failed", "store", 60000);
  REQUIRE(failed);
  INFO(failed->dump());
  CHECK_THAT(failed->dump(), Catch::Contains("refusing to serve") && Catch::Contains("the log lost entries"));
  CHECK(Http(lost.port, "GET", "/streams/race-0").status == 503);
  CHECK(lost.host->Terminate() == 0);
}

TEST_CASE("cluster: an esdb-host killed with SIGKILL during load loses no acknowledged event; after its restart "
          "every node has the same $all",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-kill");
  ThreeNodes cluster(dir.path());
  const std::vector<std::string>& servers = cluster.servers;
  std::vector<Node>& nodes = cluster.nodes;

  LoadWriters load({nodes[0].port, nodes[1].port, nodes[2].port}, 6, 5000);
  REQUIRE(load.WaitAcked(200));
  const pid_t killed = nodes[1].host->pid();
  nodes[1].host.reset();  // SIGKILL by PID (HostProcess's destructor)
  REQUIRE(load.WaitAcked(load.Acked() + 200));  // the other two go on
  nodes[1] = StartNode(dir.path(), "node-2", servers);
  CHECK(nodes[1].host->pid() != killed);
  REQUIRE(nodes[1].host->WaitForEvent("subsystem_ready", "store", 120000));
  load.SetPort(1, nodes[1].port);  // node-2's writers move to its new port
  REQUIRE(load.WaitAcked(load.Acked() + 100));
  load.Stop();
  WARN(load.acked().size() << " appends acknowledged, " << load.failed() << " failed (node-2 down)");
  CheckConverged(nodes, load.acked());
  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
}

TEST_CASE("cluster: the log's stream leader killed with SIGKILL during load: no acknowledged event lost or doubled, "
          "every node converges",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-leader");
  ThreeNodes cluster(dir.path());
  esdb::test::NatsCluster& nats = cluster.nats;
  std::vector<Node>& nodes = cluster.nodes;

  // Requests wait out the election (the log retries for retry_window_ms).
  LoadWriters load({nodes[0].port, nodes[1].port, nodes[2].port}, 6, 60000);
  REQUIRE(load.WaitAcked(200));
  const std::string leader = nats.StreamLeader("esdb-log");
  REQUIRE_FALSE(leader.empty());
  const int victim = leader == "n1" ? 0 : leader == "n2" ? 1 : 2;
  REQUIRE(nats.Name(victim) == leader);
  nats.Kill(victim);
  REQUIRE(load.WaitAcked(load.Acked() + 300, 90));  // a new leader, and writes go on
  nats.Restart(victim);
  esdb::test::RequireNatsReady(nats, 60000);
  REQUIRE(load.WaitAcked(load.Acked() + 100, 60));
  load.Stop();
  WARN(load.acked().size() << " appends acknowledged, " << load.failed() << " failed; longest time without an "
                           << "acknowledgement " << load.longest_gap_ms() << " ms (stream leader " << leader
                           << " killed); first failure: " << load.first_error());
  CheckConverged(nodes, load.acked());
  // A node that applied an entry the log does not hold at that sequence
  // (README, "Cluster mode": seen at a stream-leader kill) is found by the
  // checkpoints and rebuilt: converged, but worth knowing.
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].host->Stderr().find("rebuilding this node's data from the log") != std::string::npos) {
      WARN("node-" << i + 1 << " diverged from the log and rebuilt its data:\n" << LogPathLines(nodes[i]));
    }
  }
  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
}

namespace {

// The part of /control/status at `path` on the node at `port` (null when
// it cannot be read).
json StatusPart(uint16_t port, std::initializer_list<const char*> path) {
  auto r = Http(port, "GET", "/control/status");
  if (r.status != 200) return json();
  const json j = r.Json();
  const json* d = &j;
  for (const char* k : path) {
    if (!d->is_object() || !d->contains(k)) return json();
    d = &(*d)[k];
  }
  return *d;
}

// subsystems.cluster.health.details of /control/status.
json ClusterDetails(uint16_t port) { return StatusPart(port, {"subsystems", "cluster", "health", "details"}); }

// The leader and term every node at `ports` agrees on, once they all do
// with a term above `above` (waiting up to 60 s); null if they never do,
// with each node's details as last read in `last`.
json AgreedLeader(const std::vector<uint16_t>& ports, uint64_t above, json* last) {
  json agreed;
  esdb::test::WaitUntil(
      [&] {
        json first;
        *last = json::array();
        for (uint16_t port : ports) {
          const json d = ClusterDetails(port);
          last->push_back(d);
          if (!d.is_object() || !d["leader"].is_object() || d["term"].get<uint64_t>() <= above) return false;
          const json l = {{"node", d["leader"]["node"]},
                          {"http", d["leader"]["http"]},
                          {"term", d["term"]},
                          {"granted_sequence", d["leader"]["granted_sequence"]}};
          if (first.is_null()) first = l;
          else if (l != first) return false;
        }
        agreed = first;
        return true;
      },
      60000, 100);
  return agreed;
}

// The host printed leader_elected naming this leader and term, granted at
// this log sequence.
bool SawLeader(esdb::testing::HostProcess& host, const json& leader, int timeout_ms) {
  return host
      .WaitFor(
          [&](const json& l) {
            return l.value("type", "") == "leader_elected" && l.contains("data") && l["data"].is_object() &&
                   l["data"].value("leader", "") == leader["node"] && l["data"].value("http", "") == leader["http"] &&
                   l["data"].value("term", uint64_t{0}) == leader["term"].get<uint64_t>() &&
                   l["data"].value("sequence", uint64_t{0}) == leader["granted_sequence"].get<uint64_t>();
          },
          timeout_ms)
      .has_value();
}

// Every leader_elected the host printed: {leader, http, term, sequence}, in order.
json LeadersSeen(const esdb::testing::HostProcess& host) {
  json seen = json::array();
  for (const json& l : host.Lines()) {
    if (l.value("type", "") == "leader_elected" && l.contains("data")) seen.push_back(l["data"]);
  }
  return seen;
}

// Whether a cluster event of `type` about node `node` (node_* events name
// it in data.node, leader_elected in data.leader) is among `seen`, the
// events read from `sse` so far, or arrives within `timeout_ms`.
bool SseSees(gwtest::SseReader& sse, std::vector<json>& seen, const std::string& type, const std::string& node,
             int timeout_ms) {
  const auto matches = [&](const json& e) {
    return e.is_object() && e.value("type", "") == type && e.contains("data") && e["data"].is_object() &&
           e["data"].value(type == "leader_elected" ? "leader" : "node", "") == node;
  };
  for (const json& e : seen) {
    if (matches(e)) return true;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto msg = sse.Next();
    if (msg.empty()) return false;
    seen.push_back(json::parse(msg["data"], nullptr, false));
    if (matches(seen.back())) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("cluster: a leader is elected through lease claims in the log; killed with SIGKILL, another node takes "
          "over with a higher term, seen by every node; every node names the same leader and term as granted at the "
          "same log sequence; restarted, it sees the current leader; /control/status, /metrics and another node's "
          "/control/events show it",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-lease");
  ThreeNodes cluster(dir.path());
  const std::vector<std::string>& servers = cluster.servers;
  std::vector<Node>& nodes = cluster.nodes;
  const auto ports = [&] {
    std::vector<uint16_t> p;
    for (Node& n : nodes) {
      if (n.host) p.push_back(n.port);
    }
    return p;
  };
  const auto index_of = [](const json& leader) { return std::stoi(leader["node"].get<std::string>().substr(5)) - 1; };

  // One leader, the same on every node, announced on every node's bus.
  json last;
  const json first = AgreedLeader(ports(), 0, &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(first.is_object());
  const int l1 = index_of(first);
  CHECK(first["http"] == "127.0.0.1:" + std::to_string(nodes[static_cast<size_t>(l1)].port));
  for (Node& n : nodes) CHECK(SawLeader(*n.host, first, 10000));
  // /control/status: leader, term, sequences, lag, NATS, members.
  REQUIRE(Http(nodes[0].port, "POST", "/streams/lease-test", R"([{"eventType":"t","data":{}}])",
               {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}})
              .status == 201);
  for (size_t i = 0; i < nodes.size(); ++i) {
    // As of the node's last health check (every second).
    json d;
    CHECK(esdb::test::WaitUntil(
        [&] {
          d = ClusterDetails(nodes[i].port);
          return d.is_object() && d["applied_sequence"].get<uint64_t>() >= 1 && d["log_sequence"].get<uint64_t>() >= 1;
        },
        30000));
    INFO(d.dump());
    CHECK(d["is_leader"] == (static_cast<int>(i) == l1));
    CHECK(d["nats_connected"] == true);
    CHECK(d["log_sequence"].get<uint64_t>() >= 1);
    CHECK(d["applied_sequence"].get<uint64_t>() >= 1);
    CHECK(d["lag"].get<uint64_t>() == d["log_sequence"].get<uint64_t>() - std::min(d["log_sequence"].get<uint64_t>(), d["applied_sequence"].get<uint64_t>()));
    REQUIRE(d["members"].size() == 3);
    for (const json& m : d["members"]) {
      const size_t k = static_cast<size_t>(std::stoi(m["node"].get<std::string>().substr(5)) - 1);
      CHECK(m["http"] == "127.0.0.1:" + std::to_string(nodes[k].port));
      CHECK(m["applied_sequence"].is_number_unsigned());
      // One machine, one clock: the offset is the heartbeat's transit time.
      REQUIRE(m["clock_offset_ms"].is_number_integer());
      CHECK(std::abs(m["clock_offset_ms"].get<int64_t>()) < 1000);
    }
    CHECK(d["max_clock_offset_ms"] == 1000);
  }
  {
    auto metrics = Http(nodes[0].port, "GET", "/metrics");
    REQUIRE(metrics.status == 200);
    CHECK_THAT(metrics.body, Catch::Contains("esdb_cluster_term " + std::to_string(first["term"].get<uint64_t>()) + "\n") &&
                                 Catch::Contains("esdb_cluster_is_leader " + std::string(l1 == 0 ? "1" : "0") + "\n") &&
                                 Catch::Contains("esdb_cluster_leader_info{node=\"" + first["node"].get<std::string>()) &&
                                 Catch::Contains("esdb_cluster_member_applied_sequence{node=\"node-3\"}") &&
                                 Catch::Contains("esdb_cluster_member_clock_offset_ms{node=\"node-2\"}") &&
                                 Catch::Contains("esdb_cluster_nats_connected 1\n") &&
                                 Catch::Contains("esdb_cluster_lag "));
  }

  // The leader killed with SIGKILL: another node's /control/events shows it
  // leave and the new leader.
  const size_t watcher = static_cast<size_t>((l1 + 1) % 3);
  gwtest::SseReader sse(nodes[watcher].port, "/control/events?topic=cluster");
  REQUIRE(sse.ReadHeader() == 200);
  std::vector<json> seen;
  const std::string old_name = first["node"];
  nodes[static_cast<size_t>(l1)].host.reset();  // SIGKILL by PID
  const json second = AgreedLeader(ports(), first["term"].get<uint64_t>(), &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(second.is_object());
  CHECK(second["node"] != old_name);
  CHECK(second["term"].get<uint64_t>() > first["term"].get<uint64_t>());
  for (Node& n : nodes) {
    if (n.host) CHECK(SawLeader(*n.host, second, 10000));
  }
  // The survivors saw the same leaderships, each granted at the same log
  // sequence, the first and the second among them.
  {
    std::vector<json> lists;
    for (Node& n : nodes) {
      if (n.host) lists.push_back(LeadersSeen(*n.host));
    }
    REQUIRE(lists.size() == 2);
    INFO(lists[0].dump() << " vs " << lists[1].dump());
    CHECK(lists[0] == lists[1]);
    REQUIRE(lists[0].size() >= 2);
    const json as_seen = {{"leader", first["node"]},
                          {"http", first["http"]},
                          {"term", first["term"]},
                          {"sequence", first["granted_sequence"]}};
    CHECK(std::find(lists[0].begin(), lists[0].end(), as_seen) != lists[0].end());
    CHECK(lists[0].back()["term"] == second["term"]);
    CHECK(lists[0].back()["sequence"] == second["granted_sequence"]);
    CHECK(second["granted_sequence"].get<uint64_t>() > first["granted_sequence"].get<uint64_t>());
  }
  CHECK(SseSees(sse, seen, "node_left", old_name, 30000));
  CHECK(SseSees(sse, seen, "leader_elected", second["node"], 30000));

  // Restarted, the old leader sees the current one (and does not take over).
  seen.clear();  // what came before (the node_joined replayed at connect among it)
  nodes[static_cast<size_t>(l1)] = StartNode(dir.path(), old_name, servers);
  REQUIRE(nodes[static_cast<size_t>(l1)].host->WaitForEvent("subsystem_ready", "store", 120000));
  CHECK(SawLeader(*nodes[static_cast<size_t>(l1)].host, second, 20000));
  CHECK(SseSees(sse, seen, "node_joined", old_name, 30000));
  const json third = AgreedLeader(ports(), 0, &last);
  INFO("the nodes' cluster details: " << last.dump());
  CHECK(third == second);
  CHECK(ClusterDetails(nodes[static_cast<size_t>(l1)].port)["is_leader"] == false);

  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
  nodes.clear();

}

TEST_CASE("cluster: a node added after thousands of log entries catches up from the log and is ready only then; "
          "until then it serves no partial $all",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-join");
  ThreeNodes cluster(dir.path());
  std::vector<Node>& nodes = cluster.nodes;

  // One writer per node, single-event appends: each node has one request in
  // flight at a time, so every acknowledged append is a log entry of its own.
  constexpr size_t kEvents = 3000;
  LoadWriters load({nodes[0].port, nodes[1].port, nodes[2].port}, 3, 30000);
  REQUIRE(load.WaitAcked(kEvents, 240));
  load.Stop();
  CHECK(load.failed() == 0);
  CheckConverged(nodes, load.acked());
  const json expected = ReadAll(nodes[0].port);
  REQUIRE(expected.is_array());
  REQUIRE(expected.size() >= kEvents);
  json details;
  CHECK(esdb::test::WaitUntil(
      [&] {
        details = ClusterDetails(nodes[0].port);
        return details.is_object() && details["applied_sequence"].get<uint64_t>() >= kEvents;
      },
      10000));
  INFO("node-1's cluster details: " << details.dump());

  // node-4, on an empty data directory, while nothing is written.
  const auto started = std::chrono::steady_clock::now();
  Node added = StartNode(dir.path(), "node-4", cluster.servers);
  // Poll it as a client would: while /health/ready says not ready, $all is
  // not served at all; whatever $all it serves is the whole of node-1's.
  int not_ready_polls = 0, store_behind_polls = 0, partial_reads = 0;
  bool ready = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    auto health = Http(added.port, "GET", "/health/ready");
    ready = health.status == 200;
    if (!ready) {
      ++not_ready_polls;
      CHECK(health.status == 503);
      if (health.body.find("\"store\"") != std::string::npos) ++store_behind_polls;  // named in not_ready
    }
    const json all = ReadAll(added.port);
    if (all.is_array() && all != expected) ++partial_reads;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double ready_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  INFO(added.host->Stderr());
  REQUIRE(ready);
  CHECK(added.host->WaitForEvent("subsystem_ready", "store", 10000));
  WARN("node-4 ready " << ready_ms << " ms after its start, " << details["applied_sequence"] << " log entries, "
                       << expected.size() << " events; " << not_ready_polls << " polls found it not ready (" << store_behind_polls
                       << " its store)");
  CHECK(store_behind_polls > 0);  // it was seen behind, its store not ready
  CHECK(partial_reads == 0);
  // Ready means caught up: its $all equals node-1's at once (ids, streams,
  // versions, positions, created times, order).
  const json caught_up = ReadAll(added.port);
  CHECK(caught_up == expected);

  CHECK(added.host->Terminate() == 0);
  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
}

namespace {

// The store's cluster stats (subsystems.store.health.details.cluster).
json StoreClusterStats(uint16_t port) {
  return StatusPart(port, {"subsystems", "store", "health", "details", "cluster"});
}

size_t CountStoreEvents(const esdb::testing::HostProcess& host, const std::string& type) {
  size_t n = 0;
  for (const json& l : host.Lines()) {
    if (l.value("type", "") == type && l.contains("data") && l["data"].value("name", "") == "store") ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("cluster: a node whose log hash differs from the others' is found by their checkpoints, stops serving "
          "saying why, and rebuilds its data from the log",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-diverged");
  ThreeNodes cluster(dir.path());
  std::vector<Node>& nodes = cluster.nodes;
  std::set<std::string> acked;
  auto write = [&](int from, int count) {
    for (int i = from; i < from + count; ++i) {
      const std::string id = Uuid(0xd1e00000ULL + static_cast<uint64_t>(i), 0x77);
      const json body = json::array({{{"eventId", id}, {"eventType", "t"}, {"data", {{"i", i}}}}});
      esdb::testing::HttpResult r;
      // 503 while the node is not ready yet (its cluster forming, its store rebuilding).
      esdb::test::WaitUntil(
          [&] {
            r = Http(nodes[static_cast<size_t>(i % 3)].port, "POST", "/streams/diverge-" + std::to_string(i % 5),
                     body.dump(), {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}}, 30000);
            return r.status != 503;
          },
          60000, 50);
      INFO(r.body);
      REQUIRE(r.status == 201);
      acked.insert(id);
    }
  };
  write(0, 60);
  CheckConverged(nodes, acked);

  // node-3 stops cleanly; its stored running hash gets one byte changed, as
  // if it had applied some entry differently from the others. The digest of
  // its last entry is untouched, so its start-time check passes.
  const std::optional<json> ready = nodes[2].host->WaitForEvent("subsystem_ready", "persistence", 1000);
  REQUIRE(ready.has_value());
  const std::string db_path = (*ready)["data"]["details"]["path"].get<std::string>();
  REQUIRE(nodes[2].host->Terminate() == 0);
  {
    leveldb::DB* raw = nullptr;
    REQUIRE(leveldb::DB::Open(leveldb::Options(), db_path, &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    std::string position;
    REQUIRE(db->Get({}, "\x01log_applied", &position).ok());
    // [u8 format][u64 sequence][32B running hash]... (plugins/store/src/store_core_internal.h)
    REQUIRE(position.size() > 41);
    position[9] = static_cast<char>(position[9] ^ 0x5a);
    leveldb::WriteOptions sync;
    sync.sync = true;
    REQUIRE(db->Put(sync, "\x01log_applied", position).ok());
  }
  nodes[2] = StartNode(dir.path(), "node-3", cluster.servers);
  REQUIRE(nodes[2].host->WaitForEvent("subsystem_ready", "store", 120000));

  // More writes: the next checkpoint of node-1 or node-2 differs from
  // node-3's hash; node-3 re-reads the log, finds itself diverged, fails its
  // store with the reason, and the host's restart rebuilds it from the log.
  write(60, 30);
  const std::optional<json> failed = nodes[2].host->WaitFor(
      [](const json& l) {
        return l.value("type", "") == "subsystem_failed" && l.contains("data") &&
               l["data"].value("name", "") == "store" &&
               l["data"].value("error", "").find("diverged from the log") != std::string::npos;
      },
      30000);
  INFO(nodes[2].host->Stderr());
  REQUIRE(failed.has_value());
  CHECK((*failed)["data"]["error"].get<std::string>().find("rebuilds its data from the log") != std::string::npos);
  // Ready again after that failure (it may have come while node-3 was
  // still catching up at start, before its first ready).
  CHECK(esdb::test::WaitUntil(
      [&] {
        bool after_failure = false;
        for (const json& l : nodes[2].host->Lines()) {
          if (l == *failed) after_failure = true;
          if (after_failure && l.value("type", "") == "subsystem_ready" && l.contains("data") &&
              l["data"].value("name", "") == "store") {
            return true;
          }
        }
        return false;
      },
      120000));
  CHECK(nodes[2].host->Stderr().find("rebuilding this node's data from the log") != std::string::npos);
  // The healthy nodes never stopped.
  for (size_t i = 0; i < 2; ++i) CHECK(CountStoreEvents(*nodes[i].host, "subsystem_failed") == 0);

  write(90, 15);
  CheckConverged(nodes, acked);
  // And the same running hash: the rebuilt node's checkpoints agree with
  // the others' and theirs with its (the log moves: lease renewals).
  json stats;
  CHECK(esdb::test::WaitUntil(
      [&] {
        stats = StoreClusterStats(nodes[2].port);
        return stats.is_object() && stats["checkpoints_matched"].get<uint64_t>() >= 2;
      },
      20000));
  INFO("node-3 after its rebuild: " << stats.dump());
  CHECK(stats["checkpoints_differing"] == 0);
  std::vector<json> before, after;
  for (size_t i = 0; i < 2; ++i) before.push_back(StoreClusterStats(nodes[i].port));
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // four checkpoint intervals
  for (size_t i = 0; i < 2; ++i) {
    after.push_back(StoreClusterStats(nodes[i].port));
    INFO("node-" << i + 1 << ": " << before[i].dump() << " then " << after[i].dump());
    REQUIRE(after[i].is_object());
    CHECK(after[i]["checkpoints_differing"] == before[i]["checkpoints_differing"]);
    CHECK(after[i]["checkpoints_matched"].get<uint64_t>() > before[i]["checkpoints_matched"].get<uint64_t>());
  }
  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
}

namespace {

// The port of the grpc plugin of `host` (its grpc_listening), or 0.
uint16_t GrpcPort(const esdb::testing::HostProcess& host) {
  for (const json& l : host.Lines()) {
    if (l.value("type", "") == "grpc_listening") return l["data"]["port"].get<uint16_t>();
  }
  return 0;
}

// Gossip.Read of the node whose grpc plugin listens on `port`: {port: state}
// of every member (empty on an error).
std::map<uint32_t, int> GossipOf(uint16_t port, std::set<std::string>* ids = nullptr) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = event_store::client::gossip::Gossip::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  event_store::client::Empty empty;
  event_store::client::gossip::ClusterInfo info;
  std::map<uint32_t, int> out;
  if (!stub->Read(&ctx, empty, &info).ok()) return out;
  for (const auto& m : info.members()) {
    if (m.http_end_point().address() != "127.0.0.1" || !m.is_alive()) return {};
    out[m.http_end_point().port()] = m.state();
    if (ids) ids->insert(m.instance_id().string());
  }
  return out;
}

}  // namespace

TEST_CASE("cluster: gRPC clients find the cluster by gossip: every node's Gossip.Read lists the three members at "
          "their gRPC ports, the leader as Leader; an official Node client given every node appends through the "
          "leader and, when that node is killed with SIGKILL, goes on through another: every event stored once, "
          "in order, on every node",
          "[cluster-gossip]") {
  // Each official client in turn, against a cluster of its own.
  const std::string client_kind = GENERATE(as<std::string>(), "eventstore", "kurrent");
  INFO("client: " << client_kind);
  esdb::testing::TempDir dir("esdb-cluster-gossip");
  ThreeNodes cluster(dir.path(), /*grpc=*/true);
  std::vector<Node>& nodes = cluster.nodes;
  std::vector<uint16_t> http_ports, grpc_ports;
  for (Node& n : nodes) {
    http_ports.push_back(n.port);
    REQUIRE(n.host->WaitForEvent("subsystem_ready", "grpc", 30000));
    grpc_ports.push_back(GrpcPort(*n.host));
    REQUIRE(grpc_ports.back() != 0);
  }
  json last;
  const json leader = AgreedLeader(http_ports, 0, &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(leader.is_object());
  const size_t l = static_cast<size_t>(std::stoi(leader["node"].get<std::string>().substr(5)) - 1);

  // Every node gossips the same three members, each at its gRPC port, the
  // leader (and only it) as Leader, each with an id of its own.
  const int kLeader = event_store::client::gossip::MemberInfo::Leader;
  const int kFollower = event_store::client::gossip::MemberInfo::Follower;
  std::map<uint32_t, int> expected;
  for (size_t i = 0; i < 3; ++i) expected[grpc_ports[i]] = i == l ? kLeader : kFollower;
  for (size_t i = 0; i < 3; ++i) {
    std::map<uint32_t, int> seen;
    std::set<std::string> ids;
    CHECK(esdb::test::WaitUntil(
        [&] {
          ids.clear();
          seen = GossipOf(grpc_ports[i], &ids);
          return seen == expected;
        },
        20000));
    INFO("node-" << i + 1 << " gossips " << json(seen).dump() << ", expected " << json(expected).dump());
    CHECK(seen == expected);
    CHECK(ids.size() == 3);
  }

#ifdef ESDB_NODE_BIN
  // The official client, given every node, appends one event at a time;
  // the node it chose (the leader) is killed after the first 60.
  const std::string stream = "gossip-failover";
  constexpr int kCount = 200;
  std::string hosts;
  for (uint16_t p : grpc_ports) hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
  const fs::path log = dir.path() / "client.log";
  std::atomic<int> code{-1};
  std::thread client([&] {
    code = esdb::test::RunCommand({ESDB_NODE_BIN, std::string(ESDB_GRPC_NODE_DIR) + "/cluster.mjs", client_kind,
                                   stream, std::to_string(kCount), hosts},
                                  log);
  });
  const auto stream_length = [&](uint16_t port) -> int {
    auto r = Http(port, "GET", "/streams/" + stream + "?from=0&count=1000");
    return r.status == 200 ? static_cast<int>(r.Json()["events"].size()) : 0;
  };
  const bool started = esdb::test::WaitUntil([&] { return stream_length(http_ports[(l + 1) % 3]) >= 60; }, 60000);
  nodes[l].host.reset();  // SIGKILL by PID
  client.join();
  const std::string out = esdb::test::ReadText(log);
  std::printf("the Node client (%s): %s\n", client_kind.c_str(), out.c_str());
  INFO("client: " << out);
  REQUIRE(started);
  CHECK(code == 0);
  // It lost the node it had chosen: some append failed there and was resent.
  CHECK(out.find("\"attempts\"") != std::string::npos);
  for (size_t i = 0; i < 3; ++i) {
    if (i == l) continue;
    json events;
    CHECK(esdb::test::WaitUntil(
        [&] {
          auto r = Http(http_ports[i], "GET", "/streams/" + stream + "?from=0&count=1000");
          if (r.status != 200) return false;
          events = r.Json()["events"];
          return events.size() >= static_cast<size_t>(kCount);
        },
        30000));
    INFO("node-" << i + 1 << ": " << events.size() << " events");
    REQUIRE(events.size() == static_cast<size_t>(kCount));
    for (int n = 0; n < kCount; ++n) {
      INFO("event " << n << ": " << events[static_cast<size_t>(n)].dump());
      CHECK(events[static_cast<size_t>(n)]["data"]["n"] == n);
    }
  }
#endif
  for (Node& n : nodes) {
    if (n.host) CHECK(n.host->Terminate() == 0);
  }
}

namespace {

// gRPC PersistentSubscriptions/GetInfo of group `group` on `stream` at the
// grpc plugin on `port`: the status and the trailing metadata.
std::pair<grpc::Status, std::multimap<std::string, std::string>> GrpcGroupInfo(uint16_t port, const std::string& stream,
                                                                             const std::string& group) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = event_store::client::persistent_subscriptions::PersistentSubscriptions::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  event_store::client::persistent_subscriptions::GetInfoReq req;
  req.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
  req.mutable_options()->set_group_name(group);
  event_store::client::persistent_subscriptions::GetInfoResp resp;
  grpc::Status st = stub->GetInfo(&ctx, req, &resp);
  std::multimap<std::string, std::string> trailers;
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    trailers.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return {st, trailers};
}

// The follower at `port` answers a group route with not_leader naming
// `leader` (its node name and HTTP address).
void CheckNotLeader(uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                    const json& leader) {
  auto r = Http(port, method, target, body, {{"Content-Type", "application/json"}});
  INFO(method << " " << target << " on 127.0.0.1:" << port << " -> " << r.status << " " << r.body << r.error);
  CHECK(r.status == 421);
  const json j = json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  CHECK(j["error"] == "not_leader");
  CHECK(j["leader"]["node"] == leader["node"]);
  CHECK(j["leader"]["http"] == leader["http"]);
  CHECK(r.headers["es-leader-endpoint"] == leader["http"]);
  CHECK_THAT(j["message"].get<std::string>(), Catch::Contains(leader["node"].get<std::string>()));
}

// The last checkpoint of group `group` on `stream` as the node at `port`
// has applied it (-1: none yet).
int64_t GroupCheckpoint(uint16_t port, const std::string& stream, const std::string& group) {
  auto r = Http(port, "GET", "/streams/$persistent-" + stream + "::" + group + "-checkpoint?from=-1&count=1&direction=backward");
  if (r.status != 200) return -1;
  const json page = json::parse(r.body, nullptr, false);
  if (!page.is_object() || !page.contains("events") || page["events"].empty()) return -1;
  const json& e = page["events"][0];
  const json data = e["data"].is_string() ? json::parse(e["data"].get<std::string>(), nullptr, false) : e["data"];
  return data.value("checkpoint", int64_t{-1});
}

// Pulls up to `count` messages of the group from the node at `port`:
// their (event id, version) pairs; each acknowledged when `ack`.
std::vector<std::pair<std::string, int64_t>> PullGroup(uint16_t port, const std::string& stream,
                                                       const std::string& group, size_t count, bool ack) {
  std::vector<std::pair<std::string, int64_t>> out;
  auto r = Http(port, "GET", "/subscriptions/" + stream + "/" + group + "/next?count=" + std::to_string(count));
  INFO(r.status << " " << r.body << r.error);
  REQUIRE(r.status == 200);
  const json page = json::parse(r.body);
  json ids = json::array();
  for (const json& m : page["messages"]) {
    out.emplace_back(m["id"].get<std::string>(), m["version"].get<int64_t>());
    ids.push_back(m["id"]);
  }
  if (ack && !ids.empty()) {
    auto a = Http(port, "POST", "/subscriptions/" + stream + "/" + group + "/ack", json{{"ids", ids}}.dump(),
                  {{"Content-Type", "application/json"}});
    INFO(a.status << " " << a.body);
    REQUIRE(a.status == 200);
    CHECK(json::parse(a.body)["processed"] == ids.size());
  }
  return out;
}

void AppendOrders(uint16_t port, int from, int to) {
  for (int v = from; v < to; ++v) {
    auto r = Http(port, "POST", "/streams/orders",
                  json::array({{{"eventId", Uuid(0x0dde5, static_cast<uint64_t>(v))}, {"eventType", "order"},
                                {"data", {{"n", v}}}}})
                      .dump(),
                  {{"ES-ExpectedVersion", std::to_string(v - 1)}, {"Content-Type", "application/json"}});
    INFO(r.status << " " << r.body << r.error);
    REQUIRE(r.status == 201);
  }
}

}  // namespace

TEST_CASE("cluster: a persistent group runs on the leader only; followers answer not_leader naming it; after the "
          "leader is killed with SIGKILL the new leader resumes the group from its last checkpoint: nothing acked up "
          "to it comes back, nothing unacknowledged is lost",
          "[cluster-groups]") {
  esdb::testing::TempDir dir("esdb-cluster-groups");
  ThreeNodes cluster(dir.path(), /*grpc=*/true, /*notification=*/true);
  std::vector<Node>& nodes = cluster.nodes;
  for (Node& n : nodes) {
    INFO(n.host->Stderr());
    REQUIRE(n.host->WaitForEvent("subsystem_ready", "notification", 60000));
  }
  const auto ports = [&] {
    std::vector<uint16_t> p;
    for (Node& n : nodes) {
      if (n.host) p.push_back(n.port);
    }
    return p;
  };
  const auto index_of = [](const json& leader) {
    return static_cast<size_t>(std::stoi(leader["node"].get<std::string>().substr(5)) - 1);
  };
  json last;
  const json first = AgreedLeader(ports(), 0, &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(first.is_object());
  const size_t l1 = index_of(first);
  const json leader1 = {{"node", first["node"]}, {"http", "127.0.0.1:" + std::to_string(nodes[l1].port)}};
  const uint16_t lp = nodes[l1].port;

  // Events 0..19, then the group on the leader (from the start; checkpoints
  // at most every 2 s, so the acks after the first checkpoint below are
  // likely not checkpointed before the kill: the at-least-once window).
  AppendOrders(nodes[(l1 + 1) % 3].port, 0, 20);
  const std::string settings =
      R"({"start_from":"start","message_timeout_ms":60000,"checkpoint_after_ms":2000,"max_retry":10,)"
      R"("max_subscriber_count":3})";
  {
    // Until the notification plugin there has seen the leadership (it
    // answers unavailable before).
    esdb::testing::HttpResult r;
    REQUIRE(esdb::test::WaitUntil(
        [&] {
          r = Http(lp, "PUT", "/subscriptions/orders/g", settings, {{"Content-Type", "application/json"}});
          return r.status != 503;
        },
        20000));
    INFO(r.status << " " << r.body);
    REQUIRE(r.status == 201);
  }

  // Every follower: every group operation answers not_leader naming the leader.
  for (size_t i = 0; i < 3; ++i) {
    if (i == l1) continue;
    const uint16_t p = nodes[i].port;
    const std::string id = "\"" + Uuid(0x0dde5, 0) + "\"";
    CheckNotLeader(p, "PUT", "/subscriptions/orders/g", settings, leader1);
    CheckNotLeader(p, "PUT", "/subscriptions/orders/other", settings, leader1);
    CheckNotLeader(p, "GET", "/subscriptions/orders/g", "", leader1);
    CheckNotLeader(p, "GET", "/subscriptions", "", leader1);
    CheckNotLeader(p, "GET", "/subscriptions/orders", "", leader1);
    CheckNotLeader(p, "GET", "/subscriptions/orders/g/next?count=5", "", leader1);
    CheckNotLeader(p, "GET", "/subscriptions/orders/g/subscribe", "", leader1);
    CheckNotLeader(p, "POST", "/subscriptions/orders/g/ack", "{\"ids\":[" + id + "]}", leader1);
    CheckNotLeader(p, "POST", "/subscriptions/orders/g/nack?action=retry", "{\"ids\":[" + id + "]}", leader1);
    CheckNotLeader(p, "POST", "/subscriptions/orders/g/replay-parked", "", leader1);
    CheckNotLeader(p, "DELETE", "/subscriptions/orders/g", "", leader1);
  }
  {
    auto r = Http(lp, "GET", "/subscriptions/orders/g");
    INFO(r.body);
    CHECK(r.status == 200);  // the follower's delete was refused
  }
  // gRPC on a follower: KurrentDB's not-leader (NOT_FOUND, exception
  // not-leader, the leader's gRPC address); on the leader the group's info.
  {
    const uint16_t leader_grpc = GrpcPort(*nodes[l1].host);
    const uint16_t follower_grpc = GrpcPort(*nodes[(l1 + 1) % 3].host);
    REQUIRE(leader_grpc != 0);
    REQUIRE(follower_grpc != 0);
    std::pair<grpc::Status, std::multimap<std::string, std::string>> r;
    // node_joined carries the leader's gRPC address once its heartbeat has it.
    CHECK(esdb::test::WaitUntil(
        [&] {
          r = GrpcGroupInfo(follower_grpc, "orders", "g");
          auto port = r.second.find("leader-endpoint-port");
          return port != r.second.end() && port->second == std::to_string(leader_grpc);
        },
        10000, 100));
    INFO(r.first.error_message());
    CHECK(r.first.error_code() == grpc::StatusCode::NOT_FOUND);
    auto exception = r.second.find("exception");
    REQUIRE(exception != r.second.end());
    CHECK(exception->second == "not-leader");
    auto host = r.second.find("leader-endpoint-host");
    REQUIRE(host != r.second.end());
    CHECK(host->second == "127.0.0.1");
    CHECK(GrpcGroupInfo(leader_grpc, "orders", "g").first.ok());
  }

  // On the leader: 0..9 acked and checkpointed (seen on a follower, i.e. in
  // the log), then 10..14 acked, 15..17 delivered and not acked.
  std::set<int64_t> acked;
  std::vector<std::pair<std::string, int64_t>> got;
  REQUIRE(esdb::test::WaitUntil(
      [&] {
        for (auto& m : PullGroup(lp, "orders", "g", 10 - got.size(), true)) got.push_back(m);
        return got.size() >= 10;
      },
      20000, 50));
  for (size_t k = 0; k < got.size(); ++k) {
    CHECK(got[k].second == static_cast<int64_t>(k));
    acked.insert(got[k].second);
  }
  const uint16_t fp = nodes[(l1 + 1) % 3].port;
  CHECK(esdb::test::WaitUntil([&] { return GroupCheckpoint(fp, "orders", "g") >= 9; }, 20000, 50));
  const int64_t checkpoint_before = GroupCheckpoint(fp, "orders", "g");
  got = PullGroup(lp, "orders", "g", 5, true);
  REQUIRE(got.size() == 5);
  for (size_t k = 0; k < got.size(); ++k) {
    CHECK(got[k].second == static_cast<int64_t>(10 + k));
    acked.insert(got[k].second);
  }
  got = PullGroup(lp, "orders", "g", 3, false);
  REQUIRE(got.size() == 3);
  CHECK(got[0].second == 15);

  // kill -9 of the leader; a new one is elected and serves the group.
  const auto killed_at = std::chrono::steady_clock::now();
  nodes[l1].host.reset();  // SIGKILL by PID
  const json second = AgreedLeader(ports(), first["term"].get<uint64_t>(), &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(second.is_object());
  CHECK(second["node"] != first["node"]);
  const size_t l2 = index_of(second);
  const uint16_t np = nodes[l2].port;
  const json leader2 = {{"node", second["node"]}, {"http", "127.0.0.1:" + std::to_string(np)}};
  // The group on the new leader, as of its last checkpoint in the log.
  esdb::testing::HttpResult info;
  REQUIRE(esdb::test::WaitUntil(
      [&] {
        info = Http(np, "GET", "/subscriptions/orders/g");
        return info.status == 200;
      },
      20000, 50));
  const double serving_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed_at).count();
  const int64_t checkpoint = GroupCheckpoint(np, "orders", "g");
  // The definition came through the log whole, max_subscriber_count included.
  CHECK(json::parse(info.body)["settings"]["max_subscriber_count"] == 3);
  INFO("checkpoint before the kill " << checkpoint_before << ", in the log at takeover " << checkpoint);
  CHECK(checkpoint >= checkpoint_before);
  CHECK(checkpoint >= 9);
  CHECK(checkpoint <= 14);  // 15.. were never acked
  // The remaining follower now names the new leader.
  CheckNotLeader(nodes[3 - l1 - l2].port, "GET", "/subscriptions/orders/g", "", leader2);

  // New events 20..24 through the remaining follower; the new leader
  // delivers exactly checkpoint+1 .. 24, each once: nothing acked at or
  // below the checkpoint comes back, nothing unacknowledged is lost.
  AppendOrders(nodes[3 - l1 - l2].port, 20, 25);
  std::vector<int64_t> delivered;
  const size_t expected = static_cast<size_t>(24 - checkpoint);
  esdb::test::WaitUntil(
      [&] {
        for (auto& m : PullGroup(np, "orders", "g", 100, true)) delivered.push_back(m.second);
        return delivered.size() >= expected;
      },
      20000, 50);
  std::vector<int64_t> want;
  for (int64_t v = checkpoint + 1; v <= 24; ++v) want.push_back(v);
  std::vector<int64_t> sorted = delivered;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == want);
  size_t redelivered_acked = 0;
  for (int64_t v : delivered) redelivered_acked += acked.count(v);
  WARN("group takeover: served by " << second["node"].get<std::string>() << " " << serving_ms
                                    << " ms after the kill; checkpoint " << checkpoint << " (before the kill "
                                    << checkpoint_before << "); acked events redelivered (at-least-once window): "
                                    << redelivered_acked);
  CHECK(redelivered_acked == static_cast<size_t>(14 - checkpoint));
  // Nothing more comes (no duplicate delivery after the acks).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(PullGroup(np, "orders", "g", 100, true).empty());

  for (Node& n : nodes) {
    if (n.host) CHECK(n.host->Terminate() == 0);
  }
  nodes.clear();
}

namespace {

// The stream index ('s') and event ('e') keys of a stopped node's LevelDB
// (plugins/store/src/key_layout.h), as printable strings.
std::set<std::string> StoreKeys(const std::string& db_path) {
  leveldb::DB* raw = nullptr;
  leveldb::Status opened = leveldb::DB::Open(leveldb::Options(), db_path, &raw);
  INFO(db_path << ": " << opened.ToString());
  REQUIRE(opened.ok());
  std::unique_ptr<leveldb::DB> db(raw);
  std::set<std::string> keys;
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string k = it->key().ToString();
    if (k.empty() || (k[0] != 's' && k[0] != 'e') || k.size() < 9) continue;
    uint64_t n = 0;
    for (size_t i = k.size() - 8; i < k.size(); ++i) n = (n << 8) | static_cast<uint8_t>(k[i]);
    keys.insert(k.substr(0, k.size() - 8) + "#" + std::to_string(n));
  }
  return keys;
}

}  // namespace

TEST_CASE("cluster: scavenge is a singleton on the leader: a follower answers not_leader (421); the leader's scavenge "
          "entry removes the same events on every node and their reads agree",
          "[cluster-scavenge]") {
  esdb::testing::TempDir dir("esdb-cluster-scavenge");
  ThreeNodes cluster(dir.path());
  std::vector<Node>& nodes = cluster.nodes;
  std::vector<uint16_t> ports;
  for (Node& n : nodes) ports.push_back(n.port);
  json last;
  const json agreed = AgreedLeader(ports, 0, &last);
  INFO("the nodes' cluster details: " << last.dump());
  REQUIRE(agreed.is_object());
  const size_t l = static_cast<size_t>(std::stoi(agreed["node"].get<std::string>().substr(5)) - 1);
  const json leader = {{"node", agreed["node"]}, {"http", "127.0.0.1:" + std::to_string(nodes[l].port)}};
  const uint16_t follower = nodes[(l + 1) % 3].port;

  // "trim": 20 events, max_count 5 (versions 0..14 hidden); "keep": 3 events.
  const auto append = [&](const std::string& stream, int count) {
    for (int i = 0; i < count; ++i) {
      auto r = Http(nodes[static_cast<size_t>(i) % 3].port, "POST", "/streams/" + stream,
                    json::array({{{"eventType", "t"}, {"data", {{"i", i}}}}}).dump(),
                    {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}});
      INFO(r.status << " " << r.body << r.error);
      REQUIRE(r.status == 201);
    }
  };
  append("trim", 20);
  append("keep", 3);
  {
    auto r = Http(follower, "PUT", "/streams/trim/metadata", R"({"maxCount":5})",
                  {{"Content-Type", "application/json"}});
    INFO(r.status << " " << r.body);
    REQUIRE(r.status / 100 == 2);
  }

  // A follower does not scavenge: 421 naming the leader.
  for (size_t i = 0; i < 3; ++i) {
    if (i != l) CheckNotLeader(nodes[i].port, "POST", "/admin/scavenge", "", leader);
  }
  // The leader does, for the whole cluster.
  const auto started = std::chrono::steady_clock::now();
  auto r = Http(nodes[l].port, "POST", "/admin/scavenge");
  const double scavenge_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  INFO(r.status << " " << r.body);
  REQUIRE(r.status == 200);
  const json counts = r.Json();
  CHECK(counts["events_removed"] == 15);
  CHECK(counts["bytes_removed"].get<uint64_t>() > 0);
  CHECK(counts["streams_scanned"].get<uint64_t>() >= 2);

  // Every node applied the same entry with the same outcome (health details).
  std::vector<json> applied(3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(esdb::test::WaitUntil(
        [&] {
          applied[i] = StatusPart(nodes[i].port, {"subsystems", "store", "health", "details", "last_scavenge"});
          return applied[i].is_object();
        },
        20000));
    INFO("node-" << i + 1 << ": " << applied[i].dump());
    CHECK(applied[i]["events_removed"] == 15);
    CHECK(applied[i]["bytes_removed"] == counts["bytes_removed"]);
    CHECK(applied[i]["ordered_by"] == leader["node"]);
    CHECK(applied[i]["term"] == agreed["term"]);
  }
  CHECK(applied[0] == applied[1]);
  CHECK(applied[1] == applied[2]);

  // Reads agree: "trim" is versions 15..19 everywhere, $all the same.
  std::vector<json> all;
  for (Node& n : nodes) {
    auto page = Http(n.port, "GET", "/streams/trim?count=100");
    INFO(page.status << " " << page.body);
    REQUIRE(page.status == 200);
    std::vector<int64_t> versions;
    const json events = page.Json()["events"];
    for (const json& e : events) versions.push_back(e["version"].get<int64_t>());
    CHECK(versions == std::vector<int64_t>{15, 16, 17, 18, 19});
    all.push_back(ReadAll(n.port));
  }
  CHECK(all[0] == all[1]);
  CHECK(all[1] == all[2]);

  // On disk: every node holds the same index and event keys, none of the
  // removed ones (version 0..14 of "trim").
  std::vector<std::string> paths;
  for (Node& n : nodes) {
    const std::optional<json> ready = n.host->WaitForEvent("subsystem_ready", "persistence", 1000);
    REQUIRE(ready.has_value());
    paths.push_back((*ready)["data"]["details"]["path"].get<std::string>());
  }
  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
  std::vector<std::set<std::string>> keys;
  for (const std::string& p : paths) keys.push_back(StoreKeys(p));
  CHECK(keys[0] == keys[1]);
  CHECK(keys[1] == keys[2]);
  size_t trim = 0;
  for (const std::string& k : keys[0]) {
    if (k.rfind(std::string("strim") + '\0', 0) == 0) {
      ++trim;
      CHECK(std::stoll(k.substr(k.find('#') + 1)) >= 15);
    }
  }
  CHECK(trim == 5);
  WARN("cluster scavenge: POST /admin/scavenge on the leader answered in " << scavenge_ms << " ms; "
       << counts.dump() << "; every node's 's'/'e' keys identical (" << keys[0].size() << " keys)");
}

namespace {

// The next `count` SSE messages of `sse` that are not the caught-up marker
// (id, event, data each), or fewer when the stream ends.
std::vector<std::map<std::string, std::string>> NextMessages(gwtest::SseReader& sse, size_t count) {
  std::vector<std::map<std::string, std::string>> out;
  while (out.size() < count) {
    auto m = sse.Next();
    if (m.empty()) break;
    if (m["event"] == "caught-up") continue;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

TEST_CASE("cluster: a catch-up subscription resumes on another node with the same Last-Event-ID and goes on with "
          "exactly the messages the first node sends after it, live writes on every node included",
          "[cluster-sse]") {
  esdb::testing::TempDir dir("esdb-cluster-sse");
  ThreeNodes cluster(dir.path(), /*grpc=*/false, /*notification=*/true);
  std::vector<Node>& nodes = cluster.nodes;
  for (Node& n : nodes) {
    INFO(n.host->Stderr());
    REQUIRE(n.host->WaitForEvent("subsystem_ready", "notification", 60000));
  }
  // Appends `count` events from `from` on to "feed", round robin over the nodes.
  auto append = [&](int from, int count) {
    for (int n = from; n < from + count; ++n) {
      const auto r = Http(nodes[static_cast<size_t>(n) % 3].port, "POST", "/streams/feed",
                          R"([{"eventType":"Tick","data":{"n":)" + std::to_string(n) + "}}]",
                          {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}});
      REQUIRE(r.status == 201);
    }
  };
  append(0, 60);

  // Node-3 streams $all and "feed" from the start; a client takes the first
  // 30 messages of each there.
  gwtest::SseReader all3(nodes[2].port, "/streams/$all/subscribe");
  gwtest::SseReader feed3(nodes[2].port, "/streams/feed/subscribe");
  REQUIRE(all3.ReadHeader() == 200);
  REQUIRE(feed3.ReadHeader() == 200);
  const auto all_head = NextMessages(all3, 30);
  const auto feed_head = NextMessages(feed3, 30);
  REQUIRE(all_head.size() == 30);
  REQUIRE(feed_head.size() == 30);
  CHECK(feed_head.back().at("id") == "29");

  // It resumes on node-1 ($all) and node-2 ("feed") with the last ids it saw
  // while 60 more events are written on every node.
  gwtest::SseReader all1(nodes[0].port, "/streams/$all/subscribe", {{"Last-Event-ID", all_head.back().at("id")}});
  gwtest::SseReader feed2(nodes[1].port, "/streams/feed/subscribe", {{"Last-Event-ID", feed_head.back().at("id")}});
  REQUIRE(all1.ReadHeader() == 200);
  REQUIRE(feed2.ReadHeader() == 200);
  std::thread writer([&] { append(60, 60); });
  // "feed" holds 120 events, versions 0..119: 90 after version 29.
  const auto feed_rest3 = NextMessages(feed3, 90);
  const auto feed_rest2 = NextMessages(feed2, 90);
  writer.join();
  REQUIRE(feed_rest3.size() == 90);
  REQUIRE(feed_rest2.size() == 90);
  CHECK(feed_rest2.front().at("id") == "30");
  for (size_t i = 0; i < 90; ++i) {
    INFO("message " << i << " after version 29");
    CHECK(feed_rest2[i].at("id") == feed_rest3[i].at("id"));
    CHECK(feed_rest2[i].at("data") == feed_rest3[i].at("data"));  // the same event, position and time
  }
  // $all: whatever node-3 sends after the resumed id, node-1 sends too, in
  // the same order with the same ids (positions) and data, up to the last
  // event of "feed".
  auto until_last = [](gwtest::SseReader& sse) {
    std::vector<std::map<std::string, std::string>> out;
    for (;;) {
      auto batch = NextMessages(sse, 1);
      if (batch.empty()) return out;
      out.push_back(batch.front());
      const json d = json::parse(out.back().at("data"), nullptr, false);
      if (d.is_object() && d.value("stream", "") == "feed" && d.value("version", -1) == 119) return out;
    }
  };
  const auto all_rest3 = until_last(all3);
  const auto all_rest1 = until_last(all1);
  REQUIRE(all_rest3.size() >= 90);
  REQUIRE(all_rest1.size() == all_rest3.size());
  for (size_t i = 0; i < all_rest3.size(); ++i) {
    INFO("$all message " << i << " after " << all_head.back().at("id"));
    CHECK(all_rest1[i].at("id") == all_rest3[i].at("id"));
    CHECK(all_rest1[i].at("data") == all_rest3[i].at("data"));
  }
  CHECK(std::stoull(all_rest1.front().at("id")) > std::stoull(all_head.back().at("id")));

  for (Node& n : nodes) CHECK(n.host->Terminate() == 0);
  nodes.clear();
}

// Heartbeats carry any name a NATS client chooses. Names that join and
// leave, one after another, each left a retained node_left on every node's
// bus (replayed to every /control/events client); now a departed name's
// retained slot goes to the next new name, so at most 2 * max_members
// membership events are retained, however many names came and went.
TEST_CASE("cluster: a flood of heartbeats under made-up names that join and leave retains at most 2 * max_members "
          "membership events",
          "[cluster]") {
  esdb::testing::TempDir dir("esdb-cluster-names");
  esdb::test::NatsCluster nats(dir / "nats", {.servers = 1});
  esdb::test::RequireNatsReady(nats, 30000);
  const std::vector<std::string> servers = nats.ClientUrls();
  const fs::path manifests = ClusterManifests(dir / "node-1" / "manifests", servers, 1);
  json cluster = json::parse(esdb::test::ReadText(manifests / "cluster.json"));
  cluster["config"]["expected_nodes"] = 1;
  cluster["config"]["max_members"] = 2;
  cluster["config"]["node_timeout_ms"] = 60000;  // the flood's names leave by their goodbyes only
  esdb::test::WriteManifest(manifests, cluster);
  esdb::testing::HostOptions o;
  o.manifests = manifests;
  o.data = dir / "node-1" / "data";
  o.args = {"--node", "node-1"};
  esdb::testing::HostProcess host(std::move(o));
  const esdb::Result<uint16_t> port = host.GatewayPort(60000);
  INFO(host.Stderr());
  REQUIRE(port.ok());
  REQUIRE(esdb::test::WaitUntil([&] { return ClusterDetails(*port)["members"].size() == 1; }, 30000));

  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, servers[0].c_str()) == NATS_OK);
  const auto beat = [&](const std::string& name, bool goodbye) {
    const json h = {{"node", name},    {"incarnation", 1}, {"applied_sequence", 0},
                    {"http", ""},      {"process", "flood/1"}, {"goodbye", goodbye}};
    REQUIRE(natsConnection_PublishString(nc, "esdb.cluster.heartbeat", h.dump().c_str()) == NATS_OK);
  };
  constexpr int kNames = 300;
  for (int i = 0; i < kNames; ++i) {
    beat("flood-" + std::to_string(i), false);
    beat("flood-" + std::to_string(i), true);
  }
  beat("marker", false);  // after the flood: once it is a member, the flood was taken
  REQUIRE(natsConnection_Flush(nc) == NATS_OK);
  const auto has_marker = [&] {
    const json members = ClusterDetails(*port)["members"];
    for (const json& m : members) {
      if (m.value("node", "") == "marker") return true;
    }
    return false;
  };
  const bool marked = esdb::test::WaitUntil(has_marker, 30000);
  INFO(ClusterDetails(*port).dump() << "\n" << host.Stderr());
  REQUIRE(marked);

  // What a new /control/events client is replayed: node-1's and marker's
  // node_joined, and the latest departures' node_left, up to 4 in all.
  gwtest::SseReader sse(*port, "/control/events?topic=cluster");
  REQUIRE(sse.ReadHeader() == 200);
  std::vector<json> replayed;
  while (replayed.size() < 2 * kNames + 2) {  // more would be the flood itself
    auto msg = sse.Next();
    REQUIRE_FALSE(msg.empty());
    const json e = json::parse(msg["data"], nullptr, false);
    REQUIRE(e.is_object());
    if (e["type"] != "node_joined" && e["type"] != "node_left") continue;  // cluster_formed, leader_elected
    replayed.push_back(e);
    if (e["type"] == "node_joined" && e["data"]["node"] == "marker") break;
  }
  INFO(json(replayed).dump());
  CHECK(replayed.size() <= 4);
  size_t self = 0;
  for (const json& e : replayed) {
    if (e["type"] == "node_joined" && e["data"]["node"] == "node-1") ++self;
    if (e["type"] == "node_left") CHECK(e["data"]["node"].get<std::string>().rfind("flood-", 0) == 0);
  }
  CHECK(self == 1);
  CHECK(ClusterDetails(*port)["refused_heartbeats"] == 0);  // one flood name at a time: none refused

  natsConnection_Destroy(nc);
  CHECK(host.Terminate() == 0);
}

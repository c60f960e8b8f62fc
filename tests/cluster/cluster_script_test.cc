// scripts/cluster.sh end to end, as a person runs it: up (three
// nats-servers and three esdb-hosts on loopback ports free at the time),
// an append on one node read on another, kill -9 of a node, status showing
// it stopped, restart of it on its data (it catches up), down leaving no
// process; and its refusals of bad arguments.
#include <signal.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "esdb/testing/http.h"
#include "esdb/testing/temp_dir.h"
#include "support/nats_cluster.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using esdb::testing::Http;
using nlohmann::json;

struct Run {
  int code = 0;
  std::string output;  // stdout and stderr
  // The process lines: name -> its words ("node", name, URL, PID[, state]).
  std::map<std::string, std::vector<std::string>> lines;
};

// Runs scripts/cluster.sh with `args`.
Run Script(const esdb::testing::TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  const fs::path log = dir / ("script-" + std::to_string(++n) + ".log");
  args.insert(args.begin(), {"/bin/bash", std::string(ESDB_SOURCE_DIR) + "/scripts/cluster.sh"});
  Run r;
  r.code = esdb::test::RunCommand(args, log);
  r.output = esdb::test::ReadText(log);
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.size() >= 4 && (w[0] == "node" || w[0] == "nats")) r.lines[w[1]] = w;
  }
  return r;
}

// A process of the cluster is gone (or a zombie nobody reaped yet).
bool Gone(pid_t pid) {
  const std::string stat = esdb::test::ReadText("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(") ");
  return stat.empty() || (paren != std::string::npos && (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X'));
}

}  // namespace

TEST_CASE("scripts/cluster.sh: up, write on one node and read on another, kill -9 a node, status, restart it "
          "(it catches up), down; bad arguments refused",
          "[cluster-script]") {
  esdb::testing::TempDir tmp("esdb-cluster-script");
  const std::string dir = (tmp / "c").string();
  const uint16_t port = esdb::test::FreeLoopbackPortBlock(25);  // 3 blocks of 10, the last node's gRPC port at + 24
  const std::string build = ESDB_BUILD_DIR;

  // Bad arguments, before anything runs.
  {
    Run r = Script(tmp, {"up"});
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("--dir DIR is required"));
    r = Script(tmp, {"up", "--dir", dir, "--nodes", "0"});
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("nodes '0': must be 1 to 20"));
    r = Script(tmp, {"up", "--dir", dir + "/x y"});
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("only letters, digits"));
    r = Script(tmp, {"sideways", "--dir", dir});
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("unknown command 'sideways'"));
    r = Script(tmp, {"status", "--dir", dir + "-none"});
    CHECK(r.code == 1);
    r = Script(tmp, {"up", "--dir", dir, "--http-port", "65530"});
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("http port '65530'"));
    CHECK_FALSE(fs::exists(fs::path(dir) / "cluster.env"));  // nothing half-made
  }

  Run up = Script(tmp, {"up", "--dir", dir, "--http-port", std::to_string(port), "--build", build});
  INFO(up.output);
  // Whatever happens below, nothing stays running.
  struct Down {
    const esdb::testing::TempDir& tmp;
    std::string dir;
    ~Down() { Script(tmp, {"down", "--dir", dir}); }
  } down_at_exit{tmp, dir};
  REQUIRE(up.code == 0);
  REQUIRE(up.lines.size() == 6);
  for (int i = 1; i <= 3; ++i) {
    const std::string node = "node-" + std::to_string(i), nats = "nats-" + std::to_string(i);
    REQUIRE(up.lines.count(node));
    REQUIRE(up.lines.count(nats));
    CHECK(up.lines[node][0] == "node");
    CHECK(up.lines[node][2] == "http://127.0.0.1:" + std::to_string(port + 10 * (i - 1)));
    CHECK(up.lines[nats][2] == "nats://127.0.0.1:" + std::to_string(port + 10 * (i - 1) + 1));
    // Each node serves the gRPC API too, on its block's + 4.
    CHECK_THAT(esdb::test::ReadText(fs::path(dir) / node / "esdb-host.log"),
               Catch::Contains("grpc listening on 127.0.0.1:" + std::to_string(port + 10 * (i - 1) + 4) + " "));
  }
  std::vector<pid_t> pids;
  for (const auto& [name, w] : up.lines) pids.push_back(std::stoi(w[3]));

  // Up again while it runs: refused.
  {
    Run again = Script(tmp, {"up", "--dir", dir});
    CHECK(again.code == 1);
    CHECK_THAT(again.output, Catch::Contains("is up already"));
  }

  const auto node_port = [&](int i) { return static_cast<uint16_t>(port + 10 * (i - 1)); };
  const auto append = [&](int node, const std::string& id, int64_t expected) {
    const json body = json::array({{{"eventId", id}, {"eventType", "script"}, {"data", {{"id", id}}}}});
    return Http(node_port(node), "POST", "/streams/script", body.dump(),
                {{"ES-ExpectedVersion", std::to_string(expected)}, {"Content-Type", "application/json"}});
  };
  // The ids of stream "script" as node `node` serves it.
  const auto ids = [&](int node) {
    std::vector<std::string> out;
    auto r = Http(node_port(node), "GET", "/streams/script?from=0&count=100");
    const json page = r.status == 200 ? r.Json() : json();
    if (page.is_object() && page["events"].is_array()) {
      for (const json& e : page["events"]) out.push_back(e["id"].get<std::string>());
    }
    return out;
  };
  const std::string id1 = "11111111-1111-4111-8111-111111111111", id2 = "22222222-2222-4222-8222-222222222222";
  REQUIRE(append(1, id1, -1).status == 201);
  CHECK(esdb::test::WaitUntil([&] { return ids(2) == std::vector<std::string>{id1}; }, 30000));

  // kill -9 of node-2; status says it stopped, the others are ready.
  const pid_t killed = std::stoi(up.lines["node-2"][3]);
  REQUIRE(::kill(killed, SIGKILL) == 0);
  CHECK(esdb::test::WaitUntil([&] { return Gone(killed); }, 30000));
  Run status = Script(tmp, {"status", "--dir", dir});
  CHECK(status.code == 0);
  REQUIRE(status.lines.size() == 6);
  CHECK(status.lines["node-2"] == std::vector<std::string>{"node", "node-2", up.lines["node-2"][2], "-", "stopped"});
  for (const char* ready : {"node-1", "node-3", "nats-1", "nats-2", "nats-3"}) {
    INFO(ready);
    CHECK(status.lines[ready].back() == "ready");
    CHECK(status.lines[ready][3] == up.lines[ready][3]);
  }
  // The others go on; node-2 misses this.
  REQUIRE(append(3, id2, 0).status == 201);

  // Restart: names checked, a running process refused, then node-2 on its
  // data, ready only once caught up.
  {
    Run bad = Script(tmp, {"restart", "--dir", dir, "node-9"});
    CHECK(bad.code == 2);
    CHECK_THAT(bad.output, Catch::Contains("no process 'node-9'"));
    bad = Script(tmp, {"restart", "--dir", dir, "nats-1"});
    CHECK(bad.code == 1);
    CHECK_THAT(bad.output, Catch::Contains("nats-1 runs (pid"));
    bad = Script(tmp, {"restart", "--dir", dir});
    CHECK(bad.code == 2);
  }
  Run restart = Script(tmp, {"restart", "--dir", dir, "node-2"});
  INFO(restart.output);
  REQUIRE(restart.code == 0);
  REQUIRE(restart.lines.count("node-2"));
  CHECK(restart.lines["node-2"][2] == up.lines["node-2"][2]);
  const pid_t restarted = std::stoi(restart.lines["node-2"][3]);
  CHECK(restarted != killed);
  pids.push_back(restarted);
  CHECK(ids(2) == std::vector<std::string>({id1, id2}));

  // Down: every process stopped, by the PIDs the script printed.
  Run down = Script(tmp, {"down", "--dir", dir});
  CHECK(down.code == 0);
  for (pid_t pid : pids) {
    INFO(pid);
    CHECK(esdb::test::WaitUntil([&] { return Gone(pid); }, 10000));
  }
  status = Script(tmp, {"status", "--dir", dir});
  for (const auto& [name, w] : status.lines) {
    INFO(name);
    CHECK(w.back() == "stopped");
  }
  CHECK(status.lines.size() == 6);
}

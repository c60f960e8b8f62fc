// The log plugin's NatsLog against a real nats-server (one server, R=1):
// appends, deduplication by id, reads, tails; its config errors; a stream
// that exists with other settings; NATS out of reach.
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/temp_dir.h"
#include "log_options.h"
#include "nats_log.h"
#include "nats_tail.h"
#include "support/nats_cluster.h"
#include "support/nats_ready.h"
#include "support/test_support.h"

namespace {

using esdb_log::LogOptions;
using esdb_log::NatsLog;
using nlohmann::json;

esdb::Result<esdb::LogAppendResult> AppendSync(NatsLog& log, const std::string& id, const std::string& data) {
  std::promise<esdb::Result<esdb::LogAppendResult>> p;
  auto f = p.get_future();
  log.Append(id, data, [&p](esdb::Result<esdb::LogAppendResult> r) { p.set_value(std::move(r)); });
  return f.get();
}

// Collects what a tail delivers.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<esdb::LogEntry> entries;
  esdb::LogEntryHandler Handler() {
    return [this](esdb::LogEntry e) {
      std::lock_guard<std::mutex> lock(mu);
      entries.push_back(std::move(e));
      cv.notify_all();
    };
  }
  bool WaitFor(size_t n, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return entries.size() >= n; });
  }
};

LogOptions Options(const std::vector<std::string>& servers) {
  auto o = esdb_log::ParseLogOptions(json{{"servers", servers}, {"replicas", 1}, {"stream", "test-log"}});
  REQUIRE(o.ok());
  return *o;
}

}  // namespace

TEST_CASE("log config: each bad field is named", "[log]") {
  auto missing = esdb_log::ParseLogOptions(json::object());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == esdb::Code::kInvalidArgument);
  CHECK_THAT(missing.status().message(), Catch::Contains("field 'servers': is required"));

  auto bad = esdb_log::ParseLogOptions(
      json{{"servers", {"http://x"}}, {"replicas", 7}, {"stream", "a.b"}, {"subject", "x.*"}, {"colour", 1}});
  REQUIRE_FALSE(bad.ok());
  for (const char* field : {"'servers'", "'replicas'", "'stream'", "'subject'", "'colour'"}) {
    CHECK_THAT(bad.status().message(), Catch::Contains(field));
  }
  auto window = esdb_log::ParseLogOptions(
      json{{"servers", {"nats://127.0.0.1:4222"}}, {"duplicates_window_ms", 10000}, {"retry_window_ms", 20000}});
  REQUIRE_FALSE(window.ok());
  CHECK_THAT(window.status().message(), Catch::Contains("field 'retry_window_ms'"));
  CHECK(esdb_log::ParseLogOptions(json{{"servers", {"nats://127.0.0.1:4222"}}}).ok());
}

// The keys plugins/shared/nats_servers.h reads (the cluster plugin reads
// them the same way): servers off this machine need credentials, which are
// never part of a URL.
TEST_CASE("log config: servers off this machine need user and password (or insecure); credentials are never in a URL",
          "[log]") {
  auto parse = [](json config) { return esdb_log::ParseLogOptions(config); };
  for (const char* local : {"nats://127.0.0.1:4222", "nats://127.3.2.1:4222", "nats://localhost:4222",
                            "nats://[::1]:4222", "tls://127.0.0.1:4222"}) {
    INFO(local);
    CHECK(parse(json{{"servers", {local}}}).ok());
  }
  for (const char* remote : {"nats://192.0.2.1:4222", "nats://db1:4222", "nats://127.0.0.1.example.com:4222",
                             "nats://128.0.0.1:4222", "nats://[::2]:4222", "nats://127.0.0.256:4222"}) {
    INFO(remote);
    auto r = parse(json{{"servers", {"nats://127.0.0.1:4222", remote}}});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("field 'servers'") && Catch::Contains("is not on this machine") &&
                                         Catch::Contains("\"user\" and \"password\""));
    CHECK(parse(json{{"servers", {remote}}, {"user", "esdb"}, {"password", "s3cret"}}).ok());
    CHECK(parse(json{{"servers", {remote}}, {"insecure", true}}).ok());
  }
  auto in_url = parse(json{{"servers", {"nats://esdb:s3cret@127.0.0.1:4222"}}});
  REQUIRE_FALSE(in_url.ok());
  CHECK_THAT(in_url.status().message(), Catch::Contains("holds credentials") && !Catch::Contains("s3cret"));
  auto half = parse(json{{"servers", {"nats://127.0.0.1:4222"}}, {"user", "esdb"}});
  REQUIRE_FALSE(half.ok());
  CHECK_THAT(half.status().message(), Catch::Contains("field 'password': must be set with \"user\""));
  auto blank = parse(json{{"servers", {"nats://127.0.0.1:4222"}}, {"user", "esdb"}, {"password", ""}});
  REQUIRE_FALSE(blank.ok());
  CHECK_THAT(blank.status().message(), Catch::Contains("field 'password': must be 1 to 256 printable"));
  auto typed = parse(json{{"servers", {"nats://127.0.0.1:4222"}}, {"insecure", "yes"}});
  REQUIRE_FALSE(typed.ok());
  CHECK_THAT(typed.status().message(), Catch::Contains("field 'insecure'"));
  // The packaged example's password is there to be replaced: refused, even on loopback.
  auto example = parse(json{{"servers", {"nats://192.0.2.1:4222"}}, {"user", "esdb"},
                            {"password", esdb_plugin_shared::kExamplePassword}});
  REQUIRE_FALSE(example.ok());
  CHECK_THAT(example.status().message(), Catch::Contains("field 'password': is the packaged example's placeholder"));
  CHECK_FALSE(parse(json{{"servers", {"nats://127.0.0.1:4222"}}, {"user", "esdb"}, {"password", "REPLACE-WITH-YOUR-SECRET"}}).ok());
  auto with = parse(json{{"servers", {"nats://127.0.0.1:4222"}}, {"user", "esdb"}, {"password", "s3cret"}});
  REQUIRE(with.ok());
  CHECK(with->nats.user == "esdb");
  CHECK(with->nats.password == "s3cret");
}

TEST_CASE("log: appends are numbered, a resent id is answered with the first entry, tails deliver in order",
          "[log]") {
  esdb::testing::TempDir dir("esdb-log");
  esdb::test::NatsCluster nats(dir / "nats", {.servers = 1});
  esdb::test::RequireNatsReady(nats, 30000);
  auto log = std::make_shared<NatsLog>(Options(nats.ClientUrls()), "t", nullptr);
  REQUIRE(log->Connect().ok());
  esdb::Status s;
  for (int i = 0; i < 100; ++i) {
    s = log->EnsureStream();
    if (s.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(s.ok());
  CHECK(log->MaxEntryBytes() > 1000000);  // the test servers' max_payload is 8 MB

  for (int i = 1; i <= 3; ++i) {
    auto r = AppendSync(*log, "t-1-" + std::to_string(i), "entry " + std::to_string(i));
    REQUIRE(r.ok());
    CHECK(r->sequence == static_cast<uint64_t>(i));
    CHECK_FALSE(r->duplicate);
  }
  auto again = AppendSync(*log, "t-1-2", "entry 2 resent");
  REQUIRE(again.ok());
  CHECK(again->duplicate);
  CHECK(again->sequence == 2);
  CHECK(*log->LastSequence() == 3);

  auto e = log->Get(2);
  REQUIRE(e.ok());
  CHECK(e->id == "t-1-2");
  CHECK(e->data == "entry 2");
  CHECK(log->Get(9).status().code() == esdb::Code::kNotFound);

  auto bad_id = AppendSync(*log, "has space", "x");
  CHECK(bad_id.status().code() == esdb::Code::kInvalidArgument);
  auto too_big = AppendSync(*log, "t-1-99", std::string(log->MaxEntryBytes() + 1, 'x'));
  CHECK(too_big.status().code() == esdb::Code::kInvalidArgument);

  Collector c;
  auto tail = log->Tail(2, c.Handler());
  REQUIRE(tail.ok());
  REQUIRE(c.WaitFor(2, 10000));
  REQUIRE(AppendSync(*log, "t-1-4", "entry 4").ok());
  REQUIRE(c.WaitFor(3, 10000));
  {
    std::lock_guard<std::mutex> lock(c.mu);
    REQUIRE(c.entries.size() == 3);
    CHECK(c.entries[0].sequence == 2);
    CHECK(c.entries[1].sequence == 3);
    CHECK(c.entries[2].sequence == 4);
    CHECK(c.entries[2].id == "t-1-4");
    CHECK(c.entries[2].data == "entry 4");
  }
  CHECK((*tail)->NextSequence() == 5);
  tail->reset();

  // The same stream asked for with other settings: the start fails naming the key.
  json other = {{"servers", nats.ClientUrls()}, {"replicas", 1}, {"stream", "test-log"}, {"duplicates_window_ms", 60000},
                {"retry_window_ms", 30000}};
  auto other_log = std::make_shared<NatsLog>(*esdb_log::ParseLogOptions(other), "t2", nullptr);
  REQUIRE(other_log->Connect().ok());
  esdb::Status mismatch;
  for (int i = 0; i < 100; ++i) {
    mismatch = other_log->EnsureStream();
    if (mismatch.code() != esdb::Code::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(mismatch.code() == esdb::Code::kInvalidArgument);
  CHECK_THAT(mismatch.message(), Catch::Contains("field 'duplicates_window_ms'") &&
                                     Catch::Contains("exists with other settings"));
  other_log->Close();
  log->Close();
  CHECK(log->Get(1).status().code() == esdb::Code::kCancelled);
}

TEST_CASE("log plugin: NATS out of reach at start is not ready, retrying, and says so", "[log]") {
  esdb::testing::TempDir dir("esdb-log-down");
  json m = esdb::test::BuiltinManifest("log");
  m["config"]["servers"] = {"nats://127.0.0.1:" + std::to_string(esdb::test::FreeLoopbackPort())};
  esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir.path(), {m}));
  REQUIRE(host.WaitForEvent("subsystem_starting", "log", 10000));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (host.Stderr().find("the log is not ready") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_THAT(host.Stderr(), Catch::Contains("the log is not ready") && Catch::Contains("retrying") &&
                                Catch::Contains("not connected to NATS"));
  CHECK_FALSE(host.WaitForEvent("subsystem_ready", "log", 1000));
  CHECK_FALSE(host.WaitForEvent("subsystem_failed", "log", 10));
  CHECK(host.Terminate() == 0);
}

TEST_CASE("log plugin: NATS servers that want credentials: wrong ones are not ready and say why, right ones work",
          "[log]") {
  esdb::testing::TempDir dir("esdb-log-auth");
  esdb::test::NatsCluster nats(dir / "nats", {.servers = 1, .user = "esdb", .password = "right-secret"});
  esdb::test::RequireNatsReady(nats, 30000);
  json m = esdb::test::BuiltinManifest("log");
  m["config"]["servers"] = nats.ClientUrls();
  m["config"]["replicas"] = 1;
  m["config"]["user"] = "esdb";
  {
    m["config"]["password"] = "wrong-secret";
    esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir / "wrong", {m}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (host.Stderr().find("the log is not ready") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK_THAT(host.Stderr(), Catch::Contains("not connected to NATS") &&
                                  Catch::Contains("authorization violation", Catch::CaseSensitive::No) &&
                                  !Catch::Contains("wrong-secret"));
    CHECK_FALSE(host.WaitForEvent("subsystem_ready", "log", 10));
    CHECK(host.Terminate() == 0);
  }
  m["config"]["password"] = "right-secret";
  esdb::testing::HostProcess host(esdb::test::HostOnManifests(dir / "right", {m}));
  auto ready = host.WaitForEvent("subsystem_ready", "log", 30000);
  REQUIRE(ready);
  CHECK((*ready)["data"]["details"]["servers"] == json(nats.ClientUrls()));
  CHECK(host.Stderr().find("right-secret") == std::string::npos);
  CHECK(host.Terminate() == 0);
}

TEST_CASE("log: a tail shut down before it began never starts its watchdog; a tail asked of a closed log is "
          "refused",
          "[log]") {
  esdb::testing::TempDir dir("esdb-log-close");
  esdb::test::NatsCluster nats(dir / "nats", {.servers = 1});
  esdb::test::RequireNatsReady(nats, 30000);
  auto log = std::make_shared<NatsLog>(Options(nats.ClientUrls()), "race", nullptr);
  REQUIRE(log->Connect().ok());
  Collector c;
  {
    // What Tail() racing Close() did (the store opening while the host
    // stops every subsystem at once): Close() shut down a tail that Tail()
    // had registered and not begun yet; Begin() then started its watchdog,
    // which nothing joined, and destroying the tail ended the process in
    // std::terminate.
    esdb_log::NatsTail tail(log, 1, c.Handler());
    tail.Shutdown();
    tail.Begin();
  }
  log->Close();
  auto refused = log->Tail(1, c.Handler());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == esdb::Code::kCancelled);
  CHECK(c.entries.empty());
}

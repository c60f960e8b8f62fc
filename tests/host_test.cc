// The host in process with real test plugins: randomized readiness,
// parallel start, restarts and intensity, health, services, unloading.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "host.h"
#include "support/bus_recorder.h"
#include "support/in_process_host.h"
#include "support/test_support.h"

using esdb::test::BusRecorder;
using esdb::test::InProcessHostOptions;
using esdb::testing::TempDir;
using esdb::test::TestManifest;
using esdb::test::WriteManifest;

namespace {

bool LibraryMapped(const std::filesystem::path& lib) {
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

}  // namespace

TEST_CASE("readiness converges in 200 randomized runs of start order, delays and service dependencies",
          "[host][readiness]") {
  std::mt19937 rng(20261127);
  for (int run = 0; run < 200; ++run) {
    TempDir dir;
    auto options = InProcessHostOptions(dir, "test-node");
    // Five subsystems; names shuffled so launch order varies; one provides
    // a service that another waits for through the services topic.
    std::vector<std::string> names = {"alpha", "bravo", "charlie", "delta", "echo"};
    std::shuffle(names.begin(), names.end(), rng);
    const size_t provider = rng() % 5;
    size_t consumer = rng() % 5;
    if (consumer == provider) consumer = (consumer + 1) % 5;
    for (size_t i = 0; i < names.size(); ++i) {
      nlohmann::json config = nlohmann::json::object();
      const int delay = static_cast<int>(rng() % 25);
      if (rng() % 2) config["start_delay_ms"] = delay;
      else config["report_delay_ms"] = delay;
      if (i == provider) config["provide"] = "svc.shared";
      if (i == consumer) config["require"] = "svc.shared";
      WriteManifest(options.manifests_dir, TestManifest(names[i], config));
    }
    BusRecorder log;
    log.Attach(&options);
    esdb::host::Host host(options);
    REQUIRE(host.Start().ok());
    INFO("run " << run);
    REQUIRE(host.control_plane().WaitSystemReady(15000));
    CHECK(log.WaitFor("system_ready"));
    CHECK(log.Count("subsystem_ready") == 5);
    auto status = host.control_plane().Status();
    CHECK(status["not_ready"].empty());
    host.Shutdown();
    CHECK(log.Count("subsystem_stopped") == 5);
  }
}

TEST_CASE("subsystems start in parallel: five 300 ms starts take well under their sum", "[host][parallel]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  for (int i = 0; i < 5; ++i) {
    WriteManifest(options.manifests_dir, TestManifest("slow" + std::to_string(i), {{"start_delay_ms", 300}}));
  }
  esdb::host::Host host(options);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(15000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  INFO("5 x 300 ms starts took " << ms << " ms (sum 1500 ms)");
  CHECK(ms >= 300);
  CHECK(ms < 2 * 300);
}

TEST_CASE("sequential start mode starts one after another", "[host][parallel]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  options.sequential_start = true;
  for (int i = 0; i < 3; ++i) {
    WriteManifest(options.manifests_dir, TestManifest("seq" + std::to_string(i), {{"start_delay_ms", 100}}));
  }
  esdb::host::Host host(options);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(15000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ms >= 300);
}

TEST_CASE("a subsystem failing after start is restarted, past the intensity it is failed and the system degraded",
          "[host][restart]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("steady", {}));
  WriteManifest(options.manifests_dir,
                TestManifest("flaky", {{"fail_after_ms", 30}},
                             {{"restart", {{"max_restarts", 2}, {"max_seconds", 60}, {"backoff_initial_ms", 10}}}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(log.WaitFor("system_ready"));
  // Two restarts are allowed, the third failure is final.
  REQUIRE(log.WaitFor("subsystem_restarting", "flaky", 2));
  REQUIRE(log.WaitFor("system_degraded"));
  REQUIRE(log.WaitFor("subsystem_failed", "flaky", 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(log.Count("subsystem_ready", "flaky") == 3);
  CHECK(log.Count("subsystem_restarting", "flaky") == 2);
  const auto failures = log.Of("subsystem_failed");
  REQUIRE(failures.size() == 3);
  CHECK(failures[0]->data["final"] == false);
  CHECK(failures[1]->data["final"] == false);
  CHECK(failures[2]->data["final"] == true);
  CHECK(failures[2]->data["phase"] == "runtime");
  auto status = host.control_plane().Status();
  CHECK(status["subsystems"]["flaky"]["state"] == "failed");
  CHECK(status["subsystems"]["flaky"]["restarts"] == 2);
  CHECK(status["subsystems"]["steady"]["state"] == "ready");  // the others keep running
  CHECK_FALSE(host.control_plane().SystemReady());
  CHECK(status["degraded"] == true);
}

TEST_CASE("an unhealthy subsystem is restarted by the supervisor", "[host][health]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir,
                TestManifest("sick", {{"health", "unhealthy"}},
                             {{"health", {{"interval_ms", 20}, {"timeout_ms", 500}, {"failure_threshold", 2}}}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(log.WaitFor("health_changed", "sick"));
  REQUIRE(log.WaitFor("subsystem_restarting", "sick"));
  auto failed = log.Of("subsystem_failed");
  REQUIRE_FALSE(failed.empty());
  CHECK(failed[0]->data["phase"] == "health");
  CHECK_THAT(failed[0]->data["error"].get<std::string>(), Catch::Contains("test plugin told to be unhealthy"));
}

TEST_CASE("status shows every health check's details, not only those of a change of state", "[host][health]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("counted", {}, {{"health", {{"interval_ms", 20}}}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(10000));
  auto checks = [&] {
    const auto h = host.control_plane().Status()["subsystems"]["counted"]["health"];
    return h.contains("details") ? h["details"].value("checks", 0) : 0;
  };
  for (int i = 0; i < 500 && checks() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const int first = checks();
  CHECK(first >= 3);
  for (int i = 0; i < 500 && checks() < first + 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(checks() >= first + 2);  // it follows the checks
  const auto health = host.control_plane().Status()["subsystems"]["counted"]["health"];
  CHECK(health["healthy"] == true);
  CHECK(health["message"] == "");
  CHECK(health["at_us"].get<int64_t>() > 0);
  CHECK(log.Count("health_changed", "counted") == 0);  // it never changed state
}

TEST_CASE("a hung health check is caught by the watchdog", "[host][health]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir,
                TestManifest("hung", {{"health", "hang"}, {"hang_ms", 400}},
                             {{"health", {{"interval_ms", 20}, {"timeout_ms", 50}, {"failure_threshold", 1}}},
                              {"restart", {{"max_restarts", 0}}}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(log.WaitFor("subsystem_failed", "hung"));
  auto failed = log.Of("subsystem_failed");
  CHECK(failed[0]->data["phase"] == "health");
  CHECK_THAT(failed[0]->data["error"].get<std::string>(), Catch::Contains("did not answer"));
  // Let the abandoned check return before the process ends, so no thread is
  // still inside the plugin when the leak checker runs at exit.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
}

TEST_CASE("start failures: throw, error, never reporting, reporting failed", "[host][restart]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  const nlohmann::json once = {{"restart", {{"max_restarts", 1}, {"backoff_initial_ms", 5}}}, {"critical", false}};
  WriteManifest(options.manifests_dir, TestManifest("thrower", {{"start", "throw"}}, once));
  WriteManifest(options.manifests_dir, TestManifest("errorer", {{"start", "error"}}, once));
  auto never = once;
  never["start_timeout_ms"] = 100;
  WriteManifest(options.manifests_dir, TestManifest("silent", {{"start", "never"}}, never));
  WriteManifest(options.manifests_dir, TestManifest("reporter", {{"start", "report_failed"}}, once));
  WriteManifest(options.manifests_dir, TestManifest("fine", {}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(10000));  // none of the broken ones is critical
  for (const char* name : {"thrower", "errorer", "silent", "reporter"}) {
    INFO(name);
    REQUIRE(log.WaitFor("subsystem_failed", name, 2));  // first try and one restart
  }
  auto status = host.control_plane().Status();
  CHECK_THAT(status["subsystems"]["thrower"]["error"].get<std::string>(), Catch::Contains("Start() threw"));
  CHECK_THAT(status["subsystems"]["errorer"]["error"].get<std::string>(), Catch::Contains("told to fail Start"));
  CHECK_THAT(status["subsystems"]["silent"]["error"].get<std::string>(), Catch::Contains("did not report ready"));
  CHECK_THAT(status["subsystems"]["reporter"]["error"].get<std::string>(), Catch::Contains("told to report failure"));
  for (const char* name : {"thrower", "errorer", "silent", "reporter"}) {
    INFO(name);
    // The ControlPlane is a bus subscriber of its own; give it time to catch up.
    for (int i = 0; i < 500 && host.control_plane().Status()["subsystems"][name]["state"] != "failed"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(host.control_plane().Status()["subsystems"][name]["state"] == "failed");
  }
}

TEST_CASE("a start failing with invalid_argument (a bad config value) is not retried: failed at once", "[host][restart]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  const nlohmann::json retries = {{"restart", {{"max_restarts", 5}, {"backoff_initial_ms", 5}}}};
  WriteManifest(options.manifests_dir, TestManifest("badconfig", {{"start", "invalid"}}, retries));
  WriteManifest(options.manifests_dir, TestManifest("badreport", {{"start", "report_invalid"}}, retries));
  WriteManifest(options.manifests_dir, TestManifest("transient", {{"start", "error"}}, retries));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  // The retryable one is restarted; by then the others would have been too.
  REQUIRE(log.WaitFor("subsystem_restarting", "transient", 2));
  REQUIRE(log.WaitFor("system_degraded"));
  for (const char* name : {"badconfig", "badreport"}) {
    INFO(name);
    CHECK(log.Count("subsystem_failed", name) == 1);
    CHECK(log.Count("subsystem_restarting", name) == 0);
    CHECK(log.Count("subsystem_starting", name) == 1);
    auto failed = log.Wait("subsystem_failed", name);
    REQUIRE(failed);
    CHECK(failed->data["final"] == true);
    CHECK(failed->data["code"] == "invalid_argument");
    CHECK(failed->data["phase"] == "start");
    CHECK_THAT(failed->data["error"].get<std::string>(), Catch::StartsWith("config key 'start': test plugin told"));
    for (int i = 0; i < 500 && host.control_plane().Status()["subsystems"][name]["state"] != "failed"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const auto st = host.control_plane().Status()["subsystems"][name];
    CHECK(st["state"] == "failed");
    CHECK(st["restarts"] == 0);
    CHECK_THAT(st["error"].get<std::string>(), Catch::StartsWith("config key 'start': test plugin told"));
  }
  CHECK(host.control_plane().Status()["degraded"] == true);  // critical ones that cannot start
}

TEST_CASE("services: a consumer finds a provider that became ready earlier or later, stop withdraws",
          "[host][services]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("consumer", {{"require", "svc.x"}}));
  WriteManifest(options.manifests_dir, TestManifest("provider", {{"provide", "svc.x"}, {"report_delay_ms", 100}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(10000));
  // The recorder is a subscriber of its own: it may get the event a moment after the control plane.
  REQUIRE(log.WaitFor("subsystem_ready", "consumer"));
  auto ready = log.Of("subsystem_ready");
  bool consumer_saw_provider = false;
  for (auto& e : ready) {
    if (e->data["name"] == "consumer") consumer_saw_provider = e->data["details"]["required_from"] == "provider";
  }
  CHECK(consumer_saw_provider);
  host.Shutdown();
  CHECK(log.Count("service_withdrawn") >= 1);
}

TEST_CASE("after stop and release the plugin library is unmapped", "[host][unload]") {
  const auto lib = esdb::test::TestLibrary("libesdb_test_plugin.so");
  REQUIRE_FALSE(LibraryMapped(lib));
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("unloadme", {{"report_delay_ms", 5}, {"provide", "svc.u"}}));
  {
    esdb::host::Host host(options);
    REQUIRE(host.Start().ok());
    REQUIRE(host.control_plane().WaitSystemReady(10000));
    CHECK(LibraryMapped(lib));
    host.Shutdown();
    host.reaper().Flush();
    CHECK_FALSE(LibraryMapped(lib));
  }
  CHECK_FALSE(LibraryMapped(lib));
}

TEST_CASE("a plugin marked unloadable:false stays mapped after stop", "[host][unload]") {
  const auto lib = esdb::test::TestLibrary("libesdb_test_plugin_pinned.so");
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("pinned", {}, {{"library", lib.string()}, {"unloadable", false}}));
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(10000));
  host.Shutdown();
  host.reaper().Flush();
  CHECK(host.reaper().pinned() == 1);
  CHECK(LibraryMapped(lib));
}

TEST_CASE("a plugin serves sockets from ctx.Io() (the loop runs in the plugin's copy of Asio)", "[host][io]") {
  TempDir dir;
  auto options = InProcessHostOptions(dir, "test-node");
  WriteManifest(options.manifests_dir, TestManifest("echo", {{"echo_server", true}}, {{"threads", 2}}));
  BusRecorder log;
  log.Attach(&options);
  esdb::host::Host host(options);
  REQUIRE(host.Start().ok());
  REQUIRE(host.control_plane().WaitSystemReady(10000));
  // The log's own subscriber may see subsystem_ready after the ControlPlane did.
  REQUIRE(log.WaitFor("subsystem_ready", "echo"));
  const int port = log.Of("subsystem_ready")[0]->data["details"]["port"];
  for (int i = 0; i < 20; ++i) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    const std::string msg = "ping " + std::to_string(i);
    boost::asio::write(s, boost::asio::buffer(msg));
    std::string got(msg.size(), '\0');
    boost::asio::read(s, boost::asio::buffer(got));
    CHECK(got == msg);
  }
  host.Shutdown();
  CHECK(log.Count("subsystem_stopped", "echo") == 1);
}

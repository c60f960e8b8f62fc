// esdb-host as a real process: --check, bad manifests, graceful SIGTERM,
// and the default manifests.
#include <signal.h>

#include <chrono>

#include <catch2/catch.hpp>

#include "esdb/version.h"
#include "support/test_support.h"

using esdb::testing::HostOptions;
using esdb::testing::HostProcess;
using esdb::testing::TempDir;
using esdb::test::TestLibrary;
using esdb::test::TestManifest;
using esdb::test::WriteFile;
using esdb::test::WriteManifest;

namespace {

// `args` and the plugin directories of the build and the test plugins.
std::vector<std::string> WithPluginDirs(std::vector<std::string> args) {
  for (const auto& a : esdb::test::PluginDirArgs()) args.push_back(a);
  return args;
}

std::string FailureError(HostProcess& host, const std::string& name) {
  auto e = host.WaitFor(
      [&](const nlohmann::json& j) {
        return j.value("type", "") == "subsystem_failed" && j["data"].value("name", "") == name;
      },
      20000);
  return e ? (*e)["data"].value("error", "") : "<no subsystem_failed event for " + name + ">";
}

}  // namespace

TEST_CASE("every bad manifest gets its own clear error and the rest of the system still becomes ready",
          "[process][manifest]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  WriteManifest(m, TestManifest("good_a", {}));
  WriteManifest(m, TestManifest("good_b", {{"report_delay_ms", 20}}));
  WriteFile(m / "malformed.json", "{\"name\": \"malformed\", ");
  WriteManifest(m, TestManifest("unknown_field", {}, {{"colour", "red"}}));
  WriteManifest(m, TestManifest("wrong_type", {}, {{"critical", "yes"}}));
  WriteManifest(m, TestManifest("missing_library", {}, {{"library", "/nonexistent/libnope.so"}}));
  WriteManifest(m, TestManifest("not_a_plugin", {}, {{"library", TestLibrary("libnot_a_plugin.so").string()}}));
  WriteManifest(m, TestManifest("missing_entry", {}, {{"entry", "no_such_entry"}}));
  WriteManifest(m, TestManifest("api_mismatch", {}, {{"api_version", "2.0"}}));
  WriteManifest(m, TestManifest("future_api", {},
                                {{"library", TestLibrary("libesdb_future_api_plugin.so").string()},
                                 {"api_version", "1." + std::to_string(ESDB_SDK_API_MINOR + 1)},
                                 {"entry", "esdb_create_future"}}));
  WriteFile(m / "zz_duplicate.json", TestManifest("good_a", {}).dump());
  WriteManifest(m, TestManifest("factory_throws", {}, {{"entry", "esdb_create_throwing"}}));
  WriteManifest(m, TestManifest("factory_null", {}, {{"entry", "esdb_create_null"}}));
  const nlohmann::json give_up = {{"critical", false}, {"restart", {{"max_restarts", 0}}}};
  WriteManifest(m, TestManifest("start_throws", {{"start", "throw"}}, give_up));
  auto never = give_up;
  never["start_timeout_ms"] = 300;
  WriteManifest(m, TestManifest("never_reports", {{"start", "never"}}, never));

  HostProcess host(HostOptions::Exactly(WithPluginDirs({"--manifests", m.string(), "--data", (dir.path() / "data").string(),
                                   "--print-events", "--node", "t1"})));
  auto ready = host.WaitForEvent("system_ready");
  INFO(host.Stderr());
  REQUIRE(ready);
  CHECK((*ready)["data"]["ready"] == nlohmann::json::array({"good_a", "good_b"}));

  CHECK_THAT(FailureError(host, "malformed"), Catch::Contains("malformed.json: malformed JSON"));
  CHECK_THAT(FailureError(host, "unknown_field"), Catch::Contains("unknown_field.json: field 'colour': unknown field"));
  CHECK_THAT(FailureError(host, "wrong_type"),
             Catch::Contains("wrong_type.json: field 'critical': must be true or false, got string"));
  CHECK_THAT(FailureError(host, "missing_library"), Catch::Contains("/nonexistent/libnope.so does not exist"));
  CHECK_THAT(FailureError(host, "not_a_plugin"), Catch::Contains("is not an esdb plugin"));
  CHECK_THAT(FailureError(host, "missing_entry"), Catch::Contains("field 'entry': symbol 'no_such_entry' not found"));
  CHECK_THAT(FailureError(host, "api_mismatch"),
             Catch::Contains("manifest says 2.0 but the library was built for SDK API 1." + std::to_string(ESDB_SDK_API_MINOR)));
  CHECK_THAT(FailureError(host, "future_api"), Catch::Contains("plugin built for SDK API 1." + std::to_string(ESDB_SDK_API_MINOR + 1) +
                                                                  ", host provides 1." + std::to_string(ESDB_SDK_API_MINOR)));
  CHECK_THAT(FailureError(host, "zz_duplicate"), Catch::Contains("duplicate subsystem name 'good_a'"));
  CHECK_THAT(FailureError(host, "factory_throws"), Catch::Contains("the plugin factory threw: test factory told to throw"));
  CHECK_THAT(FailureError(host, "factory_null"), Catch::Contains("factory returned no instance"));
  CHECK_THAT(FailureError(host, "start_throws"), Catch::Contains("Start() threw: test plugin told to throw"));
  CHECK_THAT(FailureError(host, "never_reports"), Catch::Contains("did not report ready within start_timeout_ms=300"));

  // The host keeps serving the good ones and stops cleanly.
  CHECK(host.Terminate() == 0);
  CHECK(host.WaitForEvent("subsystem_stopped", "good_a", 1000));
}

TEST_CASE("check mode exits 1 when the system does not become ready in time", "[process]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  WriteManifest(m, TestManifest("slowpoke", {{"start", "never"}}, {{"start_timeout_ms", 60000}}));
  HostProcess host(HostOptions::Exactly(
      WithPluginDirs({"--manifests", m.string(), "--data", (dir.path() / "data").string(), "--check", "--timeout", "1"})));
  auto code = host.Wait(30000);
  REQUIRE(code.has_value());
  CHECK(*code == 1);
  const auto lines = host.Lines();
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back()["ready"] == false);
  CHECK(lines.back()["not_ready"] == nlohmann::json::array({"slowpoke"}));
}

TEST_CASE("SIGTERM stops every subsystem gracefully and exits 0", "[process]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  for (const char* n : {"one", "two", "three"}) WriteManifest(m, TestManifest(n, {{"report_delay_ms", 10}}));
  HostProcess host(HostOptions::Exactly(WithPluginDirs({"--manifests", m.string(), "--data", (dir.path() / "data").string(), "--print-events"})));
  REQUIRE(host.WaitForEvent("system_ready"));
  CHECK(host.Terminate() == 0);
  for (const char* n : {"one", "two", "three"}) {
    CHECK(host.WaitForEvent("subsystem_stopping", n, 1000));
    CHECK(host.WaitForEvent("subsystem_stopped", n, 1000));
  }
  CHECK(host.WaitForEvent("system_stopping", "", 1000));
  CHECK_FALSE(host.WaitForEvent("system_degraded", "", 10));
}

TEST_CASE("a plugin that faults kills the host, which leaves the signal and the stack on stderr", "[process]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  WriteManifest(m, TestManifest("faulty", {{"start", "fault"}}));
  HostProcess host(HostOptions::Exactly(WithPluginDirs({"--manifests", m.string(), "--data", (dir.path() / "data").string()})));
  const auto code = host.Wait(30000);
  REQUIRE(code);
  const std::string err = host.Stderr();
  INFO(err);
#ifdef ESDB_SANITIZED_BUILD
  // AddressSanitizer reports the fault itself (and exits with its own code).
  CHECK(*code != 0);
  CHECK(err.find("AddressSanitizer: SEGV") != std::string::npos);
#else
  CHECK(*code == -SIGSEGV);
  const size_t at = err.find("esdb-host: fatal signal 11 (SEGV) in thread ");
  REQUIRE(at != std::string::npos);
  CHECK(err.find(" at address 0x0000000000000000; stack:\n", at) != std::string::npos);
  // One line per frame, the faulting plugin's among them.
  int frames = 0;
  for (size_t p = err.find('\n', at); p != std::string::npos && p + 1 < err.size(); p = err.find('\n', p + 1)) {
    if (err.find("[0x", p) < err.find('\n', p + 1)) ++frames;
  }
  CHECK(frames >= 3);
  CHECK(err.find("libesdb_test_plugin") != std::string::npos);
#endif
}

TEST_CASE("SIGHUP re-reads the manifests directory: added, changed and deleted files, the host keeps running",
          "[process]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  WriteManifest(m, TestManifest("one", {}));
  HostProcess host(HostOptions::Exactly(WithPluginDirs(
      {"--manifests", m.string(), "--data", (dir.path() / "data").string(), "--print-events", "--no-watch"})));
  REQUIRE(host.WaitForEvent("system_ready"));
  WriteManifest(m, TestManifest("two", {}));
  WriteFile(m / "broken.json", "{\"name\": ");
  // Not watched: nothing happens until the signal.
  CHECK_FALSE(host.WaitForEvent("subsystem_starting", "two", 300));
  REQUIRE(::kill(host.pid(), SIGHUP) == 0);
  CHECK(host.WaitForEvent("subsystem_ready", "two", 10000));
  CHECK_THAT(FailureError(host, "broken"), Catch::Contains("broken.json"));
  // A second SIGHUP with nothing changed does nothing to the running ones.
  std::filesystem::remove(m / "broken.json");
  std::filesystem::remove(m / "one.json");
  REQUIRE(::kill(host.pid(), SIGHUP) == 0);
  CHECK(host.WaitForEvent("subsystem_removed", "one", 10000));
  CHECK_FALSE(host.WaitForEvent("subsystem_stopping", "two", 300));
  CHECK(host.Terminate() == 0);
}

TEST_CASE("bad command lines are refused with the option named", "[process]") {
  HostProcess unknown(HostOptions::Exactly({"--frobnicate"}));
  CHECK(unknown.Wait(10000) == 2);
  CHECK_THAT(unknown.Stderr(), Catch::Contains("unknown option '--frobnicate'"));
  HostProcess bad_timeout(HostOptions::Exactly({"--check", "--timeout", "soon"}));
  CHECK(bad_timeout.Wait(10000) == 2);
  CHECK_THAT(bad_timeout.Stderr(), Catch::Contains("--timeout: 'soon'"));
  TempDir dir;
  HostProcess no_dir(HostOptions::Exactly({"--manifests", (dir.path() / "nope").string(), "--data", (dir.path() / "d").string()}));
  CHECK(no_dir.Wait(10000) == 1);
  CHECK_THAT(no_dir.Stderr(), Catch::Contains("manifest directory"));
}

TEST_CASE("esdb-host --check on the default manifests: six subsystems ready", "[process][defaults]") {
  TempDir dir;
  HostProcess host(HostOptions::Exactly({"--manifests", ESDB_SOURCE_DIR "/manifests", "--data", (dir.path() / "data").string(), "--check",
                    "--timeout", "60", "--set", "gateway.listen_port=0", "--set", "grpc.listen_port=0"}));
  auto code = host.Wait(90000);
  REQUIRE(code.has_value());
  INFO(host.Stderr());
  CHECK(*code == 0);
  const auto lines = host.Lines();
  REQUIRE_FALSE(lines.empty());
  const auto& status = lines.back();
  CHECK(status["ready"] == true);
  for (const char* n : {"persistence", "store", "notification", "cluster", "gateway", "grpc"}) {
    INFO(n);
    CHECK(status["subsystems"][n]["state"] == "ready");
  }
  CHECK(status["subsystems"].size() == 6);
  // Persistence opened its LevelDB in the data directory.
  CHECK(std::filesystem::exists(dir.path() / "data" / "persistence"));
}

// Issue 10: a clean stop logged "persistence withdrew esdb.storage/1" as a
// warning from the store (the subsystems stop in parallel).
TEST_CASE("SIGTERM to a host running the default manifests logs no warning and no error", "[process][defaults]") {
  TempDir dir;
  HostOptions options;
  options.manifests = ESDB_SOURCE_DIR "/manifests";
  options.data = dir.path() / "data";
  HostProcess host(options);
  REQUIRE(host.WaitForEvent("system_ready", "", 60000));
  CHECK(host.Terminate(30000) == 0);
  const std::string log = host.Stderr();
  INFO(log);
  CHECK_THAT(log, Catch::Contains("host stopped"));
  CHECK_THAT(log, !Catch::Contains("[warning]") && !Catch::Contains("[error]") && !Catch::Contains("[critical]"));
}

TEST_CASE("SIGTERM with a bus handler that never returns: the host exits within its deadlines, naming the stuck part",
          "[process][shutdown]") {
  TempDir dir;
  const auto m = dir.path() / "manifests";
  std::filesystem::create_directories(m);
  WriteManifest(m, TestManifest("stuck", {{"bus_handler", "block"}}, {{"stop_timeout_ms", 500}}));
  WriteManifest(m, TestManifest("fine", {}));
  HostProcess host(HostOptions::Exactly(WithPluginDirs({"--manifests", m.string(), "--data", (dir.path() / "data").string(), "--print-events"})));
  REQUIRE(host.WaitForEvent("system_ready"));
  const auto t0 = std::chrono::steady_clock::now();
  const int code = host.Terminate(30000);  // -1000: still running after 30 s (SIGKILLed)
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  const std::string log = host.Stderr();
  INFO(log);
  CHECK(code == 0);
  // stop_timeout_ms for the subsystem, then the host's bounded bus shutdown (2 s).
  CHECK(ms < 10000);
  CHECK_THAT(log, Catch::Contains("bus subscription 'stuck-blocker' of subsystem stuck"));
  CHECK_THAT(log, Catch::Contains("host stopped, leaving stuck parts behind"));
  CHECK(host.WaitForEvent("subsystem_stopped", "fine", 1000));
}

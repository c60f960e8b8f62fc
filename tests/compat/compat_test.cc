// Plugins built against the released SDK 1.0 headers run in today's host,
// and a plugin built with a foreign ABI is refused (README.md here).
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "esdb/testing/http.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using esdb::testing::HostOptions;
using esdb::testing::HostProcess;
using esdb::testing::Http;
using esdb::testing::TempDir;
using esdb::test::TestLibrary;
using esdb::test::TestManifest;
using esdb::test::WriteManifest;

namespace {

// A built-in plugin's manifest from the source tree.
json Builtin(const std::string& name) {
  json m = esdb::test::BuiltinManifest(name);
#ifdef ESDB_SANITIZED_BUILD
  // LeakSanitizer counts the statics of unloaded libraries as leaks; the
  // loading is what is tested here, not the unloading.
  m["unloadable"] = false;
#endif
  return m;
}

json CompatManifest(const std::string& name, const std::string& library, const std::string& entry,
                    const std::string& api_version, const json& config = json::object()) {
  json m = TestManifest(name, config,
                        {{"library", TestLibrary(library).string()}, {"entry", entry}, {"api_version", api_version}});
#ifdef ESDB_SANITIZED_BUILD
  m["unloadable"] = false;
#endif
  return m;
}

HostOptions HostArgs(const TempDir& dir) {
  HostOptions o;
  o.manifests = dir.path() / "manifests";
  o.data = dir.path() / "data";
  o.args = {"--node", "compat"};
  for (const auto& a : esdb::test::PluginDirArgs()) o.args.push_back(a);
  return o;
}

}  // namespace

TEST_CASE("a plugin built against SDK 1.0 uses today's store through esdb.event_store/1", "[compat]") {
  TempDir dir;
  const fs::path m = dir.path() / "manifests";
  fs::create_directories(m);
  WriteManifest(m, Builtin("persistence"));
  WriteManifest(m, Builtin("store"));
  WriteManifest(m, CompatManifest("compat_consumer", "libesdb_compat_consumer_1_0.so", "esdb_create_compat_consumer",
                                  "1.0", {{"stream", "from-1.0"}}));
  HostProcess host(HostArgs(dir));
  const auto ready = host.WaitForEvent("subsystem_ready", "compat_consumer", 60000);
  INFO(host.Stderr());
  REQUIRE(ready);
  const json details = (*ready)["data"]["details"];
  INFO(details.dump());
  CHECK(details["next_expected_version"] == 2);
  CHECK(details["conflict"] == "wrong_expected_version");
  CHECK(details["read_types"] == json::array({"compat-a", "compat-b", "compat-c"}));
  CHECK(details["stream_version"] == 2);
  REQUIRE(host.WaitForEvent("system_ready", "", 30000));
  CHECK_THAT(host.Stderr(), Catch::Contains("compat_consumer: built against SDK 1.0: its ABI is not checked and the "
                                            "host runs its Io() loop"));
  CHECK(host.Terminate() == 0);
}

TEST_CASE("today's gateway serves a store and a subscriptions provider built against SDK 1.0", "[compat]") {
  TempDir dir;
  const fs::path m = dir.path() / "manifests";
  fs::create_directories(m);
  WriteManifest(m, CompatManifest("compat_store", "libesdb_compat_provider_1_0.so", "esdb_create_compat_provider",
                                  "1.0"));
  json gateway = Builtin("gateway");
  gateway["config"]["insecure_admin"] = true;  // the group routes need the admin role; loopback only
  WriteManifest(m, gateway);
  HostProcess host(HostArgs(dir));
  {
    const auto ready = host.WaitForEvent("system_ready", "", 60000);
    INFO(host.Stderr());
    REQUIRE(ready);
  }
  const auto listening = host.GatewayPort();
  INFO(listening.status().ToString());
  REQUIRE(listening.ok());
  const uint16_t port = *listening;

  const json events = json::array({{{"eventId", "6f1c2a4e-0a6b-4c55-9d2e-3b8f1a2c4d01"},
                                    {"eventType", "Old"},
                                    {"data", {{"n", 1}}}},
                                   {{"eventId", "6f1c2a4e-0a6b-4c55-9d2e-3b8f1a2c4d02"},
                                    {"eventType", "Older"},
                                    {"data", {{"n", 2}}}}});
  auto appended = Http(port, "POST", "/streams/legacy", events.dump(), {{"ES-ExpectedVersion", "-1"}});
  INFO(appended.body);
  REQUIRE(appended.status == 201);
  // The 1.0 provider's conflict reaches the client as today's store's would.
  const json another = json::array({{{"eventType", "Late"}, {"data", json::object()}}});
  auto conflict = Http(port, "POST", "/streams/legacy", another.dump(), {{"ES-ExpectedVersion", "-1"}});
  INFO(conflict.body);
  CHECK(conflict.status == 409);
  CHECK(conflict.Json().value("current", -100) == 1);

  auto read = Http(port, "GET", "/streams/legacy?direction=forward&count=10");
  INFO(read.body);
  REQUIRE(read.status == 200);
  const json body = read.Json();
  std::vector<std::string> types;
  for (const auto& e : body.value("events", json::array())) types.push_back(e.value("type", ""));
  CHECK(types == std::vector<std::string>{"Old", "Older"});

  // Its "esdb.subscriptions/1" serves today's group routes through
  // AcquireSubscriptions()'s adapter; what only /2 can do is refused naming
  // /2, and the /2 fields read as their defaults.
  auto created = Http(port, "PUT", "/subscriptions/legacy/g", R"({"max_retry": 3})");
  INFO(created.body);
  CHECK(created.status == 201);
  auto info = Http(port, "GET", "/subscriptions/legacy/g");
  INFO(info.body);
  REQUIRE(info.status == 200);
  CHECK(info.Json()["settings"]["max_retry"] == 3);
  CHECK(info.Json()["settings"]["max_subscriber_count"] == 0);
  auto limited = Http(port, "PUT", "/subscriptions/legacy/h", R"({"max_subscriber_count": 2})");
  INFO(limited.body);
  CHECK(limited.status == 400);
  CHECK_THAT(limited.body, Catch::Contains("max_subscriber_count") && Catch::Contains("esdb.subscriptions/2"));
  CHECK(Http(port, "GET", "/subscriptions/legacy/h").status == 404);  // nothing half-created
  auto some = Http(port, "POST", "/subscriptions/legacy/g/replay-parked?max_count=1");
  CHECK(some.status == 400);
  CHECK_THAT(some.body, Catch::Contains("esdb.subscriptions/2"));
  auto all = Http(port, "POST", "/subscriptions/legacy/g/replay-parked");
  INFO(all.body);
  CHECK(all.status == 200);
  CHECK(all.Json()["replayed"] == 0);
  auto listed = Http(port, "GET", "/subscriptions");
  INFO(listed.body);
  REQUIRE(listed.status == 200);
  CHECK(listed.body.find("\"g\"") != std::string::npos);
  CHECK(Http(port, "DELETE", "/subscriptions/legacy/g").status == 204);
  CHECK(Http(port, "GET", "/subscriptions/legacy/g").status == 404);
  CHECK(host.Terminate() == 0);
}

TEST_CASE("a plugin with a foreign ABI is refused at load, naming what differs", "[compat]") {
  TempDir dir;
  const fs::path m = dir.path() / "manifests";
  fs::create_directories(m);
  WriteManifest(m, CompatManifest("old_abi", "libesdb_compat_old_string_abi.so", "esdb_create_old_string_abi", "1.1",
                                  json::object()));
  HostProcess host(HostArgs(dir));
  const auto failed = host.WaitFor(
      [](const json& j) {
        return j.value("type", "") == "subsystem_failed" && j["data"].value("name", "") == "old_abi";
      },
      30000);
  INFO(host.Stderr());
  REQUIRE(failed);
  const std::string error = (*failed)["data"].value("error", "");
  CHECK_THAT(error, Catch::Contains("ABI mismatch"));
  CHECK_THAT(error, Catch::Contains("libstdcxx_abi: plugin old, host cxx11"));
  CHECK_THAT(error, !Catch::Contains("boost:"));  // only what differs
  CHECK_THAT(host.Stderr(), !Catch::Contains("must never be created"));
  host.Terminate();
}

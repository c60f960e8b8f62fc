// The example's own tests, with the SDK's testing kit (esdb::testing from
// find_package(esdb_sdk COMPONENTS testing)) and no test framework: each
// check prints what failed, and the exit code says whether all passed.
//
// 1. In-process, through a FakeContext: the plugin library loads as the host
//    loads it, refuses a bad config, waits (not ready) while there is no
//    store, and leaves nothing behind after Stop() (no subscription, and the
//    library unloads).
// 2. In a real esdb-host (the one installed with the kit) with the store and
//    the gateway: it catches up and counts events appended over HTTP.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <esdb/testing/testing.h>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;
namespace fs = std::filesystem;
namespace et = esdb::testing;

int failures = 0;

#define EXPECT(cond, what)                                                          \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ++failures;                                                                   \
      std::fprintf(stderr, "%s:%d: FAILED: %s: %s\n", __FILE__, __LINE__, #cond,    \
                   std::string(what).c_str());                                      \
    }                                                                               \
  } while (0)

void InProcess() {
  auto lib = et::PluginLibrary::Load(EVENT_TYPE_COUNTER_LIBRARY, "create_event_type_counter");
  EXPECT(lib.ok(), lib.status().ToString());
  if (!lib.ok()) return;
  {
    // A config error is a failed start, naming the key.
    et::FakeContext ctx({.name = "event_type_counter", .config = {{"stream", "$mine"}}, .run_io = (*lib)->RunIo()});
    auto counter = (*lib)->Create();
    const esdb::Status s = counter->Start(ctx);
    EXPECT(s.code() == esdb::Code::kInvalidArgument && s.message().find("config.stream") != std::string::npos,
           s.ToString());
    EXPECT(counter->Stop().ok(), "Stop after a failed Start");
  }
  {
    et::FakeContext ctx({.name = "event_type_counter", .run_io = (*lib)->RunIo()});
    auto counter = (*lib)->Create();
    const esdb::Status s = counter->Start(ctx);
    EXPECT(s.ok(), s.ToString());
    // No esdb.event_store/2 in this registry: it waits, it does not fail.
    const esdb::Status ready = ctx.WaitReady(300);
    EXPECT(ready.code() == esdb::Code::kTimeout, ready.ToString());
    EXPECT(ctx.ActiveSubscriptions() == 3, std::to_string(ctx.ActiveSubscriptions()));
    EXPECT(counter->Stop().ok(), "Stop");
    EXPECT(ctx.ActiveSubscriptions() == 0, "subscriptions left after Stop()");
    ctx.StopIo();
  }
  EXPECT((*lib)->Unload(), "the library stayed mapped after its subsystems were destroyed");
}

void WriteManifest(const fs::path& dir, const json& manifest) {
  std::ofstream(dir / (manifest.at("name").get<std::string>() + ".json")) << manifest.dump(2);
}

json Builtin(const std::string& name) {
  return {{"name", name},
          {"version", "1.0.0"},
          {"api_version", "1.1"},
          {"library", "libesdb_" + name + ".so"},  // from the installed host's plugin directory
          {"entry", "esdb_create_" + name},
          {"unloadable", false}};
}

void InAHost() {
  et::TempDir dir;
  const fs::path manifests = dir / "manifests";
  fs::create_directories(manifests);
  for (const char* name : {"persistence", "store", "gateway"}) WriteManifest(manifests, Builtin(name));
  // The manifest the build wrote, with the library's absolute path.
  WriteManifest(manifests, json::parse(std::ifstream(EVENT_TYPE_COUNTER_MANIFEST)));

  et::HostProcess host({.manifests = manifests,
                        .data = dir / "data",
                        .plugin_dirs = {ESDB_TESTING_PLUGIN_DIR, fs::path(EVENT_TYPE_COUNTER_LIBRARY).parent_path()},
                        .log_level = "warn"});
  const auto port = host.GatewayPort();
  EXPECT(port.ok(), port.status().ToString());
  const auto ready = host.WaitForEvent("subsystem_ready", "event_type_counter", 60000);
  EXPECT(ready, host.Stderr());
  if (!port.ok() || !ready) return;

  const json events = json::array({{{"eventType", "OrderPlaced"}, {"data", json::object()}},
                                   {{"eventType", "OrderPlaced"}, {"data", json::object()}},
                                   {{"eventType", "OrderShipped"}, {"data", json::object()}}});
  const et::HttpResult r = et::Http(*port, "POST", "/streams/order-1", events.dump(),
                                    {{"ES-ExpectedVersion", "any"}, {"Content-Type", "application/json"}});
  EXPECT(r.status == 201, std::to_string(r.status) + " " + r.body + r.error);
  const json expected = {{"OrderPlaced", 2}, {"OrderShipped", 1}};
  const auto updated = host.WaitFor(
      [&](const json& e) {
        return e.value("type", "") == "type_counts_updated" && e["data"].value("counts", json()) == expected;
      },
      30000);
  EXPECT(updated, "no type_counts_updated with " + expected.dump());
  const int code = host.Terminate();
  EXPECT(code == 0, "exit code " + std::to_string(code) + "; " + host.Stderr());
}

}  // namespace

int main() {
  InProcess();
  InAHost();
  std::fprintf(stderr, failures == 0 ? "all passed\n" : "%d check(s) failed\n", failures);
  return failures == 0 ? 0 : 1;
}

// The admin routes (/admin/plugins) and `esdb plugins` against a real
// esdb-host: hot add (by path and inline), remove (the library unmapped
// afterwards: /proc/<pid>/maps), reload with a changed build, a reload whose
// new build fails, the gateway reloading itself, the auth matrix, bad bodies.
// The plugins added are the host tests' configurable test plugin.
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "admin_host.h"
#include "http_client.h"
#include "test_server.h"

using namespace gwtest;
using esdb::test::TestLibrary;
using esdb::test::TestManifest;
using esdb::test::WriteManifest;
using nlohmann::json;

namespace {

HttpResult Post(uint16_t port, const std::string& target, const json& body, std::map<std::string, std::string> h = {}) {
  return Http(port, "POST", target, body.dump(), std::move(h));
}

// GET /admin/plugins/{name}, polled until `pred` holds (bounded).
json PluginWhen(uint16_t port, const std::string& name, const std::function<bool(const json&)>& pred,
                int timeout_ms = 10000, const std::map<std::string, std::string>& headers = {}) {
  json last;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    auto r = Http(port, "GET", "/admin/plugins/" + name, "", headers);
    last = r.Json();
    if (r.status == 200 && pred(last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return last;
}

std::string Lib(const char* file) { return TestLibrary(file).string(); }

}  // namespace

TEST_CASE("admin API: add by path and inline, list, reload a changed build, remove and unmap", "[admin]") {
  AdminHost host({}, {kDevMode});
  const uint16_t port = host.port();
  const std::string lib_a = Lib("libesdb_test_plugin.so"), lib_b = Lib("libesdb_test_plugin_b.so"),
                    lib_c = Lib("libesdb_test_plugin_pinned.so");

  // Every loaded plugin with manifest, version, state, library and generation.
  // (gateway_listening comes from inside the gateway's start, before it reports ready.)
  PluginWhen(port, "gateway", [](const json& p) { return p["state"] == "ready"; });
  auto r = Http(port, "GET", "/admin/plugins");
  REQUIRE(r.status == 200);
  REQUIRE(r.Json()["plugins"].size() == 1);
  json gw = r.Json()["plugins"][0];
  CHECK(gw["name"] == "gateway");
  CHECK(gw["state"] == "ready");
  CHECK(gw["generation"] == 1);
  CHECK(gw["version"] == gw["manifest"]["version"]);
  CHECK_THAT(gw["library"].get<std::string>(), Catch::EndsWith("/libesdb_gateway.so"));
  CHECK(gw["loaded_from"] == gw["library"]);

  // Add by path, waiting for the outcome.
  const auto svc_file = host.extra_dir() / "svc.json";
  WriteManifest(host.extra_dir(), TestManifest("svc", {{"report_delay_ms", 20}}, {{"library", lib_a}}));
  r = Post(port, "/admin/plugins?wait=true", {{"path", svc_file.string()}});
  REQUIRE(r.status == 200);
  json body = r.Json();
  CHECK(body["operation"] == "add");
  CHECK(body["completed"] == true);
  CHECK(body["outcome"] == "ready");
  CHECK(body["name"] == "svc");
  CHECK(body["version"] == "1.0.0");
  CHECK(body["event"]["type"] == "subsystem_ready");
  CHECK(body["event"]["correlation_id"] == body["operation_id"]);
  CHECK(host.Mapped(lib_a));
  json svc = PluginWhen(port, "svc", [](const json&) { return true; });
  CHECK(svc["state"] == "ready");
  CHECK(svc["generation"] == 1);
  CHECK(svc["manifest"]["file"] == svc_file.string());
  CHECK(Http(port, "GET", "/admin/plugins").Json()["plugins"].size() == 2);

  // The same name again: the host reads the file after accepting the add
  // (never on the gateway's I/O thread), then refuses it.
  r = Post(port, "/admin/plugins?wait=true", {{"path", svc_file.string()}});
  REQUIRE(r.status == 200);
  CHECK(r.Json()["outcome"] == "failed");
  CHECK(r.Json()["phase"] == "manifest");
  CHECK_THAT(r.Json()["error"].get<std::string>(), Catch::Contains("a subsystem named 'svc' is already loaded"));

  // Reload with a changed build: another library, another version.
  WriteManifest(host.extra_dir(),
                TestManifest("svc", {{"report_delay_ms", 20}}, {{"library", lib_b}, {"version", "2.0.0"}}));
  r = Http(port, "POST", "/admin/plugins/svc/reload?wait=true");
  REQUIRE(r.status == 200);
  body = r.Json();
  CHECK(body["outcome"] == "reloaded");
  CHECK(body["old_version"] == "1.0.0");
  CHECK(body["new_version"] == "2.0.0");
  CHECK(body["generation"] == 2);
  const std::string loaded_from = body["loaded_from"];
  CHECK_THAT(loaded_from, Catch::Contains("libesdb_test_plugin_b.") && Catch::Contains(".g2.so"));
  CHECK_FALSE(host.Mapped(lib_a));  // the old build was drained and unloaded
  CHECK(host.Mapped(loaded_from));
  svc = PluginWhen(port, "svc", [](const json& p) { return p["version"] == "2.0.0"; });
  CHECK(svc["state"] == "ready");
  CHECK(svc["generation"] == 2);
  CHECK(svc["loaded_from"] == loaded_from);

  // Add inline without waiting: 202 with the operation id, then it becomes ready.
  // The caller's traceparent makes the operation id: its trace id, which the
  // host stamps as correlation_id on the lifecycle events.
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  r = Post(port, "/admin/plugins", {{"manifest", TestManifest("inline1", {}, {{"library", lib_c}})}},
           {{"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}});
  REQUIRE(r.status == 202);
  body = r.Json();
  CHECK(body["completed"] == false);
  CHECK(body["name"] == "inline1");
  CHECK(body["operation_id"] == trace);
  CHECK_THAT(r.headers["traceresponse"], Catch::StartsWith("00-" + trace + "-"));
  CHECK(PluginWhen(port, "inline1", [](const json& p) { return p["state"] == "ready"; })["state"] == "ready");
  auto added = host.process().WaitForEvent("subsystem_added", "inline1");
  REQUIRE(added);
  CHECK((*added)["correlation_id"] == body["operation_id"]);
  CHECK(host.Mapped(lib_c));

  // Remove both; their libraries are unmapped by the time the outcome arrives.
  r = Http(port, "DELETE", "/admin/plugins/inline1?wait=true");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["outcome"] == "removed");
  CHECK_FALSE(host.Mapped(lib_c));
  r = Http(port, "DELETE", "/admin/plugins/svc?wait=true");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["outcome"] == "removed");
  CHECK_FALSE(host.Mapped(loaded_from));
  CHECK(Http(port, "GET", "/admin/plugins").Json()["plugins"].size() == 1);

  // Unknown names: 404.
  r = Http(port, "DELETE", "/admin/plugins/svc");
  REQUIRE(r.status == 404);
  CHECK(r.Json()["error"] == "not_found");
  CHECK(Http(port, "POST", "/admin/plugins/svc/reload").status == 404);
  CHECK(Http(port, "GET", "/admin/plugins/svc").status == 404);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("admin API: failed starts and reloads report their reason; the old build keeps serving", "[admin]") {
  AdminHost host({}, {kDevMode});
  const uint16_t port = host.port();
  const std::string lib_a = Lib("libesdb_test_plugin.so"), lib_b = Lib("libesdb_test_plugin_b.so");

  // An add whose library is missing: accepted, then failed (final).
  auto r = Post(port, "/admin/plugins?wait=true",
                {{"manifest", TestManifest("ghost", {}, {{"library", "/nonexistent/libghost.so"}})}});
  REQUIRE(r.status == 200);
  CHECK(r.Json()["outcome"] == "failed");
  CHECK(r.Json()["phase"] == "load");
  CHECK_THAT(r.Json()["error"].get<std::string>(), Catch::Contains("/nonexistent/libghost.so"));

  // overlap: the new build fails its start; the old one never stopped.
  WriteManifest(host.extra_dir(), TestManifest("ov", {}, {{"library", lib_a}}));
  REQUIRE(Post(port, "/admin/plugins?wait=true", {{"path", (host.extra_dir() / "ov.json").string()}}).Json()["outcome"] ==
          "ready");
  WriteManifest(host.extra_dir(), TestManifest("ov", {{"start", "error"}}, {{"library", lib_a}, {"version", "2.0.0"}}));
  r = Http(port, "POST", "/admin/plugins/ov/reload?wait=true");
  REQUIRE(r.status == 200);
  json body = r.Json();
  CHECK(body["outcome"] == "failed");
  CHECK(body["still_serving"] == true);
  CHECK(body["phase"] == "start");
  CHECK_THAT(body["error"].get<std::string>(), Catch::Contains("told to fail Start"));
  json ov = PluginWhen(port, "ov", [](const json& p) { return !p["reloading"].get<bool>(); });
  CHECK(ov["state"] == "ready");
  CHECK(ov["version"] == "1.0.0");
  CHECK(ov["generation"] == 1);
  CHECK(host.Mapped(lib_a));

  // stop_first: the old build was stopped first, so the host brings it back.
  WriteManifest(host.extra_dir(), TestManifest("sf", {}, {{"library", lib_b}, {"reload_strategy", "stop_first"}}));
  REQUIRE(Post(port, "/admin/plugins?wait=true", {{"path", (host.extra_dir() / "sf.json").string()}}).Json()["outcome"] ==
          "ready");
  WriteManifest(host.extra_dir(), TestManifest("sf", {{"start", "error"}},
                                               {{"library", lib_b}, {"reload_strategy", "stop_first"}, {"version", "2.0.0"}}));
  r = Http(port, "POST", "/admin/plugins/sf/reload?wait=true");
  REQUIRE(r.status == 200);
  body = r.Json();
  CHECK(body["outcome"] == "failed");
  CHECK(body["still_serving"] == false);
  CHECK(body["old_build_restored"] == true);
  json sf = PluginWhen(port, "sf", [](const json& p) { return p["state"] == "ready"; });
  CHECK(sf["state"] == "ready");
  CHECK(sf["version"] == "1.0.0");

  // A second reload while one is running: 409. A wait shorter than the
  // reload: 202, still running.
  WriteManifest(host.extra_dir(), TestManifest("sf", {{"report_delay_ms", 1500}},
                                               {{"library", lib_b}, {"reload_strategy", "stop_first"}, {"version", "1.1.0"}}));
  r = Http(port, "POST", "/admin/plugins/sf/reload?wait=true&timeout_ms=200");
  REQUIRE(r.status == 202);
  body = r.Json();
  CHECK(body["completed"] == false);
  CHECK_THAT(body["message"].get<std::string>(), Catch::Contains("timeout_ms"));
  PluginWhen(port, "sf", [](const json& p) { return p["reloading"].get<bool>(); });
  r = Http(port, "POST", "/admin/plugins/sf/reload");
  REQUIRE(r.status == 409);
  CHECK(r.Json()["error"] == "reload_in_progress");
  auto reloaded = host.process().WaitFor(
      [&](const json& j) { return j.value("type", "") == "subsystem_reloaded" && j["correlation_id"] == body["operation_id"]; },
      20000);
  REQUIRE(reloaded);
  CHECK((*reloaded)["data"]["new_version"] == "1.1.0");
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("admin API: auth matrix and bad bodies", "[admin]") {
  AdminHost host({}, {R"(gateway.tokens=[{"token":"r","role":"read"},{"token":"w","role":"write"},{"token":"a","role":"admin"}])"});
  const uint16_t port = host.port();
  auto as = [](const std::string& t) { return std::map<std::string, std::string>{{"Authorization", "Bearer " + t}}; };
  struct Row {
    std::string method, target, body;
    int admin;  // none: 401, read and write: 403
  };
  for (const Row& row : std::vector<Row>{{"GET", "/admin/plugins", "", 200},
                                         {"GET", "/admin/plugins/gateway", "", 200},
                                         {"POST", "/admin/plugins", "{}", 400},
                                         {"DELETE", "/admin/plugins/nope", "", 404},
                                         {"POST", "/admin/plugins/nope/reload", "", 404}}) {
    INFO(row.method << " " << row.target);
    CHECK(Http(port, row.method, row.target, row.body).status == 401);
    CHECK(Http(port, row.method, row.target, row.body, as("r")).status == 403);
    CHECK(Http(port, row.method, row.target, row.body, as("w")).status == 403);
    CHECK(Http(port, row.method, row.target, row.body, as("a")).status == row.admin);
  }

  struct Bad {
    std::string target, body;
    int status;
    std::string field, message;  // expected "field" (or "") and a fragment of "message"
  };
  const std::string bad_threads = json{{"manifest", TestManifest("x", {}, {{"threads", "two"}})}}.dump();
  const std::string taken = json{{"manifest", TestManifest("gateway", {})}}.dump();
  for (const Bad& b : std::vector<Bad>{
           {"/admin/plugins", "", 400, "", "request body is empty"},
           {"/admin/plugins", "not json", 400, "", "not valid JSON"},
           {"/admin/plugins", "[1]", 400, "", "must be a JSON object"},
           {"/admin/plugins", "{}", 400, "path", "exactly one of"},
           {"/admin/plugins", R"({"path": "a.json", "manifest": {}})", 400, "manifest", "exactly one of"},
           {"/admin/plugins", R"({"paths": "a.json"})", 400, "paths", "unknown field 'paths'"},
           {"/admin/plugins", R"({"path": 5})", 400, "path", "non-empty string"},
           {"/admin/plugins", R"({"path": ""})", 400, "path", "non-empty string"},
           {"/admin/plugins", R"({"path": "/nonexistent/x.json"})", 400, "path",
            "/nonexistent/x.json: is outside the manifest directories"},
           {"/admin/plugins", R"({"manifest": "x"})", 400, "manifest", "must be a JSON object"},
           {"/admin/plugins", bad_threads, 400, "", "inline manifest: field 'threads'"},
           {"/admin/plugins", taken, 409, "", "already loaded"},
           {"/admin/plugins?wait=maybe", R"({"path": "a.json"})", 400, "", "wait must be true or false"},
           {"/admin/plugins?wait=true&timeout_ms=0", R"({"path": "a.json"})", 400, "", "timeout_ms"},
       }) {
    INFO(b.target << " " << b.body);
    auto r = Http(port, "POST", b.target, b.body, as("a"));
    CHECK(r.status == b.status);
    const json j = r.Json();
    REQUIRE(j.is_object());
    if (!b.field.empty()) CHECK(j.value("field", "") == b.field);
    CHECK_THAT(j.value("message", ""), Catch::Contains(b.message));
  }
  CHECK(Http(port, "GET", "/admin/plugins", "", as("a")).Json()["plugins"].size() == 1);  // nothing was added
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("admin API: the gateway reloading itself answers 202 at once and comes back on a new port", "[admin]") {
  AdminHost host({}, {kDevMode});
  const uint16_t port = host.port();
  auto r = Http(port, "POST", "/admin/plugins/gateway/reload?wait=true");
  REQUIRE(r.status == 202);
  const json body = r.Json();
  CHECK(body["completed"] == false);
  CHECK_THAT(body["message"].get<std::string>(), Catch::Contains("this gateway is the subsystem being reloaded"));
  // A reload copies the library first (about 70 MB in the sanitized build);
  // under the sanitized suite's parallel load the new gateway once took over
  // 20 s to listen. A minute, and the host's log if even that is not enough.
  auto relisten = host.process().WaitFor(
      [&](const json& j) { return j.value("type", "") == "gateway_listening" && j["data"]["port"] != port; }, 60000);
  INFO(host.process().Stderr());
  REQUIRE(relisten);
  const uint16_t new_port = (*relisten)["data"]["port"].get<uint16_t>();
  REQUIRE(host.process().WaitFor(
      [&](const json& j) { return j.value("type", "") == "subsystem_reloaded" && j["correlation_id"] == body["operation_id"]; },
      60000));
  auto gw = Http(new_port, "GET", "/admin/plugins/gateway");
  REQUIRE(gw.status == 200);
  CHECK(gw.Json()["generation"] == 2);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("admin routes without the host's admin service answer 503 naming it; data 503s carry Retry-After",
          "[admin]") {
  TestServer ts(json{{"insecure_admin", true}});  // no host: no esdb.admin/1, no store
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/admin/plugins"}, {"DELETE", "/admin/plugins/x"}, {"POST", "/admin/plugins/x/reload"}}) {
    INFO(method << " " << target);
    auto r = Http(ts.port(), method, target);
    CHECK(r.status == 503);
    CHECK(r.Json()["missing"] == json::array({"esdb.admin/1"}));
  }
  CHECK(Http(ts.port(), "POST", "/admin/plugins", R"({"path": "x.json"})").status == 503);
  auto r = Http(ts.port(), "GET", "/streams/orders");
  REQUIRE(r.status == 503);
  CHECK(r.headers["retry-after"] == "1");
}

namespace {

// The admin token of the CLI test's host.
const std::string kCliToken = "cli-admin-token";

struct CliResult {
  int code = -1;
  std::string out, err;
};

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the esdb CLI with `args` (shell-quoted by the caller) and `input` on
// stdin; `token` (if any) in the environment variable ESDB_TOKEN.
CliResult Cli(const std::filesystem::path& dir, uint16_t port, const std::string& args, const std::string& input = "",
              const std::string& token = kCliToken) {
  const auto in = dir / "cli.in", out = dir / "cli.out", err = dir / "cli.err";
  std::ofstream(in) << input;
  const std::string cmd = (token.empty() ? std::string("env -u ESDB_TOKEN ") : "ESDB_TOKEN=" + token + " ") +
                          std::string(ESDB_CLI_BIN) + " --url http://127.0.0.1:" + std::to_string(port) + " " + args +
                          " < " + in.string() + " > " + out.string() + " 2> " + err.string();
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

}  // namespace

TEST_CASE("esdb plugins list|add|reload|remove", "[admin][cli]") {
  AdminHost host({}, {R"(gateway.tokens=[{"token":")" + kCliToken + R"(","role":"admin"}])"});
  const uint16_t port = host.port();
  const std::string lib_a = Lib("libesdb_test_plugin.so");
  const auto file = host.extra_dir() / "cli.json";
  WriteManifest(host.extra_dir(), TestManifest("cli", {}, {{"library", lib_a}}));

  auto r = Cli(host.dir(), port, "plugins add " + file.string() + " --wait");
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("cli 1.0.0 added and ready"));

  r = Cli(host.dir(), port, "plugins list");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("gateway") && Catch::Contains("cli  1.0.0  ready  generation=1"));

  r = Cli(host.dir(), port, "plugins reload cli --wait");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("cli reloaded: 1.0.0 -> 1.0.0, generation 2"));

  r = Cli(host.dir(), port, "--json plugins remove cli --wait");
  CHECK(r.code == 0);
  CHECK(json::parse(r.out, nullptr, false).value("outcome", "") == "removed");

  // An inline manifest on stdin, without waiting.
  r = Cli(host.dir(), port, "plugins add -", TestManifest("cli2", {}, {{"library", lib_a}}).dump());
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("add of cli2 accepted (operation "));
  CHECK(PluginWhen(port, "cli2", [](const json& p) { return p["state"] == "ready"; }, 10000,
                   {{"Authorization", "Bearer " + kCliToken}})["state"] == "ready");

  // The token: --token wins over ESDB_TOKEN; without one the host refuses.
  r = Cli(host.dir(), port, "--token " + kCliToken + " plugins list", "", "wrong");
  CHECK(r.code == 0);
  r = Cli(host.dir(), port, "plugins list", "", "");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("HTTP 401"));

  // Errors: an unknown plugin, a failed outcome.
  r = Cli(host.dir(), port, "plugins reload nope");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("HTTP 404 not_found: no subsystem named 'nope'"));
  r = Cli(host.dir(), port, "plugins add - --wait",
          TestManifest("broken", {}, {{"library", "/nonexistent/libbroken.so"}}).dump());
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("add of broken failed (load)"));
  r = Cli(host.dir(), port, "plugins");
  CHECK(r.code == 2);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("esdb status shows a failed plugin's error and each rejected manifest, with what to do next", "[admin][cli]") {
  AdminHost host({}, {R"(gateway.tokens=[{"token":")" + kCliToken + R"(","role":"admin"}])"});
  const uint16_t port = host.port();
  auto& events = host.process();
  auto manifest_rejected = [&](const std::string& file) {
    return events.WaitFor(
        [&](const json& j) {
          return j.value("type", "") == "subsystem_failed" && j["data"].value("phase", "") == "manifest" &&
                 j["data"].value("manifest", "") == file;
        },
        10000);
  };
  const json non_critical = {{"critical", false}};
  // A plugin refusing its config (invalid_argument): given up on at once.
  const auto badcfg = host.extra_dir() / "badcfg.json";
  WriteManifest(host.extra_dir(), TestManifest("badcfg", {{"start", "invalid"}}, non_critical));
  auto r = Cli(host.dir(), port, "plugins add " + badcfg.string() + " --wait");
  CHECK(r.code == 1);
  // A new file in the watched directory that is no manifest: never loaded.
  const auto broken = host.manifests_dir() / "broken.json";
  esdb::test::WriteFile(broken, TestManifest("broken", {}, {{"threads", 0}, {"colour", "red"}}).dump());
  REQUIRE(manifest_rejected(broken.string()));
  // A running plugin's file changed into a bad one: it keeps its previous manifest.
  const auto steady = host.manifests_dir() / "steady.json";
  WriteManifest(host.manifests_dir(), TestManifest("steady", {}, non_critical));
  REQUIRE(events.WaitForEvent("subsystem_ready", "steady"));
  esdb::test::WriteFile(steady, TestManifest("steady", {}, {{"critical", false}, {"threads", "x"}}).dump());
  auto rejected_steady = manifest_rejected(steady.string());
  REQUIRE(rejected_steady);
  CHECK((*rejected_steady)["data"]["subsystem"] == "steady");

  r = Cli(host.dir(), port, "status");
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("  badcfg  failed  restarts=0  error=config key 'start': test plugin told to refuse its config\n"
                                    "    given up on (phase start): fix the cause (its manifest, library or config), then "
                                    "`esdb plugins reload badcfg`; or `esdb plugins remove badcfg`\n"));
  CHECK_THAT(r.out, Catch::Contains("  steady  ready  restarts=0\n"));
  CHECK_THAT(r.out, Catch::Contains("rejected manifests:\n"));
  CHECK_THAT(r.out, Catch::Contains("  " + broken.string() + "  error=" + broken.string() +
                                    ": 2 problems: field 'threads': must be between 1 and 64, got 0; field 'colour': "
                                    "unknown field\n    not loaded: fix the file, then `esdb plugins add " +
                                    broken.string() + "`"));
  CHECK_THAT(r.out, Catch::Contains("  " + steady.string() + "  error=" + steady.string() +
                                    ": field 'threads': must be an integer, got string\n"
                                    "    steady keeps running with its previous manifest: fix the file, then "
                                    "`esdb plugins reload steady`\n"));

  // Doing what it says clears each.
  WriteManifest(host.extra_dir(), TestManifest("badcfg", {}, non_critical));
  r = Cli(host.dir(), port, "plugins reload badcfg --wait");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("badcfg reloaded: 1.0.0 -> 1.0.0"));
  esdb::test::WriteFile(broken, TestManifest("broken", {}, non_critical).dump());  // the watcher adds it
  REQUIRE(events.WaitForEvent("subsystem_ready", "broken"));
  esdb::test::WriteFile(steady, TestManifest("steady", {}, {{"critical", false}, {"version", "1.0.1"}}).dump());
  REQUIRE(events.WaitForEvent("subsystem_reloaded", "steady"));
  r = Cli(host.dir(), port, "status");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("  badcfg  ready  restarts=0\n") && Catch::Contains("  broken  ready") &&
                        Catch::Contains("  steady  ready"));
  CHECK_THAT(r.out, !Catch::Contains("rejected manifests") && !Catch::Contains("given up on"));
  r = Cli(host.dir(), port, "--json status");
  CHECK(json::parse(r.out, nullptr, false)["rejected_manifests"] == json::object());
  REQUIRE(host.Stop() == 0);
}

// Runs `command` (through the shell) with stdout and stderr kept apart.
CliResult RunCommand(const std::filesystem::path& dir, const std::string& command) {
  const auto out = dir / "cmd.out", err = dir / "cmd.err";
  const int status = std::system((command + " > " + out.string() + " 2> " + err.string() + " < /dev/null").c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

TEST_CASE("esdb --help and esdb-host --help print the usage on stdout and exit 0; bad usage exits 2", "[cli]") {
  esdb::testing::TempDir dir;
  for (const std::string args : {"--help", "-h", "status --help", "--url http://127.0.0.1:1 --help"}) {
    INFO(args);
    auto r = RunCommand(dir.path(), std::string(ESDB_CLI_BIN) + " " + args);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("usage: esdb ") && Catch::Contains("plugins list") && Catch::Contains("--help"));
    CHECK(r.err.empty());
  }
  auto r = RunCommand(dir.path(), std::string(ESDB_CLI_BIN));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::StartsWith("esdb: no command\nusage: esdb "));
  CHECK(r.out.empty());
  r = RunCommand(dir.path(), std::string(ESDB_CLI_BIN) + " status --token");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::StartsWith("esdb: --token needs a value"));

  for (const std::string args : {"--help", "-h"}) {
    r = RunCommand(dir.path(), std::string(ESDB_HOST_BIN) + " " + args);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("usage: esdb-host ") && Catch::Contains("--manifests DIR"));
  }
}

// Issue 9, finding 4: an admin client could make the host dlopen any .so
// (its constructor ran before the load was refused).
TEST_CASE("admin API: a manifest naming a library outside the plugin directories is refused, never loaded",
          "[admin][security]") {
  esdb::testing::TempDir outside;
  const auto lib = outside.path() / "libx.so";
  std::filesystem::copy_file(ESDB_TEST_MARKER_LIB, lib);
  const auto marker = outside.path() / "marker";
  setenv("ESDB_TEST_MARKER", marker.c_str(), 1);  // the host inherits it
  AdminHost host({}, {R"(gateway.tokens=[{"token":"a","role":"admin"}])"});
  unsetenv("ESDB_TEST_MARKER");
  const std::map<std::string, std::string> admin = {{"Authorization", "Bearer a"}};
  const std::string up = std::filesystem::relative(lib, host.manifests_dir()).string();  // ../../esdb-test-XXXXXX/libx.so
  REQUIRE(up.rfind("../", 0) == 0);
  int n = 0;
  for (const std::string& library : {lib.string(), up}) {
    INFO(library);
    auto r = Post(host.port(), "/admin/plugins?wait=true",
                  {{"manifest", TestManifest("evil" + std::to_string(++n), {}, {{"library", library}})}}, admin);
    REQUIRE(r.status == 200);
    CHECK(r.Json()["outcome"] == "failed");
    CHECK(r.Json()["phase"] == "load");
    CHECK_THAT(r.Json()["error"].get<std::string>(),
               Catch::Contains("field 'library'") && Catch::Contains("is outside the plugin directories"));
  }
  CHECK_FALSE(std::filesystem::exists(marker));
  CHECK_FALSE(host.Mapped("libx.so"));
  REQUIRE(host.Stop() == 0);
}

// Issue 9, finding 5: {"path": ...} read any file, synchronously, on a
// gateway I/O thread (a FIFO blocked it for good) and echoed its content.
TEST_CASE("admin API: add by path takes only regular files inside the manifest directories, never blocks, never echoes",
          "[admin][security]") {
  AdminHost host({}, {kDevMode});
  const uint16_t port = host.port();
  const auto extra = host.extra_dir();
  auto timed_post = [&](const json& body, long* ms, const std::string& target = "/admin/plugins") {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = Post(port, target, body);
    *ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
    return r;
  };
  long ms = 0;

  // A FIFO inside a manifest directory: refused at once, without opening it.
  const auto fifo = extra / "fifo.json";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto r = timed_post({{"path", fifo.string()}}, &ms);
  CHECK(ms < 2000);
  REQUIRE(r.status == 400);
  CHECK_THAT(r.Json()["message"].get<std::string>(), Catch::Contains("is a FIFO; a manifest must be a regular file"));
  CHECK(Http(port, "GET", "/health/live").status == 200);

  // Files outside the manifest directories are not looked at: no content,
  // no existence oracle.
  const std::string secret = "SECRET-7d1f2c-do-not-echo";
  esdb::test::WriteFile(host.dir() / "secret.json", secret + "\n");
  for (const std::string& path : {(host.dir() / "secret.json").string(), std::string("/etc/shadow"),
                                  std::string("/dev/zero"), std::string("../secret.json")}) {
    INFO(path);
    r = timed_post({{"path", path}}, &ms);
    CHECK(ms < 2000);
    REQUIRE(r.status == 400);
    CHECK_THAT(r.body, Catch::Contains("is outside the manifest directories") && !Catch::Contains(secret) &&
                           !Catch::Contains("root:"));
  }
  // A symlink inside that resolves outside (to a device, to the secret).
  std::filesystem::create_symlink("/dev/zero", extra / "zero.json");
  std::filesystem::create_symlink(host.dir() / "secret.json", extra / "secret.json");
  for (const char* name : {"zero.json", "secret.json"}) {
    r = timed_post({{"path", (extra / name).string()}}, &ms);
    CHECK(ms < 2000);
    REQUIRE(r.status == 400);
    CHECK_THAT(r.body, Catch::Contains("resolves to a file elsewhere") && !Catch::Contains(secret));
  }
  // A directory; a file over the size limit.
  std::filesystem::create_directories(extra / "dir.json");
  r = Post(port, "/admin/plugins", {{"path", (extra / "dir.json").string()}});
  REQUIRE(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("is a directory"));
  esdb::test::WriteFile(extra / "big.json", std::string(2 << 20, ' '));
  r = timed_post({{"path", (extra / "big.json").string()}}, &ms);
  CHECK(ms < 2000);
  REQUIRE(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("is larger than the manifest size limit of 1048576 bytes"));

  // Inside, readable, not JSON: the parse error gives line and column, never the text.
  esdb::test::WriteFile(extra / "notjson.json", "\n  " + secret + " and more\n");
  r = Post(port, "/admin/plugins?wait=true", {{"path", (extra / "notjson.json").string()}});
  REQUIRE(r.status == 200);
  CHECK(r.Json()["outcome"] == "failed");
  CHECK(r.Json()["phase"] == "manifest");
  CHECK_THAT(r.Json()["error"].get<std::string>(),
             Catch::Contains("malformed JSON: parse error at line 2, column") && !Catch::Contains(secret));
  CHECK_THAT(r.body, !Catch::Contains("SECRET"));

  CHECK(Http(port, "GET", "/health/live").status == 200);
  REQUIRE(host.Stop() == 0);
}

// --- issue 9 -------------------------------------------------------------------

TEST_CASE("default config: tokenless admin is refused and loads nothing", "[admin][auth]") {
  AdminHost host;  // no tokens, no dev mode: what a fresh install runs
  const uint16_t port = host.port();
  const std::string lib = Lib("libesdb_test_plugin.so");
  auto r = Post(port, "/admin/plugins?wait=true", {{"manifest", TestManifest("intruder", {}, {{"library", lib}})}});
  CHECK(r.status == 403);
  CHECK(r.Json()["required_role"] == "admin");
  CHECK_THAT(r.Json().value("message", ""), Catch::Contains("insecure_admin"));
  CHECK_FALSE(host.Mapped(lib));  // no constructor of it ran in the host
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/admin/plugins"}, {"POST", "/admin/plugins/gateway/reload"}, {"DELETE", "/admin/plugins/gateway"},
           {"GET", "/control/status"}, {"GET", "/metrics"}}) {
    INFO(method << " " << target);
    CHECK(Http(port, method, target).status == 403);
  }
  CHECK(Http(port, "GET", "/health/live").status == 200);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("dev mode (insecure_admin): a loud warning at start-up, shown in /control/status", "[admin][auth]") {
  AdminHost host({}, {kDevMode}, "warn");
  const uint16_t port = host.port();
  auto r = Http(port, "GET", "/control/status");
  REQUIRE(r.status == 200);
  CHECK(r.Json()["gateway_auth"]["mode"] == "insecure_admin");
  CHECK(Http(port, "GET", "/admin/plugins").status == 200);
  CHECK_THAT(host.process().Stderr(), Catch::Contains("INSECURE DEV MODE") && Catch::Contains("insecure_admin"));
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("admin routes never echo configured secrets", "[admin][auth]") {
  const std::string secret = "s3cr3t-admin-token-0123456789";
  AdminHost host({}, {R"(gateway.tokens=[{"token":")" + secret + R"(","role":"admin","name":"ops"}])"});
  const uint16_t port = host.port();
  const std::map<std::string, std::string> admin{{"Authorization", "Bearer " + secret}};
  for (const std::string target : {"/admin/plugins", "/admin/plugins/gateway", "/control/status"}) {
    INFO(target);
    auto r = Http(port, "GET", target, "", admin);
    REQUIRE(r.status == 200);
    CHECK(r.body.find(secret) == std::string::npos);
  }
  const json gw = Http(port, "GET", "/admin/plugins/gateway", "", admin).Json();
  CHECK(gw["manifest"]["config"]["tokens"][0]["token"] == "<redacted>");
  CHECK(gw["manifest"]["config"]["tokens"][0]["name"] == "ops");
  CHECK(gw["manifest"]["config"]["listen_port"] == 0);
  REQUIRE(host.Stop() == 0);
}

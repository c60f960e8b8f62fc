// The Debian packages esdb and esdb-sdk-dev as CPack built them into
// <build>/packages/ (the fixture test package.build): their contents and
// control data, lintian, the systemd unit, the packaged host run from a
// `dpkg -x` scratch root on the packaged config, and an out-of-tree plugin
// built against the SDK extracted from esdb-sdk-dev.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "esdb/testing/http.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using esdb::test::ReadText;
using esdb::test::RunCommand;
using esdb::test::WriteFile;
using esdb::testing::HostOptions;
using esdb::testing::HostProcess;
using esdb::testing::Http;
using esdb::testing::TempDir;
using nlohmann::json;

const char* kDpkgDeb = "/usr/bin/dpkg-deb";

// The package file <name>_<version>_<arch>.deb; fails the test if absent.
fs::path Deb(const std::string& name) {
  const std::string prefix = name + "_" + ESDB_PACKAGE_VERSION + "_";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ESDB_PACKAGE_DIR, ec)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0 && e.path().extension() == ".deb") return e.path();
  }
  FAIL("no " << prefix << "<arch>.deb in " << ESDB_PACKAGE_DIR << " (the test package.build makes it)");
  return {};
}

// Runs `args`; its output (stdout and stderr). `code` gets the exit code.
std::string Output(const TempDir& dir, const std::vector<std::string>& args, int* code) {
  static int n = 0;
  const fs::path log = dir / ("out-" + std::to_string(++n) + ".log");
  *code = RunCommand(args, log);
  return ReadText(log);
}

// `dpkg -x` of the named packages into `root`.
void Extract(const TempDir& dir, const std::vector<std::string>& packages, const fs::path& root) {
  for (const auto& p : packages) {
    int code = 0;
    const std::string out = Output(dir, {kDpkgDeb, "-x", Deb(p).string(), root.string()}, &code);
    INFO(out);
    REQUIRE(code == 0);
  }
}

// The packaged config with its paths moved under `root`; the built-in
// manifests copied to <root>/manifests-run (non-unloadable under the
// sanitizers, see below). Returns the config file written.
fs::path RewriteConfig(const fs::path& root) {
  json config = json::parse(ReadText(root / "etc/esdb/esdb.json"), nullptr, false);
  REQUIRE(config.is_object());
  // The packaged values, then the scratch root's.
  REQUIRE(config["data_dir"] == "/var/lib/esdb");
  REQUIRE(config["manifests_dir"] == "/etc/esdb/manifests");
  REQUIRE(config["plugin_dirs"] == json::array({"/usr/lib/esdb/plugins"}));
  const fs::path manifests = root / "manifests-run";
  fs::create_directories(manifests);
  for (const auto& e : fs::directory_iterator(root / "etc/esdb/manifests")) {
    json m = json::parse(ReadText(e.path()));
    if (ESDB_SANITIZE_BUILD) {
      // Under LeakSanitizer the persistence and gateway plugins, unloaded at
      // shutdown, show their (then unmapped) statics as leaks and the host
      // exits 1 (the same as in sdk_example_test.cc).
      m["unloadable"] = false;
    }
    WriteFile(manifests / e.path().filename(), m.dump(2));
  }
  config["data_dir"] = (root / "var/lib/esdb").string();
  config["manifests_dir"] = manifests.string();
  config["plugin_dirs"] = json::array({(root / "usr/lib/esdb/plugins").string()});
  const fs::path file = root / "etc/esdb/esdb-test.json";
  WriteFile(file, config.dump(2));
  return file;
}

bool Has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("the esdb package: its files, conffiles, maintainer scripts and Depends", "[contents]") {
  TempDir dir;
  int code = 0;
  const std::string files = Output(dir, {kDpkgDeb, "-c", Deb("esdb").string()}, &code);
  INFO(files);
  REQUIRE(code == 0);
  for (const char* f : {"./usr/bin/esdb-host", "./usr/bin/esdb", "./usr/lib/esdb/plugins/libesdb_persistence.so",
                        "./usr/lib/esdb/plugins/libesdb_store.so", "./usr/lib/esdb/plugins/libesdb_notification.so",
                        "./usr/lib/esdb/plugins/libesdb_cluster.so", "./usr/lib/esdb/plugins/libesdb_gateway.so",
                        // the grpc plugin and its generated code's library (found through its RUNPATH)
                        "./usr/lib/esdb/plugins/libesdb_grpc.so", "./usr/lib/esdb/libesdb_grpc_proto.so.0",
                        "./etc/esdb/esdb.json", "./etc/esdb/manifests/store.json", "./etc/esdb/manifests/gateway.json",
                        "./etc/esdb/manifests/grpc.json",
                        "./lib/systemd/system/esdb.service", "./usr/share/doc/esdb/copyright",
                        "./usr/share/doc/esdb/changelog.gz",
                        // cluster mode: the log plugin, its and the store's manifests, three machines' configs
                        "./usr/lib/esdb/plugins/libesdb_log.so", "./usr/share/esdb/cluster/log.json",
                        "./usr/share/esdb/cluster/store.json", "./usr/share/esdb/cluster/db1/nats-server.conf",
                        "./usr/share/esdb/cluster/db1/esdb.json", "./usr/share/esdb/cluster/db2/nats-server.conf",
                        "./usr/share/esdb/cluster/db2/esdb.json", "./usr/share/esdb/cluster/db3/nats-server.conf",
                        "./usr/share/esdb/cluster/db3/esdb.json"}) {
    INFO(f);
    CHECK(Has(files, std::string(" ") + f + "\n"));
  }
  // Every file root's, nothing of the SDK, nothing at the build's paths.
  CHECK(!Has(files, "./usr/include"));
  CHECK(!Has(files, "./usr/etc"));
  CHECK(!Has(files, "./usr/local"));
  CHECK(!Has(files, "./var/"));  // /var/lib/esdb is postinst's
  CHECK(!Has(files, "libesdb_grpc_proto.so "));  // no development link: nothing else links it
  for (size_t at = 0; at < files.size();) {
    const size_t end = files.find('\n', at);
    const std::string line = files.substr(at, end - at);
    at = end == std::string::npos ? files.size() : end + 1;
    if (!line.empty()) CHECK(line.find(" root/root ") != std::string::npos);
  }

  const std::string info = Output(dir, {kDpkgDeb, "-I", Deb("esdb").string()}, &code);
  INFO(info);
  REQUIRE(code == 0);
  CHECK(Has(info, " Package: esdb\n"));
  CHECK(Has(info, std::string(" Version: ") + ESDB_PACKAGE_VERSION + "\n"));
  CHECK(Has(info, " Section: database\n"));
  // dpkg-shlibdeps: the shared libraries the host and plugins link.
  for (const char* dep : {"adduser", "libc6", "libstdc++6", "libleveldb1d", "libspdlog1", "libssl3", "libre2-9",
                          "libsystemd0", "libboost-filesystem1.74.0", "libgrpc++1.51", "libprotobuf32"}) {
    INFO(dep);
    CHECK(Has(info.substr(info.find(" Depends:")), dep));
  }
  const std::string conffiles = Output(dir, {kDpkgDeb, "-I", Deb("esdb").string(), "conffiles"}, &code);
  REQUIRE(code == 0);
  CHECK(conffiles ==
        "/etc/esdb/esdb.json\n/etc/esdb/manifests/persistence.json\n/etc/esdb/manifests/store.json\n"
        "/etc/esdb/manifests/notification.json\n/etc/esdb/manifests/cluster.json\n/etc/esdb/manifests/gateway.json\n"
        "/etc/esdb/manifests/grpc.json\n");
  const std::string postinst = Output(dir, {kDpkgDeb, "-I", Deb("esdb").string(), "postinst"}, &code);
  REQUIRE(code == 0);
  CHECK(Has(postinst, "adduser --system"));
  CHECK(Has(postinst, "/var/lib/esdb"));
  const std::string postrm = Output(dir, {kDpkgDeb, "-I", Deb("esdb").string(), "postrm"}, &code);
  REQUIRE(code == 0);
  CHECK(Has(postrm, "\"$1\" = \"purge\""));
  CHECK(Has(postrm, "rm -rf /var/lib/esdb"));
  CHECK(Has(postrm, "deluser --system"));
}

// The packaged maintainer scripts run with a PATH of stubs only: every
// command they call (getent, adduser, rm, ...) is a stub that logs its
// arguments, so nothing on this machine changes. `getent_finds` decides
// whether the user and group "exist".
std::string RunScript(const TempDir& dir, const fs::path& script, const std::string& arg, bool getent_finds) {
  const fs::path stubs = dir / ("stubs-" + arg + (getent_finds ? "-exists" : "-new"));
  const fs::path log = stubs / "calls.log";
  fs::create_directories(stubs);
  for (const char* cmd : {"getent", "addgroup", "adduser", "deluser", "delgroup", "mkdir", "chown", "chmod", "rm",
                          "systemctl"}) {
    const std::string exit_code = std::string(cmd) == "getent" ? (getent_finds ? "0" : "2") : "0";
    WriteFile(stubs / cmd, "#!/bin/sh\necho \"" + std::string(cmd) + " $*\" >> '" + log.string() + "'\nexit " +
                               exit_code + "\n");
    fs::permissions(stubs / cmd, fs::perms::owner_all);
  }
  int code = 0;
  const std::string out =
      Output(dir, {"/usr/bin/env", "-i", "PATH=" + stubs.string(), "/bin/sh", script.string(), arg}, &code);
  INFO(script.filename().string() << " " << arg << ": " << out);
  CHECK(code == 0);
  return ReadText(log);
}

TEST_CASE("the maintainer scripts: configure creates the user, group and state dir; purge removes them; remove keeps them",
          "[contents]") {
  TempDir dir;
  const fs::path control = dir / "control";
  int code = 0;
  const std::string out = Output(dir, {kDpkgDeb, "-e", Deb("esdb").string(), control.string()}, &code);
  INFO(out);
  REQUIRE(code == 0);

  // A first installation: group, then user (system, home /var/lib/esdb, no
  // login), then the state directory's owner and mode.
  std::string calls = RunScript(dir, control / "postinst", "configure", false);
  INFO(calls);
  CHECK(Has(calls, "addgroup --system --quiet esdb\n"));
  CHECK(Has(calls, "adduser --system --quiet --ingroup esdb --no-create-home --home /var/lib/esdb "
                   "--shell /usr/sbin/nologin --gecos esdb event store esdb\n"));
  CHECK(calls.find("addgroup") < calls.find("adduser"));
  CHECK(Has(calls, "chown esdb:esdb /var/lib/esdb\n"));
  CHECK(Has(calls, "chmod 0750 /var/lib/esdb\n"));
  // An upgrade: the user and group exist and are left alone.
  calls = RunScript(dir, control / "postinst", "configure", true);
  CHECK(!Has(calls, "addgroup"));
  CHECK(!Has(calls, "adduser"));
  CHECK(Has(calls, "chown esdb:esdb /var/lib/esdb\n"));
  // Other postinst actions do nothing.
  calls = RunScript(dir, control / "postinst", "abort-upgrade", false);
  CHECK(!Has(calls, "adduser"));
  CHECK(!Has(calls, "chown"));

  // remove keeps the data and the user; purge removes both.
  calls = RunScript(dir, control / "postrm", "remove", true);
  CHECK(!Has(calls, "rm "));
  CHECK(!Has(calls, "deluser"));
  calls = RunScript(dir, control / "postrm", "purge", true);
  CHECK(Has(calls, "rm -rf /var/lib/esdb\n"));
  CHECK(Has(calls, "deluser --system --quiet esdb\n"));
  CHECK(Has(calls, "delgroup --system --quiet --only-if-empty esdb\n"));
  // A purge after the user is gone already: nothing to delete.
  calls = RunScript(dir, control / "postrm", "purge", false);
  CHECK(Has(calls, "rm -rf /var/lib/esdb\n"));
  CHECK(!Has(calls, "deluser"));
  CHECK(!Has(calls, "delgroup"));
}

TEST_CASE("the esdb-sdk-dev package: headers, CMake package, testing kit, guide", "[contents]") {
  TempDir dir;
  int code = 0;
  const std::string files = Output(dir, {kDpkgDeb, "-c", Deb("esdb-sdk-dev").string()}, &code);
  INFO(files);
  REQUIRE(code == 0);
  for (const char* f : {"./usr/include/esdb/plugin.h", "./usr/include/esdb/config_reader.h",
                        "./usr/include/esdb/testing/host_process.h", "./usr/lib/libesdb_filter.a",
                        "./usr/lib/libesdb_testing.a", "./usr/lib/cmake/esdb_sdk/esdb_sdkConfig.cmake",
                        "./usr/lib/cmake/esdb_sdk/esdb_sdkConfigVersion.cmake",
                        "./usr/lib/cmake/esdb_sdk/esdb_sdkTargets.cmake",
                        "./usr/lib/cmake/esdb_sdk/esdb_sdkTestingTargets.cmake",
                        "./usr/lib/cmake/esdb_sdk/EsdbPlugin.cmake", "./usr/share/doc/esdb-sdk-dev/PLUGIN_GUIDE.md",
                        "./usr/share/doc/esdb-sdk-dev/SDK_COMPATIBILITY.md", "./usr/share/doc/esdb-sdk-dev/copyright"}) {
    INFO(f);
    CHECK(Has(files, std::string(" ") + f + "\n"));
  }
  CHECK(!Has(files, "./usr/bin"));
  CHECK(!Has(files, "./etc"));
  CHECK(!Has(files, "./usr/lib/esdb/plugins"));
  const std::string info = Output(dir, {kDpkgDeb, "-I", Deb("esdb-sdk-dev").string()}, &code);
  INFO(info);
  REQUIRE(code == 0);
  CHECK(Has(info, " Package: esdb-sdk-dev\n"));
  CHECK(Has(info, std::string("esdb (= ") + ESDB_PACKAGE_VERSION + ")"));
  for (const char* dep : {"nlohmann-json3-dev", "libboost-dev", "libspdlog-dev", "libre2-dev", "pkg-config"}) {
    INFO(dep);
    CHECK(Has(info, dep));
  }
}

TEST_CASE("lintian finds no error in either package", "[lintian]") {
  TempDir dir;
  if (access("/usr/bin/lintian", X_OK) != 0) {
    FAIL("lintian is not installed (scripts/dev.sh installs it: apt-get install lintian)");
  }
  for (const char* p : {"esdb", "esdb-sdk-dev"}) {
    int code = 0;
    const std::string out = Output(dir, {"/usr/bin/lintian", "--fail-on", "error", Deb(p).string()}, &code);
    INFO(p << ": lintian says:\n" << out);
    CHECK(code == 0);
    CHECK(!Has("\n" + out, "\nE: "));
    if (!out.empty()) WARN(p << ": lintian (no errors):\n" << out);
  }
}

TEST_CASE("the systemd unit: what the issue asks of it, and systemd-analyze verify", "[unit]") {
  TempDir dir;
  const fs::path root = dir / "root";
  Extract(dir, {"esdb"}, root);
  const std::string unit = ReadText(root / "lib/systemd/system/esdb.service");
  for (const char* line : {"Type=notify", "ExecStart=/usr/bin/esdb-host --config /etc/esdb/esdb.json",
                           "ExecReload=/bin/kill -HUP $MAINPID", "User=esdb", "StateDirectory=esdb",
                           "ConfigurationDirectory=esdb", "WatchdogSec=", "Restart=on-failure",
                           "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                           "CapabilityBoundingSet=\n", "LimitNOFILE=", "WantedBy=multi-user.target"}) {
    INFO(line);
    CHECK(Has(unit, line));
  }
  const char* analyze = "/usr/bin/systemd-analyze";
  if (access(analyze, X_OK) != 0) {
    WARN("SKIPPED: systemd-analyze verify (systemd is not installed here)");
    return;
  }
  // verify checks that ExecStart's program exists: the extracted one.
  std::string copy = unit;
  const std::string exec = "ExecStart=/usr/bin/esdb-host";
  copy.replace(copy.find(exec), exec.size(), "ExecStart=" + (root / "usr/bin/esdb-host").string());
  WriteFile(dir / "esdb.service", copy);
  int code = 0;
  const std::string out = Output(dir, {analyze, "verify", (dir / "esdb.service").string()}, &code);
  INFO("systemd-analyze verify:\n" << out);
  CHECK(code == 0);
  CHECK(out.empty());  // an unknown or misspelt directive is only a warning, with exit code 0
}

TEST_CASE("the packaged cluster example: nats-server accepts each machine's config, esdb-host each node's; the "
          "cluster-mode manifests",
          "[cluster]") {
  TempDir dir;
  const fs::path root = dir / "root";
  Extract(dir, {"esdb"}, root);
  const fs::path share = root / "usr/share/esdb/cluster";
  std::string routes_seen;
  for (int k = 1; k <= 3; ++k) {
    const std::string name = "db" + std::to_string(k);
    const fs::path conf = share / name / "nats-server.conf";
    int code = 0;
    std::string out = Output(dir, {"/usr/sbin/nats-server", "-c", conf.string(), "-t"}, &code);
    INFO(out);
    CHECK(code == 0);
    const std::string text = ReadText(conf);
    CHECK(Has(text, "server_name: " + name + "\n"));
    CHECK(Has(text, "listen: 192.0.2." + std::to_string(k) + ":4222\n"));
    for (int o = 1; o <= 3; ++o) {
      CHECK(Has(text, "nats-route://esdb:REPLACE-WITH-YOUR-SECRET@192.0.2." + std::to_string(o) + ":6222") ==
            (o != k));
    }
    // Clients and routes must authenticate (the password is the one to replace).
    CHECK(Has(text, "authorization {\n  user: \"esdb\"\n  password: \"REPLACE-WITH-YOUR-SECRET\"\n}"));
    CHECK(Has(text, "  authorization {\n    user: \"esdb\"\n    password: \"REPLACE-WITH-YOUR-SECRET\"\n  }"));
    out = Output(dir, {(root / "usr/bin/esdb-host").string(), "--config", (share / name / "esdb.json").string(),
                       "--print-config"},
                 &code);
    INFO(out);
    REQUIRE(code == 0);
    const json config = json::parse(out, nullptr, false);
    REQUIRE(config.is_object());
    CHECK(config["node"]["value"] == name);
    CHECK(config["node"]["from"] == "config file");
    CHECK(config["data_dir"]["value"] == "/var/lib/esdb");
    CHECK(config["plugin_dirs"]["value"] == json::array({"/usr/lib/esdb/plugins"}));
    const json servers = json::array({"nats://192.0.2.1:4222", "nats://192.0.2.2:4222", "nats://192.0.2.3:4222"});
    CHECK(config["overrides"]["log"]["servers"]["value"] == servers);
    CHECK(config["overrides"]["cluster"]["servers"]["value"] == servers);
    CHECK(config["overrides"]["cluster"]["mode"]["value"] == "cluster");
    for (const char* plugin : {"log", "cluster"}) {
      CHECK(config["overrides"][plugin]["user"]["value"] == "esdb");
      CHECK(config["overrides"][plugin]["password"]["value"] == "(hidden)");  // --print-config never shows it
    }
    CHECK(config["overrides"]["gateway"]["listen_address"]["value"] == "192.0.2." + std::to_string(k));
    CHECK(config["overrides"]["grpc"]["listen_address"]["value"] == "192.0.2." + std::to_string(k));
    CHECK(config["overrides"]["grpc"]["listen_port"]["value"] == 2114);
  }
  const json store = json::parse(ReadText(share / "store.json"), nullptr, false);
  REQUIRE(store.is_object());
  CHECK(store["name"] == "store");
  CHECK(store["config"]["mode"] == "cluster");
  CHECK(store["start_timeout_ms"] == 3600000);
  const json log = json::parse(ReadText(share / "log.json"), nullptr, false);
  REQUIRE(log.is_object());
  CHECK(log["name"] == "log");
}

TEST_CASE("the packaged host runs from a dpkg -x root on the packaged config: ready, append, read, SIGTERM",
          "[run]") {
  TempDir dir;
  const fs::path root = dir / "root";
  Extract(dir, {"esdb"}, root);
  const fs::path config = RewriteConfig(root);
  HostOptions options;
  options.binary = root / "usr/bin/esdb-host";
  options.args = {"--config", config.string()};  // ephemeral_gateway_port: --set gateway.listen_port=0 over the file
  HostProcess host(std::move(options));
  const auto ready = host.WaitForEvent("system_ready", "", 60000);
  INFO(host.Stderr());
  REQUIRE(ready);
  CHECK((*ready)["data"]["ready"].size() == 6);
  // The grpc plugin serves too, on the free port asked for over the file's.
  const auto grpc = host.WaitForEvent("grpc_listening", "", 1000);
  REQUIRE(grpc);
  CHECK((*grpc)["data"]["address"] == "127.0.0.1");
  CHECK((*grpc)["data"]["port"].get<int>() > 0);
  CHECK((*grpc)["data"]["port"].get<int>() != 2114);
  const auto port = host.GatewayPort();
  REQUIRE(port.ok());
  const auto appended = Http(*port, "POST", "/streams/package-test",
                             json::array({{{"eventType", "Installed"}, {"data", {{"from", "dpkg -x"}}}}}).dump(),
                             {{"ES-ExpectedVersion", "no_stream"}, {"Content-Type", "application/json"}});
  INFO(appended.body << appended.error);
  REQUIRE(appended.status == 201);
  const auto read = Http(*port, "GET", "/streams/package-test");
  INFO(read.body << read.error);
  REQUIRE(read.status == 200);
  const json body = read.Json();
  REQUIRE(body["events"].size() == 1);
  CHECK(body["events"][0]["type"] == "Installed");
  CHECK(body["events"][0]["data"]["from"] == "dpkg -x");
  // Its data went where the config file said.
  CHECK(fs::is_directory(root / "var/lib/esdb/persistence"));
  CHECK(host.Terminate(30000) == 0);
}

TEST_CASE("an out-of-tree plugin builds against the SDK extracted from esdb-sdk-dev and loads into the packaged host",
          "[sdk]") {
  TempDir dir;
  const fs::path root = dir / "root";
  Extract(dir, {"esdb", "esdb-sdk-dev"}, root);
  const fs::path build = dir / "example-build";
  std::vector<std::string> configure = {ESDB_CMAKE_COMMAND,
                                        "-S", ESDB_EXAMPLE_DIR,
                                        "-B", build.string(),
                                        "-G", ESDB_CMAKE_GENERATOR,
                                        "-DCMAKE_MAKE_PROGRAM=" ESDB_MAKE_PROGRAM,
                                        "-DCMAKE_CXX_COMPILER=" ESDB_CXX_COMPILER,
                                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                                        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g0",
                                        "-DCMAKE_PREFIX_PATH=" + (root / "usr").string()};
  if (ESDB_SANITIZE_BUILD) {
    // The host is built with ASan+UBSan; a plugin it loads must be too.
    configure.push_back("-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer "
                        "-fno-sanitize-recover=undefined");
    configure.push_back("-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined");
  }
  int code = 0;
  std::string out = Output(dir, configure, &code);
  {
    INFO(out);
    REQUIRE(code == 0);
  }
  // The package found is the extracted one.
  CHECK(Has(ReadText(build / "CMakeCache.txt"), "esdb_sdk_DIR:PATH=" + (root / "usr/lib/cmake/esdb_sdk").string()));
  out = Output(dir, {ESDB_CMAKE_COMMAND, "--build", build.string(), "-j2"}, &code);
  {
    INFO(out);
    REQUIRE(code == 0);
  }
  REQUIRE(fs::exists(build / "libevent_type_counter.so"));

  // Into the packaged host: its manifest (the library's absolute path) in the
  // manifests directory, its build directory a further plugin directory.
  const fs::path config_file = RewriteConfig(root);
  json config = json::parse(ReadText(config_file));
  config["plugin_dirs"].push_back(build.string());
  WriteFile(config_file, config.dump(2));
  WriteFile(root / "manifests-run/event_type_counter.json", ReadText(build / "event_type_counter.json"));
  HostOptions options;
  options.binary = root / "usr/bin/esdb-host";
  options.args = {"--config", config_file.string()};
  HostProcess host(std::move(options));
  const auto ready = host.WaitForEvent("subsystem_ready", "event_type_counter", 60000);
  INFO(host.Stderr());
  REQUIRE(ready);
  CHECK(host.Terminate(30000) == 0);
}

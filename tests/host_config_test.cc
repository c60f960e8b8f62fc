// esdb-host's config file (--config), its precedence between the defaults
// and the command line (--print-config shows both), every bad input named,
// and the log formats on stderr. Real processes: esdb-host --print-config
// exits at once; a few tests run a host.
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

using esdb::testing::HostOptions;
using esdb::testing::HostProcess;
using esdb::testing::TempDir;
using esdb::test::TestManifest;
using esdb::test::WriteFile;
using esdb::test::WriteManifest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Runs esdb-host with `args` plus --print-config; its one stdout line, parsed
// (a discarded value when it printed none). `exit_code` gets the exit code.
json PrintConfig(std::vector<std::string> args, int* exit_code = nullptr, std::string* err = nullptr) {
  args.push_back("--print-config");
  HostProcess host(HostOptions::Exactly(args));
  const auto code = host.Wait(20000);
  if (exit_code) *exit_code = code.value_or(-1000);
  if (err) *err = host.Stderr();
  const auto lines = host.Lines();
  if (lines.size() != 1) return json(json::value_t::discarded);
  return lines.front();
}

// The stderr of esdb-host run with `args` (a config error: it exits at once)
// and its exit code.
std::string Refused(const std::vector<std::string>& args, int* exit_code) {
  HostProcess host(HostOptions::Exactly(args));
  *exit_code = host.Wait(20000).value_or(-1000);
  return host.Stderr();
}

// A config file setting every key, relative paths included.
json EveryKey() {
  return {{"node", "file-node"},
          {"data_dir", "file-data"},
          {"manifests_dir", "/file/manifests"},
          {"plugin_dirs", {"/file/plugins-a", "plugins-b"}},
          {"extra_manifest_dirs", {"/file/extra"}},
          {"log_level", "debug"},
          {"log_format", "json"},
          {"watch_manifests", false},
          {"overrides",
           {{"gateway",
             {{"listen_port", 9999},
              {"tokens", json::array()},
              {"users", {{{"name", "ann"}, {"password", "ann-secret"}, {"role", "admin"}}}}}},
            {"store", {{"sync", true}}},
            {"log", {{"user", "esdb"}, {"password", "nats-secret"}}}}}};
}

}  // namespace

TEST_CASE("esdb-host --print-config without a config file: every setting is a default", "[config]") {
  int code = 0;
  const json c = PrintConfig({"--no-config"}, &code);
  REQUIRE(code == 0);
  REQUIRE(c.is_object());
  CHECK(c["config_file"].is_null());
  for (const char* key : {"node", "data_dir", "manifests_dir", "plugin_dirs", "extra_manifest_dirs", "log_level",
                          "log_format", "watch_manifests"}) {
    INFO(key);
    CHECK(c[key]["from"] == "default");
  }
  CHECK(c["data_dir"]["value"] == "data");
  CHECK(c["manifests_dir"]["value"] == "manifests");
  CHECK(c["log_level"]["value"] == "info");
  CHECK(c["log_format"]["value"] == "text");
  CHECK(c["watch_manifests"]["value"] == true);
  CHECK(c["overrides"] == json::object());
  // The build tree's host: its plugins next to it; and no default file read.
  CHECK(c["plugin_dirs"]["value"] == json::array({(fs::path(ESDB_HOST_BIN).parent_path() / "plugins").string()}));
  const json again = PrintConfig({});
  CHECK(again == c);
}

TEST_CASE("every key of the config file is read; relative paths are relative to the file", "[config]") {
  TempDir dir;
  const fs::path file = dir / "conf/esdb.json";
  fs::create_directories(file.parent_path());
  WriteFile(file, EveryKey().dump(2));
  int code = 0;
  const json c = PrintConfig({"--config", file.string()}, &code);
  REQUIRE(code == 0);
  REQUIRE(c.is_object());
  CHECK(c["config_file"] == file.string());
  CHECK(c["node"] == json({{"value", "file-node"}, {"from", "config file"}}));
  CHECK(c["data_dir"] == json({{"value", (dir / "conf/file-data").string()}, {"from", "config file"}}));
  CHECK(c["manifests_dir"] == json({{"value", "/file/manifests"}, {"from", "config file"}}));
  CHECK(c["plugin_dirs"] ==
        json({{"value", {"/file/plugins-a", (dir / "conf/plugins-b").string()}}, {"from", "config file"}}));
  CHECK(c["extra_manifest_dirs"] == json({{"value", {"/file/extra"}}, {"from", "config file"}}));
  CHECK(c["log_level"] == json({{"value", "debug"}, {"from", "config file"}}));
  CHECK(c["log_format"] == json({{"value", "json"}, {"from", "config file"}}));
  CHECK(c["watch_manifests"] == json({{"value", false}, {"from", "config file"}}));
  CHECK(c["overrides"]["gateway"]["listen_port"] == json({{"value", 9999}, {"from", "config file"}}));
  CHECK(c["overrides"]["gateway"]["tokens"] == json({{"value", json::array()}, {"from", "config file"}}));
  CHECK(c["overrides"]["store"]["sync"] == json({{"value", true}, {"from", "config file"}}));
  // Secrets are not printed.
  CHECK(c["overrides"]["log"]["user"]["value"] == "esdb");
  CHECK(c["overrides"]["log"]["password"]["value"] == "(hidden)");
  CHECK(c["overrides"]["gateway"]["users"]["value"][0] ==
        json({{"name", "ann"}, {"password", "(hidden)"}, {"role", "admin"}}));
  CHECK(c.dump().find("secret") == std::string::npos);
}

TEST_CASE("the command line overrides the config file, key by key", "[config]") {
  TempDir dir;
  const fs::path file = dir / "esdb.json";
  WriteFile(file, EveryKey().dump());
  int code = 0;
  const json c = PrintConfig({"--config", file.string(), "--node", "cli-node", "--data", "/cli/data", "--manifests",
                              "/cli/manifests", "--plugin-dir", "/cli/p1", "--plugin-dir", "/cli/p2", "--manifest-dir",
                              "/cli/extra", "--log-level", "warn", "--log-format", "text", "--set",
                              "gateway.listen_port=0", "--set", "cluster.seed=x"},
                             &code);
  REQUIRE(code == 0);
  REQUIRE(c.is_object());
  CHECK(c["node"] == json({{"value", "cli-node"}, {"from", "command line"}}));
  CHECK(c["data_dir"] == json({{"value", "/cli/data"}, {"from", "command line"}}));
  CHECK(c["manifests_dir"] == json({{"value", "/cli/manifests"}, {"from", "command line"}}));
  // --plugin-dir replaces the file's list, as it replaces the default.
  CHECK(c["plugin_dirs"] == json({{"value", {"/cli/p1", "/cli/p2"}}, {"from", "command line"}}));
  CHECK(c["extra_manifest_dirs"] == json({{"value", {"/cli/extra"}}, {"from", "command line"}}));
  CHECK(c["log_level"] == json({{"value", "warn"}, {"from", "command line"}}));
  CHECK(c["log_format"] == json({{"value", "text"}, {"from", "command line"}}));
  // Not on this command line: the file's.
  CHECK(c["watch_manifests"] == json({{"value", false}, {"from", "config file"}}));
  // --set per key: gateway.listen_port from the command line, the file's
  // other keys stay; a subsystem only the command line names.
  CHECK(c["overrides"]["gateway"]["listen_port"] == json({{"value", 0}, {"from", "command line"}}));
  CHECK(c["overrides"]["gateway"]["tokens"]["from"] == "config file");
  CHECK(c["overrides"]["store"]["sync"]["from"] == "config file");
  CHECK(c["overrides"]["cluster"]["seed"] == json({{"value", "x"}, {"from", "command line"}}));

  // --no-watch over a file that watches.
  WriteFile(file, json({{"watch_manifests", true}}).dump());
  const json w = PrintConfig({"--config", file.string(), "--no-watch"});
  CHECK(w["watch_manifests"] == json({{"value", false}, {"from", "command line"}}));
  // A file that sets nothing: the defaults.
  WriteFile(file, "{}");
  const json empty = PrintConfig({"--config", file.string()});
  CHECK(empty["config_file"] == file.string());
  CHECK(empty["node"]["from"] == "default");
  CHECK(empty["data_dir"] == json({{"value", "data"}, {"from", "default"}}));
}

TEST_CASE("every bad config file is refused with exit code 2, naming the file and the key", "[config]") {
  TempDir dir;
  const fs::path file = dir / "esdb.json";
  const std::string f = file.string();
  struct Case {
    std::string text;
    std::vector<std::string> expected;  // substrings of stderr
  };
  const std::vector<Case> cases = {
      {R"({"colour": "red"})", {f + ": field 'colour': unknown field"}},
      {R"({"node": 7})", {f + ": field 'node': must be a string, got number"}},
      {R"({"node": ""})", {f + ": field 'node': must not be empty"}},
      {R"({"data_dir": false})", {"field 'data_dir': must be a string, got boolean"}},
      {R"({"data_dir": ""})", {"field 'data_dir': must not be empty"}},
      {R"({"manifests_dir": ["a"]})", {"field 'manifests_dir': must be a string, got array"}},
      {R"({"manifests_dir": ""})", {"field 'manifests_dir': must not be empty"}},
      {R"({"plugin_dirs": "/usr/lib"})", {"field 'plugin_dirs': must be an array of strings, got string"}},
      {R"({"plugin_dirs": []})", {"field 'plugin_dirs': must name at least one directory"}},
      {R"({"plugin_dirs": ["/a", 3]})", {"field 'plugin_dirs': element 1 must be a string, got number"}},
      {R"({"plugin_dirs": ["/a", ""]})", {"field 'plugin_dirs': element 1 must not be empty"}},
      {R"({"extra_manifest_dirs": {}})", {"field 'extra_manifest_dirs': must be an array of strings, got object"}},
      {R"({"extra_manifest_dirs": [""]})", {"field 'extra_manifest_dirs': element 0 must not be empty"}},
      {R"({"log_level": "loud"})", {"field 'log_level': must be one of \"trace\", \"debug\", \"info\", \"warn\", "
                                    "\"error\", \"critical\", \"off\", got \"loud\""}},
      {R"({"log_level": 3})", {"field 'log_level': must be a string, got number"}},
      {R"({"log_format": "xml"})", {"field 'log_format': must be one of \"text\", \"json\", got \"xml\""}},
      {R"({"watch_manifests": "yes"})", {"field 'watch_manifests': must be true or false, got string"}},
      {R"({"overrides": []})", {"field 'overrides': must be an object of subsystem names, got array"}},
      {R"({"overrides": {"Gateway": {}}})", {"field 'overrides.Gateway': is not a subsystem name"}},
      {R"({"overrides": {"gateway": 1}})", {"field 'overrides.gateway': must be an object of config keys, got number"}},
      {R"({"overrides": {"gateway": {"": 1}}})", {"field 'overrides.gateway': a config key must not be empty"}},
      {R"([1, 2])", {f + ": must be an object, got array"}},
      {R"({"node": )", {f + ": malformed JSON: parse error at line 1, column "}},
      {"", {f + ": malformed JSON"}},
      // Several problems: all of them at once.
      {R"({"node": 1, "log_format": "xml", "extra": true})",
       {f + ": 3 problems: ", "field 'node'", "field 'log_format'", "field 'extra': unknown field"}},
  };
  for (const auto& c : cases) {
    WriteFile(file, c.text);
    int code = 0;
    const std::string err = Refused({"--config", f}, &code);
    INFO("config file: " << c.text << "\nstderr: " << err);
    CHECK(code == 2);
    for (const auto& e : c.expected) CHECK(err.find(e) != std::string::npos);
    // Refused before anything started: no log line, only the error.
    CHECK(err.rfind("esdb-host: ", 0) == 0);
  }
}

TEST_CASE("a config file that cannot be read, and bad config options, are named", "[config]") {
  TempDir dir;
  int code = 0;
  std::string err = Refused({"--config", (dir / "nope.json").string()}, &code);
  CHECK(code == 2);
  CHECK(err.find((dir / "nope.json").string() + ": cannot open config file: no such file") != std::string::npos);
  err = Refused({"--config", dir.path().string()}, &code);
  CHECK(code == 2);
  CHECK(err.find(dir.path().string() + ": is a directory; a config file must be a regular file") != std::string::npos);
  WriteFile(dir / "big.json", "{\"node\": \"" + std::string(2 << 20, 'x') + "\"}");
  err = Refused({"--config", (dir / "big.json").string()}, &code);
  CHECK(code == 2);
  CHECK(err.find("big.json: is larger than the config file size limit") != std::string::npos);
  CHECK(err.size() < 1000);  // the content is never echoed
  err = Refused({"--config", ""}, &code);
  CHECK(code == 2);
  CHECK(err.find("--config must not be empty") != std::string::npos);
  WriteFile(dir / "ok.json", "{}");
  err = Refused({"--config", (dir / "ok.json").string(), "--no-config"}, &code);
  CHECK(code == 2);
  CHECK(err.find("--config and --no-config exclude each other") != std::string::npos);
  err = Refused({"--log-format", "xml"}, &code);
  CHECK(code == 2);
  CHECK(err.find("--log-format: unknown format 'xml' (one of text, json)") != std::string::npos);
  err = Refused({"--config"}, &code);
  CHECK(code == 2);
  CHECK(err.find("--config needs a value") != std::string::npos);
}

TEST_CASE("a host runs on its config file alone; log lines are one per event, JSON or uncoloured text",
          "[config][process]") {
  TempDir dir;
  const fs::path manifests = dir / "manifests";
  fs::create_directories(manifests);
  WriteManifest(manifests, TestManifest("alpha"));
  // A file name with a line break: its rejection is logged on one line.
  WriteFile(manifests / "bad\nname.json", "{");
  for (const std::string format : {"json", "text"}) {
    INFO("log_format " << format);
    json config = {{"node", "conf-node"},
                   {"data_dir", "data-" + format},
                   {"manifests_dir", "manifests"},
                   {"plugin_dirs", {(fs::path(ESDB_HOST_BIN).parent_path() / "plugins").string(), ESDB_TEST_PLUGIN_DIR}},
                   {"log_level", "info"},
                   {"log_format", format}};
    WriteFile(dir / "esdb.json", config.dump());
    HostProcess host(HostOptions::Exactly({"--config", (dir / "esdb.json").string(), "--print-events"}));
    const auto ready = host.WaitForEvent("system_ready");
    INFO(host.Stderr());
    REQUIRE(ready);
    CHECK((*ready)["node"] == "conf-node");
    CHECK(fs::is_directory(dir / ("data-" + format) / "alpha"));
    REQUIRE(host.Terminate() == 0);
    const std::string err = host.Stderr();
    CHECK(err.find('\x1b') == std::string::npos);  // stderr is a file here: no colour codes
    std::vector<std::string> lines;
    for (size_t at = 0; at < err.size();) {
      const size_t end = err.find('\n', at);
      lines.push_back(err.substr(at, end == std::string::npos ? std::string::npos : end - at));
      at = end == std::string::npos ? err.size() : end + 1;
    }
    REQUIRE(lines.size() >= 3);
    bool rejected_seen = false;
    for (const auto& line : lines) {
      INFO("line: " << line);
      if (format == "json") {
        const json j = json::parse(line, nullptr, false);
        REQUIRE(j.is_object());
        CHECK(j.size() == 4);
        CHECK(j["ts"].is_string());
        CHECK(j["level"].is_string());
        CHECK(j["logger"].is_string());
        REQUIRE(j["msg"].is_string());
        if (j["msg"].get<std::string>().find("bad\nname.json") != std::string::npos) rejected_seen = true;
      } else {
        CHECK(line.rfind("[", 0) == 0);
        if (line.find("bad\\nname.json") != std::string::npos) rejected_seen = true;
      }
    }
    CHECK(rejected_seen);
  }
}

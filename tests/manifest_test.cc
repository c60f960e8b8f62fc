// Manifest parsing: every field's type and range is checked, unknown fields
// are refused, and each error names the file and the field.
#include <sys/stat.h>

#include <filesystem>

#include <catch2/catch.hpp>

#include "manifest.h"
#include "support/test_support.h"

using esdb::host::ParseManifestFile;
using esdb::host::ParseManifestText;

namespace {
nlohmann::json Good() {
  return {{"name", "store"},      {"version", "1.2.3"},     {"api_version", "1.1"},
          {"library", "libx.so"}, {"entry", "create_store"}};
}
std::string ErrorOf(const nlohmann::json& m) {
  auto r = ParseManifestText(m.dump(), "/m/store.json", "/m", {"/plugins"}, {});
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}
}  // namespace

TEST_CASE("a minimal manifest gets the documented defaults", "[manifest]") {
  auto r = ParseManifestText(Good().dump(), "/m/store.json", "/m", {"/plugins"}, {});
  REQUIRE(r.ok());
  CHECK(r->library == "/plugins/libx.so");
  CHECK(r->critical);
  CHECK(r->unloadable);
  CHECK(r->threads == 1);
  CHECK(r->restart.max_restarts == 3);
  CHECK(r->restart.max_seconds == 30);
  CHECK(r->health.interval_ms == 1000);
  CHECK(r->config == nlohmann::json::object());
}

TEST_CASE("library paths with a slash are relative to the manifest", "[manifest]") {
  auto m = Good();
  m["library"] = "../lib/libx.so";
  auto r = ParseManifestText(m.dump(), "/etc/esdb/manifests/store.json", "/etc/esdb/manifests", {"/plugins"}, {});
  REQUIRE(r.ok());
  CHECK(r->library == "/etc/esdb/lib/libx.so");
}

TEST_CASE("config overrides from the command line replace keys", "[manifest]") {
  auto m = Good();
  m["config"] = {{"port", 2113}, {"keep", true}};
  esdb::host::ConfigOverrides o;
  o["store"]["port"] = 0;
  auto r = ParseManifestText(m.dump(), "f", "/m", {"/p"}, o);
  REQUIRE(r.ok());
  CHECK(r->config["port"] == 0);
  CHECK(r->config["keep"] == true);
}

TEST_CASE("bad manifests are refused with the file and field named", "[manifest]") {
  auto with = [](const char* key, nlohmann::json v) {
    auto m = Good();
    m[key] = std::move(v);
    return m;
  };
  auto without = [](const char* key) {
    auto m = Good();
    m.erase(key);
    return m;
  };
  CHECK_THAT(ErrorOf(with("colour", "red")), Catch::Contains("/m/store.json: field 'colour': unknown field"));
  CHECK_THAT(ErrorOf(with("critical", "yes")), Catch::Contains("field 'critical': must be true or false, got string"));
  CHECK_THAT(ErrorOf(with("threads", 0)), Catch::Contains("field 'threads': must be between 1 and 64"));
  CHECK_THAT(ErrorOf(with("threads", 1.5)), Catch::Contains("field 'threads': must be an integer"));
  CHECK_THAT(ErrorOf(without("entry")), Catch::Contains("field 'entry': is required"));
  CHECK_THAT(ErrorOf(with("name", "Bad Name")), Catch::Contains("field 'name'"));
  CHECK_THAT(ErrorOf(with("version", "1.0")), Catch::Contains("field 'version': '1.0' is not semver"));
  CHECK_THAT(ErrorOf(with("api_version", "one")), Catch::Contains("field 'api_version'"));
  CHECK_THAT(ErrorOf(with("provides", {"a", 1})), Catch::Contains("field 'provides': element 1 must be a string"));
  CHECK_THAT(ErrorOf(with("config", "x")), Catch::Contains("field 'config': must be an object"));
  CHECK_THAT(ErrorOf(with("restart", {{"max_restart", 1}})), Catch::Contains("field 'restart.max_restart': unknown field"));
  CHECK_THAT(ErrorOf(with("restart", {{"backoff_initial_ms", 500}, {"backoff_max_ms", 100}})),
             Catch::Contains("field 'restart.backoff_max_ms'"));
  CHECK_THAT(ErrorOf(with("health", {{"interval_ms", "1s"}})), Catch::Contains("field 'health.interval_ms'"));
  CHECK_THAT(ErrorOf(nlohmann::json::array()), Catch::Contains("must be a JSON object"));
}

TEST_CASE("megabyte-long name, version and api_version are refused, not matched (std::regex recursed per character)",
          "[manifest]") {
  const std::string huge = "1.0.0-" + std::string(1 << 20, 'a');
  auto m = Good();
  m["name"] = std::string(1 << 20, 'a');
  m["version"] = huge;
  m["api_version"] = "1." + std::string(1 << 20, '1');
  const std::string error = ErrorOf(m);
  CHECK_THAT(error, Catch::Contains("3 problems") && Catch::Contains("field 'name'") &&
                        Catch::Contains("field 'version': '1.0.0-aaa") && Catch::Contains("is longer than 256") &&
                        Catch::Contains("field 'api_version'") && Catch::Contains("(1048578 bytes)"));
  CHECK(error.size() < 1000);  // the values are quoted shortened
}

TEST_CASE("every problem of a manifest is reported at once, each naming its field", "[manifest]") {
  auto m = Good();
  m.erase("entry");
  m["name"] = "Bad Name";
  m["version"] = 3;
  m["critical"] = "yes";
  m["threads"] = 0;
  m["provides"] = {"a", 1};
  m["restart"] = {{"max_restart", 1}, {"backoff_initial_ms", 500}, {"backoff_max_ms", 100}};
  m["health"] = {{"interval_ms", "1s"}};
  m["colour"] = "red";
  m["shape"] = "round";
  const std::string error = ErrorOf(m);
  INFO(error);
  CHECK_THAT(error, Catch::StartsWith("/m/store.json: 11 problems: field 'name': 'Bad Name' must match"));
  for (const char* part : {"field 'version': must be a string, got number", "field 'entry': is required",
                           "field 'critical': must be true or false, got string",
                           "field 'threads': must be between 1 and 64, got 0",
                           "field 'provides': element 1 must be a string, got number",
                           "field 'restart.max_restart': unknown field",
                           "field 'restart.backoff_max_ms': must be >= backoff_initial_ms",
                           "field 'health.interval_ms': must be an integer, got string",
                           "field 'colour': unknown field", "field 'shape': unknown field"}) {
    CHECK_THAT(error, Catch::Contains(std::string("; ") + part));
  }
  // One problem keeps the short form.
  auto one = Good();
  one["threads"] = 0;
  CHECK(ErrorOf(one) == "/m/store.json: field 'threads': must be between 1 and 64, got 0");
}

TEST_CASE("malformed JSON and missing files are reported with the path", "[manifest]") {
  esdb::testing::TempDir dir;
  esdb::test::WriteFile(dir.path() / "bad.json", "{\"name\": \"x\",");
  auto r = ParseManifestFile(dir.path() / "bad.json", {"/p"}, {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains((dir.path() / "bad.json").string() + ": malformed JSON"));
  // A number too large for a double: an error naming the kind, not a crash
  // (found by the manifest fuzzer), and not quoting the file.
  esdb::test::WriteFile(dir.path() / "huge.json", "{\"name\": 66666666E6666666666}");
  auto huge = ParseManifestFile(dir.path() / "huge.json", {"/p"}, {});
  REQUIRE_FALSE(huge.ok());
  CHECK_THAT(huge.status().message(),
             Catch::Contains((dir.path() / "huge.json").string() + ": malformed JSON: number overflow"));
  CHECK_THAT(huge.status().message(), !Catch::Contains("6666"));
  auto missing = ParseManifestFile(dir.path() / "nope.json", {"/p"}, {});
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("nope.json: cannot open manifest"));
}

TEST_CASE("manifest files are read only if regular and small, without blocking, and errors never quote them",
          "[manifest]") {
  using esdb::host::ReadManifestFile;
  esdb::testing::TempDir dir;
  const auto d = dir.path();
  // A FIFO with no writer: refused at once (opening it would block).
  REQUIRE(mkfifo((d / "fifo.json").c_str(), 0600) == 0);
  auto r = ReadManifestFile(d / "fifo.json", true);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("fifo.json: is a FIFO; a manifest must be a regular file"));
  CHECK_THAT(ReadManifestFile("/dev/zero", true).status().message(), Catch::Contains("is a character device"));
  CHECK_THAT(ReadManifestFile(d, true).status().message(), Catch::Contains("is a directory"));
  esdb::test::WriteFile(d / "big.json", std::string(esdb::host::kMaxManifestBytes + 1, ' '));
  CHECK_THAT(ReadManifestFile(d / "big.json", true).status().message(),
             Catch::Contains("is larger than the manifest size limit of 1048576 bytes (1 MiB)"));
  esdb::test::WriteFile(d / "max.json", std::string(esdb::host::kMaxManifestBytes, ' '));
  CHECK(ReadManifestFile(d / "max.json", true).ok());
  // Links: followed for the manifests directory's own files, refused where
  // the caller resolved the path itself.
  esdb::test::WriteFile(d / "real.json", "{}");
  std::filesystem::create_symlink(d / "real.json", d / "link.json");
  CHECK(ReadManifestFile(d / "link.json", true).ok());
  CHECK_THAT(ReadManifestFile(d / "link.json", false).status().message(), Catch::Contains("is a symbolic link"));
  // A parse error names line and column, never the text ("last read: '...'").
  esdb::test::WriteFile(d / "secret.json", "{\"name\": \"x\",\n  SECRET-TOKEN-123: 1}");
  auto p = ParseManifestFile(d / "secret.json", {"/p"}, {});
  REQUIRE_FALSE(p.ok());
  CHECK_THAT(p.status().message(), Catch::Contains("malformed JSON: parse error at line 2, column 3: syntax error"));
  CHECK_THAT(p.status().message(), !Catch::Contains("SECRET") && !Catch::Contains("last read"));
}

TEST_CASE("add-by-path names a file inside the manifest directories, resolved, before anything is opened",
          "[manifest]") {
  using esdb::host::ResolveManifestPath;
  esdb::testing::TempDir dir;
  const auto m = dir.path() / "manifests", extra = dir.path() / "extra";
  std::filesystem::create_directories(m);
  std::filesystem::create_directories(extra);
  esdb::test::WriteFile(m / "a.json", "{}");
  esdb::test::WriteFile(extra / "b.json", "{}");
  esdb::test::WriteFile(dir.path() / "secret.json", "{}");
  std::filesystem::create_symlink(dir.path() / "secret.json", m / "out.json");
  const std::vector<std::filesystem::path> dirs = {m, extra};
  CHECK(*ResolveManifestPath("a.json", dirs) == m / "a.json");
  CHECK(*ResolveManifestPath((extra / "b.json").string(), dirs) == extra / "b.json");
  CHECK(*ResolveManifestPath((m / "sub/../a.json").string(), dirs) == m / "a.json");
  for (const std::string& bad : {std::string("../secret.json"), (dir.path() / "secret.json").string(),
                                 std::string("/etc/passwd"), (m / "out.json").string(), m.string()}) {
    INFO(bad);
    auto r = ResolveManifestPath(bad, dirs);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("is outside the manifest directories"));
  }
  CHECK(ResolveManifestPath("nope.json", dirs).status().code() == esdb::Code::kNotFound);
}

// Where plugin libraries may come from (issue 9, finding 4): only from the
// configured plugin directories, owned by the host's user or root, writable
// by nobody else, optionally pinned by sha256 — all checked before dlopen,
// since dlopen runs the library's constructors. A library whose constructor
// writes a marker file shows whether the host ever loaded it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "host.h"
#include "support/bus_recorder.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using esdb::test::BusRecorder;
using esdb::testing::TempDir;
using esdb::test::TestLibrary;
using esdb::test::TestManifest;
using esdb::test::WriteManifest;

namespace {

// A host whose only plugin directory is <dir>/plugins (0755, a copy of the
// test plugin in it); the marker library is copied to <dir>/outside.
struct PolicyHost {
  TempDir dir;
  fs::path plugins, outside, marker;
  esdb::host::HostOptions options;
  BusRecorder events;
  std::unique_ptr<esdb::host::Host> host;

  explicit PolicyHost(std::vector<fs::path> extra_plugin_dirs = {}) {
    plugins = dir.path() / "plugins";
    outside = dir.path() / "outside";
    marker = dir.path() / "marker";
    fs::create_directories(plugins);
    fs::create_directories(outside);
    fs::create_directories(dir.path() / "manifests");
    Install(TestLibrary("libesdb_test_plugin.so"), plugins / "libesdb_test_plugin.so");
    Install(ESDB_TEST_MARKER_LIB, outside / "libx.so");
    setenv("ESDB_TEST_MARKER", marker.c_str(), 1);
    options.manifests_dir = dir.path() / "manifests";
    options.data_dir = dir.path() / "data";
    options.plugin_dirs = {plugins};
    for (auto& d : extra_plugin_dirs) options.plugin_dirs.push_back(d);
    options.node = "test-node";
    options.log_level = "off";
    options.watch_manifests = false;
    events.Attach(&options);
    host = std::make_unique<esdb::host::Host>(options);
    REQUIRE(host->Start().ok());
  }
  ~PolicyHost() {
    host.reset();
    unsetenv("ESDB_TEST_MARKER");
  }

  static void Install(const fs::path& from, const fs::path& to, fs::perms mode = fs::perms(0755)) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
    fs::permissions(to, mode);
  }

  // Adds an inline manifest through the admin service; the lifecycle event
  // that ends it (subsystem_ready or subsystem_failed).
  esdb::EventPtr Add(const std::string& name, const nlohmann::json& patch) {
    const std::string corr = "corr-" + name;
    auto op = host->AddFromRequest({{"manifest", TestManifest(name, {}, patch)}}, corr);
    REQUIRE(op.ok());
    for (int i = 0; i < 200; ++i) {
      if (auto e = events.Wait("subsystem_ready", name, corr, 50)) return e;
      if (auto e = events.Wait("subsystem_failed", name, corr, 0)) return e;
    }
    FAIL("no outcome for " << name);
    return nullptr;
  }

  // The error of a refused load (phase "load").
  std::string Refusal(const std::string& name, const nlohmann::json& patch) {
    auto e = Add(name, patch);
    REQUIRE(e->type == "subsystem_failed");
    CHECK(e->data.value("phase", "") == "load");
    CHECK(e->data.value("final", false));
    return e->data.value("error", "");
  }
};

std::string Sha256Sum(const fs::path& file) {
  std::string cmd = "sha256sum '" + file.string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[65] = {0};
  REQUIRE(std::fread(buf, 1, 64, p) == 64);
  pclose(p);
  return std::string(buf, 64);
}

}  // namespace

TEST_CASE("a manifest naming a library outside the plugin directories is refused before dlopen",
          "[load_policy]") {
  PolicyHost h;
  // An absolute path, a ../ path (relative to the manifests directory), a
  // symlink inside the plugin directory that resolves outside it.
  const std::string absolute = (h.outside / "libx.so").string();
  fs::create_symlink(h.outside / "libx.so", h.plugins / "liblink.so");
  std::string error = h.Refusal("abs", {{"library", absolute}, {"entry", "esdb_create_test"}});
  CHECK_THAT(error, Catch::Contains("field 'library': " + absolute + ": is outside the plugin directories") &&
                        Catch::Contains(h.plugins.string() + " (--plugin-dir)"));
  error = h.Refusal("dotdot", {{"library", "../outside/libx.so"}});
  CHECK_THAT(error, Catch::Contains(absolute + ": is outside the plugin directories"));
  error = h.Refusal("link", {{"library", "liblink.so"}});
  CHECK_THAT(error, Catch::Contains("is outside the plugin directories (resolved: " + absolute + ")"));
  CHECK_FALSE(fs::exists(h.marker));  // its constructor never ran

  // A library inside the plugin directory loads (by bare name).
  auto ok = h.Add("good", {{"library", "libesdb_test_plugin.so"}});
  CHECK(ok->type == "subsystem_ready");
}

TEST_CASE("a library or directory writable by group or others, or owned by another user, is refused",
          "[load_policy]") {
  TempDir extra;
  const fs::path open_dir = extra.path() / "world-writable";
  fs::create_directories(open_dir);
  fs::permissions(open_dir, fs::perms(0777));
  PolicyHost::Install(ESDB_TEST_MARKER_LIB, open_dir / "libmarker.so");
  PolicyHost::Install(TestLibrary("libesdb_test_plugin.so"), open_dir / "libplugin.so");
  PolicyHost h({open_dir});

  std::string error = h.Refusal("ww_marker", {{"library", (open_dir / "libmarker.so").string()}});
  CHECK_THAT(error, Catch::Contains("directory " + open_dir.string() +
                                    " is writable by group or others (mode 0777)"));
  error = h.Refusal("ww_plugin", {{"library", "libplugin.so"}});  // found by bare name there, still refused
  CHECK_THAT(error, Catch::Contains("is writable by group or others (mode 0777)"));
  CHECK_FALSE(fs::exists(h.marker));

  // Group-writable file in a good directory.
  PolicyHost::Install(TestLibrary("libesdb_test_plugin.so"), h.plugins / "libgw.so", fs::perms(0775));
  error = h.Refusal("gw_file", {{"library", "libgw.so"}});
  CHECK_THAT(error, Catch::Contains((h.plugins / "libgw.so").string() +
                                    ": is writable by group or others (mode 0775)"));
  // Not a regular file.
  fs::create_directories(h.plugins / "libdir.so");
  error = h.Refusal("dir", {{"library", "libdir.so"}});
  CHECK_THAT(error, Catch::Contains("is not a regular file"));

  if (geteuid() == 0) {  // only root can hand a file to another user
    PolicyHost::Install(TestLibrary("libesdb_test_plugin.so"), h.plugins / "libnobody.so");
    REQUIRE(chown((h.plugins / "libnobody.so").c_str(), 65534, 65534) == 0);
    error = h.Refusal("nobody", {{"library", "libnobody.so"}});
    CHECK_THAT(error, Catch::Contains("is owned by uid 65534, not by the host's user (uid 0) or root"));
  }
}

TEST_CASE("a sha256 pin: the matching library loads, a mismatch is refused before dlopen, reloads verify the copy",
          "[load_policy]") {
  PolicyHost h;
  PolicyHost::Install(ESDB_TEST_MARKER_LIB, h.plugins / "libmarker.so");
  const std::string digest = Sha256Sum(h.plugins / "libesdb_test_plugin.so");
  std::string wrong = digest;
  wrong[0] = wrong[0] == '0' ? '1' : '0';

  auto ok = h.Add("pinned", {{"library", "libesdb_test_plugin.so"}, {"sha256", digest}});
  CHECK(ok->type == "subsystem_ready");
  // Upper-case hex is the same digest.
  std::string upper = digest;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(h.Add("pinned_upper", {{"library", "libesdb_test_plugin.so"}, {"sha256", upper}})->type == "subsystem_ready");

  std::string error = h.Refusal("mismatch", {{"library", "libesdb_test_plugin.so"}, {"sha256", wrong}});
  CHECK_THAT(error, Catch::Contains("field 'sha256': library " + (h.plugins / "libesdb_test_plugin.so").string() +
                                    " has SHA-256 " + digest + ", the manifest pins " + wrong));
  error = h.Refusal("marker", {{"library", "libmarker.so"}, {"sha256", wrong}});
  CHECK_THAT(error, Catch::Contains("field 'sha256'"));
  CHECK_FALSE(fs::exists(h.marker));

  auto bad = h.host->AddFromRequest({{"manifest", TestManifest("badpin", {}, {{"sha256", "abc"}})}}, "");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("field 'sha256': must be the library's SHA-256 as 64 hex digits"));

  // A reload loads a content-addressed copy under <data>/.plugin-cache; the
  // pin is verified on that copy.
  WriteManifest(h.options.manifests_dir,
                TestManifest("filed", {}, {{"library", "libesdb_test_plugin.so"}, {"sha256", digest}}));
  auto op = h.host->AddFromRequest({{"path", "filed.json"}}, "corr-filed");
  REQUIRE(op.ok());
  REQUIRE(h.events.Wait("subsystem_ready", "filed", "corr-filed"));
  REQUIRE(h.host->ReloadSubsystem("filed", "corr-reload-1").ok());
  auto reloaded = h.events.Wait("subsystem_reloaded", "filed", "corr-reload-1");
  REQUIRE(reloaded);
  CHECK_THAT(reloaded->data.value("loaded_from", ""), Catch::Contains("/.plugin-cache/libesdb_test_plugin." +
                                                                      digest.substr(0, 16) + ".g2.so"));
  WriteManifest(h.options.manifests_dir,
                TestManifest("filed", {}, {{"library", "libesdb_test_plugin.so"}, {"sha256", wrong}}));
  REQUIRE(h.host->ReloadSubsystem("filed", "corr-reload-2").ok());
  auto failed = h.events.Wait("subsystem_failed", "filed", "corr-reload-2");
  REQUIRE(failed);
  CHECK(failed->data.value("phase", "") == "reload");
  CHECK_THAT(failed->data.value("error", ""), Catch::Contains("field 'sha256'") && Catch::Contains(".plugin-cache"));
}

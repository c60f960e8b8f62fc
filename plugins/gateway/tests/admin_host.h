// A real esdb-host for the admin-route tests: the gateway (on an ephemeral
// loopback port) and, on request, the other built-in plugins, with the
// host's event lines kept for WaitForEvent (the testing kit's
// esdb::testing::HostProcess).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace gwtest {

// The distinct files mapped into process `pid` whose path contains
// `fragment` (a deleted file keeps its " (deleted)" suffix).
inline std::vector<std::string> MappedFiles(pid_t pid, const std::string& fragment) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos || line.find(fragment) == std::string::npos) continue;
    const std::string file = line.substr(slash);
    if (std::find(out.begin(), out.end(), file) == out.end()) out.push_back(file);
  }
  return out;
}

// Dev mode, deliberately, for the tests of admin operations (the auth tests
// give tokens or keep the default, where admin routes are refused).
inline const std::string kDevMode = "gateway.insecure_admin=true";

class AdminHost {
 public:
  // `builtins`: the built-in plugins whose manifests go into the manifests
  // directory besides the gateway's. `sets`: extra --set arguments, e.g.
  // kDevMode or "gateway.tokens=[...]". `log_level`: the host's.
  explicit AdminHost(const std::vector<std::string>& builtins = {}, const std::vector<std::string>& sets = {},
                     const std::string& log_level = "error") {
    manifests_ = dir_.path() / "manifests";
    extra_ = dir_.path() / "extra";
    std::filesystem::create_directories(manifests_);
    std::filesystem::create_directories(extra_);
    std::vector<std::string> names = builtins;
    names.push_back("gateway");
    for (const auto& p : names) {
      std::filesystem::create_symlink(std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json",
                                      manifests_ / (p + ".json"));
    }
    esdb::testing::HostOptions o;
    o.manifests = manifests_;
    o.data = dir_.path() / "data";
    o.log_level = log_level;
    o.sets = sets;
    o.args = {"--manifest-dir", extra_.string()};
    for (const auto& a : esdb::test::PluginDirArgs()) o.args.push_back(a);
    host_ = std::make_unique<esdb::testing::HostProcess>(std::move(o));
    const esdb::Result<uint16_t> port = host_->GatewayPort(30000);
    if (!port.ok()) throw std::runtime_error(port.status().ToString() + "; " + host_->Stderr());
    port_ = *port;
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return host_->pid(); }
  esdb::testing::HostProcess& process() { return *host_; }
  // Watched by the host: a file written here is hot-added.
  const std::filesystem::path& manifests_dir() const { return manifests_; }
  // Not watched: manifests added through the API live here.
  const std::filesystem::path& extra_dir() const { return extra_; }
  const std::filesystem::path& dir() const { return dir_.path(); }

  // Whether any mapping of the host process names a file containing `fragment`.
  bool Mapped(const std::string& fragment) const { return !MappedFiles(pid(), fragment).empty(); }

  // SIGTERM and wait; the exit code.
  int Stop() { return host_->Terminate(); }

 private:
  esdb::testing::TempDir dir_;
  std::filesystem::path manifests_, extra_;
  std::unique_ptr<esdb::testing::HostProcess> host_;
  uint16_t port_ = 0;
};

}  // namespace gwtest

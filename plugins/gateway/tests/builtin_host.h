// The built-in plugins (persistence, store, notification, gateway) in a real
// esdb-host on an ephemeral loopback port: the kit's esdb::testing::HostProcess
// on a manifests directory of their manifests, optionally patched.
#pragma once

#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/testing/host_process.h"
#include "esdb/testing/http.h"
#include "esdb/testing/temp_dir.h"
#include "http_client.h"
#include "support/test_support.h"
#include "url.h"

namespace gwtest {

using esdb::testing::TempDir;

// POST /streams/<stream> (the name percent-encoded) with `events`, a JSON
// array of {eventType, data, ...}, as the body.
inline esdb::testing::HttpResult Append(uint16_t port, const std::string& stream, const nlohmann::json& events,
                                        const std::map<std::string, std::string>& headers = {}) {
  return esdb::testing::Http(port, "POST", "/streams/" + esdb_gateway::PercentEncode(stream), events.dump(), headers);
}

// How to start the host beyond --set arguments.
struct BuiltinHostOptions {
  // RLIMIT_FSIZE of the host process in bytes (0: inherited), with SIGXFSZ
  // ignored, so a write past it fails with EFBIG as on a full disk.
  rlim_t file_size_limit = 0;
  // Top-level manifest fields replaced per plugin, e.g. {"persistence": {"health": {...}}}.
  std::map<std::string, nlohmann::json> manifest_patches;
  // Further plugins of plugins/<name>/ started with them (e.g. "grpc").
  std::vector<std::string> extra_plugins;
};

class BuiltinHost {
 public:
  // Data in `data_dir`; `sets` are extra --set arguments ("gateway.tokens=[...]").
  // Throws when the gateway does not come up, with the subsystem_failed event.
  BuiltinHost(const std::filesystem::path& data_dir, std::vector<std::string> sets = {},
              BuiltinHostOptions options = {}) {
    std::vector<std::string> plugins = {"persistence", "store", "notification", "gateway"};
    plugins.insert(plugins.end(), options.extra_plugins.begin(), options.extra_plugins.end());
    for (const std::string& p : plugins) {
      const auto file = manifests_.path() / (p + ".json");
      const std::string source = std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json";
      auto patch = options.manifest_patches.find(p);
      if (patch == options.manifest_patches.end()) {
        std::filesystem::create_symlink(source, file);
        continue;
      }
      nlohmann::json manifest = esdb::test::BuiltinManifest(p);
      for (const auto& [key, value] : patch->second.items()) manifest[key] = value;
      std::ofstream(file) << manifest.dump(2);
    }
    esdb::testing::HostOptions o;
    o.manifests = manifests_.path();
    o.data = data_dir;
    o.sets = std::move(sets);
    o.log_level = "warn";
    if (options.file_size_limit > 0) {
      o.in_child = [limit = options.file_size_limit] {
        signal(SIGXFSZ, SIG_IGN);  // stays ignored across exec
        rlimit l{};
        getrlimit(RLIMIT_FSIZE, &l);
        l.rlim_cur = limit;  // the hard limit stays, so the test can raise it again
        return setrlimit(RLIMIT_FSIZE, &l) == 0;
      };
    }
    host_ = std::make_unique<esdb::testing::HostProcess>(std::move(o));
    const esdb::Result<uint16_t> port = host_->GatewayPort(60000);
    if (!port.ok()) {
      host_->Terminate();
      throw std::runtime_error(port.status().ToString());
    }
    port_ = *port;
  }
  ~BuiltinHost() { Stop(); }

  uint16_t port() const { return port_; }
  pid_t pid() const { return host_->pid(); }
  esdb::testing::HostProcess& process() { return *host_; }

  // Waits for /health/ready == 200 (the gateway's view of system_ready).
  bool WaitReady(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (esdb::testing::Http(port_, "GET", "/health/ready").status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // SIGTERM by PID and wait: the exit code (0 for a clean stop).
  int Stop() { return host_->Terminate(30000); }

 private:
  TempDir manifests_{"esdb-gw-manifests"};
  std::unique_ptr<esdb::testing::HostProcess> host_;
  uint16_t port_ = 0;
};

}  // namespace gwtest

// Starts a real esdb-host with the built-in plugins on an ephemeral
// gateway port, learns the port from the gateway_listening event line, and
// stops it by PID with SIGTERM.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_client.h"

namespace gwtest {

// How to start the host beyond --set arguments.
struct HostOptions {
  // RLIMIT_FSIZE of the host process in bytes (0: inherited), with SIGXFSZ
  // ignored, so a write past it fails with EFBIG as on a full disk.
  rlim_t file_size_limit = 0;
  // Top-level manifest fields replaced per plugin, e.g. {"persistence": {"health": {...}}}.
  std::map<std::string, nlohmann::json> manifest_patches;
};

class HostProcess {
 public:
  // `sets` are extra --set arguments ("gateway.tokens=[...]").
  HostProcess(const std::filesystem::path& data_dir, std::vector<std::string> sets = {}, HostOptions options = {}) {
    manifests_ = data_dir.string() + "-manifests";
    std::filesystem::create_directories(manifests_);
    for (const char* p : {"persistence", "store", "notification", "gateway"}) {
      const auto link = std::filesystem::path(manifests_) / (std::string(p) + ".json");
      const std::string source = std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json";
      std::error_code ec;
      std::filesystem::remove(link, ec);
      auto patch = options.manifest_patches.find(p);
      if (patch == options.manifest_patches.end()) {
        std::filesystem::create_symlink(source, link);
        continue;
      }
      nlohmann::json manifest = nlohmann::json::parse(std::ifstream(source));
      for (const auto& [key, value] : patch->second.items()) manifest[key] = value;
      std::ofstream(link) << manifest.dump(2);
    }
    std::vector<std::string> args = {ESDB_HOST_BIN, "--manifests", manifests_, "--data", data_dir.string(),
                                     "--set", "gateway.listen_port=0", "--print-events", "--log-level", "warn"};
    for (auto& s : sets) {
      args.push_back("--set");
      args.push_back(s);
    }
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      if (options.file_size_limit > 0) {
        signal(SIGXFSZ, SIG_IGN);  // stays ignored across exec
        rlimit limit{};
        getrlimit(RLIMIT_FSIZE, &limit);
        limit.rlim_cur = options.file_size_limit;  // the hard limit stays, so the test can raise it again
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(126);
      }
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
    // Read event lines until the gateway says where it listens.
    char* line = nullptr;
    size_t cap = 0;
    std::string failures;  // subsystem_failed events: why the host did not come up
    while (getline(&line, &cap, out_) > 0) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("type", "") == "gateway_listening") {
        port_ = j["data"]["port"].get<uint16_t>();
        break;
      }
      if (j.is_object() && j.value("type", "") == "subsystem_failed") {
        failures += line;
        // The gateway cannot come up (or something gave up for good): the
        // host keeps running degraded, so stop waiting for the port.
        const auto& data = j["data"];
        if (data.value("name", "") == "gateway" || data.value("final", false)) break;
      }
    }
    free(line);
    if (port_ == 0) {
      Stop();
      throw std::runtime_error("the gateway did not come up (no gateway_listening); " + failures);
    }
    // Keep draining stdout so the host never blocks on a full pipe.
    drain_ = std::thread([f = out_] {
      char buf[4096];
      while (fread(buf, 1, sizeof buf, f) > 0) {
      }
    });
  }
  ~HostProcess() { Stop(); }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Waits for /health/ready == 200; false after `timeout`.
  bool WaitReady(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      try {
        if (Http(port_, "GET", "/health/ready").status == 200) return true;
      } catch (...) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // SIGTERM, then wait; returns the exit status (or -1).
  int Stop() {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 600; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (i == 599) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
    }
    pid_ = -1;
    if (drain_.joinable()) drain_.join();
    if (out_) fclose(out_);
    out_ = nullptr;
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::thread drain_;
  uint16_t port_ = 0;
  int exit_status_ = -1;
  std::string manifests_;
};

// A fresh temporary directory, removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/esdb-gw-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    std::filesystem::remove_all(path_.string() + "-manifests", ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace gwtest

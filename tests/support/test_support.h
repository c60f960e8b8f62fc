// Helpers for the host's tests: temp dirs, test-plugin manifests, and a
// real esdb-host child process whose stdout events can be awaited.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace esdb::test {

// A fresh directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Absolute path of a test library built into the test plugin dir.
std::filesystem::path TestLibrary(const std::string& file_name);

// esdb-host arguments that allow loading the built-in plugins (the build's
// bin/plugins, where bare library names are found) and the test plugins.
std::vector<std::string> PluginDirArgs();

// A manifest for the configurable test plugin; `patch` is merged over it
// (merge_patch semantics; a null removes a field).
nlohmann::json TestManifest(const std::string& name, const nlohmann::json& config = nlohmann::json::object(),
                            const nlohmann::json& patch = nlohmann::json::object());

// Writes `manifest` (or raw text) to dir/file.
void WriteFile(const std::filesystem::path& file, const std::string& text);
void WriteManifest(const std::filesystem::path& dir, const nlohmann::json& manifest);

// A running esdb-host. Its stdout is read line by line (JSON events with
// --print-events); stderr goes to a file.
class HostProcess {
 public:
  // Runs `binary` (default: this build's esdb-host) with `args`.
  explicit HostProcess(const std::vector<std::string>& args, std::string binary = "");
  ~HostProcess();  // SIGKILL if still running

  // First stdout JSON line (from the start) that satisfies `pred`.
  std::optional<nlohmann::json> WaitFor(const std::function<bool(const nlohmann::json&)>& pred, int timeout_ms);
  // Shorthand: an event of `type` (and, if given, data.name == name).
  std::optional<nlohmann::json> WaitForEvent(const std::string& type, const std::string& name = "",
                                             int timeout_ms = 20000);
  std::vector<nlohmann::json> Lines();
  // Sends SIGTERM and waits; returns the exit code (or -signal).
  int Terminate(int timeout_ms = 20000);
  // Waits for exit; returns the exit code, -signal, or nullopt on timeout.
  std::optional<int> Wait(int timeout_ms);
  std::string Stderr() const;
  pid_t pid() const { return pid_; }

 private:
  void ReadLoop(int fd);
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path stderr_file_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> lines_;
  bool eof_ = false;
};

}  // namespace esdb::test

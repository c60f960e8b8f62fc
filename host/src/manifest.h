// Plugin manifests: parsing and strict validation. Unknown fields and wrong
// types are errors naming the file and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb::host {

// one_for_one restart intensity: more than max_restarts within max_seconds
// and the subsystem is given up on (failed).
struct RestartPolicy {
  int max_restarts = 3;
  int max_seconds = 30;
  int backoff_initial_ms = 100;
  int backoff_max_ms = 5000;
};

// Periodic health checking.
struct HealthPolicy {
  int interval_ms = 1000;
  int timeout_ms = 1000;
  int failure_threshold = 3;  // consecutive failed checks before a restart
};

struct Manifest {
  std::filesystem::path file;      // the manifest file, absolute
  std::string name;
  std::string version;
  uint32_t api_major = 0;
  uint32_t api_minor = 0;
  std::string library_field;       // as written
  std::filesystem::path library;   // resolved, absolute
  std::string entry;
  std::string description;
  std::vector<std::string> provides;
  std::vector<std::string> requires_;
  bool critical = true;
  int threads = 1;
  int start_timeout_ms = 10000;
  int stop_timeout_ms = 10000;
  RestartPolicy restart;
  HealthPolicy health;
  bool unloadable = true;
  std::string reload_strategy = "overlap";  // or "stop_first"
  nlohmann::json config = nlohmann::json::object();

  std::string ApiVersionString() const { return std::to_string(api_major) + "." + std::to_string(api_minor); }
  nlohmann::json ToJson() const;
};

// Config overrides from the command line: subsystem name -> key -> value.
using ConfigOverrides = std::map<std::string, std::map<std::string, nlohmann::json>>;

// Parses and validates one manifest file. `plugin_dir` resolves bare library
// file names; a library path with a '/' is relative to the manifest's dir.
Result<Manifest> ParseManifestFile(const std::filesystem::path& file, const std::filesystem::path& plugin_dir,
                                   const ConfigOverrides& overrides);

// Same for a manifest given as JSON text; `origin` names it in errors and
// `base_dir` resolves a relative library path.
Result<Manifest> ParseManifestText(const std::string& text, const std::string& origin,
                                   const std::filesystem::path& base_dir, const std::filesystem::path& plugin_dir,
                                   const ConfigOverrides& overrides);

// The *.json files of `dir`, sorted by name (links followed).
Result<std::vector<std::filesystem::path>> ListManifestFiles(const std::filesystem::path& dir);

}  // namespace esdb::host

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
  std::string sha256;              // optional pin: lower-case hex SHA-256 of the library file
  nlohmann::json config = nlohmann::json::object();

  std::string ApiVersionString() const { return std::to_string(api_major) + "." + std::to_string(api_minor); }
  nlohmann::json ToJson() const;
};

// Config overrides from the command line: subsystem name -> key -> value.
using ConfigOverrides = std::map<std::string, std::map<std::string, nlohmann::json>>;

// The largest manifest file read (errors name it).
inline constexpr size_t kMaxManifestBytes = 1 << 20;

// Reads a manifest file without ever blocking on it or echoing it: opened
// non-blocking (O_NOFOLLOW unless `follow_links`), and only if fstat says it
// is a regular file of at most kMaxManifestBytes (a FIFO, device or
// directory is refused at once). Errors name the file and the rule.
Result<std::string> ReadManifestFile(const std::filesystem::path& file, bool follow_links);
// The same for any JSON file the host reads (esdb-host's config file):
// `kind` names it in errors ("cannot open config file: ...").
Result<std::string> ReadJsonFile(const std::filesystem::path& file, bool follow_links, const std::string& kind);
// Why `text` is not JSON: "malformed JSON: parse error at line L, column C:
// syntax error ..." with the position and kind of error only, never the text
// read (it may be any file's content).
std::string JsonSyntaxError(const std::string& text);

// The same checks from the file's metadata only (stat; nothing opened).
Status StatManifestFile(const std::filesystem::path& file);

// Where an admin request may name a manifest file: `path` (relative paths
// are under the first of `manifest_dirs`) must lie inside one of
// `manifest_dirs`, lexically and after resolving symlinks. Only metadata is
// looked at (no open, no read). Returns the resolved real path.
Result<std::filesystem::path> ResolveManifestPath(const std::string& path,
                                                  const std::vector<std::filesystem::path>& manifest_dirs);

// Parses and validates one manifest file (read with ReadManifestFile).
// A bare library file name is looked up in `plugin_dirs` (the first that
// has it, else the first); a library path with a '/' is relative to the
// manifest's dir.
Result<Manifest> ParseManifestFile(const std::filesystem::path& file,
                                   const std::vector<std::filesystem::path>& plugin_dirs,
                                   const ConfigOverrides& overrides, bool follow_links = true);

// Same for a manifest given as JSON text; `origin` names it in errors and
// `base_dir` resolves a relative library path. Errors quote no part of
// `text` beyond field names and values of a well-formed manifest (a JSON
// syntax error gives the line and column only).
Result<Manifest> ParseManifestText(const std::string& text, const std::string& origin,
                                   const std::filesystem::path& base_dir,
                                   const std::vector<std::filesystem::path>& plugin_dirs,
                                   const ConfigOverrides& overrides);

// The *.json files of `dir`, sorted by name (links followed).
Result<std::vector<std::filesystem::path>> ListManifestFiles(const std::filesystem::path& dir);

}  // namespace esdb::host

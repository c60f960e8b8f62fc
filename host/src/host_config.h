// esdb-host's settings and where each comes from. Three layers, a later one
// winning per setting: the built-in defaults, the config file (JSON, see
// ReadConfigFile), the command line. README.md, "The config file", is the
// reference for the keys. Plain values and functions; not thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"
#include "host.h"

namespace esdb::host {

// One layer of settings (the config file's, or the command line's): a
// setting the layer does not set is nullopt, or absent from `overrides`.
struct SettingsLayer {
  std::optional<std::string> node;                                      // "node", --node
  std::optional<std::filesystem::path> data_dir;                        // "data_dir", --data
  std::optional<std::filesystem::path> manifests_dir;                   // "manifests_dir", --manifests
  std::optional<std::vector<std::filesystem::path>> plugin_dirs;        // "plugin_dirs", --plugin-dir...
  std::optional<std::vector<std::filesystem::path>> extra_manifest_dirs;  // "extra_manifest_dirs", --manifest-dir...
  std::optional<std::string> log_level;                                 // "log_level", --log-level
  std::optional<std::string> log_format;                                // "log_format", --log-format
  std::optional<bool> watch_manifests;                                  // "watch_manifests", --no-watch
  ConfigOverrides overrides;                                            // "overrides", --set NAME.KEY=JSON
};

// The settings a host runs with, and the origin of each.
struct EffectiveSettings {
  HostOptions options;                            // every layer applied
  std::optional<std::filesystem::path> config_file;  // the file read, absolute; nullopt: none
  // Setting key ("node", ..., "overrides.NAME.KEY") -> "default", "config
  // file" or "command line".
  std::map<std::string, std::string> origins;
};

// The spdlog level names --log-level and "log_level" accept.
const std::vector<std::string>& LogLevels();

// The config file an installed esdb-host reads when neither --config nor
// --no-config is given: the CMake cache variable ESDB_DEFAULT_CONFIG_FILE
// (default /etc/esdb/esdb.json). A host running from its build tree (its
// executable in the build's bin/) reads none by default.
std::filesystem::path DefaultConfigFile();
// True when this executable is the one in the build tree it was built in.
bool RunningFromBuildTree();
// <dir of esdb-host>/plugins in a build tree; an installed host's
// <prefix>/lib/esdb/plugins (relative to its bin/) otherwise.
std::filesystem::path DefaultPluginDir();
// The machine's host name ("node1" if it has none).
std::string DefaultNodeName();

// Reads and validates a config file: a JSON object of at most 1 MiB, read as
// a manifest is (a regular file, never blocking). Relative paths in it are
// relative to the file's directory. Errors are InvalidArgument naming the
// file and every bad key ("<file>: field 'log_level': must be one of ...";
// several: "<file>: N problems: ..."); a missing file is NotFound.
Result<SettingsLayer> ReadConfigFile(const std::filesystem::path& file);

// The defaults, then `file`, then `command_line`. `config_file`: the file
// `file` came from (for the origins), nullopt when none was read.
EffectiveSettings ResolveSettings(const SettingsLayer& file, const SettingsLayer& command_line,
                                  const std::optional<std::filesystem::path>& config_file);

// What --print-config prints: {"config_file": path|null, "<key>": {"value",
// "from"}, ..., "overrides": {NAME: {KEY: {"value", "from"}}}}. Secrets in
// the overrides' values (any "password" or "token", at any depth: the NATS
// password, the gateway's users and tokens) print as "(hidden)".
nlohmann::json DescribeSettings(const EffectiveSettings& settings);

}  // namespace esdb::host

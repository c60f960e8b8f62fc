#include "host_config.h"

#include <unistd.h>

#include "esdb/config_reader.h"
#include "log_format.h"
#include "manifest.h"

namespace esdb::host {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFromDefault = "default";
constexpr const char* kFromFile = "config file";
constexpr const char* kFromCommandLine = "command line";

fs::path ExecutableDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : exe.parent_path();
}

// A subsystem name as manifests allow it: [a-z0-9][a-z0-9_-]{0,63}.
bool IsSubsystemName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '-'))) return false;
  }
  return true;
}

// A non-empty string field as a path, relative ones under `base`.
void ReadPath(ConfigReader& r, const char* key, const fs::path& base, std::optional<fs::path>* out) {
  std::string v;
  if (!r.String(key, false, &v) || r.Raw(key) == nullptr) return;
  if (v.empty()) {
    r.Error(key, "must not be empty");
    return;
  }
  *out = base / v;
}

// An array of non-empty strings as paths, relative ones under `base`.
void ReadPaths(ConfigReader& r, const char* key, const fs::path& base, bool allow_empty,
               std::optional<std::vector<fs::path>>* out) {
  std::vector<std::string> list;
  if (!r.StringList(key, &list) || r.Raw(key) == nullptr) return;
  if (list.empty() && !allow_empty) {
    r.Error(key, "must name at least one directory");
    return;
  }
  std::vector<fs::path> paths;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].empty()) {
      r.Error(key, "element " + std::to_string(i) + " must not be empty");
      return;
    }
    paths.push_back(base / list[i]);
  }
  *out = std::move(paths);
}

template <class T>
void Apply(const char* key, const std::optional<T>& file, const std::optional<T>& cli, T* out,
           std::map<std::string, std::string>* origins) {
  (*origins)[key] = kFromDefault;
  if (file) {
    *out = *file;
    (*origins)[key] = kFromFile;
  }
  if (cli) {
    *out = *cli;
    (*origins)[key] = kFromCommandLine;
  }
}

// `value` with every string under a "password" or "token" key, at any
// depth, replaced by "(hidden)".
nlohmann::json HideSecrets(nlohmann::json value, const std::string& key = "") {
  if ((key == "password" || key == "token") && value.is_string()) return "(hidden)";
  if (value.is_object()) {
    for (auto& [k, v] : value.items()) v = HideSecrets(std::move(v), k);
  } else if (value.is_array()) {
    for (auto& v : value) v = HideSecrets(std::move(v));
  }
  return value;
}

nlohmann::json PathList(const std::vector<fs::path>& paths) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : paths) out.push_back(p.string());
  return out;
}

}  // namespace

const std::vector<std::string>& LogLevels() {
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return levels;
}

fs::path DefaultConfigFile() { return ESDB_DEFAULT_CONFIG_FILE; }

bool RunningFromBuildTree() {
  std::error_code ec;
  const fs::path build_bin = fs::weakly_canonical(ESDB_BUILD_BIN_DIR, ec);
  if (ec) return false;
  return fs::weakly_canonical(ExecutableDir(), ec) == build_bin && !ec;
}

fs::path DefaultPluginDir() {
  const auto exe_dir = ExecutableDir();
  std::error_code ec;
  if (fs::is_directory(exe_dir / "plugins", ec)) return exe_dir / "plugins";
  const auto installed = (exe_dir / ESDB_INSTALLED_PLUGIN_DIR).lexically_normal();
  if (fs::is_directory(installed, ec)) return installed;
  return exe_dir / "plugins";
}

std::string DefaultNodeName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == 0) return "node1";
  return buf;
}

Result<SettingsLayer> ReadConfigFile(const fs::path& file) {
  const fs::path abs = fs::absolute(file).lexically_normal();
  auto text = ReadJsonFile(abs, /*follow_links=*/true, "config file");
  if (!text.ok()) return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument(abs.string() + ": " + JsonSyntaxError(*text));

  const fs::path base = abs.parent_path();
  SettingsLayer layer;
  ConfigProblems problems;
  ConfigReader r(doc, &problems);
  std::string s;
  if (r.String("node", false, &s) && r.Raw("node") != nullptr) {
    if (s.empty()) r.Error("node", "must not be empty");
    else layer.node = s;
  }
  ReadPath(r, "data_dir", base, &layer.data_dir);
  ReadPath(r, "manifests_dir", base, &layer.manifests_dir);
  ReadPaths(r, "plugin_dirs", base, /*allow_empty=*/false, &layer.plugin_dirs);
  ReadPaths(r, "extra_manifest_dirs", base, /*allow_empty=*/true, &layer.extra_manifest_dirs);
  s.clear();
  if (r.Enum("log_level", LogLevels(), &s) && !s.empty()) layer.log_level = s;
  s.clear();
  if (r.Enum("log_format", LogFormats(), &s) && !s.empty()) layer.log_format = s;
  bool watch = true;
  if (r.Bool("watch_manifests", &watch) && r.Raw("watch_manifests") != nullptr) layer.watch_manifests = watch;
  if (const nlohmann::json* o = r.Raw("overrides")) {
    if (!o->is_object()) {
      r.Error("overrides", std::string("must be an object of subsystem names, got ") + JsonTypeName(*o));
    } else {
      for (const auto& [name, keys] : o->items()) {
        const std::string field = "overrides." + name;
        if (!IsSubsystemName(name)) {
          r.Error(field, "is not a subsystem name ([a-z0-9][a-z0-9_-]{0,63})");
        } else if (!keys.is_object()) {
          r.Error(field, std::string("must be an object of config keys, got ") + JsonTypeName(keys));
        } else {
          for (const auto& [key, value] : keys.items()) {
            if (key.empty()) r.Error(field, "a config key must not be empty");
            else layer.overrides[name][key] = value;
          }
        }
      }
    }
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus(abs.string());
  return layer;
}

EffectiveSettings ResolveSettings(const SettingsLayer& file, const SettingsLayer& command_line,
                                  const std::optional<fs::path>& config_file) {
  EffectiveSettings out;
  out.config_file = config_file;
  HostOptions& o = out.options;
  o.node = DefaultNodeName();
  o.plugin_dirs = {DefaultPluginDir()};
  o.log_format = "text";
  auto& origins = out.origins;
  Apply("node", file.node, command_line.node, &o.node, &origins);
  Apply("data_dir", file.data_dir, command_line.data_dir, &o.data_dir, &origins);
  Apply("manifests_dir", file.manifests_dir, command_line.manifests_dir, &o.manifests_dir, &origins);
  Apply("plugin_dirs", file.plugin_dirs, command_line.plugin_dirs, &o.plugin_dirs, &origins);
  Apply("extra_manifest_dirs", file.extra_manifest_dirs, command_line.extra_manifest_dirs, &o.extra_manifest_dirs,
        &origins);
  Apply("log_level", file.log_level, command_line.log_level, &o.log_level, &origins);
  Apply("log_format", file.log_format, command_line.log_format, &o.log_format, &origins);
  Apply("watch_manifests", file.watch_manifests, command_line.watch_manifests, &o.watch_manifests, &origins);
  for (const auto* layer : {&file, &command_line}) {
    for (const auto& [name, keys] : layer->overrides) {
      for (const auto& [key, value] : keys) {
        o.overrides[name][key] = value;
        origins["overrides." + name + "." + key] = layer == &file ? kFromFile : kFromCommandLine;
      }
    }
  }
  return out;
}

nlohmann::json DescribeSettings(const EffectiveSettings& settings) {
  const HostOptions& o = settings.options;
  auto entry = [&](const std::string& key, nlohmann::json value) {
    const auto it = settings.origins.find(key);
    return nlohmann::json{{"value", std::move(value)},
                          {"from", it == settings.origins.end() ? kFromDefault : it->second}};
  };
  nlohmann::json out = {
      {"config_file", settings.config_file ? nlohmann::json(settings.config_file->string()) : nlohmann::json()},
      {"node", entry("node", o.node)},
      {"data_dir", entry("data_dir", o.data_dir.string())},
      {"manifests_dir", entry("manifests_dir", o.manifests_dir.string())},
      {"plugin_dirs", entry("plugin_dirs", PathList(o.plugin_dirs))},
      {"extra_manifest_dirs", entry("extra_manifest_dirs", PathList(o.extra_manifest_dirs))},
      {"log_level", entry("log_level", o.log_level)},
      {"log_format", entry("log_format", o.log_format)},
      {"watch_manifests", entry("watch_manifests", o.watch_manifests)},
      {"overrides", nlohmann::json::object()}};
  for (const auto& [name, keys] : o.overrides) {
    for (const auto& [key, value] : keys) {
      out["overrides"][name][key] = entry("overrides." + name + "." + key, HideSecrets(value, key));
    }
  }
  return out;
}

}  // namespace esdb::host

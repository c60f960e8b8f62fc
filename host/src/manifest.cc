#include "manifest.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace esdb::host {
namespace fs = std::filesystem;

namespace {

const char* TypeName(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::binary: return "binary";
    case nlohmann::json::value_t::discarded: return "discarded";
    default: return "number";
  }
}

// Reads fields of one JSON object, remembering which were known.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string origin, std::string prefix)
      : obj_(obj), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

  Status Error(const std::string& field, const std::string& what) const {
    return Status::InvalidArgument(origin_ + ": field '" + prefix_ + field + "': " + what);
  }

  Status String(const char* field, bool required, std::string* out) {
    known_.insert(field);
    auto it = obj_.find(field);
    if (it == obj_.end()) return required ? Error(field, "is required") : Status::OK();
    if (!it->is_string()) return Error(field, std::string("must be a string, got ") + TypeName(*it));
    *out = it->get<std::string>();
    if (required && out->empty()) return Error(field, "must not be empty");
    return Status::OK();
  }

  Status Bool(const char* field, bool* out) {
    known_.insert(field);
    auto it = obj_.find(field);
    if (it == obj_.end()) return Status::OK();
    if (!it->is_boolean()) return Error(field, std::string("must be true or false, got ") + TypeName(*it));
    *out = it->get<bool>();
    return Status::OK();
  }

  Status Int(const char* field, int min, int max, int* out) {
    known_.insert(field);
    auto it = obj_.find(field);
    if (it == obj_.end()) return Status::OK();
    if (!it->is_number_integer()) return Error(field, std::string("must be an integer, got ") + TypeName(*it));
    const int64_t v = it->get<int64_t>();
    if (v < min || v > max) {
      return Error(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                              std::to_string(v));
    }
    *out = static_cast<int>(v);
    return Status::OK();
  }

  Status StringList(const char* field, std::vector<std::string>* out) {
    known_.insert(field);
    auto it = obj_.find(field);
    if (it == obj_.end()) return Status::OK();
    if (!it->is_array()) return Error(field, std::string("must be an array of strings, got ") + TypeName(*it));
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& v = (*it)[i];
      if (!v.is_string()) {
        return Error(field, "element " + std::to_string(i) + " must be a string, got " + TypeName(v));
      }
      out->push_back(v.get<std::string>());
    }
    return Status::OK();
  }

  // Marks `field` known and returns it (null when absent).
  const nlohmann::json* Raw(const char* field) {
    known_.insert(field);
    auto it = obj_.find(field);
    return it == obj_.end() ? nullptr : &*it;
  }

  Status RejectUnknown() const {
    for (const auto& [key, value] : obj_.items()) {
      if (!known_.count(key)) return Error(key, "unknown field");
    }
    return Status::OK();
  }

 private:
  const nlohmann::json& obj_;
  std::string origin_;
  std::string prefix_;
  std::set<std::string> known_;
};

#define ESDB_RETURN_IF_ERROR(expr) \
  do {                             \
    Status _s = (expr);            \
    if (!_s.ok()) return _s;       \
  } while (0)

Status ParseRestart(const nlohmann::json& v, const std::string& origin, RestartPolicy* out) {
  FieldReader r(v, origin, "restart.");
  ESDB_RETURN_IF_ERROR(r.Int("max_restarts", 0, 1000, &out->max_restarts));
  ESDB_RETURN_IF_ERROR(r.Int("max_seconds", 1, 86400, &out->max_seconds));
  ESDB_RETURN_IF_ERROR(r.Int("backoff_initial_ms", 0, 600000, &out->backoff_initial_ms));
  ESDB_RETURN_IF_ERROR(r.Int("backoff_max_ms", 0, 600000, &out->backoff_max_ms));
  ESDB_RETURN_IF_ERROR(r.RejectUnknown());
  if (out->backoff_max_ms < out->backoff_initial_ms) {
    return r.Error("backoff_max_ms", "must be >= backoff_initial_ms");
  }
  return Status::OK();
}

Status ParseHealth(const nlohmann::json& v, const std::string& origin, HealthPolicy* out) {
  FieldReader r(v, origin, "health.");
  ESDB_RETURN_IF_ERROR(r.Int("interval_ms", 10, 3600000, &out->interval_ms));
  ESDB_RETURN_IF_ERROR(r.Int("timeout_ms", 1, 3600000, &out->timeout_ms));
  ESDB_RETURN_IF_ERROR(r.Int("failure_threshold", 1, 1000, &out->failure_threshold));
  return r.RejectUnknown();
}

Result<Manifest> ParseManifestJson(const nlohmann::json& doc, const std::string& origin, const fs::path& base_dir,
                                   const fs::path& plugin_dir, const ConfigOverrides& overrides) {
  if (!doc.is_object()) {
    return Status::InvalidArgument(origin + ": a manifest must be a JSON object, got " + TypeName(doc));
  }
  Manifest m;
  FieldReader r(doc, origin, "");
  ESDB_RETURN_IF_ERROR(r.String("name", true, &m.name));
  static const std::regex kName("[a-z0-9][a-z0-9_-]{0,63}");
  if (!std::regex_match(m.name, kName)) {
    return r.Error("name", "'" + m.name + "' must match [a-z0-9][a-z0-9_-]{0,63}");
  }
  ESDB_RETURN_IF_ERROR(r.String("version", true, &m.version));
  static const std::regex kSemver(R"((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)");
  if (!std::regex_match(m.version, kSemver)) return r.Error("version", "'" + m.version + "' is not semver (MAJOR.MINOR.PATCH)");
  std::string api;
  ESDB_RETURN_IF_ERROR(r.String("api_version", true, &api));
  static const std::regex kApi(R"((\d{1,4})\.(\d{1,4}))");
  std::smatch match;
  if (!std::regex_match(api, match, kApi)) return r.Error("api_version", "'" + api + "' must be \"MAJOR.MINOR\"");
  m.api_major = static_cast<uint32_t>(std::stoul(match[1]));
  m.api_minor = static_cast<uint32_t>(std::stoul(match[2]));
  ESDB_RETURN_IF_ERROR(r.String("library", true, &m.library_field));
  if (m.library_field.find('/') == std::string::npos) {
    m.library = fs::absolute(plugin_dir / m.library_field).lexically_normal();
  } else {
    fs::path p(m.library_field);
    m.library = (p.is_absolute() ? p : fs::absolute(base_dir / p)).lexically_normal();
  }
  ESDB_RETURN_IF_ERROR(r.String("entry", true, &m.entry));
  ESDB_RETURN_IF_ERROR(r.String("description", false, &m.description));
  ESDB_RETURN_IF_ERROR(r.StringList("provides", &m.provides));
  ESDB_RETURN_IF_ERROR(r.StringList("requires", &m.requires_));
  ESDB_RETURN_IF_ERROR(r.Bool("critical", &m.critical));
  ESDB_RETURN_IF_ERROR(r.Int("threads", 1, 64, &m.threads));
  ESDB_RETURN_IF_ERROR(r.Int("start_timeout_ms", 1, 3600000, &m.start_timeout_ms));
  ESDB_RETURN_IF_ERROR(r.Int("stop_timeout_ms", 1, 3600000, &m.stop_timeout_ms));
  ESDB_RETURN_IF_ERROR(r.Bool("unloadable", &m.unloadable));
  ESDB_RETURN_IF_ERROR(r.String("reload_strategy", false, &m.reload_strategy));
  if (m.reload_strategy != "overlap" && m.reload_strategy != "stop_first") {
    return r.Error("reload_strategy", "must be \"overlap\" or \"stop_first\", got \"" + m.reload_strategy + "\"");
  }
  if (const auto* v = r.Raw("restart")) {
    if (!v->is_object()) return r.Error("restart", std::string("must be an object, got ") + TypeName(*v));
    ESDB_RETURN_IF_ERROR(ParseRestart(*v, origin, &m.restart));
  }
  if (const auto* v = r.Raw("health")) {
    if (!v->is_object()) return r.Error("health", std::string("must be an object, got ") + TypeName(*v));
    ESDB_RETURN_IF_ERROR(ParseHealth(*v, origin, &m.health));
  }
  if (const auto* v = r.Raw("config")) {
    if (!v->is_object()) return r.Error("config", std::string("must be an object, got ") + TypeName(*v));
    m.config = *v;
  }
  ESDB_RETURN_IF_ERROR(r.RejectUnknown());
  if (auto it = overrides.find(m.name); it != overrides.end()) {
    for (const auto& [key, value] : it->second) m.config[key] = value;
  }
  return m;
}

}  // namespace

nlohmann::json Manifest::ToJson() const {
  return {{"file", file.string()},
          {"name", name},
          {"version", version},
          {"api_version", ApiVersionString()},
          {"library", library.string()},
          {"entry", entry},
          {"description", description},
          {"provides", provides},
          {"requires", requires_},
          {"critical", critical},
          {"threads", threads},
          {"start_timeout_ms", start_timeout_ms},
          {"stop_timeout_ms", stop_timeout_ms},
          {"restart",
           {{"max_restarts", restart.max_restarts},
            {"max_seconds", restart.max_seconds},
            {"backoff_initial_ms", restart.backoff_initial_ms},
            {"backoff_max_ms", restart.backoff_max_ms}}},
          {"health",
           {{"interval_ms", health.interval_ms},
            {"timeout_ms", health.timeout_ms},
            {"failure_threshold", health.failure_threshold}}},
          {"unloadable", unloadable},
          {"reload_strategy", reload_strategy},
          {"config", config}};
}

Result<Manifest> ParseManifestText(const std::string& text, const std::string& origin, const fs::path& base_dir,
                                   const fs::path& plugin_dir, const ConfigOverrides& overrides) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Parse again with exceptions on, only to get the position of the error.
    std::string why = "malformed JSON";
    try {
      nlohmann::json ignored = nlohmann::json::parse(text);
      (void)ignored;
    } catch (const nlohmann::json::parse_error& e) {
      why = std::string("malformed JSON: ") + e.what();
    }
    return Status::InvalidArgument(origin + ": " + why);
  }
  return ParseManifestJson(doc, origin, base_dir, plugin_dir, overrides);
}

Result<Manifest> ParseManifestFile(const fs::path& file, const fs::path& plugin_dir, const ConfigOverrides& overrides) {
  const fs::path abs = fs::absolute(file).lexically_normal();
  std::ifstream in(abs, std::ios::binary);
  if (!in) return Status::NotFound(abs.string() + ": cannot open manifest");
  std::stringstream buf;
  buf << in.rdbuf();
  auto m = ParseManifestText(buf.str(), abs.string(), abs.parent_path(), plugin_dir, overrides);
  if (m.ok()) m->file = abs;
  return m;
}

Result<std::vector<fs::path>> ListManifestFiles(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound("manifest directory " + dir.string() + " does not exist");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json" && !fs::is_directory(entry.path(), ec)) files.push_back(entry.path());
  }
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace esdb::host

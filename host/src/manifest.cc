#include "manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
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
                                   const std::vector<fs::path>& plugin_dirs, const ConfigOverrides& overrides) {
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
    fs::path dir = plugin_dirs.empty() ? fs::path(".") : plugin_dirs.front();
    for (const auto& d : plugin_dirs) {
      std::error_code ec;
      if (fs::exists(d / m.library_field, ec)) {
        dir = d;
        break;
      }
    }
    m.library = fs::absolute(dir / m.library_field).lexically_normal();
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
  ESDB_RETURN_IF_ERROR(r.String("sha256", false, &m.sha256));
  if (!m.sha256.empty()) {
    std::transform(m.sha256.begin(), m.sha256.end(), m.sha256.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (m.sha256.size() != 64 || m.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return r.Error("sha256", "must be the library's SHA-256 as 64 hex digits");
    }
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
          {"sha256", sha256},
          {"config", config}};
}

Result<Manifest> ParseManifestText(const std::string& text, const std::string& origin, const fs::path& base_dir,
                                   const std::vector<fs::path>& plugin_dirs, const ConfigOverrides& overrides) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Parse again with exceptions on, only to get the position of the error.
    std::string why = "malformed JSON";
    try {
      nlohmann::json ignored = nlohmann::json::parse(text);
      (void)ignored;
    } catch (const nlohmann::json::parse_error& e) {
      // "[json.exception.parse_error.101] parse error at line L, column C:
      // syntax error ...; last read: '<text>'": keep the position and the
      // kind of error, never the text read (it may be any file's content).
      std::string what = e.what();
      if (const auto at = what.find("] "); what.rfind("[json.exception.", 0) == 0 && at != std::string::npos) {
        what.erase(0, at + 2);
      }
      if (const auto last = what.find("; last read:"); last != std::string::npos) what.erase(last);
      why = "malformed JSON: " + what;
    }
    return Status::InvalidArgument(origin + ": " + why);
  }
  return ParseManifestJson(doc, origin, base_dir, plugin_dirs, overrides);
}

namespace {

std::string TooBig(const std::string& name) {
  return name + ": is larger than the manifest size limit of " + std::to_string(kMaxManifestBytes) + " bytes (1 MiB)";
}

// A regular file within the size limit.
Status CheckManifestKind(const struct stat& st, const std::string& name) {
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return Status::InvalidArgument(name + ": is " + std::string(kind) + "; a manifest must be a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) return Status::InvalidArgument(TooBig(name));
  return Status::OK();
}

}  // namespace

Status StatManifestFile(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return Status::InvalidArgument(file.string() + ": cannot stat manifest: " + std::strerror(errno));
  }
  return CheckManifestKind(st, file.string());
}

Result<std::string> ReadManifestFile(const fs::path& file, bool follow_links) {
  const std::string name = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) return Status::InvalidArgument(name + ": is a symbolic link; name the manifest file itself");
    if (err == ENOENT) return Status::NotFound(name + ": cannot open manifest: no such file");
    return Status::InvalidArgument(name + ": cannot open manifest: " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IOError(name + ": cannot stat manifest: " + std::strerror(errno));
  Status kind = CheckManifestKind(st, name);
  if (!kind.ok()) return kind;
  std::string text(kMaxManifestBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(name + ": cannot read manifest: " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxManifestBytes) return Status::InvalidArgument(TooBig(name));  // it grew meanwhile
  text.resize(got);
  return text;
}

Result<fs::path> ResolveManifestPath(const std::string& path, const std::vector<fs::path>& manifest_dirs) {
  if (manifest_dirs.empty()) return Status::FailedPrecondition("no manifest directory is configured");
  fs::path p(path);
  if (p.is_relative()) p = manifest_dirs.front() / p;
  p = fs::absolute(p).lexically_normal();
  std::string dirs;
  std::vector<fs::path> lexical, real;
  for (const auto& d : manifest_dirs) {
    dirs += (dirs.empty() ? "" : ", ") + d.string();
    lexical.push_back(fs::absolute(d).lexically_normal());
    std::error_code ec;
    const fs::path r = fs::canonical(d, ec);
    if (!ec) real.push_back(r);
  }
  auto below_any = [](const std::vector<fs::path>& bases, const fs::path& f) {
    for (const auto& b : bases) {
      const fs::path rel = f.lexically_relative(b);
      if (!rel.empty() && rel != "." && *rel.begin() != "..") return true;
    }
    return false;
  };
  const std::string outside = path + ": is outside the manifest directories (" + dirs +
                              "); a manifest is added by path only from inside one of them";
  // Before touching the file at all: no oracle for files elsewhere.
  if (!below_any(lexical, p) && !below_any(real, p)) return Status::InvalidArgument(outside);
  std::error_code ec;
  const fs::path resolved = fs::canonical(p, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return Status::NotFound(p.string() + ": cannot open manifest: no such file");
    return Status::InvalidArgument(p.string() + ": cannot open manifest: " + ec.message());
  }
  if (!below_any(real, resolved)) return Status::InvalidArgument(outside + " (it resolves to a file elsewhere)");
  return resolved;
}

Result<Manifest> ParseManifestFile(const fs::path& file, const std::vector<fs::path>& plugin_dirs,
                                   const ConfigOverrides& overrides, bool follow_links) {
  const fs::path abs = fs::absolute(file).lexically_normal();
  auto text = ReadManifestFile(abs, follow_links);
  if (!text.ok()) return text.status();
  auto m = ParseManifestText(*text, abs.string(), abs.parent_path(), plugin_dirs, overrides);
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

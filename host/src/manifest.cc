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

#include "esdb/config_reader.h"

namespace esdb::host {
namespace fs = std::filesystem;

namespace {

using Problems = esdb::ConfigProblems;
using FieldReader = esdb::ConfigReader;
using esdb::JsonTypeName;

void ParseRestart(const nlohmann::json& v, Problems* problems, RestartPolicy* out) {
  FieldReader r(v, problems, "restart.");
  r.Int("max_restarts", 0, 1000, &out->max_restarts);
  r.Int("max_seconds", 1, 86400, &out->max_seconds);
  const bool initial_ok = r.Int("backoff_initial_ms", 0, 600000, &out->backoff_initial_ms);
  const bool max_ok = r.Int("backoff_max_ms", 0, 600000, &out->backoff_max_ms);
  r.RejectUnknown();
  if (initial_ok && max_ok && out->backoff_max_ms < out->backoff_initial_ms) {
    r.Error("backoff_max_ms", "must be >= backoff_initial_ms");
  }
}

void ParseHealth(const nlohmann::json& v, Problems* problems, HealthPolicy* out) {
  FieldReader r(v, problems, "health.");
  r.Int("interval_ms", 10, 3600000, &out->interval_ms);
  r.Int("timeout_ms", 1, 3600000, &out->timeout_ms);
  r.Int("failure_threshold", 1, 1000, &out->failure_threshold);
  r.RejectUnknown();
}

// Checks every field and reports every problem at once (Problems).
Result<Manifest> ParseManifestJson(const nlohmann::json& doc, const std::string& origin, const fs::path& base_dir,
                                   const std::vector<fs::path>& plugin_dirs, const ConfigOverrides& overrides) {
  if (!doc.is_object()) {
    return Status::InvalidArgument(origin + ": a manifest must be a JSON object, got " + JsonTypeName(doc));
  }
  Manifest m;
  Problems problems;
  FieldReader r(doc, &problems, "");
  // std::regex matches by recursion, one frame per character: a long value
  // would overflow the stack. Every field is length-checked first, and the
  // value is quoted back at most kShown characters long.
  constexpr size_t kMaxName = 64, kMaxVersion = 256, kMaxApi = 9, kShown = 80;
  auto shown = [&](const std::string& v) {
    return v.size() <= kShown ? v : v.substr(0, kShown) + "... (" + std::to_string(v.size()) + " bytes)";
  };
  static const std::regex kName("[a-z0-9][a-z0-9_-]{0,63}");
  if (r.String("name", true, &m.name) && (m.name.size() > kMaxName || !std::regex_match(m.name, kName))) {
    r.Error("name", "'" + shown(m.name) + "' must match [a-z0-9][a-z0-9_-]{0,63}");
  }
  static const std::regex kSemver(R"((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)");
  if (r.String("version", true, &m.version)) {
    if (m.version.size() > kMaxVersion) {
      r.Error("version", "'" + shown(m.version) + "' is longer than " + std::to_string(kMaxVersion) + " characters");
    } else if (!std::regex_match(m.version, kSemver)) {
      r.Error("version", "'" + m.version + "' is not semver (MAJOR.MINOR.PATCH)");
    }
  }
  std::string api;
  static const std::regex kApi(R"((\d{1,4})\.(\d{1,4}))");
  std::smatch match;
  if (r.String("api_version", true, &api)) {
    if (api.size() <= kMaxApi && std::regex_match(api, match, kApi)) {
      m.api_major = static_cast<uint32_t>(std::stoul(match[1]));
      m.api_minor = static_cast<uint32_t>(std::stoul(match[2]));
    } else {
      r.Error("api_version", "'" + shown(api) + "' must be \"MAJOR.MINOR\"");
    }
  }
  if (r.String("library", true, &m.library_field)) {
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
  }
  r.String("entry", true, &m.entry);
  r.String("description", false, &m.description);
  r.StringList("provides", &m.provides);
  r.StringList("requires", &m.requires_);
  r.Bool("critical", &m.critical);
  r.Int("threads", 1, 64, &m.threads);
  r.Int("start_timeout_ms", 1, 3600000, &m.start_timeout_ms);
  r.Int("stop_timeout_ms", 1, 3600000, &m.stop_timeout_ms);
  r.Bool("unloadable", &m.unloadable);
  if (r.String("reload_strategy", false, &m.reload_strategy) && m.reload_strategy != "overlap" &&
      m.reload_strategy != "stop_first") {
    r.Error("reload_strategy", "must be \"overlap\" or \"stop_first\", got \"" + m.reload_strategy + "\"");
  }
  if (const auto* v = r.Raw("restart")) {
    if (!v->is_object()) r.Error("restart", std::string("must be an object, got ") + JsonTypeName(*v));
    else ParseRestart(*v, &problems, &m.restart);
  }
  if (const auto* v = r.Raw("health")) {
    if (!v->is_object()) r.Error("health", std::string("must be an object, got ") + JsonTypeName(*v));
    else ParseHealth(*v, &problems, &m.health);
  }
  if (r.String("sha256", false, &m.sha256) && !m.sha256.empty()) {
    std::transform(m.sha256.begin(), m.sha256.end(), m.sha256.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (m.sha256.size() != 64 || m.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      r.Error("sha256", "must be the library's SHA-256 as 64 hex digits");
    }
  }
  if (const auto* v = r.Raw("config")) {
    if (!v->is_object()) r.Error("config", std::string("must be an object, got ") + JsonTypeName(*v));
    else m.config = *v;
  }
  r.RejectUnknown();
  if (!problems.empty()) return problems.ToStatus(origin);
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

std::string JsonSyntaxError(const std::string& text) {
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
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but a value the parser refuses, e.g.
    // "[json.exception.out_of_range.406] number overflow parsing '1E999'":
    // the kind of error, never the text it quotes.
    std::string what = e.what();
    if (const auto at = what.find("] "); at != std::string::npos) what.erase(0, at + 2);
    if (const auto quote = what.find(" parsing '"); quote != std::string::npos) what.erase(quote);
    if (const auto quote = what.find('\''); quote != std::string::npos) what.erase(quote);
    why = "malformed JSON: " + what;
  }
  return why;
}

Result<Manifest> ParseManifestText(const std::string& text, const std::string& origin, const fs::path& base_dir,
                                   const std::vector<fs::path>& plugin_dirs, const ConfigOverrides& overrides) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument(origin + ": " + JsonSyntaxError(text));
  return ParseManifestJson(doc, origin, base_dir, plugin_dirs, overrides);
}

namespace {

std::string TooBig(const std::string& name, const std::string& kind) {
  return name + ": is larger than the " + kind + " size limit of " + std::to_string(kMaxManifestBytes) +
         " bytes (1 MiB)";
}

// A regular file within the size limit.
Status CheckManifestKind(const struct stat& st, const std::string& name, const std::string& kind = "manifest") {
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return Status::InvalidArgument(name + ": is " + std::string(what) + "; a " + kind + " must be a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) return Status::InvalidArgument(TooBig(name, kind));
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

Result<std::string> ReadJsonFile(const fs::path& file, bool follow_links, const std::string& kind) {
  const std::string name = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) return Status::InvalidArgument(name + ": is a symbolic link; name the " + kind + " file itself");
    if (err == ENOENT) return Status::NotFound(name + ": cannot open " + kind + ": no such file");
    return Status::InvalidArgument(name + ": cannot open " + kind + ": " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IOError(name + ": cannot stat " + kind + ": " + std::strerror(errno));
  Status checked = CheckManifestKind(st, name, kind);
  if (!checked.ok()) return checked;
  std::string text(kMaxManifestBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(name + ": cannot read " + kind + ": " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxManifestBytes) return Status::InvalidArgument(TooBig(name, kind));  // it grew meanwhile
  text.resize(got);
  return text;
}

Result<std::string> ReadManifestFile(const fs::path& file, bool follow_links) {
  return ReadJsonFile(file, follow_links, "manifest");
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

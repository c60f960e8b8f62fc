#include "plugin_library.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include <openssl/evp.h>

#include "esdb/version.h"

namespace esdb::host {
namespace fs = std::filesystem;

namespace {

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Whether `path` lies strictly below `dir` (both absolute and normal).
bool Below(const fs::path& dir, const fs::path& path) {
  const fs::path rel = path.lexically_relative(dir);
  return !rel.empty() && rel != "." && *rel.begin() != "..";
}

// One running SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += kHex[md[i] >> 4];
      out += kHex[md[i] & 0xf];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  Sha256 h;
  h.Update(bytes.data(), bytes.size());
  return h.HexDigest();
}

Result<std::string> Sha256OfFile(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::IOError("cannot open " + file.string() + ": " + std::strerror(errno));
  Sha256 h;
  std::string buf(1 << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::IOError("cannot read " + file.string() + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.HexDigest();
}

Status CheckLibraryFile(const fs::path& library, const std::vector<fs::path>& allowed_dirs, const std::string& where) {
  const std::string prefix = where + ": field 'library': " + library.string();
  auto broken = [&](const std::string& rule) { return Status::FailedPrecondition(prefix + ": " + rule); };
  std::error_code ec;
  const fs::path real = fs::canonical(library, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return Status::NotFound(prefix + " does not exist");
    return Status::NotFound(prefix + " cannot be resolved: " + ec.message());
  }
  fs::path base;
  std::string dirs;
  for (const auto& dir : allowed_dirs) {
    dirs += (dirs.empty() ? "" : ", ") + dir.string();
    std::error_code dec;
    const fs::path d = fs::canonical(dir, dec);
    if (!dec && Below(d, real)) {
      base = d;
      break;
    }
  }
  const std::string really = real == library ? "" : " (resolved: " + real.string() + ")";
  if (base.empty()) {
    return broken("is outside the plugin directories" + really + "; libraries are loaded only from inside " +
                  (dirs.empty() ? std::string("a --plugin-dir") : dirs) + " (--plugin-dir)");
  }
  const uid_t me = ::geteuid();
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) return broken(std::string("cannot stat") + really + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return broken("is not a regular file" + really);
  if (st.st_uid != me && st.st_uid != 0) {
    return broken("is owned by uid " + std::to_string(st.st_uid) + really + ", not by the host's user (uid " +
                  std::to_string(me) + ") or root");
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return broken("is writable by group or others (mode " + Octal(st.st_mode) + ")" + really +
                  "; a plugin library must be writable only by its owner");
  }
  for (fs::path d = real.parent_path();; d = d.parent_path()) {
    struct stat ds {};
    if (::stat(d.c_str(), &ds) != 0) return broken("cannot stat directory " + d.string() + ": " + std::strerror(errno));
    if (ds.st_uid != me && ds.st_uid != 0) {
      return broken("directory " + d.string() + " is owned by uid " + std::to_string(ds.st_uid) +
                    ", not by the host's user (uid " + std::to_string(me) + ") or root");
    }
    const bool above_base = d != base && !Below(base, d);
    const bool sticky_root = ds.st_uid == 0 && (ds.st_mode & S_ISVTX);
    if ((ds.st_mode & (S_IWGRP | S_IWOTH)) && !(above_base && sticky_root)) {
      return broken("directory " + d.string() + " is writable by group or others (mode " + Octal(ds.st_mode) +
                    "); no directory on a plugin library's path may be");
    }
    if (d == d.root_path() || d.parent_path() == d) break;
  }
  return Status::OK();
}

Reaper::Reaper() : thread_([this] { Run(); }) {}

Reaper::~Reaper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // Pinned libraries stay mapped until the process exits: unloading them
  // could run into code that is still referenced. They are parked in a
  // process-lifetime list (reachable, so leak checkers stay quiet).
  static auto* forever = new std::vector<std::unique_ptr<boost::dll::shared_library>>();
  for (auto& lib : pinned_) forever->push_back(std::move(lib));
}

void Reaper::Release(std::unique_ptr<boost::dll::shared_library> lib, bool unloadable) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unloadable) {
    queue_.push_back(std::move(lib));
  } else {
    pinned_.push_back(std::move(lib));
  }
  cv_.notify_all();
}

bool Reaper::Flush(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto idle = [&] { return queue_.empty() && !busy_; };
  if (timeout_ms < 0) {
    cv_.wait(lock, idle);
    return true;
  }
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), idle);
}

size_t Reaper::pinned() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pinned_.size();
}

void Reaper::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) return;
    auto lib = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    lib->unload();  // dlclose
    lib.reset();
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

namespace {
// The io runner of an SDK 1.0 plugin, which exports none: the loop runs in
// the host's copy of Asio.
void RunIoInHost(boost::asio::io_context* io) { io->run(); }
}  // namespace

Result<std::shared_ptr<PluginLibrary>> PluginLibrary::Load(const Manifest& m, Reaper* reaper,
                                                           const std::vector<fs::path>& allowed_dirs) {
  const std::string where = m.file.empty() ? m.name : m.file.string();
  // Nothing of the library runs (constructors do, in dlopen) before these.
  Status allowed = CheckLibraryFile(m.library, allowed_dirs, where);
  if (!allowed.ok()) return allowed;
  if (!m.sha256.empty()) {
    auto digest = Sha256OfFile(m.library);
    if (!digest.ok()) return Status::IOError(where + ": field 'sha256': " + digest.status().message());
    if (*digest != m.sha256) {
      return Status::FailedPrecondition(where + ": field 'sha256': library " + m.library.string() + " has SHA-256 " +
                                        *digest + ", the manifest pins " + m.sha256 + "; not loaded");
    }
  }
  auto lib = std::make_unique<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  // rtld_now: unresolved symbols fail here, not later in the middle of a call.
  lib->load(m.library.string(), ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec) {
    return Status::InvalidArgument(where + ": cannot load library " + m.library.string() + ": " + ec.message());
  }
  std::shared_ptr<PluginLibrary> out(new PluginLibrary());
  out->reaper_ = reaper;
  out->unloadable_ = m.unloadable;
  out->path_ = m.library;
  out->lib_ = std::move(lib);
  // From here on `out` releases the library through the reaper on any return.
  if (!out->lib_->has(esdb::kApiVersionSymbol)) {
    return Status::InvalidArgument(where + ": " + m.library.string() + " is not an esdb plugin (no " +
                                   esdb::kApiVersionSymbol + " symbol)");
  }
  auto& version_fn = out->lib_->get<esdb::ApiVersionFunction>(esdb::kApiVersionSymbol);
  out->api_version_ = version_fn();
  const uint32_t lib_major = esdb::ApiMajor(out->api_version_);
  const uint32_t lib_minor = esdb::ApiMinor(out->api_version_);
  const std::string lib_api = std::to_string(lib_major) + "." + std::to_string(lib_minor);
  const std::string host_api = std::to_string(ESDB_SDK_API_MAJOR) + "." + std::to_string(ESDB_SDK_API_MINOR);
  if (lib_major != m.api_major || lib_minor != m.api_minor) {
    return Status::FailedPrecondition(where + ": field 'api_version': manifest says " + m.ApiVersionString() +
                                      " but the library was built for SDK API " + lib_api);
  }
  if (lib_major != ESDB_SDK_API_MAJOR || lib_minor > ESDB_SDK_API_MINOR) {
    return Status::FailedPrecondition(where + ": API version mismatch: plugin built for SDK API " + lib_api +
                                      ", host provides " + host_api + " (needs the same major and minor <= " +
                                      std::to_string(ESDB_SDK_API_MINOR) + ")");
  }
  // SDK 1.0 plugins predate the ABI tag and the exported io runner: they
  // load unchecked, and the host runs their Io() loop itself, as 1.0 did
  // (docs/SDK_COMPATIBILITY.md). From 1.1 on both are required.
  const bool v1_0 = lib_major == 1 && lib_minor == 0;
  if (out->lib_->has(esdb::kAbiTagSymbol)) {
    auto& tag_fn = out->lib_->get<esdb::AbiTagFunction>(esdb::kAbiTagSymbol);
    const char* tag = tag_fn();
    out->abi_tag_ = tag == nullptr ? std::string() : std::string(tag);
    const std::string diff = esdb::DescribeAbiDifference(out->abi_tag_, ESDB_ABI_TAG);
    if (!diff.empty()) {
      std::string parts = diff;
      for (size_t i = 0; (i = parts.find('\n', i)) != std::string::npos;) parts.replace(i, 1, "; ");
      return Status::FailedPrecondition(where + ": ABI mismatch: " + m.library.string() +
                                        " was built differently from this host (" + parts +
                                        "); rebuild it with the host's compiler and libraries");
    }
  } else if (!v1_0) {
    return Status::InvalidArgument(where + ": " + m.library.string() + " exports no " + esdb::kAbiTagSymbol +
                                   " (SDK API " + lib_api + " plugins must: build it with the ESDB_PLUGIN macro)");
  }
  if (out->lib_->has(esdb::kRunIoSymbol)) {
    out->run_io_ = &out->lib_->get<esdb::RunIoFunction>(esdb::kRunIoSymbol);
  } else if (v1_0) {
    out->run_io_ = &RunIoInHost;
  } else {
    return Status::InvalidArgument(where + ": " + m.library.string() + " exports no " + esdb::kRunIoSymbol +
                                   " (SDK API " + lib_api + " plugins must: build it with the ESDB_PLUGIN macro)");
  }
  if (v1_0 && out->abi_tag_.empty()) {
    out->compat_note_ = "built against SDK 1.0: its ABI is not checked" +
                        std::string(out->run_io_ == &RunIoInHost ? " and the host runs its Io() loop" : "") +
                        "; rebuild it against this SDK";
  }
  if (!out->lib_->has(m.entry)) {
    return Status::NotFound(where + ": field 'entry': symbol '" + m.entry + "' not found in " + m.library.string());
  }
  out->factory_ = &out->lib_->get_alias<esdb::SubsystemFactory>(m.entry);
  return out;
}

PluginLibrary::~PluginLibrary() {
  if (lib_ && reaper_ != nullptr) {
    reaper_->Release(std::move(lib_), unloadable_);
  }
}

}  // namespace esdb::host

namespace esdb::host {

Result<std::filesystem::path> CopyForLoading(const std::filesystem::path& library,
                                             const std::filesystem::path& cache_dir, int generation,
                                             const std::vector<std::filesystem::path>& allowed_dirs,
                                             const std::string& where) {
  Status allowed = CheckLibraryFile(library, allowed_dirs, where);
  if (!allowed.ok()) return allowed;
  std::ifstream in(library, std::ios::binary | std::ios::ate);
  if (!in) return Status::NotFound("library " + library.string() + " does not exist or cannot be read");
  // One read, not a character at a time: libraries are tens of MB (ASan builds: ~100 MB).
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Status::IOError("cannot read library " + library.string());
  }
  const std::string hex = Sha256Hex(bytes).substr(0, 16);
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) return Status::IOError("cannot create " + cache_dir.string() + ": " + ec.message());
  fs::permissions(cache_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return Status::IOError("cannot make " + cache_dir.string() + " private: " + ec.message());
  const auto target = cache_dir / (library.stem().string() + "." + hex + ".g" + std::to_string(generation) + ".so");
  const auto tmp = target.string() + ".tmp";
  ::unlink(tmp.c_str());  // a leftover of an interrupted copy
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0700);
  if (fd < 0) return Status::IOError("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0700) == 0;  // whatever the umask
  for (size_t done = 0; ok && done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) ok = false;
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status::IOError("cannot write " + tmp);
  }
  fs::rename(tmp, target, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + ": " + ec.message());
  return target;
}

}  // namespace esdb::host

#include "plugin_library.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <system_error>

#include "esdb/version.h"

namespace esdb::host {

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

void Reaper::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
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

Result<std::shared_ptr<PluginLibrary>> PluginLibrary::Load(const Manifest& m, Reaper* reaper) {
  const std::string where = m.file.empty() ? m.name : m.file.string();
  std::error_code fs_ec;
  if (!std::filesystem::exists(m.library, fs_ec)) {
    return Status::NotFound(where + ": library " + m.library.string() + " does not exist");
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
  if (!out->lib_->has(esdb::kRunIoSymbol)) {
    return Status::InvalidArgument(where + ": " + m.library.string() + " exports no " + esdb::kRunIoSymbol +
                                   " (build it with the ESDB_PLUGIN macro of this SDK)");
  }
  out->run_io_ = &out->lib_->get<esdb::RunIoFunction>(esdb::kRunIoSymbol);
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
                                             const std::filesystem::path& cache_dir, int generation) {
  std::ifstream in(library, std::ios::binary | std::ios::ate);
  if (!in) return Status::NotFound("library " + library.string() + " does not exist or cannot be read");
  // One read, not a character at a time: libraries are tens of MB (ASan builds: ~100 MB).
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Status::IOError("cannot read library " + library.string());
  }
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) return Status::IOError("cannot create " + cache_dir.string() + ": " + ec.message());
  const auto target = cache_dir / (library.stem().string() + "." + hex + ".g" + std::to_string(generation) + ".so");
  const auto tmp = target.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return Status::IOError("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, target, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + ": " + ec.message());
  return target;
}

}  // namespace esdb::host

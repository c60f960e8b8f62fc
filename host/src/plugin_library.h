// Loading plugin libraries: manifest -> Boost.DLL library -> API check ->
// factory. A loaded library is shared by everything whose code lives in it
// (instances, service objects, handlers); when the last reference goes, the
// Reaper unloads it on its own thread, never on a thread that may be
// executing the plugin's code.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "esdb/plugin.h"
#include "esdb/status.h"
#include "manifest.h"

namespace esdb::host {

// Unloads libraries on a dedicated thread. Thread-safe.
class Reaper {
 public:
  Reaper();
  ~Reaper();  // unloads whatever is left
  // Takes ownership; unloads soon (or never, if !unloadable).
  void Release(std::unique_ptr<boost::dll::shared_library> lib, bool unloadable);
  // Waits until everything released so far is unloaded, at most
  // `timeout_ms` (< 0: without a limit); false if that was not enough (an
  // unload stuck in a library's static destructors).
  bool Flush(int timeout_ms = -1);
  // Libraries kept mapped on purpose (unloadable: false).
  size_t pinned() const;

 private:
  void Run();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<boost::dll::shared_library>> queue_;
  std::vector<std::unique_ptr<boost::dll::shared_library>> pinned_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// Whether `library` may be loaded, checked before anything of it is (no
// dlopen, no read): its real path (symlinks resolved) lies inside one of
// `allowed_dirs`; it is a regular file owned by the host's user or root and
// not writable by group or others; every directory from the allowed
// directory down to it is owned likewise and not writable by group or
// others; the allowed directory's ancestors likewise, except that a
// root-owned sticky directory (/tmp) may be writable by all. Errors (not
// found: NotFound; a rule broken: FailedPrecondition) begin with `where`,
// then the manifest field, the path and the rule.
Status CheckLibraryFile(const std::filesystem::path& library, const std::vector<std::filesystem::path>& allowed_dirs,
                        const std::string& where);

// Lower-case hex SHA-256 (OpenSSL's EVP).
std::string Sha256Hex(const std::string& bytes);
Result<std::string> Sha256OfFile(const std::filesystem::path& file);

// A loaded, checked plugin library.
class PluginLibrary {
 public:
  // Checks `manifest.library` (CheckLibraryFile against `allowed_dirs`; the
  // manifest's sha256 pin, if any, on the file's bytes), then loads it,
  // checks the exported API version against the manifest and the host, and
  // resolves the factory. Errors name the manifest and the file.
  static Result<std::shared_ptr<PluginLibrary>> Load(const Manifest& manifest, Reaper* reaper,
                                                     const std::vector<std::filesystem::path>& allowed_dirs);

  ~PluginLibrary();
  esdb::SubsystemFactory* factory() const { return factory_; }
  // Runs an io_context loop inside the plugin's own copy of Asio.
  esdb::RunIoFunction* run_io() const { return run_io_; }
  uint32_t api_version() const { return api_version_; }
  // The plugin's ABI tag (esdb/abi.h); empty for an SDK 1.0 plugin.
  const std::string& abi_tag() const { return abi_tag_; }
  // Non-empty for a plugin loaded under the SDK 1.0 rules (no ABI tag, Io()
  // run by the host): what that means, for the log.
  const std::string& compat_note() const { return compat_note_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  PluginLibrary() = default;
  std::unique_ptr<boost::dll::shared_library> lib_;
  Reaper* reaper_ = nullptr;
  bool unloadable_ = true;
  esdb::SubsystemFactory* factory_ = nullptr;
  esdb::RunIoFunction* run_io_ = nullptr;
  uint32_t api_version_ = 0;
  std::string abi_tag_;
  std::string compat_note_;
  std::filesystem::path path_;
};

using LibraryRef = std::shared_ptr<PluginLibrary>;

// Copies `library` (first checked with CheckLibraryFile against
// `allowed_dirs`) to `cache_dir`/<stem>.<SHA-256 prefix>.g<generation>.so so
// that dlopen maps a new build instead of handing back the old mapping
// (dlopen of an already loaded path returns the existing one). The cache
// directory is made private (0700) and the copy is not writable by group or
// others, so it passes CheckLibraryFile against {cache_dir}.
Result<std::filesystem::path> CopyForLoading(const std::filesystem::path& library,
                                             const std::filesystem::path& cache_dir, int generation,
                                             const std::vector<std::filesystem::path>& allowed_dirs,
                                             const std::string& where);

}  // namespace esdb::host

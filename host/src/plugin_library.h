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
  // Waits until everything released so far is unloaded.
  void Flush();
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

// A loaded, checked plugin library.
class PluginLibrary {
 public:
  // Loads `manifest.library`, checks the exported API version against the
  // manifest and the host, and resolves the factory. Errors name the file.
  static Result<std::shared_ptr<PluginLibrary>> Load(const Manifest& manifest, Reaper* reaper);

  ~PluginLibrary();
  esdb::SubsystemFactory* factory() const { return factory_; }
  // Runs an io_context loop inside the plugin's own copy of Asio.
  esdb::RunIoFunction* run_io() const { return run_io_; }
  uint32_t api_version() const { return api_version_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  PluginLibrary() = default;
  std::unique_ptr<boost::dll::shared_library> lib_;
  Reaper* reaper_ = nullptr;
  bool unloadable_ = true;
  esdb::SubsystemFactory* factory_ = nullptr;
  esdb::RunIoFunction* run_io_ = nullptr;
  uint32_t api_version_ = 0;
  std::filesystem::path path_;
};

using LibraryRef = std::shared_ptr<PluginLibrary>;

// Copies `library` to `cache_dir`/<stem>.<content hash>.g<generation>.so so
// that dlopen maps a new build instead of handing back the old mapping
// (dlopen of an already loaded path returns the existing one).
Result<std::filesystem::path> CopyForLoading(const std::filesystem::path& library,
                                             const std::filesystem::path& cache_dir, int generation);

}  // namespace esdb::host

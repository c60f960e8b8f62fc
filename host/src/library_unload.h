// Waiting for a released plugin library to be unmapped, bounded, and saying
// why not if it stays: the last step of removing a subsystem, so that
// subsystem_removed is published only once its code is gone (or says it
// stayed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "plugin_library.h"

namespace esdb::host {

// What is needed to follow a library after its owner let go of it.
struct LibraryWatch {
  bool loaded = false;             // false: nothing was ever mapped
  bool pinned = false;             // unloadable: false (kept mapped on purpose)
  std::weak_ptr<PluginLibrary> library;
  std::string path;
  const void* code = nullptr;      // an address inside the library (its factory)
};

// Taken while `library` is still held (null: not loaded).
LibraryWatch WatchLibrary(const LibraryRef& library, bool unloadable);

// Whether the library's code is still mapped into this process: some
// loaded object of the same file name contains `code` (dl_iterate_phdr).
bool StillMapped(const LibraryWatch& watch);

struct UnloadOutcome {
  // "unmapped", "not_loaded", "pinned" (unloadable: false) or "stuck"
  // (still mapped at the deadline; `reason` says why).
  std::string state;
  std::string reason;
  int64_t waited_ms = 0;
};

// Polls on `io` (every few ms, at most `timeout_ms`) until every reference
// to the library is gone, the reaper is idle and the code is unmapped;
// then, or at the deadline, calls `done` on `io`.
void AwaitUnload(boost::asio::io_context& io, Reaper* reaper, LibraryWatch watch, int timeout_ms,
                 std::function<void(const UnloadOutcome&)> done);

}  // namespace esdb::host

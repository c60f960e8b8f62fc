#include "library_unload.h"

#include <link.h>

#include <chrono>
#include <filesystem>

#include <boost/asio/steady_timer.hpp>

namespace esdb::host {

namespace {
constexpr int kPollMs = 5;

struct Probe {
  uintptr_t code;
  std::string file_name;
  bool found = false;
};

int FindMapping(struct dl_phdr_info* info, size_t, void* arg) {
  auto* probe = static_cast<Probe*>(arg);
  if (info->dlpi_name == nullptr || std::filesystem::path(info->dlpi_name).filename() != probe->file_name) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (probe->code >= start && probe->code < start + ph.p_memsz) {
      probe->found = true;
      return 1;
    }
  }
  return 0;
}
}  // namespace

LibraryWatch WatchLibrary(const LibraryRef& library, bool unloadable) {
  LibraryWatch w;
  if (!library) return w;
  w.loaded = true;
  w.pinned = !unloadable;
  w.library = library;
  w.path = library->path().string();
  w.code = reinterpret_cast<const void*>(library->factory());
  return w;
}

bool StillMapped(const LibraryWatch& watch) {
  if (!watch.loaded || watch.code == nullptr) return false;
  Probe probe{reinterpret_cast<uintptr_t>(watch.code), std::filesystem::path(watch.path).filename().string()};
  dl_iterate_phdr(&FindMapping, &probe);
  return probe.found;
}

namespace {
// One wait: checks now, then every kPollMs until done or the deadline.
class UnloadWait : public std::enable_shared_from_this<UnloadWait> {
 public:
  UnloadWait(boost::asio::io_context& io, Reaper* reaper, LibraryWatch watch, int timeout_ms,
             std::function<void(const UnloadOutcome&)> done)
      : timer_(io),
        reaper_(reaper),
        watch_(std::move(watch)),
        start_(std::chrono::steady_clock::now()),
        deadline_(start_ + std::chrono::milliseconds(timeout_ms)),
        done_(std::move(done)) {}

  void Step() {
    const auto now = std::chrono::steady_clock::now();
    const int64_t waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count();
    // In this order: the last reference goes (the library is handed to the
    // reaper), the reaper unloads it (dlclose), the mapping is gone.
    const bool held = !watch_.library.expired();
    const bool unloading = !held && !reaper_->Flush(0);
    const bool mapped = !held && !unloading && StillMapped(watch_);
    if (!held && !unloading && !mapped) {
      done_({"unmapped", "", waited});
      return;
    }
    if (now >= deadline_) {
      std::string reason =
          held ? "still referenced (a consumer still holds one of its services, or a part of it is stuck)"
          : unloading ? "its unloading (dlclose: its static destructors) has not finished"
                      : "still mapped after dlclose (a thread_local destructor pending on a host thread, or "
                        "STB_GNU_UNIQUE symbols)";
      done_({"stuck", std::move(reason), waited});
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(kPollMs));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code&) { self->Step(); });
  }

 private:
  boost::asio::steady_timer timer_;
  Reaper* reaper_;
  LibraryWatch watch_;
  std::chrono::steady_clock::time_point start_, deadline_;
  std::function<void(const UnloadOutcome&)> done_;
};
}  // namespace

void AwaitUnload(boost::asio::io_context& io, Reaper* reaper, LibraryWatch watch, int timeout_ms,
                 std::function<void(const UnloadOutcome&)> done) {
  if (!watch.loaded) {
    done({"not_loaded", "", 0});
    return;
  }
  if (watch.pinned) {
    done({"pinned", "unloadable: false; it stays mapped for the life of the process", 0});
    return;
  }
  std::make_shared<UnloadWait>(io, reaper, std::move(watch), timeout_ms, std::move(done))->Step();
}

}  // namespace esdb::host

#include "manifest_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace esdb::host {

ManifestWatcher::ManifestWatcher(boost::asio::io_context& io, std::filesystem::path dir, Callback callback)
    : dir_(std::move(dir)), callback_(std::move(callback)), stream_(io) {}

ManifestWatcher::~ManifestWatcher() { Stop(); }

Status ManifestWatcher::Start() {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Status::IOError(std::string("inotify_init1: ") + std::strerror(errno));
  watch_ = inotify_add_watch(fd, dir_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM);
  if (watch_ < 0) {
    const int err = errno;
    close(fd);
    return Status::IOError("cannot watch " + dir_.string() + ": " + std::strerror(err));
  }
  stream_.assign(fd);
  Read();
  return Status::OK();
}

void ManifestWatcher::Stop() {
  boost::system::error_code ec;
  if (stream_.is_open()) stream_.close(ec);
}

void ManifestWatcher::Read() {
  stream_.async_read_some(boost::asio::buffer(buffer_), [this](const boost::system::error_code& ec, size_t n) {
    if (ec) return;  // closed
    size_t offset = 0;
    while (offset + sizeof(inotify_event) <= n) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer_ + offset);
      offset += sizeof(inotify_event) + ev->len;
      if (ev->len == 0) continue;
      const std::filesystem::path file = dir_ / ev->name;
      if (file.extension() != ".json") continue;
      const bool changed = (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0;
      callback_(file, changed);
    }
    Read();
  });
}

}  // namespace esdb::host

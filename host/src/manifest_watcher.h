// Watches the manifest directory with inotify (through Asio) and reports
// *.json files that were written (closed after writing, or renamed into
// the directory: write-then-rename is the safe way) or removed.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "esdb/status.h"

namespace esdb::host {

class ManifestWatcher {
 public:
  // changed = true: written or moved in; false: deleted or moved out.
  using Callback = std::function<void(const std::filesystem::path& file, bool changed)>;

  ManifestWatcher(boost::asio::io_context& io, std::filesystem::path dir, Callback callback);
  ~ManifestWatcher();

  Status Start();
  void Stop();

 private:
  void Read();

  std::filesystem::path dir_;
  Callback callback_;
  boost::asio::posix::stream_descriptor stream_;
  int watch_ = -1;
  char buffer_[16384];
};

}  // namespace esdb::host

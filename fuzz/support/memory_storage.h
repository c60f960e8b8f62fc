// MemoryStorage: an esdb::Storage kept in memory, for fuzzing the store (and
// what sits on it) without a disk. Copy-on-write: every Write() builds a new
// immutable map, so a snapshot or an iterator is a pointer to the map it
// started from (cheap for the small stores a fuzz input builds; quadratic for
// large ones, so not for benchmarks). Writes are never synced (nothing to
// sync), Compact() does nothing.
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <esdb/storage.h>

namespace esdb_fuzz {

class MemoryStorage : public esdb::Storage {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;

  esdb::Status Write(const esdb::StorageBatch& batch, const esdb::StorageWriteOptions& options) override;
  esdb::Result<std::string> Get(std::string_view key, const esdb::StorageReadOptions& options) override;
  using esdb::Storage::Get;
  esdb::Result<std::unique_ptr<esdb::StorageIterator>> NewIterator(const esdb::StorageReadOptions& options) override;
  esdb::Result<std::shared_ptr<const esdb::StorageSnapshot>> GetSnapshot() override;
  esdb::Status Compact(std::optional<std::string> begin, std::optional<std::string> end) override;
  nlohmann::json Stats() override;

 private:
  // The map a read sees: the snapshot's, else the current one.
  std::shared_ptr<const Map> View(const esdb::StorageReadOptions& options);

  std::mutex mu_;
  std::shared_ptr<const Map> current_ = std::make_shared<const Map>();  // guarded by mu_
  uint64_t writes_ = 0;                                                  // guarded by mu_
};

}  // namespace esdb_fuzz

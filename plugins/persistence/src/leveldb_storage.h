// LevelDbStorage: esdb::Storage on a LevelDB database in one directory.
//
// Close() refuses new calls with kUnavailable, waits (bounded) for calls in
// flight and for live iterators and snapshots, then closes the database.
//
// A failed write latches a write fault: every later Write() is refused with
// kIOError until the database is reopened (a new LevelDbStorage). LevelDB
// itself keeps a sticky error only for a failed sync; after a failed append
// to its log (EFBIG, ENOSPC, EIO) it accepts and acknowledges later writes
// into a log whose block layout no longer matches the file, and drops them
// at the next open ("checksum mismatch"). Reads keep working while faulted.
// Iterators and snapshots hold a reference to the storage, so the database
// outlives every one of them even if Close() gave up waiting.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <esdb/storage.h>

namespace leveldb {
class Cache;
class DB;
class FilterPolicy;
class Status;
class WriteBatch;
}  // namespace leveldb

namespace esdb_persistence {

struct LevelDbOptions {
  // false downgrades every write to unsynced (unsafe: an OS crash or power
  // loss may lose acknowledged writes). Default true: callers decide.
  bool sync = true;
  size_t block_cache_bytes = 32u << 20;
  size_t write_buffer_bytes = 16u << 20;
  int max_open_files = 1000;
  bool paranoid_checks = false;
  bool create_if_missing = true;
};

class LevelDbStorage : public esdb::Storage, public std::enable_shared_from_this<LevelDbStorage> {
 public:
  // Opens (creating when allowed) the database in `dir`.
  static esdb::Result<std::shared_ptr<LevelDbStorage>> Open(const std::filesystem::path& dir,
                                                            const LevelDbOptions& options);
  ~LevelDbStorage() override;
  LevelDbStorage(const LevelDbStorage&) = delete;
  LevelDbStorage& operator=(const LevelDbStorage&) = delete;

  esdb::Status Write(const esdb::StorageBatch& batch, const esdb::StorageWriteOptions& options) override;
  esdb::Result<std::string> Get(std::string_view key, const esdb::StorageReadOptions& options) override;
  using esdb::Storage::Get;
  esdb::Result<std::unique_ptr<esdb::StorageIterator>> NewIterator(
      const esdb::StorageReadOptions& options) override;
  esdb::Result<std::shared_ptr<const esdb::StorageSnapshot>> GetSnapshot() override;
  esdb::Status Compact(std::optional<std::string> begin, std::optional<std::string> end) override;
  nlohmann::json Stats() override;

  // Refuses new work, waits up to `wait` for work in flight, closes the
  // database. kTimeout when work was still in flight (the database is then
  // closed when the last iterator or snapshot is released). Idempotent.
  esdb::Status Close(std::chrono::milliseconds wait);

  // I/O and corruption errors returned so far, and the last one.
  uint64_t io_errors() const { return io_errors_.load(); }
  std::string last_error() const;
  // True after a failed write (see the class comment); the error is in write_fault().
  bool write_faulted() const { return write_faulted_.load(); }
  std::string write_fault() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  class Iterator;
  class Snapshot;
  friend class Iterator;
  friend class Snapshot;

  LevelDbStorage(std::filesystem::path path, const LevelDbOptions& options);
  // Admission: Enter() fails once closing; every successful Enter() is
  // matched by Exit().
  bool Enter();
  void Exit();
  esdb::Status Convert(const leveldb::Status& s, const char* what);
  void CloseDb();

  const std::filesystem::path path_;
  const LevelDbOptions options_;
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::DB> db_;

  std::atomic<bool> closing_{false};
  std::atomic<int64_t> active_{0};
  std::mutex close_mu_;
  std::condition_variable close_cv_;
  bool closed_ = false;  // guarded by close_mu_

  // A WriteBatch kept between writes so its buffer is not regrown for every
  // commit group; a concurrent writer that finds it taken builds its own.
  std::mutex batch_mu_;
  std::unique_ptr<leveldb::WriteBatch> reused_batch_;  // guarded by batch_mu_

  std::atomic<uint64_t> writes_{0}, synced_writes_{0}, bytes_written_{0}, reads_{0}, iterators_{0};
  std::atomic<uint64_t> io_errors_{0}, refused_writes_{0};
  std::atomic<bool> write_faulted_{false};
  mutable std::mutex error_mu_;
  std::string last_error_;   // guarded by error_mu_
  std::string write_fault_;  // guarded by error_mu_; set once
};

}  // namespace esdb_persistence

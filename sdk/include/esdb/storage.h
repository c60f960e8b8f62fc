// The storage service ("esdb.storage/1"), provided by the persistence plugin
// through the service registry: an ordered key-value store with atomic
// batches, durable (synced) writes, ordered iteration and consistent
// snapshot reads. Keys and values are arbitrary bytes, ordered bytewise
// (memcmp, shorter first on a common prefix).
//
// The interface is deliberately narrow and engine-neutral: LevelDB backs it
// today; a log-backed implementation can provide the same calls.
//
// Thread-safe: every method may be called from any thread concurrently.
// Methods never throw. Errors: kUnavailable (the provider is stopping or
// stopped; drop the pointer and wait for the next service_provided),
// kIOError (the disk failed), kCorruption (stored data is damaged),
// kInvalidArgument (a malformed call).
//
// Lifetime: iterators and snapshots keep the database open. Release them
// promptly, and all of them when the service is withdrawn: the provider's
// Stop() waits (bounded) for them before it closes the database.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb {

namespace services {
inline constexpr const char* kStorage = "esdb.storage/1";  // Storage, by the persistence plugin
}  // namespace services

// A set of puts and deletes applied atomically, in insertion order (a later
// operation on the same key wins). Plain value; not thread-safe.
class StorageBatch {
 public:
  enum class OpKind : uint8_t { kPut, kDelete };
  struct Op {
    OpKind kind;
    std::string key;
    std::string value;  // empty for kDelete
  };

  void Put(std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    ops_.push_back(Op{OpKind::kPut, std::move(key), std::move(value)});
  }
  void Delete(std::string key) {
    bytes_ += key.size();
    ops_.push_back(Op{OpKind::kDelete, std::move(key), std::string()});
  }
  void Clear() {
    ops_.clear();
    bytes_ = 0;
  }
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  // Sum of key and value sizes.
  size_t bytes() const { return bytes_; }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// How a batch is written.
struct StorageWriteOptions {
  // true (default): the batch is on stable storage (fsync/fdatasync) when
  // Write() returns ok. false: it survives a process crash but may be lost
  // in an OS crash or power failure.
  bool sync = true;
};

// A consistent, read-only point-in-time view of the whole store. Obtained
// from Storage::GetSnapshot(); released by destroying the handle.
class StorageSnapshot {
 public:
  virtual ~StorageSnapshot() = default;
};

// How a read is done.
struct StorageReadOptions {
  // Read as of this snapshot; null (default): the latest committed state.
  const StorageSnapshot* snapshot = nullptr;
  // Whether the blocks read should be cached; false for bulk scans (scavenge).
  bool fill_cache = true;
};

// A cursor over the keys in order, pinned to the state at its creation (or
// the snapshot it was created with). Not thread-safe: one user at a time.
// key()/value() are valid only while positioned and until the next move.
class StorageIterator {
 public:
  virtual ~StorageIterator() = default;
  // True when positioned at an entry.
  virtual bool Valid() const = 0;
  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // Positions at the first key >= target.
  virtual void Seek(std::string_view target) = 0;
  // Positions at the last key <= target (backward scans).
  virtual void SeekForPrev(std::string_view target) = 0;
  virtual void Next() = 0;  // requires Valid()
  virtual void Prev() = 0;  // requires Valid()
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Non-ok if iteration stopped because of an error (not at the end).
  virtual Status status() const = 0;
};

class Storage {
 public:
  static constexpr const char* kInterfaceId = "esdb.storage/1";  // services.h
  virtual ~Storage() = default;

  // Applies `batch` atomically: after a crash, either all of it or none of
  // it is visible. An empty batch is ok and writes nothing.
  virtual Status Write(const StorageBatch& batch, const StorageWriteOptions& options) = 0;

  // The value of `key`; kNotFound when absent.
  virtual Result<std::string> Get(std::string_view key, const StorageReadOptions& options) = 0;
  Result<std::string> Get(std::string_view key) { return Get(key, StorageReadOptions{}); }

  // A new iterator, initially not positioned (call a Seek* first).
  virtual Result<std::unique_ptr<StorageIterator>> NewIterator(const StorageReadOptions& options) = 0;

  // A snapshot of the current state, for several consistent reads.
  virtual Result<std::shared_ptr<const StorageSnapshot>> GetSnapshot() = 0;

  // Reclaims space of deleted and overwritten entries in [begin, end)
  // (nullopt = unbounded on that side). May take long; runs on the caller's
  // thread and does not block other calls.
  virtual Status Compact(std::optional<std::string> begin, std::optional<std::string> end) = 0;

  // Counters and engine figures: {"engine", "path", "writes", "synced_writes",
  // "bytes_written", "reads", "io_errors", "approximate_bytes", ...}.
  virtual nlohmann::json Stats() = 0;
};

}  // namespace esdb

// The store's write path, behind one narrow interface ("Group commit" in
// plugins/store/README.md): "make this commit group durable, atomically".
// The group writer has already decided every request against its in-memory
// view and assigned positions [first_position, next_position).
//
// In cluster mode the group being written is one entry of the replicated
// log, applied; `log_sequence` is its number and `log_state` what the store
// records about the log with it (the applied sequence and the running hash,
// store_cluster.cc), so that the data and the log position it reflects are
// never apart.
//
// StorageCommitWriter is the local implementation: one esdb::Storage batch,
// synced when asked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <esdb/storage.h>

namespace esdb_store {

struct CommitGroup {
  uint64_t first_position = 0;  // first position used by this group
  uint64_t next_position = 0;   // head of $all after it
  esdb::StorageBatch batch;  // events, stream index, id index and head entries (key_layout.h)
  bool sync = true;
  // Cluster mode only (0 / empty otherwise): the log entry applied, its id
  // (recorded for deduplication) and the store's log state after it.
  uint64_t log_sequence = 0;
  std::string log_entry_id;
  std::string log_state;
};

class CommitWriter {
 public:
  virtual ~CommitWriter() = default;
  // All of `group` becomes visible (and durable if group.sync), or none.
  virtual esdb::Status Commit(CommitGroup& group) = 0;
};

class StorageCommitWriter : public CommitWriter {
 public:
  explicit StorageCommitWriter(std::shared_ptr<esdb::Storage> storage) : storage_(std::move(storage)) {}
  esdb::Status Commit(CommitGroup& group) override;

 private:
  std::shared_ptr<esdb::Storage> storage_;
};

}  // namespace esdb_store

// The store's write path, behind one narrow interface ("Group commit" in
// plugins/store/README.md): "make this commit group durable, atomically".
// The group writer has already decided every request against its in-memory
// view and assigned positions
// [first_position, next_position); `conditions` says, per stream, which
// version the decision assumed, so a replicated-log implementation (NATS
// JetStream with an expected last sequence) can re-check and refuse the
// whole group if another writer got in between.
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

struct StreamCondition {
  std::string stream;
  int64_t version_before;  // the stream's last version the group was decided against
};

struct CommitGroup {
  uint64_t first_position = 0;  // first position used by this group
  uint64_t next_position = 0;   // head of $all after it
  std::vector<StreamCondition> conditions;
  esdb::StorageBatch batch;  // events, stream index, id index and head entries (key_layout.h)
  bool sync = true;
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

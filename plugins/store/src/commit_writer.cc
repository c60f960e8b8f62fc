#include "commit_writer.h"

#include "codec.h"
#include "key_layout.h"

namespace esdb_store {

esdb::Status StorageCommitWriter::Commit(CommitGroup& group) {
  std::string head;
  PutFixed64BE(&head, group.next_position);
  group.batch.Put(keys::NextPosition(), std::move(head));
  if (group.log_sequence != 0) {
    group.batch.Put(keys::LogApplied(), group.log_state);
    if (!group.log_entry_id.empty()) {
      std::string seq;
      PutFixed64BE(&seq, group.log_sequence);
      group.batch.Put(keys::LogEntryId(group.log_entry_id), std::move(seq));
    }
  }
  esdb::StorageWriteOptions options;
  options.sync = group.sync;
  return storage_->Write(group.batch, options);
}

}  // namespace esdb_store

#include "commit_writer.h"

#include "codec.h"
#include "key_layout.h"

namespace esdb_store {

esdb::Status StorageCommitWriter::Commit(CommitGroup& group) {
  std::string head;
  PutFixed64BE(&head, group.next_position);
  group.batch.Put(keys::NextPosition(), std::move(head));
  esdb::StorageWriteOptions options;
  options.sync = group.sync;
  return storage_->Write(group.batch, options);
}

}  // namespace esdb_store

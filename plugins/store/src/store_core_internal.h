// What the parts of StoreCore share (store_core.cc: open, recovery,
// validation, stats; store_commit.cc: the writer and group commit;
// store_reads.cc; store_snapshots.cc: metadata and snapshots;
// store_scavenge.cc). Not part of any interface: included by those files
// only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "esdb/event_store.h"
#include "esdb/status.h"
#include "key_layout.h"
#include "store_core.h"

namespace esdb_store {

inline int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string Quote(const std::string& s) { return "'" + s + "'"; }

inline bool HasPrefix(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

inline std::string EncodePosition(uint64_t p) {
  std::string s;
  PutFixed64BE(&s, p);
  return s;
}

inline size_t EventBytes(const esdb::ProposedEvent& e) {
  return e.event_type.size() + e.content_type.size() + e.data.size() + e.metadata.size();
}

inline esdb::Status Cancelled() { return esdb::Status::Cancelled("the store is stopping"); }

// One queued write. Exactly one of the two completions is set.
struct StoreCore::Request {
  enum class Kind { kAppend, kDelete, kSetMetadata };
  Kind kind = Kind::kAppend;
  std::string stream;
  esdb::ExpectedVersion expected;
  std::vector<esdb::ProposedEvent> events;
  std::vector<std::string> raw_ids;  // parallel to events; empty = to be generated
  size_t bytes = 0;
  bool hard = false;
  std::optional<esdb::StreamMetadata> metadata;  // kSetMetadata only (its JSON allocates)
  esdb::AppendCallback append_done;
  std::function<void(esdb::Status)> status_done;
  esdb::CallContext context;  // copied onto the bus events it causes
};

// The writer's decision on one request.
struct StoreCore::Outcome {
  esdb::Status status;
  esdb::AppendResult result;
  bool writes = false;  // contributes to the batch; fails if the batch fails
  int64_t first_version = 0, last_version = -1;
};

}  // namespace esdb_store

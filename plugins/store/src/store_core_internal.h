// What the parts of StoreCore share (store_core.cc: open, recovery,
// validation, stats; store_commit.cc: the writer and group commit;
// store_reads.cc; store_snapshots.cc: metadata and snapshots;
// store_scavenge.cc). Not part of any interface: included by those files
// only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "esdb/event_store.h"
#include "esdb/leader_lease.h"
#include "esdb/status.h"
#include "group_codec.h"
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

// A random (version 4, RFC 4122 variant) event id as its 16 raw bytes, for
// events appended without one. Not thread-safe (`rng` is the caller's).
inline std::string NewRandomEventId(std::mt19937_64& rng) {
  std::string raw(16, '\0');
  const uint64_t a = rng(), b = rng();
  for (int k = 0; k < 8; ++k) {
    raw[k] = static_cast<char>(a >> (8 * k));
    raw[8 + k] = static_cast<char>(b >> (8 * k));
  }
  raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x40);  // version 4
  raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return raw;
}

// One queued write. Exactly one of the four completions is set.
struct StoreCore::Request {
  enum class Kind { kAppend, kDelete, kSetMetadata, kLease, kCheckpoint, kScavenge };
  Kind kind = Kind::kAppend;
  std::string stream;
  esdb::ExpectedVersion expected;
  std::vector<esdb::ProposedEvent> events;
  std::vector<std::string> raw_ids;  // parallel to events; empty = to be generated
  // Cluster mode: parallel to events, 1 where the proposer generated the id
  // (decided like an id generated at decide time: not looked up). Empty in
  // single-node mode.
  std::vector<uint8_t> generated;
  size_t bytes = 0;
  bool hard = false;
  std::optional<esdb::StreamMetadata> metadata;  // kSetMetadata only (its JSON allocates)
  std::optional<esdb::LeaderLeaseClaim> lease;   // kLease only (cluster mode; stream unused)
  std::optional<LogCheckpoint> checkpoint;       // kCheckpoint only (cluster mode; stream unused)
  std::optional<ScavengeOrder> scavenge;         // kScavenge only (cluster mode; stream unused)
  esdb::AppendCallback append_done;
  std::function<void(esdb::Status)> status_done;
  std::function<void(esdb::Result<esdb::LeaderLeaseOutcome>)> lease_done;
  esdb::LeaderLeaseOutcome lease_outcome;  // kLease: set with the proposer's answers (store_cluster.cc)
  std::function<void(esdb::Result<esdb::ScavengeResult>)> scavenge_done;
  esdb::ScavengeResult scavenge_result;  // kScavenge: set with the proposer's answers (store_cluster.cc)
  esdb::CallContext context;  // copied onto the bus events it causes
};

// The writer's decision on one request.
struct StoreCore::Outcome {
  esdb::Status status;
  esdb::AppendResult result;
  esdb::LeaderLeaseOutcome lease;  // kLease only
  esdb::ScavengeResult scavenge;   // kScavenge only
  bool writes = false;  // contributes to the batch; fails if the batch fails
  int64_t first_version = 0, last_version = -1;
};

// Cluster mode: where this node is in the log. `hash` is the running hash
// of every entry up to `sequence` (SHA-256 chained: store_cluster.cc),
// `digest` the hash of entry `sequence` alone (checked against the log at
// open). Both 32 bytes; empty hashes before the first entry. `lease` is
// the leader lease as applied up to `sequence` (lease_rule.h): stored with
// the position, so in the same batch as the entry's writes.
struct LogPosition {
  uint64_t sequence = 0;
  std::string hash;
  std::string digest;
  std::string entry_id;  // the applied entry's id ('g' key), may be empty
  esdb::LeaderLeaseState lease;  // its `sequence` unused here
  // The last point where this node's running hash was confirmed: another
  // node's checkpoint agreed with it, or the log re-read gave it (0 and the
  // empty hash at first). Node-local; a divergence is searched from here.
  uint64_t verified_sequence = 0;
  std::string verified_hash;  // 32 bytes
};

// The value of "\x01log_applied": [u8 3][u64 sequence][32B hash][32B digest]
// [str entry id][lease (lease_rule.h)][u64 verified sequence][32B verified
// hash]; format 2 lacks the verified point (0), format 1 also the lease
// (none). Decode: false when malformed.
std::string EncodeLogPosition(const LogPosition& p);
bool DecodeLogPosition(std::string_view value, LogPosition* p);

// Cluster mode: the groups this node proposed that are not answered yet,
// shared with the log's append callbacks (which may come after the store
// closed: they then find the table closed).
struct PendingGroups {
  struct Group {
    std::vector<std::unique_ptr<StoreCore::Request>> requests;
    bool acked = false;    // the log acknowledged the entry
    bool applied = false;  // this node applied it; `statuses` and `results` hold the answers
    uint64_t acked_sequence = 0;    // where the log says it stored the entry (acked)
    uint64_t applied_sequence = 0;  // where this node applied it (applied)
    std::chrono::steady_clock::time_point acked_at;  // acked: when (apply_timeout_ms counts from it)
    std::vector<esdb::Status> statuses;              // parallel to requests
    std::vector<esdb::AppendResult> results;         // parallel to requests
  };
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Group> groups;  // by entry id
  size_t inflight = 0;  // appends whose callback has not returned
  bool stop_proposing = false;
  bool closed = false;
  // This node's entries that the log acknowledged under another sequence
  // than the one this node applied them at: (applied sequence, id). The
  // housekeeping thread asks the log what it holds there (CheckSuspects).
  std::vector<std::pair<uint64_t, std::string>> suspects;
};

struct StoreCore::ClusterState {
  std::string node;
  std::string lease_node;  // the node name as given to Open(): the name lease claims and scavenges carry
  // A scavenge applied here removed events: the housekeeping thread
  // compacts the storage (node-local, off the applier thread).
  std::atomic<bool> compact_pending{false};
  uint64_t incarnation = 0;   // this node's starts, counted in storage
  std::string incarnation_tag;  // "<incarnation>.<8 random hex digits>", in entry ids
  uint64_t counter = 0;  // proposer thread only
  LogPosition applied;   // applier thread only (after open)
  std::atomic<uint64_t> applied_sequence{0};
  std::atomic<uint64_t> proposed{0}, applied_entries{0}, duplicate_entries{0}, malformed_entries{0};
  std::atomic<uint64_t> entry_ids_pruned{0};
  // PruneEntryIds() (the housekeeping thread only): a sweep over the 'g'
  // keys deleting those of entries before prune_below, resumed after
  // prune_cursor.
  bool prune_sweeping = false;
  uint64_t prune_below = 0;
  std::string prune_cursor;
  uint64_t open_target = 0;  // the log's last entry when the store opened
  std::unique_ptr<esdb::LogTail> tail;
  std::thread proposer, applier;
  std::shared_ptr<PendingGroups> pending = std::make_shared<PendingGroups>();

  // Entries delivered by the tail, waiting for the applier (bounded).
  std::mutex apply_mu;
  std::condition_variable apply_cv;
  std::deque<esdb::LogEntry> apply_queue;  // guarded by apply_mu
  bool apply_stop = false;                 // guarded by apply_mu
  bool caught_up = false;                  // guarded by apply_mu
  bool halted = false;                     // guarded by apply_mu
  std::atomic<bool> refusing{false};       // halted, for Enqueue() (no lock)
  esdb::Status halt_status;                // guarded by apply_mu

  // The applied lease as others read it (CurrentLease()): a copy of
  // applied.lease and applied.sequence, updated after each entry.
  mutable std::mutex lease_mu;
  esdb::LeaderLeaseState lease;  // guarded by lease_mu

  // The running hash after each recently applied entry (at most
  // kHashRingSize, oldest first), for comparing checkpoints.
  struct Applied {
    uint64_t sequence;
    std::string digest, hash;
  };
  mutable std::mutex ring_mu;
  std::deque<Applied> ring;  // guarded by ring_mu; appended by the applier
  uint64_t last_data_sequence = 0;  // guarded by ring_mu: the last entry that was not only checkpoints
  // Housekeeping, on a thread of its own: checkpoints proposed every
  // options.checkpoint_interval_ms while the log moves; acknowledged
  // entries not applied within options.apply_timeout_ms answered.
  std::mutex checkpoint_mu;
  std::condition_variable checkpoint_cv;
  bool checkpoint_stop = false;  // guarded by checkpoint_mu
  std::thread checkpointer;
  std::atomic<uint64_t> checkpoints_proposed{0}, checkpoints_matched{0}, checkpoints_unverifiable{0},
      checkpoints_differing{0}, log_rereads{0}, apply_timeouts{0};
};

}  // namespace esdb_store

// The store's settings: the manifest's "config" object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/status.h>

namespace esdb_store {

struct StoreOptions {
  // true ("sync", default): an append is acknowledged only after its commit
  // group is synced to disk. false ("async"): UNSAFE, acknowledged appends
  // may be lost on an OS crash or power failure (never on a process crash).
  bool sync = true;
  size_t max_event_bytes = 1u << 20;   // type + content type + data + metadata of one event
  size_t max_append_bytes = 1u << 20;  // sum over one append
  size_t max_stream_id_length = 512;
  size_t max_pending_appends = 65536;  // queued requests; beyond: kResourceExhausted
  size_t max_group_bytes = 16u << 20;  // the writer starts a new group beyond this
  uint64_t max_read_count = 100000;    // largest `count` of one read
  uint64_t max_scan_per_read = 200000; // filtered $all reads return after scanning this many
  uint32_t scavenge_interval_s = 0;    // background scavenge period; 0 = only on request
  // "cluster" (mode): commit groups go through the replicated log
  // (esdb.log/1) and every node applies the log; false ("single_node",
  // default): the writer decides and writes each group itself.
  bool cluster = false;
  // Cluster mode: log entries published and not yet answered (acknowledged
  // and applied here). Fewer in flight make bigger groups
  // (bench/cluster_bench.cc --inflight).
  size_t max_inflight_groups = 2;
  // Cluster mode: how often this node puts its running log hash in the log
  // (a checkpoint, compared by every other node), while the log moves; 0 =
  // never (this node still checks the others' checkpoints).
  uint32_t checkpoint_interval_ms = 5000;
  // Cluster mode: a write whose log entry the log acknowledged but this
  // node has not applied after this long is answered unavailable (its
  // outcome is decided in the log; reading or resending tells it).
  uint32_t apply_timeout_ms = 30000;
  // Cluster mode: an entry whose id was applied at most this many entries
  // before is skipped as a resend; older ids no longer count and their 'g'
  // keys are deleted in the background. It decides how entries are applied,
  // so it must be the same on every node: not read from the config (tests
  // shrink it).
  uint64_t entry_id_window = 1000000;
  // '$'-streams are reserved; appends to them are refused unless the id
  // starts with one of these (system streams of other subsystems).
  std::vector<std::string> system_stream_prefixes = {"$persistent-", "$parked-", "$checkpoint-"};
};

// Reads the store's config: durability ("sync" | "async"), max_event_bytes,
// max_append_bytes, max_stream_id_length, max_pending_appends,
// max_read_count, scavenge_interval_s, system_stream_prefixes, mode
// ("single_node" | "cluster"), max_inflight_groups, checkpoint_interval_ms, apply_timeout_ms. Unknown keys,
// wrong types and out-of-range values are kInvalidArgument naming the key.
esdb::Result<StoreOptions> ParseStoreOptions(const nlohmann::json& config);

}  // namespace esdb_store

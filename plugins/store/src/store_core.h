// StoreCore: the event-store semantics (esdb::EventStoreV2) over an
// esdb::Storage. Everything but the plugin glue lives here, so tests run it
// in process against a real LevelDB.
//
// Writes (appends, deletes, metadata) go through one writer thread doing
// group commit ("Group commit" in plugins/store/README.md; "Path 1" in
// docs/ARCHITECTURE.md): callers enqueue a request; the writer takes
// everything queued, decides each request in queue order against an
// in-memory view that already includes the earlier requests of the group,
// assigns global positions, hands the group to the CommitWriter (one batch,
// one sync), applies the view, completes every request, and publishes one
// events_appended bus event per group (its correlation_id/causation_id are
// the appends' CallContext when they all share one; each entry of
// data.appends carries its own). Reads go straight to storage.
//
// In cluster mode (Open() with a log, store_cluster.cc; "Cluster mode" in
// plugins/store/README.md) the writer thread is split in two: a proposer
// publishes each group's requests, undecided, as one log entry, and an
// applier decides every entry of the log, in log order, with the same
// ProcessGroup() as single-node mode, and answers the requests this node
// proposed once the log acknowledged them and they are applied.
//
// Thread-safe. Close() (also run by the destructor) stops admitting work
// (kCancelled), lets the writer finish what is queued and joins threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <esdb/event.h>
#include <esdb/event_store.h>
#include <esdb/leader_lease.h>
#include <esdb/log.h>
#include <esdb/storage.h>

#include "codec.h"
#include "commit_writer.h"
#include "store_options.h"

namespace spdlog {
class logger;
}

namespace esdb_store {

struct LogPosition;    // cluster mode: store_core_internal.h
struct LogCheckpoint;  // cluster mode: group_codec.h
struct ScavengeOrder;  // cluster mode: group_codec.h

struct StoreHooks {
  // Publishes a bus event (topic "store"); may be empty (tests, bench).
  std::function<void(esdb::Event)> publish;
  // Where to log; may be null.
  std::shared_ptr<spdlog::logger> logger;
  // Cluster mode: the node stopped applying the log (a write failed, or an
  // entry could not be applied the same way on every node); it must stop
  // serving. Called once, on the applier thread; may be empty.
  std::function<void(esdb::Status)> apply_failed;
};

class StoreCore : public esdb::EventStoreV2 {
 public:
  // A queued write and the decision on it; defined in store_core_internal.h
  // (named here so that the cluster-mode helpers there can hold them).
  struct Request;
  struct Outcome;

  // Recovers state (stream heads, metadata limits, next position) from
  // `storage`, initializing an empty database, and starts the writer.
  //
  // With `log` (cluster mode), also checks that this node's stored log
  // position is in the log (kFailedPrecondition saying why when the log
  // does not hold what this node applied; kUnavailable when the log cannot
  // be asked now) and starts applying the log from the entry after it.
  // `node` names this node in the ids of the entries it proposes.
  static esdb::Result<std::shared_ptr<StoreCore>> Open(std::shared_ptr<esdb::Storage> storage,
                                                       const StoreOptions& options, StoreHooks hooks,
                                                       std::shared_ptr<esdb::Log> log = nullptr,
                                                       const std::string& node = "");
  ~StoreCore() override;
  StoreCore(const StoreCore&) = delete;
  StoreCore& operator=(const StoreCore&) = delete;

  // See the class comment. Idempotent; must not be called from a callback.
  void Close();

  esdb::Result<esdb::AppendResult> Append(const std::string& stream_id, esdb::ExpectedVersion expected,
                                          std::vector<esdb::ProposedEvent> events) override;
  void AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                   std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done) override;
  void AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                   std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done,
                   const esdb::CallContext& context) override;
  esdb::Result<esdb::ReadStreamResult> ReadStream(const esdb::ReadStreamRequest& request) override;
  esdb::Result<esdb::ReadAllResult> ReadAll(const esdb::ReadAllRequest& request) override;
  esdb::Result<esdb::RecordedEvent> ReadEvent(const std::string& stream_id, int64_t version) override;
  esdb::Result<int64_t> StreamVersion(const std::string& stream_id) override;
  esdb::Result<esdb::ListStreamsResult> ListStreams(const std::string& after, uint64_t count) override;
  uint64_t NextPosition() override { return next_position_.load(); }
  esdb::Status DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard) override;
  esdb::Status DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard,
                            const esdb::CallContext& context) override;
  esdb::Result<esdb::StreamMetadata> GetMetadata(const std::string& stream_id) override;
  esdb::Status SetMetadata(const std::string& stream_id, const esdb::StreamMetadata& metadata) override;
  esdb::Status PutSnapshot(const esdb::Snapshot& snapshot) override;
  esdb::Result<esdb::Snapshot> GetSnapshot(const std::string& stream_id, int64_t version) override;
  esdb::Result<esdb::Snapshot> LatestSnapshot(const std::string& stream_id) override;
  esdb::Status DeleteSnapshot(const std::string& stream_id, int64_t version) override;
  esdb::Result<std::vector<esdb::Snapshot>> ListSnapshots(const std::string& stream_id) override;
  // Single-node mode: runs the scavenge here. Cluster mode: on the leader
  // (the holder of the applied leader lease, before its expiry by this
  // node's clock) proposes a scavenge entry carrying this node, the lease's
  // term and the time, and waits until it is applied here; every node
  // applies it with the same code (ScavengeStreams) and removes the same
  // events. Elsewhere: the not-leader answer (esdb/not_leader.h) naming the
  // holder, or kUnavailable while no node holds the lease. An entry whose
  // term is no longer the lease's at apply changes nothing and answers
  // not-leader. plugins/store/README.md, "Scavenge in cluster mode".
  esdb::Result<esdb::ScavengeResult> Scavenge() override;
  nlohmann::json Stats() override;

  // Replaces the write path (tests). Only before the first write.
  void SetCommitWriterForTesting(std::unique_ptr<CommitWriter> writer) { commit_writer_ = std::move(writer); }

  // Cluster mode: waits up to `timeout` until this node has applied the log
  // as far as it reached when the store opened. OK when it has; the error
  // that stopped the applier; kTimeout. Single-node mode: OK at once.
  esdb::Status WaitCaughtUp(std::chrono::milliseconds timeout);

  // Cluster mode: the leader lease (esdb/leader_lease.h, whose contracts
  // these follow; StoreService offers them as esdb.leader_lease/1). A claim
  // is proposed as a log entry like a write and decided at apply
  // (lease_rule.h). Single-node mode: kFailedPrecondition.
  esdb::Result<esdb::LeaderLeaseOutcome> ProposeLease(const esdb::LeaderLeaseClaim& claim);
  esdb::Result<esdb::LeaderLeaseState> CurrentLease();

 private:
  // What the store keeps in memory per stream.
  struct StreamState {
    StreamHead head;
    std::optional<uint64_t> max_count;
    std::optional<uint64_t> max_age_seconds;
    std::optional<int64_t> truncate_before;
  };
  // What a reader may see of a stream right now.
  struct Visibility {
    bool exists = false;  // has events and is not (soft- or hard-) deleted
    bool tombstoned = false;
    int64_t last_version = esdb::kNoStreamVersion;
    int64_t first_visible = 0;
    int64_t min_created_us = INT64_MIN;
  };
  struct ClusterState;
  struct IdLocation {
    std::string stream;
    int64_t version;
    uint64_t position;  // 0 when unknown (scavenged)
  };

  StoreCore(std::shared_ptr<esdb::Storage> storage, const StoreOptions& options, StoreHooks hooks,
            std::shared_ptr<esdb::Log> log);
  esdb::Status Recover();

  esdb::Status ValidateStreamId(const std::string& stream, bool for_write) const;
  esdb::Status ValidateExpected(const esdb::ExpectedVersion& expected) const;
  esdb::Status Enqueue(std::unique_ptr<Request>& request);  // moves from `request` only on success

  void WriterLoop();
  // Decides, commits and completes one group; `now_us` is the events'
  // created time. `log`: cluster mode, the log entry the group is (its
  // position is written with it). Returns the outcomes; `*group_committed` is
  // false when the group's batch was not written.
  // Lease claims (cluster mode) are decided against and update log->lease.
  std::vector<Outcome> ProcessGroup(std::vector<std::unique_ptr<Request>>& group, int64_t now_us,
                                    LogPosition* log, bool* group_committed);
  // Cluster mode (store_cluster.cc).
  esdb::Status OpenCluster(const std::string& node);
  void CloseCluster();
  void ProposerLoop();
  void ApplierLoop();
  void ApplyEntry(esdb::LogEntry& entry);
  void HaltApplier(const esdb::Status& why);
  // Compares another node's checkpoint with this node's running hash; on a
  // difference re-reads the log from the last verified point to find out
  // which side diverged. False when this node did: it is halted and marked
  // for a rebuild. May move `next`'s verified point.
  bool CheckCheckpoint(const LogCheckpoint& checkpoint, LogPosition* next);
  // Halts with `why`, first recording in storage that the next open must
  // rebuild this node's data from the log.
  void Diverged(const std::string& why);
  // Deletes the 'g' keys of entries more than entry_id_window before the
  // last applied one, a bounded part per call (housekeeping thread).
  void PruneEntryIds();
  void HousekeepingLoop();
  // Answers unavailable the requests of entries the log acknowledged more
  // than options.apply_timeout_ms ago that this node has not applied.
  void ExpireUnapplied();
  // Asks the log what it holds where this node applied its own entries that
  // the log acknowledged elsewhere; Diverged() when another entry.
  void CheckSuspects();
  // Cluster mode, at open: when a divergence was recorded, deletes this
  // node's data (all but its incarnation) so that it re-applies the log.
  esdb::Status RebuildIfDiverged();
  nlohmann::json ClusterStats() const;  // null in single-node mode
  const StreamState& View(const std::string& stream);  // writer thread only
  StreamState& Staged(const std::string& stream);      // writer thread only
  esdb::Result<std::optional<IdLocation>> LookupId(const std::string& raw_id);
  esdb::Status CheckExpected(const std::string& stream, const StreamState& st,
                             const esdb::ExpectedVersion& expected) const;
  void DecideAppend(Request& r, CommitGroup& group, uint64_t* position, int64_t now_us, Outcome& out);
  void DecideDelete(Request& r, CommitGroup& group, Outcome& out);
  void DecideMetadata(Request& r, CommitGroup& group, Outcome& out);

  static Visibility VisibilityOf(const StreamState& st, int64_t now_us);
  std::optional<StreamState> CommittedState(const std::string& stream) const;
  esdb::Status CheckReadable(const std::string& stream, const Visibility& vis) const;
  void ScavengerLoop();
  // The one scavenge code of both modes: removes what is hidden at `now_us`
  // (the events' created-time clock) in the committed state, in unsynced
  // batches; records it as the last scavenge (`order`: cluster mode, the
  // entry's order and `sequence` its log sequence). Runs on the scavenger or
  // caller thread in single-node mode, on the applier thread in cluster
  // mode. Does not compact. Errors: a storage read or write failed (what was
  // deleted before stays deleted: everything it deletes is hidden already).
  esdb::Result<esdb::ScavengeResult> ScavengeStreams(int64_t now_us, const ScavengeOrder* order, uint64_t sequence);
  // Cluster mode, at apply: runs `r`'s scavenge when its node and term are
  // the lease's (`log->lease`) and the lease lasts at `now_us` (the entry's
  // time); otherwise `out` is the not-leader answer and nothing changes.
  void DecideScavenge(Request& r, int64_t now_us, const LogPosition& log, Outcome& out);
  // Cluster mode: Scavenge() (proposes the entry and waits for its outcome).
  esdb::Result<esdb::ScavengeResult> ProposeScavenge();
  // Cluster mode: whether this node holds the applied lease and it lasts
  // by this node's clock; otherwise `*why` is the answer to give.
  bool LeadsNow(esdb::LeaderLeaseState* lease, esdb::Status* why) const;
  void Log(int level, const std::string& message) const;

  const std::shared_ptr<esdb::Storage> storage_;
  const StoreOptions options_;
  const StoreHooks hooks_;
  std::unique_ptr<CommitWriter> commit_writer_;
  const std::shared_ptr<esdb::Log> log_;  // cluster mode when set
  std::unique_ptr<ClusterState> cluster_;

  // Committed state. Mutated only by the writer thread (under the unique
  // lock); read by others under the shared lock.
  mutable std::shared_mutex state_mu_;
  std::unordered_map<std::string, StreamState> streams_;
  std::atomic<uint64_t> next_position_{0};

  // Request queue.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<Request>> queue_;  // guarded by queue_mu_
  bool stopping_ = false;                       // guarded by queue_mu_
  std::thread writer_;

  // Writer-thread (cluster mode: applier-thread) only: the group's view and
  // id index overlay.
  std::unordered_map<std::string, StreamState> staged_;
  std::unordered_map<std::string, IdLocation> staged_ids_;
  std::mt19937_64 rng_;

  std::mutex scavenge_mu_;  // one scavenge at a time
  // The last scavenge this store ran (Stats(): last_scavenge).
  struct LastScavenge {
    int64_t at_us = 0;  // its time: single-node mode this node's clock, cluster mode the entry's
    esdb::ScavengeResult result;
    uint64_t sequence = 0;  // cluster mode: the log entry
    std::string ordered_by;  // cluster mode: the leader that proposed it
    uint64_t term = 0;       // cluster mode: its lease term
  };
  mutable std::mutex last_scavenge_mu_;
  std::optional<LastScavenge> last_scavenge_;  // guarded by last_scavenge_mu_
  std::mutex scavenger_mu_;
  std::condition_variable scavenger_cv_;
  bool scavenger_stop_ = false;  // guarded by scavenger_mu_
  std::thread scavenger_;

  std::atomic<uint64_t> appends_{0}, events_appended_{0}, bytes_appended_{0}, idempotent_appends_{0},
      wrong_expected_{0}, rejected_{0}, reads_{0}, events_read_{0}, group_commits_{0}, commit_errors_{0},
      deletes_{0}, scavenges_{0}, scavenged_events_{0};
  // Requests per commit group: 1, 2-3, 4-7, ... 512+.
  std::atomic<uint64_t> group_histogram_[10] = {};
};

}  // namespace esdb_store

// StoreService: the object the store plugin provides as "esdb.event_store/2" (and "/1"),
// and in cluster mode as "esdb.leader_lease/1".
// It forwards to the current StoreCore, or answers kUnavailable naming the
// missing piece (persistence) while there is none: before storage appears,
// after it is withdrawn, after the store stopped. Consumers can keep their
// pointer across persistence restarts.
//
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <esdb/event_store.h>
#include <esdb/leader_lease.h>

#include "store_core.h"

namespace esdb_store {

class StoreService : public esdb::EventStoreV2, public esdb::LeaderLease {
 public:
  explicit StoreService(std::string unavailable_reason) : reason_(std::move(unavailable_reason)) {}

  // Serves through `core` from now on.
  void Attach(std::shared_ptr<StoreCore> core);
  // Stops serving; returns the core (to be closed by the caller) and answers
  // kUnavailable with `reason` from now on.
  std::shared_ptr<StoreCore> Detach(std::string reason);
  bool attached() const;

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
  uint64_t NextPosition() override;
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
  esdb::Result<esdb::ScavengeResult> Scavenge() override;
  nlohmann::json Stats() override;
  esdb::Result<esdb::LeaderLeaseOutcome> ProposeLease(const esdb::LeaderLeaseClaim& claim) override;
  esdb::Result<esdb::LeaderLeaseState> CurrentLease() override;

 private:
  // The current core, or null with `*why` set.
  std::shared_ptr<StoreCore> Current(esdb::Status* why) const;

  mutable std::mutex mu_;
  std::shared_ptr<StoreCore> core_;  // guarded by mu_
  std::string reason_;               // guarded by mu_
};

}  // namespace esdb_store

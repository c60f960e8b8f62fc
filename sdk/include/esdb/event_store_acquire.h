// How a consumer gets the event store whatever SDK its provider was built
// against: "esdb.event_store/2" when offered, else a "/1" provider (built
// against SDK 1.0) behind an adapter that drops the CallContext (the bus
// events of those writes then carry no trace ids).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "esdb/event_store.h"
#include "esdb/services.h"

namespace esdb {

// Whether a service_provided / service_withdrawn event's name concerns the
// event store (either version): re-run AcquireEventStore() then.
inline bool IsEventStoreServiceName(std::string_view name) {
  return name == services::kEventStoreV2 || name == services::kEventStore;
}

// An EventStore seen as an EventStoreV2. Thread-safe as the wrapped store.
class EventStoreV1Adapter final : public EventStoreV2 {
 public:
  explicit EventStoreV1Adapter(std::shared_ptr<EventStore> v1) : v1_(std::move(v1)) {}

  Result<AppendResult> Append(const std::string& stream_id, ExpectedVersion expected,
                              std::vector<ProposedEvent> events) override {
    return v1_->Append(stream_id, expected, std::move(events));
  }
  void AppendAsync(const std::string& stream_id, ExpectedVersion expected, std::vector<ProposedEvent> events,
                   AppendCallback done) override {
    v1_->AppendAsync(stream_id, expected, std::move(events), std::move(done));
  }
  void AppendAsync(const std::string& stream_id, ExpectedVersion expected, std::vector<ProposedEvent> events,
                   AppendCallback done, const CallContext& /*context*/) override {
    v1_->AppendAsync(stream_id, expected, std::move(events), std::move(done));
  }
  Result<ReadStreamResult> ReadStream(const ReadStreamRequest& request) override { return v1_->ReadStream(request); }
  Result<ReadAllResult> ReadAll(const ReadAllRequest& request) override { return v1_->ReadAll(request); }
  Result<RecordedEvent> ReadEvent(const std::string& stream_id, int64_t version) override {
    return v1_->ReadEvent(stream_id, version);
  }
  Result<int64_t> StreamVersion(const std::string& stream_id) override { return v1_->StreamVersion(stream_id); }
  Result<ListStreamsResult> ListStreams(const std::string& after, uint64_t count) override {
    return v1_->ListStreams(after, count);
  }
  uint64_t NextPosition() override { return v1_->NextPosition(); }
  Status DeleteStream(const std::string& stream_id, ExpectedVersion expected, bool hard) override {
    return v1_->DeleteStream(stream_id, expected, hard);
  }
  Status DeleteStream(const std::string& stream_id, ExpectedVersion expected, bool hard,
                      const CallContext& /*context*/) override {
    return v1_->DeleteStream(stream_id, expected, hard);
  }
  Result<StreamMetadata> GetMetadata(const std::string& stream_id) override { return v1_->GetMetadata(stream_id); }
  Status SetMetadata(const std::string& stream_id, const StreamMetadata& metadata) override {
    return v1_->SetMetadata(stream_id, metadata);
  }
  Status PutSnapshot(const Snapshot& snapshot) override { return v1_->PutSnapshot(snapshot); }
  Result<Snapshot> GetSnapshot(const std::string& stream_id, int64_t version) override {
    return v1_->GetSnapshot(stream_id, version);
  }
  Result<Snapshot> LatestSnapshot(const std::string& stream_id) override { return v1_->LatestSnapshot(stream_id); }
  Status DeleteSnapshot(const std::string& stream_id, int64_t version) override {
    return v1_->DeleteSnapshot(stream_id, version);
  }
  Result<std::vector<Snapshot>> ListSnapshots(const std::string& stream_id) override {
    return v1_->ListSnapshots(stream_id);
  }
  Result<ScavengeResult> Scavenge() override { return v1_->Scavenge(); }
  nlohmann::json Stats() override { return v1_->Stats(); }

 private:
  std::shared_ptr<EventStore> v1_;
};

// The current event store: /2 if provided, else /1 adapted. NotFound when
// neither name is provided; the registry's FailedPrecondition when a name is
// provided as another interface.
inline Result<std::shared_ptr<EventStoreV2>> AcquireEventStore(const ServiceRegistry& registry) {
  Result<std::shared_ptr<EventStoreV2>> v2 = registry.Get<EventStoreV2>(services::kEventStoreV2);
  if (v2.ok() || v2.status().code() != Code::kNotFound) return v2;
  Result<std::shared_ptr<EventStore>> v1 = registry.Get<EventStore>(services::kEventStore);
  if (!v1.ok()) {
    if (v1.status().code() != Code::kNotFound) return v1.status();
    return Status::NotFound(std::string("neither ") + services::kEventStoreV2 + " nor " + services::kEventStore +
                            " is provided");
  }
  return std::shared_ptr<EventStoreV2>(std::make_shared<EventStoreV1Adapter>(std::move(v1).value()));
}

}  // namespace esdb

#include "store_service.h"

namespace esdb_store {

void StoreService::Attach(std::shared_ptr<StoreCore> core) {
  std::lock_guard<std::mutex> lock(mu_);
  core_ = std::move(core);
}

std::shared_ptr<StoreCore> StoreService::Detach(std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  reason_ = std::move(reason);
  return std::move(core_);
}

bool StoreService::attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return core_ != nullptr;
}

std::shared_ptr<StoreCore> StoreService::Current(esdb::Status* why) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!core_) *why = esdb::Status::Unavailable(reason_);
  return core_;
}

#define ESDB_STORE_FORWARD(call)  \
  esdb::Status why;               \
  auto core = Current(&why);      \
  if (!core) return why;          \
  return core->call

esdb::Result<esdb::AppendResult> StoreService::Append(const std::string& stream_id, esdb::ExpectedVersion expected,
                                                      std::vector<esdb::ProposedEvent> events) {
  ESDB_STORE_FORWARD(Append(stream_id, expected, std::move(events)));
}

void StoreService::AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                               std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done) {
  esdb::Status why;
  auto core = Current(&why);
  if (!core) return done(why);
  core->AppendAsync(stream_id, expected, std::move(events), std::move(done));
}

void StoreService::AppendAsync(const std::string& stream_id, esdb::ExpectedVersion expected,
                               std::vector<esdb::ProposedEvent> events, esdb::AppendCallback done,
                               const esdb::CallContext& context) {
  esdb::Status why;
  auto core = Current(&why);
  if (!core) return done(why);
  core->AppendAsync(stream_id, expected, std::move(events), std::move(done), context);
}

esdb::Result<esdb::LeaderLeaseOutcome> StoreService::ProposeLease(const esdb::LeaderLeaseClaim& claim) {
  ESDB_STORE_FORWARD(ProposeLease(claim));
}
esdb::Result<esdb::LeaderLeaseState> StoreService::CurrentLease() { ESDB_STORE_FORWARD(CurrentLease()); }

esdb::Result<esdb::ReadStreamResult> StoreService::ReadStream(const esdb::ReadStreamRequest& request) {
  ESDB_STORE_FORWARD(ReadStream(request));
}
esdb::Result<esdb::ReadAllResult> StoreService::ReadAll(const esdb::ReadAllRequest& request) {
  ESDB_STORE_FORWARD(ReadAll(request));
}
esdb::Result<esdb::RecordedEvent> StoreService::ReadEvent(const std::string& stream_id, int64_t version) {
  ESDB_STORE_FORWARD(ReadEvent(stream_id, version));
}
esdb::Result<int64_t> StoreService::StreamVersion(const std::string& stream_id) {
  ESDB_STORE_FORWARD(StreamVersion(stream_id));
}
esdb::Result<esdb::ListStreamsResult> StoreService::ListStreams(const std::string& after, uint64_t count) {
  ESDB_STORE_FORWARD(ListStreams(after, count));
}
uint64_t StoreService::NextPosition() {
  esdb::Status why;
  auto core = Current(&why);
  return core ? core->NextPosition() : 0;
}
esdb::Status StoreService::DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard) {
  ESDB_STORE_FORWARD(DeleteStream(stream_id, expected, hard));
}
esdb::Status StoreService::DeleteStream(const std::string& stream_id, esdb::ExpectedVersion expected, bool hard,
                                        const esdb::CallContext& context) {
  ESDB_STORE_FORWARD(DeleteStream(stream_id, expected, hard, context));
}
esdb::Result<esdb::StreamMetadata> StoreService::GetMetadata(const std::string& stream_id) {
  ESDB_STORE_FORWARD(GetMetadata(stream_id));
}
esdb::Status StoreService::SetMetadata(const std::string& stream_id, const esdb::StreamMetadata& metadata) {
  ESDB_STORE_FORWARD(SetMetadata(stream_id, metadata));
}
esdb::Status StoreService::PutSnapshot(const esdb::Snapshot& snapshot) { ESDB_STORE_FORWARD(PutSnapshot(snapshot)); }
esdb::Result<esdb::Snapshot> StoreService::GetSnapshot(const std::string& stream_id, int64_t version) {
  ESDB_STORE_FORWARD(GetSnapshot(stream_id, version));
}
esdb::Result<esdb::Snapshot> StoreService::LatestSnapshot(const std::string& stream_id) {
  ESDB_STORE_FORWARD(LatestSnapshot(stream_id));
}
esdb::Status StoreService::DeleteSnapshot(const std::string& stream_id, int64_t version) {
  ESDB_STORE_FORWARD(DeleteSnapshot(stream_id, version));
}
esdb::Result<std::vector<esdb::Snapshot>> StoreService::ListSnapshots(const std::string& stream_id) {
  ESDB_STORE_FORWARD(ListSnapshots(stream_id));
}
esdb::Result<esdb::ScavengeResult> StoreService::Scavenge() { ESDB_STORE_FORWARD(Scavenge()); }

nlohmann::json StoreService::Stats() {
  esdb::Status why;
  auto core = Current(&why);
  if (!core) return {{"available", false}, {"reason", why.message()}};
  nlohmann::json j = core->Stats();
  j["available"] = true;
  return j;
}

#undef ESDB_STORE_FORWARD

}  // namespace esdb_store

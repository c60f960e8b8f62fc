// StoreCore: opening, recovery, validation, the request queue and stats.
#include "store_core.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <unordered_set>

#include <spdlog/logger.h>

#include "esdb/all_filter.h"
#include "esdb/bus_events.h"
#include "key_layout.h"
#include "store_core_internal.h"

namespace esdb_store {

StoreCore::StoreCore(std::shared_ptr<esdb::Storage> storage, const StoreOptions& options, StoreHooks hooks,
                     std::shared_ptr<esdb::Log> log)
    : storage_(std::move(storage)),
      options_(options),
      hooks_(std::move(hooks)),
      commit_writer_(std::make_unique<StorageCommitWriter>(storage_)),
      log_(std::move(log)),
      rng_(std::random_device{}()) {}

esdb::Result<std::shared_ptr<StoreCore>> StoreCore::Open(std::shared_ptr<esdb::Storage> storage,
                                                         const StoreOptions& options, StoreHooks hooks,
                                                         std::shared_ptr<esdb::Log> log, const std::string& node) {
  if (!storage) return esdb::Status::Unavailable("persistence is not available (no esdb.storage/1)");
  std::shared_ptr<StoreCore> core(new StoreCore(std::move(storage), options, std::move(hooks), std::move(log)));
  esdb::Status s = core->log_ ? core->RebuildIfDiverged() : esdb::Status::OK();
  if (s.ok()) s = core->Recover();
  if (!s.ok()) return s;
  if (core->log_) {
    s = core->OpenCluster(node);  // starts the proposer and the applier
    if (!s.ok()) return s;
  } else {
    core->writer_ = std::thread([c = core.get()] { c->WriterLoop(); });
  }
  if (options.scavenge_interval_s > 0) {  // cluster mode: scavenges while this node leads
    core->scavenger_ = std::thread([c = core.get()] { c->ScavengerLoop(); });
  }
  return core;
}

StoreCore::~StoreCore() { Close(); }

void StoreCore::Close() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(scavenger_mu_);
    scavenger_stop_ = true;
  }
  scavenger_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (cluster_) CloseCluster();
  if (scavenger_.joinable()) scavenger_.join();
}

void StoreCore::Log(int level, const std::string& message) const {
  if (hooks_.logger) hooks_.logger->log(static_cast<spdlog::level::level_enum>(level), message);
}

// ---- recovery -------------------------------------------------------------

esdb::Status StoreCore::Recover() {
  esdb::Result<std::string> format = storage_->Get(keys::Format());
  if (format.ok()) {
    if (*format != "1") {
      return esdb::Status::FailedPrecondition("store data has layout version " + *format + "; this build reads 1");
    }
  } else if (format.status().code() == esdb::Code::kNotFound) {
    esdb::StorageBatch b;
    b.Put(keys::Format(), "1");
    esdb::Status s = storage_->Write(b, esdb::StorageWriteOptions{true});
    if (!s.ok()) return s;
  } else {
    return format.status();
  }

  uint64_t next = 0;
  esdb::Result<std::string> head = storage_->Get(keys::NextPosition());
  if (head.ok() && head->size() == 8) {
    next = DecodeFixed64BE(head->data());
  } else if (!head.ok() && head.status().code() != esdb::Code::kNotFound) {
    return head.status();
  }
  auto it_or = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it_or.ok()) return it_or.status();
  auto& it = *it_or;
  // The last event also bounds the head (belt and braces: both are in every batch).
  it->SeekForPrev(keys::Event(UINT64_MAX));
  if (it->Valid() && it->key().size() == 9 && it->key()[0] == keys::kEvent) {
    next = std::max(next, keys::EventPosition(it->key()) + 1);
  }
  std::unordered_map<std::string, StreamState> streams;
  const std::string head_prefix(1, keys::kHead);
  for (it->Seek(head_prefix); it->Valid() && it->key()[0] == keys::kHead; it->Next()) {
    StreamState st;
    esdb::Status s = DecodeHead(it->value(), &st.head);
    if (!s.ok()) return esdb::Status::Corruption(s.message() + " for stream " + std::string(it->key().substr(1)));
    streams[std::string(it->key().substr(1))] = st;
  }
  const std::string meta_prefix(1, keys::kMetadata);
  for (it->Seek(meta_prefix); it->Valid() && it->key()[0] == keys::kMetadata; it->Next()) {
    esdb::StreamMetadata m;
    esdb::Status s = DecodeMetadata(it->value(), &m);
    if (!s.ok()) return esdb::Status::Corruption(s.message() + " for stream " + std::string(it->key().substr(1)));
    StreamState& st = streams[std::string(it->key().substr(1))];
    st.max_count = m.max_count;
    st.max_age_seconds = m.max_age_seconds;
    st.truncate_before = m.truncate_before;
  }
  if (!it->status().ok()) return it->status();
  it.reset();
  std::unique_lock<std::shared_mutex> lock(state_mu_);
  streams_ = std::move(streams);
  next_position_.store(next);
  Log(2, "store recovered: " + std::to_string(streams_.size()) + " streams, next position " + std::to_string(next));
  return esdb::Status::OK();
}

// ---- validation -----------------------------------------------------------

esdb::Status StoreCore::ValidateStreamId(const std::string& stream, bool for_write) const {
  if (stream.empty()) return esdb::Status::InvalidArgument("stream id is empty");
  if (stream.size() > options_.max_stream_id_length) {
    return esdb::Status::InvalidArgument("stream id is " + std::to_string(stream.size()) +
                                         " bytes; max_stream_id_length is " +
                                         std::to_string(options_.max_stream_id_length));
  }
  if (stream.find('\0') != std::string::npos) return esdb::Status::InvalidArgument("stream id contains a NUL byte");
  if (stream == "$all") return esdb::Status::InvalidArgument("'$all' is not a stream; read it with ReadAll");
  if (for_write && stream[0] == '$') {
    for (const auto& p : options_.system_stream_prefixes) {
      if (HasPrefix(stream, p)) return esdb::Status::OK();
    }
    return esdb::Status::InvalidArgument("stream id " + Quote(stream) +
                                         " is reserved: ids starting with '$' belong to the system");
  }
  return esdb::Status::OK();
}

esdb::Status StoreCore::ValidateExpected(const esdb::ExpectedVersion& expected) const {
  if (expected.kind == esdb::ExpectedVersion::Kind::kExact && expected.version < esdb::kNoStreamVersion) {
    return esdb::Status::InvalidArgument("expected version " + std::to_string(expected.version) +
                                         " is invalid (exact versions are >= -1)");
  }
  return esdb::Status::OK();
}

esdb::Status StoreCore::Enqueue(std::unique_ptr<Request>& request) {
  if (cluster_ && cluster_->refusing.load()) {
    // Nothing more goes into the log from a node that stopped applying it.
    std::lock_guard<std::mutex> lock(cluster_->apply_mu);
    return esdb::Status::Unavailable("this node stopped applying the log: " + cluster_->halt_status.message());
  }
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return Cancelled();
    if (queue_.size() >= options_.max_pending_appends) {
      return esdb::Status::ResourceExhausted("the store's write queue is full (max_pending_appends = " +
                                             std::to_string(options_.max_pending_appends) + "); retry later");
    }
    queue_.push_back(std::move(request));
  }
  queue_cv_.notify_one();
  return esdb::Status::OK();
}

nlohmann::json StoreCore::Stats() {
  nlohmann::json histogram = nlohmann::json::object();
  static const char* const kBuckets[] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", "256-511", "512+"};
  for (int i = 0; i < 10; ++i) histogram[kBuckets[i]] = group_histogram_[i].load();
  size_t pending = 0, streams = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    pending = queue_.size();
  }
  {
    std::shared_lock<std::shared_mutex> lock(state_mu_);
    streams = streams_.size();
  }
  nlohmann::json last_scavenge = nullptr;
  {
    std::lock_guard<std::mutex> lock(last_scavenge_mu_);
    if (last_scavenge_) {
      const LastScavenge& l = *last_scavenge_;
      last_scavenge = {{"at_us", l.at_us},
                       {"events_removed", l.result.events_removed},
                       {"bytes_removed", l.result.bytes_removed},
                       {"streams_scanned", l.result.streams_scanned}};
      if (log_) {
        last_scavenge["sequence"] = l.sequence;
        last_scavenge["ordered_by"] = l.ordered_by;
        last_scavenge["term"] = l.term;
      }
    }
  }
  return {{"appends", appends_.load()},
          {"events_appended", events_appended_.load()},
          {"bytes_appended", bytes_appended_.load()},
          {"idempotent_appends", idempotent_appends_.load()},
          {"wrong_expected_version", wrong_expected_.load()},
          {"rejected_appends", rejected_.load()},
          {"reads", reads_.load()},
          {"events_read", events_read_.load()},
          {"group_commits", group_commits_.load()},
          {"commit_errors", commit_errors_.load()},
          {"group_commit_requests_histogram", histogram},
          {"deletes", deletes_.load()},
          {"scavenges", scavenges_.load()},
          {"scavenged_events", scavenged_events_.load()},
          {"last_scavenge", std::move(last_scavenge)},
          {"pending_writes", pending},
          {"streams", streams},
          {"next_position", next_position_.load()},
          {"durability", options_.sync ? "sync" : "async"},
          {"mode", log_ ? "cluster" : "single_node"},
          {"cluster", ClusterStats()},
          {"storage", storage_->Stats()}};
}

}  // namespace esdb_store

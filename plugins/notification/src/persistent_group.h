// One persistent subscription group (sdk/include/esdb/subscriptions.h): reads its stream (or $all)
// from the store, hands messages to push consumers (round robin or dispatch
// to single) and pull requests, tracks each in-flight message by event id
// with a deadline, redelivers on timeout or nack, parks after max_retry in
// its parked $-stream, and persists a checkpoint (every message at or below
// it is done) in its checkpoint $-stream at most every checkpoint_after_ms
// and on stop. After a restart delivery resumes after the checkpoint, so
// every message is delivered at least once.
//
// Thread-safe: one mutex (mu_) serialises the state machine (API calls,
// timers, store notifications). It is never held across a store call (reads
// of the stream/$all, whose filter the store evaluates, checkpoint and park
// appends, parked-stream reads) nor across a consumer handler: the state
// needed is copied out, the call runs unlocked, and the result is applied
// after re-checking the state (stopped, settings changed, a poke meanwhile).
// At most one read, one checkpoint write and one replay run at a time
// (flags under mu_; a second caller waits on idle_cv_ without the lock).
// Consumer handlers run on their Channel's drain task, so a handler may call
// Ack/Nack.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "channel.h"
#include "esdb/event_store.h"
#include "esdb/subscriptions.h"
#include "esdb/all_filter.h"

namespace spdlog {
class logger;
}

namespace esdb_notification {

// "$persistent-{stream}::{group}-parked" / "-checkpoint".
std::string ParkedStreamName(const std::string& stream_id, const std::string& group);
std::string CheckpointStreamName(const std::string& stream_id, const std::string& group);

class PersistentGroup : public std::enable_shared_from_this<PersistentGroup> {
 public:
  using Clock = std::chrono::steady_clock;

  PersistentGroup(boost::asio::io_context& io, std::shared_ptr<esdb::EventStoreV2> store,
                  std::shared_ptr<spdlog::logger> logger, std::string stream_id, std::string group,
                  esdb::GroupSettingsV2 settings, std::optional<esdb::CompiledAllFilter> matcher);

  // Finds where to start: for a new group (`created`) from settings
  // (writing the first checkpoint), else from the persisted checkpoint.
  // A persisted checkpoint that does not parse or is out of range is not
  // fatal: the group starts from settings.start_from (from 0 when that is
  // "end", so nothing after the lost checkpoint is skipped; messages may be
  // delivered again), a new checkpoint is written, and `*problem` (when not
  // null) says what was wrong. Errors: only failing store calls.
  esdb::Status Load(bool created, std::string* problem = nullptr);

  // New events may be readable: read and dispatch on the io_context.
  // Never blocks (safe from the store's notification path).
  void Poke();

  // Adds a push consumer; its channel is returned for the handle.
  // kResourceExhausted when the group has settings.max_subscriber_count
  // (not 0) consumers already.
  struct ConsumerRef {
    uint64_t id = 0;
    std::shared_ptr<Channel<esdb::PersistentMessage>> channel;
  };
  esdb::Result<ConsumerRef> Connect(esdb::ConsumerOptions options);
  // Removes a consumer; its in-flight messages go back to the front.
  void Disconnect(uint64_t consumer_id);

  esdb::Result<std::vector<esdb::PersistentMessage>> ReadNext(size_t count);
  // `event_ids` are canonical lower-case UUIDs.
  esdb::AckResult Ack(const std::vector<std::string>& event_ids);
  esdb::Result<esdb::AckResult> Nack(const std::vector<std::string>& event_ids, esdb::NackAction action,
                                     const std::string& reason);
  // Replays up to `max_count` parked messages, the oldest first
  // (esdb::kReplayAllParked: all).
  esdb::Result<uint64_t> ReplayParked(uint64_t max_count);

  void UpdateSettings(const esdb::GroupSettingsV2& settings, std::optional<esdb::CompiledAllFilter> matcher);
  esdb::GroupInfoV2 Info();
  const std::string& stream_id() const { return stream_id_; }
  const std::string& group() const { return group_; }
  esdb::GroupSettingsV2 settings() const;
  size_t consumer_count() const;

  // Ends the group: writes the checkpoint (when `write_checkpoint`), cancels
  // timers and closes consumers with `reason` (their on_dropped runs). Waits.
  void Stop(const esdb::Status& reason, bool write_checkpoint);

 private:
  struct Message {
    esdb::SharedEvent event;
    int retry_count = 0;
    bool replayed = false;  // from the parked stream: not in outstanding_
  };
  struct InFlight {
    Message message;
    Clock::time_point deadline;
    uint64_t consumer = 0;  // 0 = a pull request
  };
  struct Consumer {
    uint64_t id = 0;
    std::string name;
    size_t limit = 10;
    uint64_t in_flight = 0, delivered = 0, acked = 0, nacked = 0;
    std::shared_ptr<Channel<esdb::PersistentMessage>> channel;
  };

  int64_t KeyOf(const esdb::RecordedEvent& e) const;
  size_t ReadBatchLocked() const;
  // Reads one page (no lock held during the read) into ready_. Waits for a
  // read already running instead. False when there was nothing to do.
  bool FillOnce();
  // Hands ready_ to push consumers, reads more when wanted, then checkpoints
  // if due. Call without mu_.
  void Pump();
  // Hands ready_ to push consumers (no store call).
  void DispatchReadyLocked();
  // Appends the messages ParkLocked queued, without mu_.
  void FlushParks();
  Consumer* PickConsumerLocked();
  Consumer* FindConsumerLocked(uint64_t id);
  void MarkInFlightLocked(Message m, uint64_t consumer);
  // Removes the in-flight entry of `id` (fixing consumer counters) or the
  // ready entry; returns the message.
  std::optional<Message> TakeLocked(const std::string& id);
  // TakeLocked for an ack/nack: counts it in `result` (processed or
  // unknown) and gives the consumer it was in flight with (null: a pull).
  std::optional<Message> TakeForReplyLocked(const std::string& id, esdb::AckResult* result, Consumer** consumer);
  void DoneLocked(const Message& m);
  void RetryLocked(Message m, bool count_retry);
  void ParkLocked(Message m, const std::string& reason);
  void ArmTimeoutLocked();
  void OnTimeout();
  int64_t CheckpointLocked() const;
  // Writes the checkpoint when it moved and is due (or `force`), arming the
  // timer otherwise. Call without mu_; the append runs unlocked.
  void MaybeCheckpoint(bool force);
  esdb::Status AppendCheckpoint(int64_t checkpoint);  // the store append only
  void PumpSoon();

  boost::asio::io_context& io_;
  const std::shared_ptr<esdb::EventStoreV2> store_;
  const std::shared_ptr<spdlog::logger> logger_;
  const std::string stream_id_;
  const std::string group_;
  const bool is_all_;
  const std::string parked_stream_;
  const std::string checkpoint_stream_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // filling_/checkpoint_writing_/replaying_ went false
  esdb::GroupSettingsV2 settings_;
  std::optional<esdb::CompiledAllFilter> matcher_;
  uint64_t settings_generation_ = 0;  // bumped by UpdateSettings: a read with the old filter is dropped
  bool stopped_ = false;
  bool pump_scheduled_ = false;
  int64_t next_read_ = 0;   // next version/position to read
  bool at_head_ = false;    // the last read found nothing more
  uint64_t pokes_ = 0;      // Poke count: a read that saw the head before a poke is not at the head
  bool filling_ = false;    // a FillOnce read is running
  bool checkpoint_writing_ = false;
  bool checkpoint_again_ = false;  // a checkpoint was asked for during a write
  bool replaying_ = false;
  std::vector<std::pair<Message, std::string>> to_park_;  // (message, reason) queued by ParkLocked
  std::deque<Message> ready_;
  std::unordered_map<std::string, InFlight> in_flight_;
  std::set<int64_t> outstanding_;  // keys read and not yet done
  std::vector<std::shared_ptr<Consumer>> consumers_;
  size_t round_robin_next_ = 0;
  uint64_t next_consumer_id_ = 1;
  int64_t checkpoint_written_ = -1;
  Clock::time_point last_checkpoint_write_{};
  std::unique_ptr<boost::asio::steady_timer> timeout_timer_;
  std::optional<Clock::time_point> timeout_armed_for_;
  std::unique_ptr<boost::asio::steady_timer> checkpoint_timer_;
  bool checkpoint_timer_armed_ = false;
  uint64_t delivered_total_ = 0, acked_total_ = 0, nacked_total_ = 0, retried_total_ = 0, timed_out_total_ = 0,
           parked_total_ = 0, replayed_total_ = 0;
};

}  // namespace esdb_notification

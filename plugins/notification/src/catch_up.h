// One catch-up subscription (to a stream or to $all): history first, then
// live ("Path 2" in docs/ARCHITECTURE.md). It is registered for live events
// before it reads history; live events that arrive meanwhile wait in a bounded buffer
// and are delivered after history, skipping what history already delivered
// (by position). If that buffer overflows, it is dropped and history is read
// further instead. Once live, events go straight to the subscriber's
// Channel; a full Channel drops the subscriber with kResourceExhausted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "channel.h"
#include "esdb/event_store.h"
#include "esdb/subscriptions.h"
#include "esdb/all_filter.h"

namespace esdb_notification {

// Counters shared by every subscription of one service.
struct SubscriptionCounters {
  std::atomic<uint64_t> events_delivered{0};
  std::atomic<uint64_t> subscribers_dropped{0};
  std::atomic<uint64_t> catch_up_reads{0};
};

class CatchUpSubscription : public std::enable_shared_from_this<CatchUpSubscription> {
 public:
  struct Params {
    bool is_all = false;
    std::string stream_id;        // stream subscriptions
    int64_t from_version = 0;     // stream: first version, or kSubscribeFromEndVersion
    uint64_t from_position = 0;   // $all: first position, or kSubscribeFromEndPosition
    std::optional<esdb::CompiledAllFilter> matcher;  // $all
    esdb::SubscriptionLimits limits;
    std::string name;
  };

  CatchUpSubscription(uint64_t id, boost::asio::io_context& io, std::shared_ptr<esdb::EventStoreV2> store,
                      Params params, esdb::SubscriptionHandlers handlers, SubscriptionCounters& counters);

  // Resolves a "from end" start and posts the first history read. Call once,
  // after the subscription is registered for live events.
  void Begin();

  // Fan-out entry: events in strictly increasing position order, each page
  // after the previous one. Keeps what this subscriber wants.
  void OnLive(const std::vector<esdb::SharedEvent>& events);

  // The stream of a stream subscription was tombstoned.
  void OnStreamTombstoned();

  // Ends it with `reason` passed to on_dropped (service stop). Waits.
  void Close(const esdb::Status& reason);
  // Ends it without on_dropped (the subscriber's handle). Waits.
  void Cancel();

  bool done() const;
  uint64_t id() const { return id_; }
  const Params& params() const { return params_; }
  bool live() const;

 private:
  enum class Phase { kCatchingUp, kLive, kDone };

  void PostRead();
  void ReadPage();
  // Drops the subscriber with `reason` (never waits). Requires mu_.
  void DropLocked(esdb::Status reason);
  // Whether a live event belongs to this subscriber at all.
  bool Wants(const esdb::RecordedEvent& e) const;
  // Hands `events` to the channel; false if it is over its limits.
  bool DeliverLocked(std::vector<esdb::SharedEvent> events);
  // Hands over as much of a history page as fits, removing it from `page`;
  // false (and waiting for room, or dropped) when some is left.
  bool DeliverPageLocked(std::vector<esdb::SharedEvent>& page);

  const uint64_t id_;
  boost::asio::io_context& io_;
  const std::shared_ptr<esdb::EventStoreV2> store_;
  Params params_;
  SubscriptionCounters& counters_;
  std::shared_ptr<Channel<esdb::SharedEvent>> channel_;

  mutable std::mutex mu_;
  Phase phase_ = Phase::kCatchingUp;
  std::optional<uint64_t> last_position_;  // of the last event handed to the channel
  int64_t next_version_ = 0;               // stream: next history read
  uint64_t next_position_ = 0;             // $all: next history read
  std::vector<esdb::SharedEvent> live_buffer_;  // live events seen while catching up
  bool live_overflow_ = false;
  bool read_scheduled_ = false;
  bool waiting_for_room_ = false;
  std::vector<esdb::SharedEvent> unsent_page_;  // a page the channel had no room for
};

// Approximate memory of an event (payload and ids).
size_t EventBytes(const esdb::SharedEvent& e);

}  // namespace esdb_notification

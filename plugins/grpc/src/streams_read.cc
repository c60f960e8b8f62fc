// Streams.Read: reads of a stream or $all, and subscriptions (catch-up
// then live, from the notification service).
#include <atomic>
#include <chrono>

#include <google/protobuf/util/time_util.h>

#include "convert.h"
#include "delivery_queue.h"
#include "errors.h"
#include "metadata_stream.h"
#include "streams_service.h"

namespace esdb_grpc {
namespace {

using Options = spb::ReadReq::Options;

constexpr uint64_t kReadPage = 500;  // events asked of the store per page
constexpr auto kPumpWait = std::chrono::milliseconds(100);  // how often a subscription looks at cancel/stop

std::atomic<uint64_t> g_next_subscription{1};

bool WriteEvent(const esdb::RecordedEvent& e, bool structured, ReadCall* out) {
  spb::ReadResp resp;
  auto* re = resp.mutable_event();
  ToRecordedEvent(e, structured, re->mutable_event());
  re->set_commit_position(e.position);
  return out->Write(resp);
}

bool WriteStreamNotFound(const std::string& stream, ReadCall* out) {
  spb::ReadResp resp;
  resp.mutable_stream_not_found()->mutable_stream_identifier()->set_stream_name(stream);
  return out->Write(resp);
}

bool WriteConfirmation(ReadCall* out) {
  spb::ReadResp resp;
  resp.mutable_confirmation()->set_subscription_id("esdb-grpc-" + std::to_string(g_next_subscription.fetch_add(1)));
  return out->Write(resp);
}

bool WriteCheckpoint(uint64_t position, ReadCall* out) {
  spb::ReadResp resp;
  auto* c = resp.mutable_checkpoint();
  c->set_commit_position(position);
  c->set_prepare_position(position);
  *c->mutable_timestamp() = google::protobuf::util::TimeUtil::GetCurrentTime();
  return out->Write(resp);
}

// A caught_up or fell_behind message (the same fields) at `revision` (a
// stream subscription) or `position` ($all).
template <class Mark>
void FillMark(std::optional<int64_t> revision, std::optional<uint64_t> position, Mark* m) {
  *m->mutable_timestamp() = google::protobuf::util::TimeUtil::GetCurrentTime();
  if (revision) m->set_stream_revision(*revision);
  if (position) {
    m->mutable_position()->set_commit_position(*position);
    m->mutable_position()->set_prepare_position(*position);
  }
}

bool WriteCaughtUp(std::optional<int64_t> revision, std::optional<uint64_t> position,
                   ReadCall* out) {
  spb::ReadResp resp;
  FillMark(revision, position, resp.mutable_caught_up());
  return out->Write(resp);
}

bool WriteFellBehind(std::optional<int64_t> revision, std::optional<uint64_t> position,
                     ReadCall* out) {
  spb::ReadResp resp;
  FillMark(revision, position, resp.mutable_fell_behind());
  return out->Write(resp);
}

// A first_stream_position or last_stream_position message (stream reads at
// compatibility >= 1).
bool WriteStreamPosition(bool first, int64_t version, ReadCall* out) {
  spb::ReadResp resp;
  if (first) {
    resp.set_first_stream_position(static_cast<uint64_t>(version));
  } else {
    resp.set_last_stream_position(static_cast<uint64_t>(version));
  }
  return out->Write(resp);
}

// Whether the client asked for first/last_stream_position messages on
// stream reads (compatibility >= 1).
bool WantsStreamPositions(const Options& o) { return o.control_option().compatibility() >= 1; }

// Whether the client asked for fell_behind messages (compatibility >= 2).
bool WantsFellBehind(const Options& o) { return o.control_option().compatibility() >= 2; }

grpc::Status SubscriptionsGone() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the subscriptions service is not available (missing: notification)");
}

// Handlers that only hand over to `queue` (they run on a notification thread).
esdb::SubscriptionHandlers HandlersInto(const std::shared_ptr<DeliveryQueue>& queue) {
  esdb::SubscriptionHandlers h;
  h.on_events = [queue](const std::vector<esdb::SharedEvent>& events) { queue->PushEvents(events); };
  h.on_caught_up = [queue] { queue->PushCaughtUp(); };
  h.on_dropped = [queue](const esdb::Status& why) { queue->Drop(why); };
  return h;
}

// One subscription of the notification service feeding a call: its queue
// and handle. Open subscribes (again, after a fall-behind: the previous
// handle is cancelled by the assignment) through `subscribe(subs, handlers)`.
struct Feed {
  std::shared_ptr<DeliveryQueue> queue;
  esdb::Subscription handle;

  template <class Subscribe>
  grpc::Status Open(const Backend& b, grpc::ServerContext* ctx, const std::string& stream, Subscribe subscribe) {
    auto subs = b.subscriptions();
    if (!subs) return SubscriptionsGone();
    queue = std::make_shared<DeliveryQueue>(b.config.subscriber_queue_events);
    auto sub = subscribe(*subs, HandlersInto(queue));
    if (!sub.ok()) return ToGrpcError(ctx, sub.status(), stream);
    handle = std::move(sub).value();
    return grpc::Status::OK;
  }
};

grpc::Status ClientGone() { return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"); }

}  // namespace

StreamsService::StreamsService(std::shared_ptr<Backend> backend)
    : b_(std::move(backend)), calls_(std::make_shared<CallRegistry>()) {
  // Read is the service's first method (index 0, as streams.proto lists
  // them; the generated WithSplitStreamingMethod_Read uses the same index).
  MarkMethodStreamed(0, new grpc::internal::TemplatedBidiStreamingHandler<ReadCall, false>(
                            [this](grpc::ServerContext* ctx, ReadCall* call) { return StreamedRead(ctx, call); }));
}

grpc::Status StreamsService::StreamedRead(grpc::ServerContext* ctx, ReadCall* call) {
  spb::ReadReq req;
  if (!call->Read(&req)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a Read call carries one ReadReq; none came");
  grpc::Status status = ReadOne(ctx, req, call);
  // Waits for the client's end of its side (Read is false then, and also
  // when the call was cancelled or the client went away).
  spb::ReadReq more;
  if (call->Read(&more)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a Read call carries one ReadReq; a second one came");
  }
  return status;
}

grpc::Status StreamsService::ReadOne(grpc::ServerContext* ctx, const spb::ReadReq& req, ReadCall* out) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kRead, "Reading"); !a.ok()) return a;
  const Options& o = req.options();
  const bool subscribe = o.count_option_case() == Options::kSubscription;
  switch (o.stream_option_case()) {
    case Options::kStream: return subscribe ? SubscribeStream(ctx, o, out) : ReadStream(ctx, o, out);
    case Options::kAll: return subscribe ? SubscribeAll(ctx, o, out) : ReadAll(ctx, o, out);
    default: return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a read names a stream or $all");
  }
}

grpc::Status StreamsService::ReadStream(grpc::ServerContext* ctx, const Options& o,
                                        ReadCall* out) {
  const auto& so = o.stream();
  const std::string stream = so.stream_identifier().stream_name();
  const bool forward = o.read_direction() == Options::Forwards;
  const bool structured = o.uuid_option().has_structured();
  auto store = b_->store();
  if (!store) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the event store is not available (missing: store)");
  uint64_t remaining = o.count();

  if (const auto target = MetadataTarget(stream)) {
    auto m = store->GetMetadata(*target);
    if (!m.ok() && m.status().code() != esdb::Code::kNotFound) return ToGrpcError(ctx, m.status(), stream);
    if (!m.ok() || IsEmptyMetadata(*m)) return WriteStreamNotFound(stream, out) ? grpc::Status::OK : ClientGone();
    const bool includes_zero = !forward || so.revision_option_case() == Options::StreamOptions::kStart ||
                               (so.revision_option_case() == Options::StreamOptions::kRevision && so.revision() == 0);
    if (remaining > 0 && includes_zero && !WriteEvent(MetadataEvent(stream, *m), structured, out)) return ClientGone();
    // The metadata stream has one event, version 0 (metadata_stream.h).
    if (remaining > 0 && WantsStreamPositions(o) && !WriteStreamPosition(false, 0, out)) return ClientGone();
    return grpc::Status::OK;
  }

  int64_t from = 0;
  switch (so.revision_option_case()) {
    case Options::StreamOptions::kRevision:
      from = so.revision() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(so.revision());
      break;
    case Options::StreamOptions::kEnd: from = forward ? INT64_MAX : -1; break;
    default: from = 0; break;
  }
  // Compatibility >= 1, as KurrentDB: a forward read whose first page is
  // empty although the stream goes on elsewhere (its first visible version
  // is past `from`, or `from` is past its end) is told first_stream_position,
  // the next version there; every read that found the stream ends with
  // last_stream_position, the stream's last version.
  const bool positions = WantsStreamPositions(o);
  bool first_page = true;
  int64_t last_version = esdb::kNoStreamVersion;
  while (remaining > 0) {
    if (ctx->IsCancelled()) return ClientGone();
    esdb::ReadStreamRequest r;
    r.stream_id = stream;
    r.from = from;
    r.count = std::min(remaining, kReadPage);
    r.direction = forward ? esdb::Direction::kForward : esdb::Direction::kBackward;
    auto page = store->ReadStream(r);
    if (!page.ok()) {
      if (page.status().code() == esdb::Code::kNotFound) {
        return WriteStreamNotFound(stream, out) ? grpc::Status::OK : ClientGone();
      }
      return ToGrpcError(ctx, page.status(), stream);
    }
    if (positions && first_page && forward && page->events.empty()) {
      // Where the stream goes on: the store's next version, or past a read
      // that started beyond the end, the version after the last.
      const int64_t next = std::min(page->next_version, page->last_version + 1);
      if (next >= 0 && next != from && !WriteStreamPosition(true, next, out)) return ClientGone();
    }
    first_page = false;
    last_version = page->last_version;
    for (const auto& e : page->events) {
      if (!WriteEvent(e, structured, out)) return ClientGone();
    }
    remaining -= std::min<uint64_t>(remaining, page->events.size());
    if (page->end_of_stream || page->events.empty()) break;
    from = page->next_version;
  }
  if (positions && last_version >= 0 && !WriteStreamPosition(false, last_version, out)) return ClientGone();
  return grpc::Status::OK;
}

grpc::Status StreamsService::ReadAll(grpc::ServerContext* ctx, const Options& o, ReadCall* out) {
  const bool forward = o.read_direction() == Options::Forwards;
  const bool structured = o.uuid_option().has_structured();
  auto filter = ToClientFilter(o);
  if (!filter.ok()) return ToGrpcError(ctx, filter.status(), "");
  auto store = b_->store();
  if (!store) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the event store is not available (missing: store)");
  const auto& ao = o.all();
  uint64_t from = 0;
  switch (ao.all_option_case()) {
    case Options::AllOptions::kPosition: {
      const uint64_t p = ao.position().commit_position();
      if (!forward && p == 0) return grpc::Status::OK;  // nothing before the first position
      from = forward ? p : p - 1;  // backward from p: the events before it
      break;
    }
    case Options::AllOptions::kEnd:
      if (forward) return grpc::Status::OK;
      from = UINT64_MAX;
      break;
    default:
      if (!forward) return grpc::Status::OK;
      from = 0;
      break;
  }
  uint64_t remaining = o.count();
  while (remaining > 0) {
    if (ctx->IsCancelled()) return ClientGone();
    esdb::ReadAllRequest r;
    r.from = from;
    r.count = filter->type_match ? kReadPage : std::min(remaining, kReadPage);
    r.direction = forward ? esdb::Direction::kForward : esdb::Direction::kBackward;
    r.filter = filter->stream;
    auto page = store->ReadAll(r);
    if (!page.ok()) return ToGrpcError(ctx, page.status(), "");
    for (const auto& e : page->events) {
      if (remaining == 0) break;
      if (!filter->Matches(e)) continue;
      if (!WriteEvent(e, structured, out)) return ClientGone();
      --remaining;
      if (remaining == 0 && filter->type_match) return grpc::Status::OK;
    }
    if (page->end_of_all) break;
    if (page->next_position == from && page->events.empty()) break;  // no progress (cannot happen; never spin)
    from = page->next_position;
  }
  return grpc::Status::OK;
}

grpc::Status StreamsService::SubscribeStream(grpc::ServerContext* ctx, const Options& o,
                                             ReadCall* out) {
  const auto& so = o.stream();
  const std::string stream = so.stream_identifier().stream_name();
  const bool structured = o.uuid_option().has_structured();
  if (MetadataTarget(stream)) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "subscriptions to a metadata stream ($$...) are not supported");
  }
  esdb::StreamSubscriptionRequest r;
  r.stream_id = stream;
  r.name = "grpc";
  switch (so.revision_option_case()) {
    case Options::StreamOptions::kRevision:
      r.from_version = so.revision() >= static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(so.revision()) + 1;
      break;
    case Options::StreamOptions::kEnd: r.from_version = esdb::kSubscribeFromEndVersion; break;
    default: r.from_version = 0; break;
  }
  // A subscriber that falls more than subscriber_queue_events behind is
  // subscribed again from the event after the last one it was sent: the
  // notification service catches it up from the store, then live again.
  Feed feed;
  auto subscribe = [&] {
    return feed.Open(*b_, ctx, stream, [&](esdb::Subscriptions& subs, esdb::SubscriptionHandlers h) {
      return subs.SubscribeToStream(r, std::move(h));
    });
  };
  if (auto st = subscribe(); !st.ok()) return st;
  if (!WriteConfirmation(out)) return ClientGone();
  std::optional<int64_t> last;
  bool live = false;  // caught_up was sent
  for (;;) {
    if (ctx->IsCancelled()) return ClientGone();
    if (b_->stopping.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
    std::optional<esdb::Status> dropped;
    auto item = feed.queue->Pop(kPumpWait, &dropped);
    if (dropped) {
      feed.handle.cancel();
      return ToGrpcError(ctx, *dropped, dropped->code() == esdb::Code::kStreamDeleted ? stream : "");
    }
    if (!item) continue;
    if (item->fell_behind) {
      feed.handle.cancel();
      if (live && WantsFellBehind(o) && !WriteFellBehind(last, std::nullopt, out)) return ClientGone();
      live = false;
      if (last) r.from_version = *last + 1;
      if (auto st = subscribe(); !st.ok()) return st;
      continue;
    }
    if (item->caught_up) {
      if (!WriteCaughtUp(last, std::nullopt, out)) return ClientGone();
      live = true;
      continue;
    }
    for (const auto& e : item->events) {
      if (!WriteEvent(*e, structured, out)) return ClientGone();
      last = e->version;
    }
  }
}

grpc::Status StreamsService::SubscribeAll(grpc::ServerContext* ctx, const Options& o,
                                          ReadCall* out) {
  const bool structured = o.uuid_option().has_structured();
  auto filter = ToClientFilter(o);
  if (!filter.ok()) return ToGrpcError(ctx, filter.status(), "");
  esdb::AllSubscriptionRequest r;
  r.name = "grpc";
  const auto& ao = o.all();
  switch (ao.all_option_case()) {
    case Options::AllOptions::kPosition: {
      const uint64_t p = ao.position().commit_position();
      r.from_position = p == UINT64_MAX ? p : p + 1;  // after the position given
      break;
    }
    case Options::AllOptions::kEnd: r.from_position = esdb::kSubscribeFromEndPosition; break;
    default: r.from_position = 0; break;
  }
  // Every non-system event comes through, so that checkpoints can follow
  // the events the filter skips; the filter is applied here. One that
  // falls behind is subscribed again after the last event it scanned, as
  // in SubscribeStream.
  Feed feed;
  auto subscribe = [&] {
    return feed.Open(*b_, ctx, "", [&](esdb::Subscriptions& subs, esdb::SubscriptionHandlers h) {
      return subs.SubscribeToAll(r, std::move(h));
    });
  };
  if (auto st = subscribe(); !st.ok()) return st;
  if (!WriteConfirmation(out)) return ClientGone();
  std::optional<uint64_t> last_scanned;
  uint64_t scanned_since_checkpoint = 0;
  bool live = false;  // caught_up was sent
  for (;;) {
    if (ctx->IsCancelled()) return ClientGone();
    if (b_->stopping.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
    std::optional<esdb::Status> dropped;
    auto item = feed.queue->Pop(kPumpWait, &dropped);
    if (dropped) {
      feed.handle.cancel();
      return ToGrpcError(ctx, *dropped, "");
    }
    if (!item) continue;
    if (item->fell_behind) {
      feed.handle.cancel();
      if (live && WantsFellBehind(o) && !WriteFellBehind(std::nullopt, last_scanned, out)) return ClientGone();
      live = false;
      if (last_scanned) r.from_position = *last_scanned == UINT64_MAX ? UINT64_MAX : *last_scanned + 1;
      if (auto st = subscribe(); !st.ok()) return st;
      continue;
    }
    if (item->caught_up) {
      if (filter->checkpoint_interval > 0 && last_scanned && scanned_since_checkpoint > 0) {
        if (!WriteCheckpoint(*last_scanned, out)) return ClientGone();
        scanned_since_checkpoint = 0;
      }
      if (!WriteCaughtUp(std::nullopt, last_scanned, out)) return ClientGone();
      live = true;
      continue;
    }
    for (const auto& e : item->events) {
      last_scanned = e->position;
      if (filter->Matches(*e) && !WriteEvent(*e, structured, out)) return ClientGone();
      if (filter->checkpoint_interval > 0 && ++scanned_since_checkpoint >= filter->checkpoint_interval) {
        if (!WriteCheckpoint(e->position, out)) return ClientGone();
        scanned_since_checkpoint = 0;
      }
    }
  }
}

}  // namespace esdb_grpc

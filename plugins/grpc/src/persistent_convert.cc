#include "persistent_convert.h"

#include <algorithm>
#include <type_traits>

#include "convert.h"

// The protocol marks the fields of the older request form deprecated; they
// are read on purpose (@eventstore/db-client 6.2.1 sends them).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace esdb_grpc {
namespace {

// 100-ns ticks as whole milliseconds (the protocol's *_ticks fields).
int64_t MillisFromTicks(int64_t ticks) { return ticks / 10000; }

// A size the group service does not have: 0 (unset) or KurrentDB's default.
esdb::Status OnlyDefault(const char* name, int value, int default_value, const char* why) {
  if (value == 0 || value == default_value) return esdb::Status::OK();
  return esdb::Status::InvalidArgument(std::string(name) + " " + std::to_string(value) + " is not supported (only " +
                                       std::to_string(default_value) + ", KurrentDB's default): " + why);
}

// Create's and Update's Settings (the same fields; Update has no
// consumer_strategy string) as GroupSettingsV2; start_from is left as is.
template <class Settings>
esdb::Status ApplySettings(const Settings& s, esdb::GroupSettingsV2* out) {
  if (s.resolve_links()) {
    return esdb::Status::InvalidArgument("resolve_links is not supported (esdb stores no link events)");
  }
  if (s.extra_statistics()) {
    return esdb::Status::InvalidArgument(
        "extra_statistics is not supported (esdb's groups keep no latency statistics)");
  }
  // 0 = unlimited; the range is checked with the other settings (ValidateGroupSettings).
  if (s.max_subscriber_count() < 0) return esdb::Status::InvalidArgument("max_subscriber_count must not be negative");
  out->max_subscriber_count = static_cast<size_t>(s.max_subscriber_count());
  const char* sized = "esdb's groups size their buffers themselves";
  if (auto st = OnlyDefault("live_buffer_size", s.live_buffer_size(), kDefaultLiveBufferSize, sized); !st.ok())
    return st;
  if (auto st = OnlyDefault("read_batch_size", s.read_batch_size(), kDefaultReadBatchSize, sized); !st.ok()) return st;
  if (auto st = OnlyDefault("history_buffer_size", s.history_buffer_size(), kDefaultHistoryBufferSize, sized); !st.ok())
    return st;
  const char* timed = "esdb's groups checkpoint by time (checkpoint_after) only";
  if (auto st = OnlyDefault("min_checkpoint_count", s.min_checkpoint_count(), kDefaultMinCheckpointCount, timed);
      !st.ok())
    return st;
  if (auto st = OnlyDefault("max_checkpoint_count", s.max_checkpoint_count(), kDefaultMaxCheckpointCount, timed);
      !st.ok())
    return st;

  // The strategy: the string (newer clients) wins over the deprecated enum.
  std::string strategy;
  if constexpr (std::is_same_v<Settings, pspb::CreateReq::Settings>) strategy = s.consumer_strategy();
  if (strategy.empty()) {
    // The enum's values: DispatchToSingle 0, RoundRobin 1, Pinned 2.
    switch (static_cast<int>(s.named_consumer_strategy())) {
      case 0: strategy = "DispatchToSingle"; break;
      case 1: strategy = "RoundRobin"; break;
      case 2: strategy = "Pinned"; break;
      default: strategy = std::to_string(static_cast<int>(s.named_consumer_strategy())); break;
    }
  }
  if (strategy == "RoundRobin") {
    out->strategy = esdb::ConsumerStrategy::kRoundRobin;
  } else if (strategy == "DispatchToSingle") {
    out->strategy = esdb::ConsumerStrategy::kDispatchToSingle;
  } else {
    return esdb::Status::InvalidArgument("consumer_strategy '" + strategy +
                                         "' is not supported (RoundRobin or DispatchToSingle)");
  }

  if (s.max_retry_count() < 0) return esdb::Status::InvalidArgument("max_retry_count must not be negative");
  out->max_retry = s.max_retry_count();
  switch (s.message_timeout_case()) {
    case Settings::kMessageTimeoutMs: out->message_timeout_ms = s.message_timeout_ms(); break;
    case Settings::kMessageTimeoutTicks: out->message_timeout_ms = MillisFromTicks(s.message_timeout_ticks()); break;
    default: break;
  }
  switch (s.checkpoint_after_case()) {
    case Settings::kCheckpointAfterMs: out->checkpoint_after_ms = s.checkpoint_after_ms(); break;
    case Settings::kCheckpointAfterTicks: out->checkpoint_after_ms = MillisFromTicks(s.checkpoint_after_ticks()); break;
    default: break;
  }
  return esdb::Status::OK();
}

int64_t StartFromRevision(uint64_t revision) {
  // The deprecated field's "end" is UINT64_MAX.
  return revision >= static_cast<uint64_t>(INT64_MAX) ? esdb::kGroupStartFromEnd : static_cast<int64_t>(revision);
}

template <class StreamOptions>
int64_t StartFromStream(const StreamOptions& o) {
  switch (o.revision_option_case()) {
    case StreamOptions::kRevision: return StartFromRevision(o.revision());
    case StreamOptions::kEnd: return esdb::kGroupStartFromEnd;
    default: return 0;
  }
}

template <class AllOptions>
esdb::Result<int64_t> StartFromAll(const AllOptions& o) {
  switch (o.all_option_case()) {
    case AllOptions::kPosition:
      if (o.position().commit_position() > static_cast<uint64_t>(INT64_MAX)) {
        return esdb::Status::InvalidArgument("position.commit_position is out of range");
      }
      return static_cast<int64_t>(o.position().commit_position());
    case AllOptions::kEnd: return esdb::kGroupStartFromEnd;
    default: return int64_t{0};
  }
}

esdb::Status ApplyAllFilter(const pspb::CreateReq::AllOptions& o, esdb::AllFilter* out) {
  if (o.filter_option_case() != pspb::CreateReq::AllOptions::kFilter) return esdb::Status::OK();
  const auto& f = o.filter();
  if (f.has_event_type()) {
    return esdb::Status::InvalidArgument(
        "filter.event_type is not supported for persistent subscriptions to $all (esdb's groups filter event types by "
        "exact name only): filter on stream names (prefixes or a regex)");
  }
  if (f.has_stream_identifier()) {
    out->stream_prefixes.assign(f.stream_identifier().prefix().begin(), f.stream_identifier().prefix().end());
    out->stream_regex = AnywhereRegex(f.stream_identifier().regex());
  }
  return esdb::Status::OK();
}

template <class Req>
esdb::Result<GroupRequest> FromRequest(const Req& req) {
  using Options = typename Req::Options;
  const auto& o = req.options();
  GroupRequest r;
  r.group = o.group_name();
  if (r.group.empty()) return esdb::Status::InvalidArgument("group_name is empty");
  switch (o.stream_option_case()) {
    case Options::kStream:
      r.stream = o.stream().stream_identifier().stream_name();
      r.settings.start_from = StartFromStream(o.stream());
      break;
    case Options::kAll: {
      r.stream = esdb::kAllStreamId;
      auto from = StartFromAll(o.all());
      if (!from.ok()) return from.status();
      r.settings.start_from = *from;
      if constexpr (std::is_same_v<Req, pspb::CreateReq>) {
        if (auto st = ApplyAllFilter(o.all(), &r.settings.filter); !st.ok()) return st;
      }
      break;
    }
    default:
      // The deprecated form (@eventstore/db-client 6.2.1): the stream in
      // options.stream_identifier, where to start in settings.revision.
      if (!o.has_stream_identifier()) {
        return esdb::Status::InvalidArgument("options name no stream (stream, all or stream_identifier)");
      }
      r.stream = o.stream_identifier().stream_name();
      r.settings.start_from = StartFromRevision(o.settings().revision());
      break;
  }
  if (r.stream.empty()) return esdb::Status::InvalidArgument("stream_identifier is empty");
  if (auto st = ApplySettings(o.settings(), &r.settings); !st.ok()) return st;
  return r;
}

std::string StreamPositionText(const esdb::GroupInfo& info, int64_t at) {
  if (at < 0) return "";
  return info.stream_id == esdb::kAllStreamId ? AllPositionText(at) : std::to_string(at);
}

}  // namespace

std::string AllPositionText(int64_t position) {
  const std::string p = std::to_string(position);
  return "C:" + p + "/P:" + p;
}

esdb::Result<GroupRequest> FromCreate(const pspb::CreateReq& req) { return FromRequest(req); }
esdb::Result<GroupRequest> FromUpdate(const pspb::UpdateReq& req) { return FromRequest(req); }

void ToSubscriptionInfo(const esdb::GroupInfoV2& info, pspb::SubscriptionInfo* out) {
  const bool all = info.stream_id == esdb::kAllStreamId;
  const esdb::GroupSettings& s = info.settings;
  out->set_event_source(info.stream_id);
  out->set_group_name(info.group);
  out->set_status(info.status == "live" ? "Live" : "CatchingUp");
  for (const auto& c : info.consumers) {
    auto* ci = out->add_connections();
    ci->set_from("consumer-" + std::to_string(c.id));
    ci->set_connection_name(c.name);
    ci->set_total_items(static_cast<int64_t>(c.delivered));
    ci->set_in_flight_messages(static_cast<int32_t>(std::min<uint64_t>(c.in_flight, INT32_MAX)));
  }
  out->set_total_items(static_cast<int64_t>(info.delivered_total));
  out->set_last_checkpointed_event_position(StreamPositionText(info, info.checkpoint));
  out->set_last_known_event_position(StreamPositionText(info, info.next_to_read - 1));
  if (s.start_from == esdb::kGroupStartFromEnd) {
    out->set_start_from(all ? "C:-1/P:-1" : "-1");
  } else {
    out->set_start_from(all ? AllPositionText(s.start_from) : std::to_string(s.start_from));
  }
  out->set_message_timeout_milliseconds(static_cast<int32_t>(s.message_timeout_ms));
  out->set_max_retry_count(s.max_retry);
  out->set_live_buffer_size(kDefaultLiveBufferSize);
  out->set_buffer_size(kDefaultHistoryBufferSize);
  out->set_read_batch_size(kDefaultReadBatchSize);
  out->set_check_point_after_milliseconds(static_cast<int32_t>(s.checkpoint_after_ms));
  out->set_min_check_point_count(kDefaultMinCheckpointCount);
  out->set_max_check_point_count(kDefaultMaxCheckpointCount);
  out->set_read_buffer_count(static_cast<int32_t>(std::min<uint64_t>(info.ready, INT32_MAX)));
  out->set_total_in_flight_messages(static_cast<int32_t>(std::min<uint64_t>(info.in_flight, INT32_MAX)));
  out->set_outstanding_messages_count(static_cast<int32_t>(std::min<uint64_t>(info.in_flight, INT32_MAX)));
  out->set_named_consumer_strategy(s.strategy == esdb::ConsumerStrategy::kRoundRobin ? "RoundRobin"
                                                                                     : "DispatchToSingle");
  out->set_max_subscriber_count(static_cast<int32_t>(std::min<uint64_t>(info.max_subscriber_count, INT32_MAX)));
  out->set_parked_message_count(static_cast<int64_t>(info.parked));
}

}  // namespace esdb_grpc

#pragma GCC diagnostic pop

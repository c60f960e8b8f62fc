#include "esdb/group_settings.h"

#include <cstdint>
#include <string>
#include <vector>

#include "esdb/all_filter.h"

namespace esdb {
namespace {

Status Range(const char* field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return Status::InvalidArgument(std::string(field) + " must be in [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + "]");
  }
  return Status::OK();
}

Result<int64_t> Integer(const nlohmann::json& v, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return Status::InvalidArgument(field + " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return Status::InvalidArgument(field + " is out of range");
  }
  if (Status s = Range(field.c_str(), v.get<int64_t>(), lo, hi); !s.ok()) return s;
  return v.get<int64_t>();
}

Result<std::vector<std::string>> StringList(const nlohmann::json& v, const std::string& field) {
  if (!v.is_array()) return Status::InvalidArgument(field + " must be an array of strings");
  if (v.size() > kMaxFilterListEntries) {
    return Status::InvalidArgument(field + " has more than " + std::to_string(kMaxFilterListEntries) + " entries");
  }
  std::vector<std::string> out;
  for (const auto& s : v) {
    if (!s.is_string()) return Status::InvalidArgument(field + " must be an array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

Status FilterFromJson(const nlohmann::json& j, AllFilter* f) {
  if (!j.is_object()) return Status::InvalidArgument("filter must be an object");
  for (const auto& [key, value] : j.items()) {
    if (key == "event_types" || key == "stream_prefixes") {
      auto list = StringList(value, "filter." + key);
      if (!list.ok()) return list.status();
      (key == "event_types" ? f->event_types : f->stream_prefixes) = std::move(list.value());
    } else if (key == "stream_regex") {
      if (!value.is_string()) return Status::InvalidArgument("filter.stream_regex must be a string");
      f->stream_regex = value.get<std::string>();
    } else if (key == "include_system") {
      if (!value.is_boolean()) return Status::InvalidArgument("filter.include_system must be true or false");
      f->include_system = value.get<bool>();
    } else {
      return Status::InvalidArgument("unknown filter field '" + key +
                                     "' (allowed: event_types, stream_prefixes, stream_regex, include_system)");
    }
  }
  return Status::OK();
}

}  // namespace

Status ValidateGroupSettings(const GroupSettingsV2& s, std::string_view stream_id) {
  if (Status r = Range("start_from", s.start_from, kGroupStartFromEnd, INT64_MAX); !r.ok()) return r;
  if (s.strategy != ConsumerStrategy::kRoundRobin && s.strategy != ConsumerStrategy::kDispatchToSingle)
    return Status::InvalidArgument("strategy must be round_robin or dispatch_to_single");
  if (Status r = Range("max_retry", s.max_retry, 0, 1000); !r.ok()) return r;
  if (Status r = Range("message_timeout_ms", s.message_timeout_ms, 1, 3600000); !r.ok()) return r;
  if (s.max_in_flight < 1 || s.max_in_flight > 100000) return Status::InvalidArgument("max_in_flight must be in [1, 100000]");
  if (Status r = Range("checkpoint_after_ms", s.checkpoint_after_ms, 0, 3600000); !r.ok()) return r;
  if (s.max_subscriber_count > 100000) return Status::InvalidArgument("max_subscriber_count must be in [0, 100000]");
  if (Status r = ValidateAllFilter(s.filter); !r.ok()) return r;
  const AllFilter& f = s.filter;
  const bool has_filter = !f.event_types.empty() || !f.stream_prefixes.empty() || !f.stream_regex.empty() ||
                          f.include_system;
  if (has_filter && !stream_id.empty() && stream_id != kAllStreamId) {
    return Status::InvalidArgument("filter applies to $all groups only, not to stream '" + std::string(stream_id) +
                                   "'");
  }
  return Status::OK();
}

Result<GroupSettingsV2> GroupSettingsFromJson(const nlohmann::json& j) {
  GroupSettingsV2 s;
  if (j.is_null()) return s;
  if (!j.is_object()) return Status::InvalidArgument("settings must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key == "start_from") {
      if (value.is_string()) {
        if (value == "start") s.start_from = 0;
        else if (value == "end") s.start_from = kGroupStartFromEnd;
        else return Status::InvalidArgument("start_from must be a number, \"start\" or \"end\"");
      } else {
        auto v = Integer(value, key, kGroupStartFromEnd, INT64_MAX);
        if (!v.ok()) return v.status();
        s.start_from = *v;
      }
    } else if (key == "strategy") {
      if (value == "round_robin") s.strategy = ConsumerStrategy::kRoundRobin;
      else if (value == "dispatch_to_single") s.strategy = ConsumerStrategy::kDispatchToSingle;
      else return Status::InvalidArgument("strategy must be round_robin or dispatch_to_single");
    } else if (key == "max_retry") {
      auto v = Integer(value, key, 0, 1000);
      if (!v.ok()) return v.status();
      s.max_retry = static_cast<int>(*v);
    } else if (key == "message_timeout_ms") {
      auto v = Integer(value, key, 1, 3600000);
      if (!v.ok()) return v.status();
      s.message_timeout_ms = *v;
    } else if (key == "max_in_flight") {
      auto v = Integer(value, key, 1, 100000);
      if (!v.ok()) return v.status();
      s.max_in_flight = static_cast<size_t>(*v);
    } else if (key == "checkpoint_after_ms") {
      auto v = Integer(value, key, 0, 3600000);
      if (!v.ok()) return v.status();
      s.checkpoint_after_ms = *v;
    } else if (key == "max_subscriber_count") {
      auto v = Integer(value, key, 0, 100000);
      if (!v.ok()) return v.status();
      s.max_subscriber_count = static_cast<size_t>(*v);
    } else if (key == "filter") {
      if (Status f = FilterFromJson(value, &s.filter); !f.ok()) return f;
    } else {
      return Status::InvalidArgument("unknown setting '" + key +
                                     "' (allowed: start_from, strategy, max_retry, message_timeout_ms, "
                                     "max_in_flight, checkpoint_after_ms, max_subscriber_count, filter)");
    }
  }
  if (Status v = ValidateGroupSettings(s); !v.ok()) return v;
  return s;
}

nlohmann::json GroupSettingsToJson(const GroupSettingsV2& s) {
  return nlohmann::json{{"start_from", s.start_from},
                        {"strategy", ConsumerStrategyName(s.strategy)},
                        {"max_retry", s.max_retry},
                        {"message_timeout_ms", s.message_timeout_ms},
                        {"max_in_flight", s.max_in_flight},
                        {"checkpoint_after_ms", s.checkpoint_after_ms},
                        {"max_subscriber_count", s.max_subscriber_count},
                        {"filter",
                         {{"event_types", s.filter.event_types},
                          {"stream_prefixes", s.filter.stream_prefixes},
                          {"stream_regex", s.filter.stream_regex},
                          {"include_system", s.filter.include_system}}}};
}

}  // namespace esdb

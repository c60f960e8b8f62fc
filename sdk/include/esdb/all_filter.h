// The one implementation of esdb::AllFilter (event_store.h): validation and
// matching, shared by the store's $all reads, live $all subscriptions,
// persistent groups and the gateway's request checks, so every path accepts
// the same filters and selects the same events.
//
// stream_regex uses RE2 syntax (https://github.com/google/re2/wiki/Syntax,
// no back-references or look-around) and must match the whole stream id.
// RE2 matches in time linear in the stream id and never recurses per
// character, so a filter from an untrusted client cannot crash or stall the
// process; the pattern length and RE2's memory budget are capped below.
//
// Part of the esdb::filter library (sdk/src/all_filter.cc, links RE2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "esdb/event_store.h"
#include "esdb/status.h"

namespace esdb {

// Limits on a filter; beyond them Compile answers kInvalidArgument.
inline constexpr size_t kMaxStreamRegexBytes = 1024;      // stream_regex length
inline constexpr size_t kMaxFilterListEntries = 100;      // entries of event_types / stream_prefixes
inline constexpr size_t kMaxFilterEntryBytes = 1024;      // one event type or stream prefix
inline constexpr int64_t kStreamRegexMaxMem = 1 << 20;    // RE2 max_mem per compiled regex (bytes)

// A validated, compiled AllFilter. Cheap to copy (shares the compiled
// regex); immutable and safe to use from any number of threads at once.
// A default-constructed one matches every non-system stream and any type.
class CompiledAllFilter {
 public:
  CompiledAllFilter();

  // Checks and compiles `filter`. kInvalidArgument naming the field
  // ("stream_regex", "event_types", "stream_prefixes") when: stream_regex is
  // longer than kMaxStreamRegexBytes, is not valid RE2 syntax or needs more
  // than kStreamRegexMaxMem; a list has more than kMaxFilterListEntries
  // entries or an entry is empty or longer than kMaxFilterEntryBytes.
  // An empty stream_regex / list means "no condition on that". Never throws.
  static Result<CompiledAllFilter> Compile(const AllFilter& filter);

  // True when events of `stream_id` may pass: the system-stream rule
  // (include_system), stream_prefixes (any of) and stream_regex (whole id).
  bool MatchesStream(std::string_view stream_id) const;
  // True when `event_type` passes event_types (any of; empty = all).
  bool MatchesType(std::string_view event_type) const;
  // MatchesStream(e.stream_id) && MatchesType(e.event_type).
  bool Matches(const RecordedEvent& e) const;

  // The filter as given to Compile.
  const AllFilter& filter() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Compile(filter).status(): for callers that only check a filter (the
// gateway, before calling a service).
Status ValidateAllFilter(const AllFilter& filter);

}  // namespace esdb

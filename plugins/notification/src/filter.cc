// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex>
// (its NFA state moves) under -fsanitize=address; the code is std::regex's.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "filter.h"

#include <algorithm>

namespace esdb_notification {

esdb::Result<FilterMatcher> FilterMatcher::Make(const esdb::AllFilter& filter) {
  FilterMatcher m;
  m.filter_ = filter;
  for (const std::string& t : filter.event_types) {
    if (t.empty()) return esdb::Status::InvalidArgument("filter event_type must not be empty");
  }
  for (const std::string& p : filter.stream_prefixes) {
    if (p.empty()) return esdb::Status::InvalidArgument("filter stream_prefix must not be empty");
  }
  if (!filter.stream_regex.empty()) {
    try {
      m.regex_.emplace(filter.stream_regex, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      return esdb::Status::InvalidArgument("filter stream_regex '" + filter.stream_regex +
                                           "' is not a valid ECMAScript regex: " + e.what());
    }
  }
  return m;
}

bool FilterMatcher::Matches(const esdb::RecordedEvent& event) const {
  const std::string& stream = event.stream_id;
  if (!filter_.include_system && !stream.empty() && stream[0] == '$') return false;
  if (!filter_.event_types.empty() &&
      std::find(filter_.event_types.begin(), filter_.event_types.end(), event.event_type) ==
          filter_.event_types.end()) {
    return false;
  }
  if (!filter_.stream_prefixes.empty() &&
      std::none_of(filter_.stream_prefixes.begin(), filter_.stream_prefixes.end(),
                   [&](const std::string& p) { return stream.compare(0, p.size(), p) == 0; })) {
    return false;
  }
  if (regex_ && !std::regex_match(stream, *regex_)) return false;
  return true;
}

}  // namespace esdb_notification

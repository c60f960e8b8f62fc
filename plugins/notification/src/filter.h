// Validation and matching of esdb::AllFilter for live events, with the same
// meaning as the store's ReadAll filter.
#pragma once

#include <optional>
#include <regex>
#include <string>

#include "esdb/event_store.h"
#include "esdb/status.h"

namespace esdb_notification {

class FilterMatcher {
 public:
  // InvalidArgument naming the field when the filter is malformed.
  static esdb::Result<FilterMatcher> Make(const esdb::AllFilter& filter);

  bool Matches(const esdb::RecordedEvent& event) const;
  const esdb::AllFilter& filter() const { return filter_; }

 private:
  esdb::AllFilter filter_;
  std::optional<std::regex> regex_;
};

}  // namespace esdb_notification

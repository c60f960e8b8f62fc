#include "esdb/all_filter.h"

#include <algorithm>
#include <string>

#include <re2/re2.h>

namespace esdb {

struct CompiledAllFilter::Impl {
  AllFilter filter;
  std::unique_ptr<RE2> regex;  // null: no stream_regex
};

namespace {

Status CheckList(const std::vector<std::string>& list, const char* field) {
  if (list.size() > kMaxFilterListEntries) {
    return Status::InvalidArgument(std::string("filter ") + field + " has " + std::to_string(list.size()) +
                                   " entries; at most " + std::to_string(kMaxFilterListEntries) + " are allowed");
  }
  for (const std::string& entry : list) {
    if (entry.empty()) return Status::InvalidArgument(std::string("filter ") + field + " must not contain empty strings");
    if (entry.size() > kMaxFilterEntryBytes) {
      return Status::InvalidArgument(std::string("filter ") + field + " entry of " + std::to_string(entry.size()) +
                                     " bytes exceeds the limit of " + std::to_string(kMaxFilterEntryBytes));
    }
  }
  return Status::OK();
}

}  // namespace

CompiledAllFilter::CompiledAllFilter() : impl_(std::make_shared<const Impl>()) {}

Result<CompiledAllFilter> CompiledAllFilter::Compile(const AllFilter& filter) {
  if (Status s = CheckList(filter.event_types, "event_types"); !s.ok()) return s;
  if (Status s = CheckList(filter.stream_prefixes, "stream_prefixes"); !s.ok()) return s;
  auto impl = std::make_shared<Impl>();
  impl->filter = filter;
  const std::string& pattern = filter.stream_regex;
  if (!pattern.empty()) {
    if (pattern.size() > kMaxStreamRegexBytes) {
      return Status::InvalidArgument("filter stream_regex is " + std::to_string(pattern.size()) +
                                     " bytes; the limit is " + std::to_string(kMaxStreamRegexBytes));
    }
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kStreamRegexMaxMem);
    options.set_encoding(RE2::Options::EncodingUTF8);
    auto re = std::make_unique<RE2>(pattern, options);
    if (!re->ok()) {
      if (re->error_code() == RE2::ErrorPatternTooLarge) {
        return Status::InvalidArgument("filter stream_regex needs more than the " +
                                       std::to_string(kStreamRegexMaxMem) + "-byte regex memory budget");
      }
      return Status::InvalidArgument("filter stream_regex is not a valid RE2 regex: " + re->error());
    }
    impl->regex = std::move(re);
  }
  CompiledAllFilter compiled;
  compiled.impl_ = std::move(impl);
  return compiled;
}

bool CompiledAllFilter::MatchesStream(std::string_view stream_id) const {
  const AllFilter& f = impl_->filter;
  if (!f.include_system && !stream_id.empty() && stream_id[0] == '$') return false;
  if (!f.stream_prefixes.empty() &&
      std::none_of(f.stream_prefixes.begin(), f.stream_prefixes.end(),
                   [&](const std::string& p) { return stream_id.substr(0, p.size()) == p; })) {
    return false;
  }
  if (impl_->regex && !RE2::FullMatch(re2::StringPiece(stream_id.data(), stream_id.size()), *impl_->regex)) {
    return false;
  }
  return true;
}

bool CompiledAllFilter::MatchesType(std::string_view event_type) const {
  const std::vector<std::string>& types = impl_->filter.event_types;
  return types.empty() || std::find(types.begin(), types.end(), event_type) != types.end();
}

bool CompiledAllFilter::Matches(const RecordedEvent& e) const {
  return MatchesStream(e.stream_id) && MatchesType(e.event_type);
}

const AllFilter& CompiledAllFilter::filter() const { return impl_->filter; }

Status ValidateAllFilter(const AllFilter& filter) { return CompiledAllFilter::Compile(filter).status(); }

}  // namespace esdb

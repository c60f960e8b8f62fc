#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see stream_regex.h

#include "stream_regex.h"

#include <regex>

namespace esdb_store {

struct StreamRegex::Impl {
  std::regex re;
};

esdb::Result<StreamRegex> StreamRegex::Compile(const std::string& pattern) {
  try {
    auto impl = std::make_shared<Impl>();
    impl->re = std::regex(pattern, std::regex::ECMAScript);
    StreamRegex r;
    r.impl_ = std::move(impl);
    return r;
  } catch (const std::regex_error& e) {
    return esdb::Status::InvalidArgument("stream_regex '" + pattern + "' is not a valid ECMAScript regex: " + e.what());
  }
}

bool StreamRegex::Matches(std::string_view stream) const {
  return std::regex_match(stream.begin(), stream.end(), impl_->re);
}

}  // namespace esdb_store

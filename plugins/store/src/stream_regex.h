// A compiled ECMAScript regex over stream ids, kept in its own file: GCC 12
// with -fsanitize=address emits a false -Wmaybe-uninitialized inside
// std::regex (GCC bug 105562), silenced only here.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <esdb/status.h>

namespace esdb_store {

class StreamRegex {
 public:
  // kInvalidArgument naming the pattern when it does not compile.
  static esdb::Result<StreamRegex> Compile(const std::string& pattern);
  // True when the whole of `stream` matches.
  bool Matches(std::string_view stream) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace esdb_store

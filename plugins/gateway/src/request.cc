#include "http_types.h"

namespace esdb_gateway {

const std::string& Request::Header(const std::string& lower_name) const {
  static const std::string* const kEmpty = new std::string();
  auto it = headers.find(lower_name);
  return it == headers.end() ? *kEmpty : it->second;
}

std::optional<std::string> Request::Query(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Request::QueryAll(const std::string& name) const {
  std::vector<std::string> out;
  auto [first, last] = query.equal_range(name);
  for (auto it = first; it != last; ++it) out.push_back(it->second);
  return out;
}

const std::string& Request::Param(const std::string& name) const {
  static const std::string* const kEmpty = new std::string();
  auto it = params.find(name);
  return it == params.end() ? *kEmpty : it->second;
}

}  // namespace esdb_gateway

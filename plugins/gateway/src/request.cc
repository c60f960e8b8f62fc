#include "http_types.h"

#include <strings.h>

#include "json_util.h"

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

std::optional<Response> CheckBodyFraming(std::string_view transfer_encoding, size_t transfer_encoding_headers,
                                         bool has_content_length) {
  if (transfer_encoding_headers == 0) return std::nullopt;
  if (has_content_length) {
    return ErrorResponse(400, "bad_request",
                         "a request must not carry both Transfer-Encoding and Content-Length; send one");
  }
  std::string_view te = transfer_encoding;
  while (!te.empty() && (te.front() == ' ' || te.front() == '\t')) te.remove_prefix(1);
  while (!te.empty() && (te.back() == ' ' || te.back() == '\t')) te.remove_suffix(1);
  if (transfer_encoding_headers > 1 || te.size() != 7 || strncasecmp(te.data(), "chunked", 7) != 0) {
    return ErrorResponse(501, "not_implemented",
                         "unsupported Transfer-Encoding; the only coding accepted is exactly \"chunked\"",
                         {{"transfer_encoding", std::string(transfer_encoding.substr(0, 200))}});
  }
  return std::nullopt;
}

}  // namespace esdb_gateway

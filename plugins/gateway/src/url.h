// Request-target parsing: path segments and query parameters, percent-decoded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "esdb/status.h"

namespace esdb_gateway {

// Decodes %XX escapes (and '+' as space when `plus_is_space`). Fails on a
// malformed escape.
esdb::Result<std::string> PercentDecode(const std::string& in, bool plus_is_space);

// Encodes everything but unreserved characters (RFC 3986).
std::string PercentEncode(const std::string& in);

struct ParsedTarget {
  std::vector<std::string> segments;              // "/a/b%2Fc" -> {"a", "b/c"}; "/" -> {}
  std::multimap<std::string, std::string> query;  // "?x=1&x=2&y" -> {x:1, x:2, y:""}
};

// Parses an origin-form request target ("/path?query"). Fails on a target
// that does not start with '/', a bad escape, or an empty segment ("//").
esdb::Result<ParsedTarget> ParseTarget(const std::string& target);

// Parses a decimal integer in [lo, hi]; `what` names it in the error.
esdb::Result<int64_t> ParseInt(const std::string& s, int64_t lo, int64_t hi, const std::string& what);
// Parses a decimal unsigned integer (the whole uint64 range).
esdb::Result<uint64_t> ParseUint(const std::string& s, const std::string& what);

}  // namespace esdb_gateway

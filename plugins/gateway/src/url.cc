#include "url.h"

#include <charconv>

namespace esdb_gateway {

using esdb::Status;

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

esdb::Result<std::string> PercentDecode(const std::string& in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      const int hi = i + 1 < in.size() ? HexValue(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return Status::InvalidArgument("bad percent escape in '" + in + "'");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncode(const std::string& in) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

esdb::Result<ParsedTarget> ParseTarget(const std::string& target) {
  if (target.empty() || target[0] != '/') {
    return Status::InvalidArgument("request target must start with '/'");
  }
  ParsedTarget parsed;
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string raw = path.substr(start, end - start);
    if (raw.empty()) {
      // A trailing slash is tolerated ("/streams/"); an inner "//" is not.
      if (end != path.size()) return Status::InvalidArgument("empty path segment in '" + path + "'");
    } else {
      auto decoded = PercentDecode(raw, false);
      if (!decoded.ok()) return decoded.status();
      parsed.segments.push_back(std::move(decoded.value()));
    }
    start = end + 1;
  }
  if (q != std::string::npos) {
    const std::string query = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      if (amp == std::string::npos) amp = query.size();
      std::string pair = query.substr(pos, amp - pos);
      if (!pair.empty()) {
        const size_t eq = pair.find('=');
        auto key = PercentDecode(pair.substr(0, eq), true);
        if (!key.ok()) return key.status();
        std::string value;
        if (eq != std::string::npos) {
          auto v = PercentDecode(pair.substr(eq + 1), true);
          if (!v.ok()) return v.status();
          value = std::move(v.value());
        }
        parsed.query.emplace(std::move(key.value()), std::move(value));
      }
      pos = amp + 1;
    }
  }
  return parsed;
}

esdb::Result<int64_t> ParseInt(const std::string& s, int64_t lo, int64_t hi, const std::string& what) {
  int64_t v = 0;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (s.empty() || ec == std::errc::invalid_argument || ptr != last) {
    return Status::InvalidArgument(what + " must be an integer, got '" + s + "'");
  }
  if (ec == std::errc::result_out_of_range || v < lo || v > hi) {
    return Status::InvalidArgument(what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                   "], got '" + s + "'");
  }
  return v;
}

esdb::Result<uint64_t> ParseUint(const std::string& s, const std::string& what) {
  uint64_t v = 0;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), last, v);
  if (s.empty() || ec == std::errc::invalid_argument || ptr != last) {
    return Status::InvalidArgument(what + " must be a non-negative integer, got '" + s + "'");
  }
  if (ec == std::errc::result_out_of_range) {
    return Status::InvalidArgument(what + " is out of range: '" + s + "'");
  }
  return v;
}

}  // namespace esdb_gateway

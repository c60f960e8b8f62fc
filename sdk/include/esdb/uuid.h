// UUIDs as esdb reads and writes them: 36 characters, 8-4-4-4-12 hex digits
// separated by '-', either case on input (no braces, no "urn:uuid:"),
// lower case when stored and shown. The one parser of event ids for the
// store, the gateway and the notification service. Plain functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace esdb {

namespace uuid_detail {
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace uuid_detail

// The 16 bytes of `text`, or nullopt when it is not a UUID in the form above.
inline std::optional<std::string> ParseUuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::string raw;
  raw.reserve(16);
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    const int hi = uuid_detail::HexValue(text[i]);
    const int lo = uuid_detail::HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    raw.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return raw;
}

// Whether `text` is a UUID in the form above.
inline bool IsUuid(std::string_view text) { return ParseUuid(text).has_value(); }

// The lower-case text of 16 raw bytes (any other length: the bytes there are, grouped the same way).
inline std::string FormatUuid(std::string_view raw16) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < raw16.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const auto b = static_cast<uint8_t>(raw16[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace esdb

#include "trace_context.h"

#include <algorithm>
#include <random>

#include "json_util.h"

namespace esdb_gateway {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// -1 unless `c` is a lower-case hex digit.
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Copies `n` lower-case hex digits; false on anything else or all zeros.
bool ReadNonZeroHex(std::string_view in, char* out, size_t n) {
  bool nonzero = false;
  for (size_t i = 0; i < n; ++i) {
    if (HexValue(in[i]) < 0) return false;
    nonzero = nonzero || in[i] != '0';
    out[i] = in[i];
  }
  return nonzero;
}

void WriteHex(uint64_t v, char* out) {
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

}  // namespace

std::optional<Traceparent> ParseTraceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  constexpr size_t kLength = 55;
  if (v.size() < kLength) return std::nullopt;
  const int hi = HexValue(v[0]), lo = HexValue(v[1]);
  if (hi < 0 || lo < 0) return std::nullopt;
  const int version = hi * 16 + lo;
  if (version == 0xff) return std::nullopt;
  if (version == 0 && v.size() != kLength) return std::nullopt;
  if (v.size() > kLength && v[kLength] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  Traceparent tp;
  if (!ReadNonZeroHex(v.substr(3, 32), tp.trace_id.data(), 32)) return std::nullopt;
  if (!ReadNonZeroHex(v.substr(36, 16), tp.parent_id.data(), 16)) return std::nullopt;
  const int f_hi = HexValue(v[53]), f_lo = HexValue(v[54]);
  if (f_hi < 0 || f_lo < 0) return std::nullopt;
  tp.flags = static_cast<uint8_t>(f_hi * 16 + f_lo);
  return tp;
}

TraceIdGenerator::TraceIdGenerator() {
  std::random_device rd;
  state_.store((static_cast<uint64_t>(rd()) << 32) ^ rd());
}

uint64_t TraceIdGenerator::Next() {
  // splitmix64: a well-mixed output for each step of a Weyl sequence.
  uint64_t z = state_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z = z ^ (z >> 31);
  return z == 0 ? 1 : z;
}

void TraceIdGenerator::NewTraceId(std::array<char, 32>* out) {
  WriteHex(Next(), out->data());
  WriteHex(Next(), out->data() + 16);
}

void TraceIdGenerator::NewSpanId(std::array<char, 16>* out) { WriteHex(Next(), out->data()); }

std::string TraceContext::Header() const {
  std::string s;
  s.reserve(55);
  s += "00-";
  s.append(trace_id.data(), trace_id.size());
  s += '-';
  s.append(span_id.data(), span_id.size());
  s += '-';
  s += kHex[flags >> 4];
  s += kHex[flags & 0xf];
  return s;
}

TraceContext StartTrace(std::string_view header, size_t count, TraceIdGenerator& ids) {
  TraceContext t;
  std::optional<Traceparent> parsed;
  if (count == 1) parsed = ParseTraceparent(header);
  if (parsed) {
    t.trace_id = parsed->trace_id;
    t.parent_id = parsed->parent_id;
    // Version 00 defines sampled (bit 0); Level 2 adds random-trace-id (bit 1).
    t.flags = parsed->flags & 0x03;
    t.continued = true;
  } else {
    ids.NewTraceId(&t.trace_id);
  }
  ids.NewSpanId(&t.span_id);
  return t;
}

std::string MetadataWithTrace(std::string_view metadata, const std::string& traceparent) {
  // The value without the JSON whitespace around it (a caller may pass any
  // valid JSON text, e.g. "\n {..} ").
  std::string_view value = metadata.substr(std::min(SkipJsonWhitespace(metadata, 0), metadata.size()));
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\n' || value.back() == '\r')) {
    value.remove_suffix(1);
  }
  const bool absent = value.empty() || value == "null";
  if (traceparent.empty()) return absent ? std::string() : std::string(metadata);
  std::string out = "{\"";
  out += kTraceMetadataKey;
  out += "\":\"";
  out += traceparent;
  out += '"';
  if (absent) return out + "}";
  if (value.front() != '{') return std::string(metadata);
  bool has_members = false, has_trace = false;
  ForEachJsonMember(value, [&](const std::string& key, std::string_view) {
    has_members = true;
    has_trace = key == kTraceMetadataKey;
    return !has_trace;
  });
  if (has_trace) return std::string(metadata);
  // Splice the key in front, keeping the caller's text (key order carries
  // no meaning in JSON).
  if (has_members) out += ',';
  out.append(value.substr(1));
  return out;
}

}  // namespace esdb_gateway

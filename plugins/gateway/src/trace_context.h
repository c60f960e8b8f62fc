// W3C Trace Context (https://www.w3.org/TR/trace-context/) for the gateway.
//
// Every request gets a trace: the caller's when it sends a valid
// `traceparent` header (the gateway continues it with a span of its own),
// else a new one. An invalid header, or more than one, is ignored and a new
// trace starts, as the spec says. `tracestate` is not read (the gateway
// calls no one over HTTP, so it has no vendor state to pass on).
//
// The gateway's span as a traceparent ("00-<trace-id>-<span-id>-<flags>")
// is returned in the `traceresponse` header (Trace Context Level 2), stored
// under kTraceMetadataKey in the metadata of events appended with a valid
// traceparent, and the trace id / span id become the correlation_id /
// causation_id of the bus events the request causes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace esdb_gateway {

// The metadata key of an appended event's traceparent.
inline constexpr const char* kTraceMetadataKey = "$traceparent";

// What a valid traceparent header says.
struct Traceparent {
  std::array<char, 32> trace_id{};   // lower-case hex, not all zero
  std::array<char, 16> parent_id{};  // lower-case hex, not all zero: the caller's span
  uint8_t flags = 0;                 // trace-flags; bit 0 = sampled
};

// Parses a traceparent header value. Version 00 must be exactly
// "00-<32 hex>-<16 hex>-<2 hex>"; a higher version (not ff) may be longer
// if a '-' follows, and only its first four fields are read. Hex must be
// lower case; an all-zero trace id or parent id is invalid. nullopt when
// invalid.
std::optional<Traceparent> ParseTraceparent(std::string_view value);

// Random-looking ids without locks: splitmix64 over an atomic counter from
// a random seed. Never all zero. Thread-safe.
class TraceIdGenerator {
 public:
  TraceIdGenerator();  // seeded from std::random_device
  explicit TraceIdGenerator(uint64_t seed) : state_(seed) {}
  void NewTraceId(std::array<char, 32>* out);
  void NewSpanId(std::array<char, 16>* out);

 private:
  uint64_t Next();
  std::atomic<uint64_t> state_;
};

// The trace of one request. Plain value; fixed-size, so copies allocate nothing.
struct TraceContext {
  std::array<char, 32> trace_id{};   // zeros until started
  std::array<char, 16> span_id{};    // the gateway's span for this request
  std::array<char, 16> parent_id{};  // the caller's span; zeros for a new trace
  uint8_t flags = 0;                 // sampled bit from the caller; 0 for a new trace
  bool continued = false;            // true when a valid traceparent was received

  bool started() const { return trace_id[0] != 0; }
  std::string TraceId() const { return std::string(trace_id.data(), trace_id.size()); }
  std::string SpanId() const { return std::string(span_id.data(), span_id.size()); }
  // The gateway's span as a traceparent: "00-<trace id>-<span id>-<flags>".
  std::string Header() const;
};

// The request's trace: continues `header` when it is one valid traceparent
// (`count` = how many traceparent headers came), else starts a new one.
TraceContext StartTrace(std::string_view header, size_t count, TraceIdGenerator& ids);

// The metadata bytes to store for an event whose metadata is the client's
// JSON text `metadata` ("" when absent), with kTraceMetadataKey =
// `traceparent` merged in, the client's text otherwise kept byte for byte:
// absent or null metadata becomes {"$traceparent": ...}; an object gets the
// key unless it already has one (the caller's value wins); any other JSON
// value (array, string, number, bool) is stored unchanged, without a trace.
// An empty `traceparent` stores the metadata unchanged. "" for absent/null
// metadata without a trace.
std::string MetadataWithTrace(std::string_view metadata, const std::string& traceparent);

}  // namespace esdb_gateway

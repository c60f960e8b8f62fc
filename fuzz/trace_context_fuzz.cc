// W3C traceparent parsing (plugins/gateway/src/trace_context.cc).
// Invariants: a valid version-00 header is exactly what its fields print
// back to; StartTrace always yields a well-formed traceparent of its own;
// MetadataWithTrace keeps non-object metadata unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "json_util.h"
#include "trace_context.h"

using namespace esdb_gateway;

namespace {
bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TraceIdGenerator ids(42);
  FuzzedDataProvider in(data, size);
  const size_t count = in.ConsumeIntegralInRange<size_t>(0, 3);
  const std::string metadata_text = in.ConsumeRandomLengthString(256);
  const std::string header = in.ConsumeRemainingBytesAsString();

  auto tp = ParseTraceparent(header);
  if (tp) {
    FUZZ_CHECK(header.size() >= 55);
    if (header.compare(0, 2, "00") == 0) {
      char flags[3];
      std::snprintf(flags, sizeof flags, "%02x", tp->flags);
      const std::string again = "00-" + std::string(tp->trace_id.data(), 32) + "-" +
                                std::string(tp->parent_id.data(), 16) + "-" + flags;
      FUZZ_CHECK(again == header);
    }
  }

  const TraceContext trace = StartTrace(header, count, ids);
  FUZZ_CHECK(trace.started());
  FUZZ_CHECK(trace.continued == (tp.has_value() && count == 1));
  const std::string mine = trace.Header();
  FUZZ_CHECK(mine.size() == 55);
  for (size_t i = 0; i < mine.size(); ++i) {
    FUZZ_CHECK(i == 2 || i == 35 || i == 52 ? mine[i] == '-' : IsLowerHex(mine[i]));
  }
  FUZZ_CHECK(ParseTraceparent(mine).has_value());

  const nlohmann::json metadata = nlohmann::json::parse(metadata_text, nullptr, false);
  if (!metadata.is_discarded()) {
    // The client's text is kept byte for byte; only an object gains the key.
    const std::string stored = MetadataWithTrace(metadata_text, mine);
    if (!metadata.is_object() && !metadata.is_null()) FUZZ_CHECK(stored == metadata_text);
    if (metadata.is_object()) {
      const nlohmann::json back = nlohmann::json::parse(stored, nullptr, false);
      FUZZ_CHECK(back.is_object() && back.contains(kTraceMetadataKey) && back.size() == metadata.size() + (metadata.contains(kTraceMetadataKey) ? 0 : 1));
    }
  }
  (void)MetadataWithTrace("", mine);
  return 0;
}

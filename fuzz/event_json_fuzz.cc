// Event JSON (plugins/gateway/src/event_json.cc): an append body through
// ParseEvents, then what a read would send back (RecordedEventJson), and
// the ES-ExpectedVersion header. Invariants: a parsed event has a type, a
// UUID or no id, and JSON data/metadata that parse again; serializing it
// never throws; an expected version prints back to one that parses equal.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include "event_json.h"
#include "fuzz_check.h"
#include "json_util.h"

using namespace esdb_gateway;

namespace {

bool ParsesAsJson(const std::string& text) { return !nlohmann::json::parse(text, nullptr, false).is_discarded(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const size_t max_events = in.ConsumeIntegralInRange<size_t>(1, 100);
  const int64_t created_us = in.ConsumeIntegral<int64_t>();
  const bool traced = in.ConsumeBool();
  const std::string header = in.ConsumeRandomLengthString(32);
  const std::string body = in.ConsumeRemainingBytesAsString();

  auto expected = ParseExpectedVersion(header);
  if (expected.ok()) {
    auto again = ParseExpectedVersion(esdb::ToString(*expected));
    FUZZ_CHECK(again.ok() && again->kind == expected->kind && again->version == expected->version);
  }

  const std::string traceparent = traced ? "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" : "";
  auto events = ParseEvents(body, max_events, traceparent);
  if (!events.ok()) {
    FUZZ_CHECK(!events.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(!events->empty() && events->size() <= max_events);
  int64_t version = 0;
  for (const auto& e : *events) {
    FUZZ_CHECK(!e.event_type.empty());
    FUZZ_CHECK(e.event_id.empty() || IsUuid(e.event_id));
    if (IsJsonContentType(e.content_type)) FUZZ_CHECK(ParsesAsJson(e.data));
    FUZZ_CHECK(e.metadata.empty() || ParsesAsJson(e.metadata));
    if (traced && !e.metadata.empty()) FUZZ_CHECK(ParsesAsJson(e.metadata));

    esdb::RecordedEvent r;
    r.stream_id = "fuzz-stream";
    r.version = version++;
    r.event_id = e.event_id;
    r.event_type = e.event_type;
    r.content_type = e.content_type;
    r.data = e.data;
    r.metadata = e.metadata;
    r.created_us = created_us;
    const std::string out = RecordedEventJson(r);
    FUZZ_CHECK(ParsesAsJson(out));
  }
  return 0;
}

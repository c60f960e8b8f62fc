// libFuzzer target: bytes -> an esdb::AllFilter -> CompiledAllFilter::Compile
// -> matched against a few stream ids and event types. Must never crash,
// hang or leak; a refused filter must be kInvalidArgument.
//
// Input layout (text, so seeds are readable): the first line is
// stream_regex; each further line is "p:<prefix>", "t:<event type>",
// "s:<extra stream id to match>" or "system" (include_system = true).
// Links: esdb::filter (sdk/src/all_filter.cc, RE2).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "esdb/all_filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  esdb::AllFilter filter;
  std::vector<std::string> streams = {"", "$all", "$persistent-config", "user-1", "order-42",
                                      std::string(200, 'a'), std::string(199, 'a') + "b"};
  size_t pos = 0;
  bool first = true;
  while (pos <= in.size()) {
    size_t end = in.find('\n', pos);
    if (end == std::string_view::npos) end = in.size();
    const std::string_view line = in.substr(pos, end - pos);
    if (first) {
      filter.stream_regex = std::string(line);
      first = false;
    } else if (line.substr(0, 2) == "p:") {
      filter.stream_prefixes.emplace_back(line.substr(2));
    } else if (line.substr(0, 2) == "t:") {
      filter.event_types.emplace_back(line.substr(2));
    } else if (line.substr(0, 2) == "s:") {
      streams.emplace_back(line.substr(2));
    } else if (line == "system") {
      filter.include_system = true;
    }
    pos = end + 1;
  }
  esdb::Result<esdb::CompiledAllFilter> compiled = esdb::CompiledAllFilter::Compile(filter);
  if (!compiled.ok()) {
    if (compiled.status().code() != esdb::Code::kInvalidArgument) abort();
    return 0;
  }
  esdb::RecordedEvent event;
  event.event_type = filter.event_types.empty() ? "t" : filter.event_types.front();
  for (const std::string& stream : streams) {
    const bool stream_ok = compiled->MatchesStream(stream);
    event.stream_id = stream;
    // Matches is exactly MatchesStream && MatchesType.
    if (compiled->Matches(event) != (stream_ok && compiled->MatchesType(event.event_type))) abort();
    // A copy shares the compiled regex and answers the same.
    const esdb::CompiledAllFilter copy = *compiled;
    if (copy.MatchesStream(stream) != stream_ok) abort();
  }
  return 0;
}

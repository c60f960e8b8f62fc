// Request-target parsing (plugins/gateway/src/url.cc): ParseTarget,
// PercentDecode/PercentEncode and the integer parsers on arbitrary bytes.
// Invariants: decoding what was encoded gives the input back; a parsed
// target's segments are never empty; an integer that parses is in range.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_check.h"
#include "url.h"

using namespace esdb_gateway;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t lo = in.ConsumeIntegral<int64_t>();
  const int64_t hi = in.ConsumeIntegralInRange<int64_t>(lo, INT64_MAX);
  const std::string text = in.ConsumeRemainingBytesAsString();

  auto target = ParseTarget(text);
  if (target.ok()) {
    FUZZ_CHECK(!text.empty() && text[0] == '/');
    for (const auto& s : target->segments) FUZZ_CHECK(!s.empty());
  }
  for (bool plus : {false, true}) {
    auto decoded = PercentDecode(text, plus);
    if (decoded.ok()) FUZZ_CHECK(decoded->size() <= text.size());
  }
  const std::string encoded = PercentEncode(text);
  auto round = PercentDecode(encoded, true);
  FUZZ_CHECK(round.ok() && *round == text);

  auto i = ParseInt(text, lo, hi, "n");
  if (i.ok()) FUZZ_CHECK(*i >= lo && *i <= hi);
  auto u = ParseUint(text, "n");
  if (u.ok()) FUZZ_CHECK(std::to_string(*u).size() <= text.size());
  return 0;
}

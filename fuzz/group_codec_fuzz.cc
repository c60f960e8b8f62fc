// The cluster log's entry decoding (plugins/store/src/group_codec.cc,
// DecodeGroup) on arbitrary bytes, as if another node (a buggy or hostile
// one) had written them to the log: every node decodes every entry, so a
// crash or a runaway allocation here stops the whole cluster.
// Invariants: what decodes re-encodes to bytes that decode to the same
// requests and re-encode to the same bytes again (stable), and to the input
// itself when no request carries stream metadata (whose JSON has more than
// one spelling); the decoded requests never hold more events than the
// entry's bytes could encode (at least 33 bytes each).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "group_codec.h"

using namespace esdb_store;

namespace {

std::string Encode(const GroupRecord& g) {
  std::string out;
  EncodeGroupHeader(g.created_us, static_cast<uint32_t>(g.requests.size()), &out);
  for (const GroupRequest& q : g.requests) {
    switch (q.kind) {
      case GroupRequest::Kind::kAppend:
        EncodeGroupAppend(q.stream, q.expected, q.events, q.raw_ids, q.generated, &out);
        break;
      case GroupRequest::Kind::kDelete:
        EncodeGroupDelete(q.stream, q.expected, q.hard, &out);
        break;
      case GroupRequest::Kind::kSetMetadata:
        FUZZ_CHECK(q.metadata.has_value());
        EncodeGroupMetadata(q.stream, *q.metadata, &out);
        break;
      case GroupRequest::Kind::kLease:
        FUZZ_CHECK(q.lease.has_value());
        EncodeGroupLease(*q.lease, &out);
        break;
      case GroupRequest::Kind::kCheckpoint:
        FUZZ_CHECK(q.checkpoint.has_value() && q.checkpoint->hash.size() == 32);
        EncodeGroupCheckpoint(*q.checkpoint, &out);
        break;
      case GroupRequest::Kind::kScavenge:
        FUZZ_CHECK(q.scavenge.has_value());
        EncodeGroupScavenge(*q.scavenge, &out);
        break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view entry(reinterpret_cast<const char*>(data), size);
  auto decoded = DecodeGroup(entry);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == esdb::Code::kCorruption);
    return 0;
  }
  bool has_metadata = false;
  size_t events = 0;
  for (const GroupRequest& q : decoded->requests) {
    has_metadata = has_metadata || q.kind == GroupRequest::Kind::kSetMetadata;
    events += q.events.size();
    FUZZ_CHECK(q.raw_ids.size() == q.events.size() && q.generated.size() == q.events.size());
    for (const std::string& id : q.raw_ids) FUZZ_CHECK(id.size() == 16);
    for (const auto& e : q.events) FUZZ_CHECK(!e.event_type.empty());
    if (q.kind == GroupRequest::Kind::kScavenge) FUZZ_CHECK(decoded->requests.size() == 1);
  }
  FUZZ_CHECK(events * 33 <= size);
  const std::string again = Encode(*decoded);
  if (!has_metadata) FUZZ_CHECK(again == entry);
  auto redecoded = DecodeGroup(again);
  FUZZ_CHECK(redecoded.ok());
  FUZZ_CHECK(redecoded->requests.size() == decoded->requests.size());
  FUZZ_CHECK(Encode(*redecoded) == again);
  return 0;
}

// The store's record decoding (plugins/store/src/codec.cc) on arbitrary
// bytes, as if read back from a damaged database: the first byte picks the
// record kind. Invariants: a record that decodes re-encodes to the same
// bytes (events, heads, snapshots) or to one that decodes equal (metadata);
// a UUID that parses prints back to the same text in lower case.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "codec.h"
#include "fuzz_check.h"

using namespace esdb_store;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t kind = data[0] % 5;
  const std::string_view record(reinterpret_cast<const char*>(data) + 1, size - 1);

  switch (kind) {
    case 0: {
      esdb::RecordedEvent e;
      std::string_view stream;
      int64_t created = 0;
      const bool stream_ok = DecodeEventStream(record, &stream, &created).ok();
      if (!DecodeEvent(record, &e).ok()) break;
      FUZZ_CHECK(stream_ok && stream == e.stream_id && created == e.created_us);
      auto raw_id = ParseUuid(e.event_id);
      FUZZ_CHECK(raw_id.has_value() && raw_id->size() == 16);
      esdb::ProposedEvent p;
      p.event_id = e.event_id;
      p.event_type = e.event_type;
      p.content_type = e.content_type;
      p.data = e.data;
      p.metadata = e.metadata;
      FUZZ_CHECK(EncodeEvent(e.stream_id, e.version, e.created_us, *raw_id, p) == record);
      break;
    }
    case 1: {
      StreamHead h;
      if (!DecodeHead(record, &h).ok()) break;
      // Flag bits other than soft_deleted/tombstoned are dropped.
      std::string expected(record);
      expected[1] = static_cast<char>(expected[1] & 3);
      FUZZ_CHECK(EncodeHead(h) == expected);
      break;
    }
    case 2: {
      esdb::Snapshot s;
      if (!DecodeSnapshot(record, &s).ok()) break;
      FUZZ_CHECK(EncodeSnapshot(s) == record);
      break;
    }
    case 3: {
      esdb::StreamMetadata m;
      if (!DecodeMetadata(record, &m).ok()) break;
      esdb::StreamMetadata again;
      FUZZ_CHECK(DecodeMetadata(EncodeMetadata(m), &again).ok());
      FUZZ_CHECK(again.max_count == m.max_count && again.max_age_seconds == m.max_age_seconds &&
                 again.truncate_before == m.truncate_before && again.custom == m.custom);
      break;
    }
    case 4: {
      auto raw = ParseUuid(record);
      if (!raw) break;
      FUZZ_CHECK(raw->size() == 16);
      std::string lower(record);
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      FUZZ_CHECK(FormatUuid(*raw) == lower);
      break;
    }
  }
  return 0;
}

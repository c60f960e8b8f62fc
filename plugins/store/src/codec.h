// Byte encodings used by the store: big-endian integers (so keys sort by
// number), length-prefixed strings, UUIDs, and the records kept in storage.
// See key_layout.h for where each record lives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <esdb/event_store.h>
#include <esdb/status.h>
#include <esdb/uuid.h>

namespace esdb_store {

void PutFixed64BE(std::string* dst, uint64_t v);
uint64_t DecodeFixed64BE(const char* p);
void PutFixed32BE(std::string* dst, uint32_t v);
// A length-prefixed string (u32 length + bytes), as RecordReader::GetString reads it.
void PutString(std::string* dst, std::string_view s);

// Reads length-prefixed fields from a record; every Get* returns false on
// truncated input.
class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {}
  bool GetU8(uint8_t* v);
  bool GetU64(uint64_t* v);
  bool GetI64(int64_t* v);
  bool GetBytes(size_t n, std::string_view* v);
  bool GetString(std::string_view* v);  // u32 length + bytes
  bool done() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }  // bytes not read yet

 private:
  std::string_view in_;
};

// UUIDs: text form 8-4-4-4-12 hex (either case) <-> 16 raw bytes.
using esdb::FormatUuid;  // esdb/uuid.h
using esdb::ParseUuid;

// Event record (value of an 'e' key; the position is the key).
// [u8 1][i64 version][i64 created_us][str stream][16B id][str type]
// [str content_type][str metadata][str data]
std::string EncodeEvent(std::string_view stream, int64_t version, int64_t created_us, std::string_view raw_id,
                        const esdb::ProposedEvent& e);
// Decodes into `out` (position left as is). `stream_only` stops after the
// stream id (cheap filtering).
esdb::Status DecodeEvent(std::string_view record, esdb::RecordedEvent* out);
esdb::Status DecodeEventStream(std::string_view record, std::string_view* stream, int64_t* created_us);

// Stream head record (value of an 'h' key).
struct StreamHead {
  int64_t last_version = esdb::kNoStreamVersion;  // last event ever written, deleted ones included
  int64_t hidden_before = 0;                       // versions below are deleted (soft delete)
  bool soft_deleted = false;
  bool tombstoned = false;
};
std::string EncodeHead(const StreamHead& h);
esdb::Status DecodeHead(std::string_view record, StreamHead* h);

// Snapshot record (value of an 'n' key): [u8 1][i64 created_us][str content_type][str data]
std::string EncodeSnapshot(const esdb::Snapshot& s);
esdb::Status DecodeSnapshot(std::string_view record, esdb::Snapshot* s);

// Stream metadata (value of an 'm' key): JSON text
// {"max_count"?, "max_age"?, "truncate_before"?, "custom"}.
std::string EncodeMetadata(const esdb::StreamMetadata& m);
esdb::Status DecodeMetadata(std::string_view record, esdb::StreamMetadata* m);

}  // namespace esdb_store

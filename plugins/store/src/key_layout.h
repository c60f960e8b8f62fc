// Key layout of the store in esdb::Storage (LevelDB today). Every key starts
// with a one-byte tag; integers are 8-byte big-endian so keys sort
// numerically; stream ids never contain '\0' (validated), so '\0' ends a
// stream id inside a key and a stream's keys form one contiguous range.
//
//   "\x01format"                 -> "1"                 layout version, written at creation
//   "\x01next_position"          -> u64                 head of $all after the last commit group
//   'e' <position u64>           -> event record         $all in commit order (codec.h)
//   's' <stream> 0 <version u64> -> <position u64>       stream index
//   'h' <stream>                 -> head record          last version, soft-delete / tombstone state
//   'i' <event id, 16 raw bytes> -> <stream> 0 <version u64>   event-id index, for idempotency
//   'm' <stream>                 -> metadata JSON        max_count, max_age, truncate_before, custom
//   'n' <stream> 0 <version u64> -> snapshot record
//   "\x01log_applied"           -> log state            cluster mode: last log entry applied, running
//                                                       hash of the log, the leader lease (store_cluster.cc)
//   "\x01incarnation"           -> u64                 cluster mode: this node's starts (entry ids)
//   "\x01log_rebuild"           -> reason text         cluster mode: this node diverged from the log;
//                                                       its next open deletes every other key but
//                                                       "\x01incarnation" and re-applies the log
//   'g' <log entry id>           -> <sequence u64>       cluster mode: log entries applied, by id (dedup;
//                                                       deleted once entry_id_window entries old)
//
// One commit group is one atomic batch: its 'e', 's', 'i' and 'h' entries
// and "\x01next_position" (in cluster mode also "\x01log_applied" and its 'g'). So after a crash either the whole group is there
// or none of it: no append is ever half-visible. Scavenge deletes 'e' and
// 's' entries of hidden events but keeps their 'i' entries, so a resend of
// an old append stays idempotent forever.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace esdb_store::keys {

inline constexpr char kEvent = 'e';
inline constexpr char kStreamIndex = 's';
inline constexpr char kHead = 'h';
inline constexpr char kEventId = 'i';
inline constexpr char kMetadata = 'm';
inline constexpr char kSnapshot = 'n';
inline constexpr char kLogEntryId = 'g';

std::string Format();
std::string NextPosition();
std::string LogApplied();
std::string Incarnation();
std::string LogRebuild();
std::string LogEntryId(std::string_view id);
std::string Event(uint64_t position);
uint64_t EventPosition(std::string_view key);  // key must be an 'e' key
std::string StreamIndex(std::string_view stream, int64_t version);
std::string StreamIndexPrefix(std::string_view stream);  // 's' <stream> 0
int64_t StreamIndexVersion(std::string_view key);        // last 8 bytes
std::string Head(std::string_view stream);
std::string EventId(std::string_view raw_id);
std::string IdIndexValue(std::string_view stream, int64_t version);
bool ParseIdIndexValue(std::string_view value, std::string* stream, int64_t* version);
std::string Metadata(std::string_view stream);
std::string Snapshot(std::string_view stream, int64_t version);
std::string SnapshotPrefix(std::string_view stream);
// The first key after every key starting with `prefix`.
std::string PrefixEnd(std::string prefix);

}  // namespace esdb_store::keys

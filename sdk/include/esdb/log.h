// The replicated log service ("esdb.log/1"), provided by the log plugin:
// one totally ordered sequence of opaque entries that every node of a
// cluster reads in the same order. The store in cluster mode publishes its
// commit groups here and applies them from here (plugins/store/README.md,
// "Cluster mode").
//
// Entries are numbered from 1 by the log; numbers are contiguous (no
// deletes, no purges). An entry carries the id its writer gave it; the log
// drops an entry whose id it has already stored within its duplicates
// window and answers with the stored entry's sequence instead, so a writer
// may resend an append it got no answer for.
//
// Thread-safe: every method may be called from any thread concurrently.
// Methods never throw. Errors: kUnavailable (the log cannot be reached or
// has no leader right now; retry later), kInvalidArgument (a malformed
// call: an entry larger than MaxEntryBytes(), an empty id), kNotFound (no
// such entry), kCancelled (the provider is stopping).
//
// Lifetime: destroy every LogTail when the service is withdrawn; the
// provider's Stop() stops any tail still running (its handler is not called
// again) and then answers every call with kCancelled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

namespace esdb {

namespace services {
inline constexpr const char* kLog = "esdb.log/1";  // Log, by the log plugin
}  // namespace services

// One entry as stored in the log. Plain value.
struct LogEntry {
  uint64_t sequence = 0;  // its number in the log, from 1
  std::string id;         // the id its writer gave it; empty if it carries none
  std::string data;       // the bytes appended
};

// The log's answer to an append.
struct LogAppendResult {
  uint64_t sequence = 0;   // the entry's number
  bool duplicate = false;  // an entry with this id was stored earlier; `sequence` is that entry's
};

// Called exactly once per Append(), on one of the provider's threads. Must
// not block for long.
using LogAppendCallback = std::function<void(Result<LogAppendResult>)>;

// Called once per entry of a tail, in sequence order, one call at a time,
// on a thread of the provider. May block: the tail waits (and the log holds
// back further entries) until it returns.
using LogEntryHandler = std::function<void(LogEntry)>;

// A running tail (Log::Tail). Destroying it stops the delivery; the
// destructor returns once no handler call is running and none will start.
class LogTail {
 public:
  virtual ~LogTail() = default;
  // The sequence of the next entry this tail will deliver.
  virtual uint64_t NextSequence() const = 0;
};

class Log {
 public:
  static constexpr const char* kInterfaceId = "esdb.log/1";  // services.h
  virtual ~Log() = default;

  // Appends `data` as one entry with id `id` (non-empty, printable ASCII
  // without spaces or ':', at most 128 bytes; unique per writer: e.g.
  // "<node>-<incarnation>-<counter>"). `done` gets the entry's sequence once
  // the log has stored it on a quorum of its replicas (how durable that is
  // depends on the provider: README, "Cluster mode"). The provider
  // retries on its own while the log has no leader or cannot be reached,
  // for a bounded time; after that `done` gets kUnavailable, and the entry
  // may or may not be in the log (a later append with the same id, within
  // the duplicates window, answers which).
  virtual void Append(std::string id, std::string data, LogAppendCallback done) = 0;

  // Delivers every entry from sequence `from` (>= 1) on, in order, to
  // `on_entry`, and then each new entry as it is stored, until the tail is
  // destroyed. Never skips an entry: when the entries arriving do not follow
  // on from the last one delivered, the tail re-reads from the first one
  // missing. While the log cannot be reached, the tail waits and resumes.
  virtual Result<std::unique_ptr<LogTail>> Tail(uint64_t from, LogEntryHandler on_entry) = 0;

  // The entry numbered `sequence`; kNotFound when the log does not hold it.
  virtual Result<LogEntry> Get(uint64_t sequence) = 0;

  // The number of the last entry stored (0 for an empty log).
  virtual Result<uint64_t> LastSequence() = 0;

  // The largest `data` an entry may hold, in bytes (the id and the
  // provider's framing are accounted for).
  virtual size_t MaxEntryBytes() const = 0;

  // Counters and state, shown in the provider's health details:
  // {"connected", "servers", "stream", "appends", "append_retries", ...}.
  virtual nlohmann::json Stats() = 0;
};

}  // namespace esdb

// What the benchmarks share: raw LevelDB synced writes and in-process store
// appends, each driven by N concurrent writer threads for a fixed time.
// Not a test; no assertions.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>

#include <esdb/event_store.h>

namespace esdb_store {
class StoreCore;
}

namespace esdb_bench {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b);

struct Rate {
  double events_per_s = 0;
  double writes_per_s = 0;     // appends (raw: WriteBatches) per second
  double events_per_sync = 0;  // events per synced write; 0 when not known
  uint64_t events = 0;         // written during the measurement
};

// `writers` threads, each writing synced WriteBatches of `batch` values of
// `value_bytes` bytes to a new LevelDB in `dir` (16 MiB write buffer, like
// LevelDbStorage). With several writers LevelDB merges their batches into
// one synced write by itself, so this is LevelDB's own group commit.
// Exits the process on a LevelDB error.
Rate RawLevelDb(const std::filesystem::path& dir, int writers, int batch, size_t value_bytes, double seconds);

// `writers` threads, each appending `batch` copies of `event` per append
// (ExpectedVersion::Any) to its own stream "<stream_prefix>-<n>" through
// StoreCore::Append (enqueue, group commit, wait for the ack).
// events_per_sync comes from the store's group_commits counter, so nothing
// else should write meanwhile. Exits the process on a failed append.
Rate StoreAppends(esdb_store::StoreCore& store, int writers, int batch, const esdb::ProposedEvent& event,
                  double seconds, const std::string& stream_prefix);

// Peak resident set size of this process, MiB.
double PeakRssMiB();

}  // namespace esdb_bench

// store_bench: durable append and read throughput of the event store, next
// to raw LevelDB doing the same synced writes in the same run (only ratios
// carry across machines). Prints a table; not a test.
//
//   store_bench [--seconds S] [--dir DIR]
//
// Phases (events of 300 bytes): raw LevelDB synced WriteBatch of 1/10/100
// events; store appends with 1 writer; 64 concurrent writers of 1 event;
// 1 writer with batches of 10 and 100; raw LevelDB at the group size the 64
// writers reached; stream read forward; $all read forward; peak RSS.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "leveldb_storage.h"
#include "store_core.h"

namespace {

using esdb_bench::Clock;
using esdb_bench::Seconds;
constexpr size_t kEventBytes = 300;

struct Row {
  std::string phase;
  double events_per_s = 0;
  double ops_per_s = 0;  // appends (or batches) per second
  double avg_group = 0;  // events per synced write
  std::string note;
};

void Print(const Row& r) {
  std::printf("%-44s %12.0f %12.0f %10.1f  %s\n", r.phase.c_str(), r.events_per_s, r.ops_per_s, r.avg_group,
              r.note.c_str());
  std::fflush(stdout);
}

Row FromRate(const std::string& phase, const esdb_bench::Rate& r) {
  return Row{phase, r.events_per_s, r.writes_per_s, r.events_per_sync, ""};
}

Row RawLevelDb(const std::filesystem::path& dir, int batch, double seconds) {
  return FromRate("raw leveldb synced WriteBatch, batch " + std::to_string(batch),
                  esdb_bench::RawLevelDb(dir, 1, batch, kEventBytes, seconds));
}

esdb::ProposedEvent Event() {
  esdb::ProposedEvent e;
  e.event_type = "bench";
  e.data.assign(kEventBytes, 'd');
  return e;
}

std::vector<esdb::ProposedEvent> Events(int n) { return std::vector<esdb::ProposedEvent>(n, Event()); }

// `writers` threads each appending `batch` events per append to their own stream.
Row StoreAppends(esdb_store::StoreCore& store, int writers, int batch, double seconds, const std::string& phase) {
  return FromRate(phase, esdb_bench::StoreAppends(store, writers, batch, Event(), seconds, phase.substr(0, 12)));
}

Row ReadStream(esdb_store::StoreCore& store, const std::string& stream) {
  esdb::ReadStreamRequest r;
  r.stream_id = stream;
  r.count = 1000;
  uint64_t events = 0;
  const auto start = Clock::now();
  for (;;) {
    auto page = store.ReadStream(r);
    if (!page.ok()) {
      std::fprintf(stderr, "read: %s\n", page.status().ToString().c_str());
      std::exit(1);
    }
    events += page->events.size();
    r.from = page->next_version;
    if (page->end_of_stream) break;
  }
  const double t = Seconds(start, Clock::now());
  return Row{"store stream read forward (pages of 1000)", events / t, 0, 0, std::to_string(events) + " events"};
}

Row ReadAll(esdb_store::StoreCore& store) {
  esdb::ReadAllRequest r;
  r.count = 1000;
  uint64_t events = 0;
  const auto start = Clock::now();
  for (;;) {
    auto page = store.ReadAll(r);
    if (!page.ok()) {
      std::fprintf(stderr, "read all: %s\n", page.status().ToString().c_str());
      std::exit(1);
    }
    events += page->events.size();
    r.from = page->next_position;
    if (page->end_of_all) break;
  }
  const double t = Seconds(start, Clock::now());
  return Row{"store $all read forward (pages of 1000)", events / t, 0, 0, std::to_string(events) + " events"};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  std::filesystem::path base;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (a == "--dir") {
      base = argv[i + 1];
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--dir DIR]\n", argv[0]);
      return 2;
    }
  }
  bool remove_base = false;
  if (base.empty()) {
    char tmpl[] = "/tmp/esdb-store-bench-XXXXXX";
    base = mkdtemp(tmpl);
    remove_base = true;
  }
  std::printf("store_bench: events of %zu bytes, %.1f s per write phase, dir %s, %u hardware threads\n", kEventBytes,
              seconds, base.c_str(), std::thread::hardware_concurrency());
  std::printf("%-44s %12s %12s %10s  %s\n", "phase", "events/s", "writes/s", "ev/sync", "note");

  std::vector<Row> raw;
  for (int b : {1, 10, 100}) {
    raw.push_back(RawLevelDb(base / ("raw-" + std::to_string(b)), b, seconds));
    Print(raw.back());
  }

  auto storage = esdb_persistence::LevelDbStorage::Open(base / "store", {});
  if (!storage.ok()) return 1;
  auto store_or = esdb_store::StoreCore::Open(*storage, {}, {});
  if (!store_or.ok()) return 1;
  auto& store = **store_or;

  Row one = StoreAppends(store, 1, 1, seconds, "store append, 1 writer x 1 event");
  Print(one);
  Row many = StoreAppends(store, 64, 1, seconds * 1.5, "store append, 64 writers x 1 event");
  Print(many);
  Row b10 = StoreAppends(store, 1, 10, seconds, "store append, 1 writer x batch 10");
  Print(b10);
  Row b100 = StoreAppends(store, 1, 100, seconds, "store append, 1 writer x batch 100");
  Print(b100);
  const int reached = std::max(1, static_cast<int>(many.avg_group + 0.5));
  Row raw_reached = RawLevelDb(base / "raw-reached", reached, seconds);
  raw_reached.note = "baseline at the 64-writer group size";
  Print(raw_reached);

  // A stream of 100k events for the read phases (appended in batches of 1000).
  for (int i = 0; i < 100; ++i) {
    auto r = store.Append("read-stream", esdb::ExpectedVersion::Any(), Events(1000));
    if (!r.ok()) return 1;
  }
  Print(ReadStream(store, "read-stream"));
  Print(ReadAll(store));

  std::printf("peak RSS: %.1f MiB\n", esdb_bench::PeakRssMiB());
  std::printf("64 writers / 1 writer: %.1fx (target >= 10x)\n", many.events_per_s / one.events_per_s);
  std::printf("64 writers / raw leveldb at batch %d: %.0f%% (target >= 50%%)\n", reached,
              100.0 * many.events_per_s / raw_reached.events_per_s);
  store.Close();
  (void)(*storage)->Close(std::chrono::seconds(10));
  if (remove_base) std::filesystem::remove_all(base);
  return 0;
}

#include "bench_support.h"

#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include "store_core.h"

namespace esdb_bench {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

namespace {

// Runs `body(thread_index, stop)` on `threads` threads for `seconds`;
// returns the elapsed wall time.
template <typename Body>
double RunFor(int threads, double seconds, Body body) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { body(t, stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  return Seconds(start, Clock::now());
}

}  // namespace

Rate RawLevelDb(const std::filesystem::path& dir, int writers, int batch, size_t value_bytes, double seconds) {
  leveldb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = 16u << 20;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(o, dir.string(), &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "raw LevelDB open: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  std::unique_ptr<leveldb::DB> db(raw);
  std::atomic<uint64_t> events{0}, writes{0};
  const double t = RunFor(writers, seconds, [&](int w, const std::atomic<bool>& stop) {
    const std::string value(value_bytes, 'v');
    leveldb::WriteOptions wo;
    wo.sync = true;
    uint64_t key = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      leveldb::WriteBatch wb;
      for (int i = 0; i < batch; ++i) {
        char k[32];
        std::snprintf(k, sizeof k, "e%04d-%014llu", w, static_cast<unsigned long long>(key++));
        wb.Put(k, value);
      }
      leveldb::Status ws = db->Write(wo, &wb);
      if (!ws.ok()) {
        std::fprintf(stderr, "raw LevelDB write: %s\n", ws.ToString().c_str());
        std::exit(1);
      }
      writes.fetch_add(1, std::memory_order_relaxed);
      events.fetch_add(batch, std::memory_order_relaxed);
    }
  });
  Rate r;
  r.events_per_s = events.load() / t;
  r.writes_per_s = writes.load() / t;
  r.events_per_sync = writers == 1 ? batch : 0;
  r.events = events.load();
  return r;
}

Rate StoreAppends(esdb_store::StoreCore& store, int writers, int batch, const esdb::ProposedEvent& event,
                  double seconds, const std::string& stream_prefix) {
  auto group_commits = [&] { return store.Stats()["group_commits"].get<uint64_t>(); };
  std::atomic<uint64_t> appends{0};
  const uint64_t groups_before = group_commits();
  const double t = RunFor(writers, seconds, [&](int w, const std::atomic<bool>& stop) {
    const std::string stream = stream_prefix + "-" + std::to_string(w);
    const std::vector<esdb::ProposedEvent> proto(batch, event);
    while (!stop.load(std::memory_order_relaxed)) {
      auto r = store.Append(stream, esdb::ExpectedVersion::Any(), proto);
      if (!r.ok()) {
        std::fprintf(stderr, "store append: %s\n", r.status().ToString().c_str());
        std::exit(1);
      }
      appends.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const uint64_t groups = group_commits() - groups_before;
  const double events = static_cast<double>(appends.load()) * batch;
  Rate r;
  r.events_per_s = events / t;
  r.writes_per_s = appends.load() / t;
  r.events_per_sync = groups ? events / groups : 0;
  r.events = static_cast<uint64_t>(events);
  return r;
}

double PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

}  // namespace esdb_bench

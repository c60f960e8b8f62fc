// store_crash_helper DIR WRITERS: opens the store on DIR and appends from
// WRITERS threads until killed. After each acknowledged append it prints one
// line per event, flushed:
//   ack <stream> <version> <event id> <fnv1a64 of type|data|metadata> <append id> <count>
// Every event's metadata names its append ("<append id>/<count>"), so a
// checker can tell a half-visible append.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "leveldb_storage.h"
#include "store_core.h"

namespace {

uint64_t Fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR WRITERS\n", argv[0]);
    return 2;
  }
  auto storage = esdb_persistence::LevelDbStorage::Open(argv[1], {});
  if (!storage.ok()) {
    std::fprintf(stderr, "open: %s\n", storage.status().ToString().c_str());
    return 1;
  }
  auto store = esdb_store::StoreCore::Open(*storage, {}, {});
  if (!store.ok()) {
    std::fprintf(stderr, "recover: %s\n", store.status().ToString().c_str());
    return 1;
  }
  const int writers = std::atoi(argv[2]);
  std::mutex out_mu;
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(w) << 32));
      for (uint64_t seq = 0;; ++seq) {
        const int n = 1 + static_cast<int>(rng() % 4);
        char append_id[64];
        std::snprintf(append_id, sizeof append_id, "%016" PRIx64 "%016" PRIx64, rng(), rng());
        const std::string stream = "crash-" + std::to_string(rng() % 8);
        std::vector<esdb::ProposedEvent> events;
        for (int k = 0; k < n; ++k) {
          esdb::ProposedEvent e;
          char id[40];
          const uint64_t a = rng(), b = rng();
          std::snprintf(id, sizeof id, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64,
                        a >> 32, (a >> 16) & 0xffff, a & 0xfff, b >> 52, b & uint64_t{0xffffffffffff});
          e.event_id = id;
          e.event_type = "crash-test";
          e.data.resize(10 + rng() % 3000);
          for (auto& c : e.data) c = static_cast<char>(rng());
          e.metadata = std::string(append_id) + "/" + std::to_string(n);
          events.push_back(std::move(e));
        }
        auto r = (*store)->Append(stream, esdb::ExpectedVersion::Any(), events);
        if (!r.ok()) {
          std::fprintf(stderr, "append: %s\n", r.status().ToString().c_str());
          std::_Exit(1);
        }
        std::string lines;
        for (int k = 0; k < n; ++k) {
          const auto& e = events[k];
          const uint64_t h = Fnv1a(e.metadata, Fnv1a(e.data, Fnv1a(e.event_type)));
          char line[256];
          std::snprintf(line, sizeof line, "ack %s %" PRId64 " %s %016" PRIx64 " %s %d\n", stream.c_str(),
                        r->next_expected_version - n + 1 + k, e.event_id.c_str(), h, append_id, n);
          lines += line;
        }
        std::lock_guard<std::mutex> lock(out_mu);
        std::fwrite(lines.data(), 1, lines.size(), stdout);
        std::fflush(stdout);
      }
    });
  }
  for (auto& t : threads) t.join();
  return 0;
}

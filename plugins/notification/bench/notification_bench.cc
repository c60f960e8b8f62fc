// In-process fan-out benchmark: a real store (LevelDB in a temp dir) feeding
// the subscription service; N live $all subscribers; W writer threads append
// one event at a time for a fixed duration. Prints append rate, delivered
// events/s over all subscribers, and delivery latency (append acked ->
// subscriber handler) p50/p99.
//
// Usage: notification_bench [seconds=2] [sync=1]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "leveldb_storage.h"
#include "store_core.h"
#include "subscription_service.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

void RunCase(int subscribers, int writers, double seconds, bool sync) {
  const auto dir = std::filesystem::temp_directory_path() / ("esdb-notification-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto logger = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  auto storage = esdb_persistence::LevelDbStorage::Open(dir, esdb_persistence::LevelDbOptions{});
  if (!storage.ok()) {
    std::fprintf(stderr, "open: %s\n", storage.status().ToString().c_str());
    return;
  }
  std::mutex target_mu;
  std::shared_ptr<esdb_notification::SubscriptionService> target;
  esdb_store::StoreHooks hooks;
  hooks.publish = [&](esdb::Event e) {
    auto ev = std::make_shared<const esdb::Event>(std::move(e));
    std::shared_ptr<esdb_notification::SubscriptionService> t;
    {
      std::lock_guard<std::mutex> lock(target_mu);
      t = target;
    }
    if (t) t->OnStoreEvent(ev);
  };
  esdb_store::StoreOptions so;
  so.sync = sync;
  auto store = esdb_store::StoreCore::Open(storage.value(), so, hooks).value();

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&] { io.run(); });
  auto svc = std::make_shared<esdb_notification::SubscriptionService>(io, store, logger);
  (void)svc->Start();
  {
    std::lock_guard<std::mutex> lock(target_mu);
    target = svc;
  }

  // Ack time per position, written by writers, read by subscribers.
  std::mutex acks_mu;
  std::unordered_map<uint64_t, int64_t> acked_at;
  std::mutex lat_mu;
  std::vector<int64_t> latencies;
  std::atomic<uint64_t> delivered{0};
  std::vector<esdb::Subscription> subs;
  for (int s = 0; s < subscribers; ++s) {
    esdb::AllSubscriptionRequest req;
    req.from_position = esdb::kSubscribeFromEndPosition;
    req.limits.max_buffered_events = 1000000;
    esdb::SubscriptionHandlers h;
    const bool measure = s == 0;  // latency from one subscriber
    h.on_events = [&, measure](const std::vector<esdb::SharedEvent>& batch) {
      delivered += batch.size();
      if (!measure) return;
      const int64_t now = NowNs();
      std::lock_guard<std::mutex> lock(acks_mu);
      for (auto& e : batch) {
        auto it = acked_at.find(e->position);
        if (it != acked_at.end()) {
          std::lock_guard<std::mutex> l2(lat_mu);
          latencies.push_back(std::max<int64_t>(0, now - it->second));
        }
      }
    };
    h.on_dropped = [](const esdb::Status& st) { std::fprintf(stderr, "dropped: %s\n", st.ToString().c_str()); };
    subs.push_back(std::move(svc->SubscribeToAll(req, std::move(h)).value()));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all live

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> appended{0};
  std::vector<std::thread> ws;
  const auto start = Clock::now();
  for (int w = 0; w < writers; ++w) {
    ws.emplace_back([&, w] {
      while (!stop) {
        std::vector<esdb::ProposedEvent> events(1);
        events[0].event_type = "bench";
        events[0].data = std::string(100, 'x');
        auto r = store->Append("bench-" + std::to_string(w), esdb::ExpectedVersion::Any(), std::move(events));
        const int64_t now = NowNs();
        if (!r.ok()) continue;
        {
          std::lock_guard<std::mutex> lock(acks_mu);
          acked_at[r->position] = now;
        }
        ++appended;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ws) t.join();
  const uint64_t want = appended.load() * static_cast<uint64_t>(subscribers);
  const auto wait_end = Clock::now() + std::chrono::seconds(10);
  while (delivered.load() < want && Clock::now() < wait_end) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<int64_t> lat;
  {
    std::lock_guard<std::mutex> lock(lat_mu);
    lat = latencies;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))] / 1e6;
  };
  std::printf("subscribers=%-3d writers=%d sync=%d appended=%llu (%.0f/s) delivered=%llu/%llu (%.0f/s) "
              "latency_ms p50=%.3f p99=%.3f max=%.3f\n",
              subscribers, writers, sync ? 1 : 0, static_cast<unsigned long long>(appended.load()),
              appended.load() / seconds, static_cast<unsigned long long>(delivered.load()),
              static_cast<unsigned long long>(want), delivered.load() / elapsed, pct(0.5), pct(0.99),
              lat.empty() ? 0.0 : lat.back() / 1e6);
  subs.clear();
  {
    std::lock_guard<std::mutex> lock(target_mu);
    target.reset();
  }
  svc->Stop(esdb::Status::Cancelled("bench done"));
  svc.reset();
  store->Close();
  store.reset();
  work.reset();
  for (auto& t : io_threads) t.join();
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const bool sync = argc > 2 ? std::atoi(argv[2]) != 0 : true;
  for (int subs : {1, 16, 64}) RunCase(subs, 16, seconds, sync);
  return 0;
}

// Concurrency: group commit under many writers, one stream and many streams.
#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "test_util.h"

using namespace esdb_store_test;
using esdb::ExpectedVersion;

TEST_CASE("16 threads appending to one stream with exact expected versions: each version won once, no gaps") {
  StoreFixture f;
  auto& s = *f.store;
  constexpr int kThreads = 16;
  constexpr int kPerThread = 15;
  std::atomic<int> conflicts{0};
  std::vector<std::vector<int64_t>> won(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread;) {
        auto v = s.StreamVersion("contended");
        REQUIRE(v.ok());
        const std::string tag = std::to_string(t) + ":" + std::to_string(i);
        auto r = s.Append("contended", ExpectedVersion::Exact(*v), {Ev("tick", tag)});
        if (r.ok()) {
          CHECK(r->next_expected_version == *v + 1);
          won[t].push_back(r->next_expected_version);
          ++i;
        } else {
          REQUIRE(r.status().code() == esdb::Code::kWrongExpectedVersion);
          REQUIRE(r.status().detail().has_value());
          CHECK(*r.status().detail() > *v);  // someone else got there first
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> versions;
  for (const auto& w : won) versions.insert(w.begin(), w.end());
  CHECK(versions.size() == kThreads * kPerThread);  // each version won exactly once
  CHECK(*versions.begin() == 0);
  CHECK(*versions.rbegin() == kThreads * kPerThread - 1);

  esdb::ReadStreamRequest r;
  r.stream_id = "contended";
  r.count = 10000;
  auto read = s.ReadStream(r);
  REQUIRE(read.ok());
  REQUIRE(read->events.size() == kThreads * kPerThread);
  std::set<std::string> tags;
  for (size_t i = 0; i < read->events.size(); ++i) {
    CHECK(read->events[i].version == static_cast<int64_t>(i));
    tags.insert(read->events[i].data);
  }
  CHECK(tags.size() == kThreads * kPerThread);  // no duplicate, no loss
  // Each thread's tags appear in its own order.
  for (int t = 0; t < kThreads; ++t) {
    int64_t last = -1;
    for (int64_t v : won[t]) {
      CHECK(v > last);
      last = v;
    }
  }
  INFO("conflicts: " << conflicts.load());
  auto stats = s.Stats();
  CHECK(stats["appends"] == kThreads * kPerThread);
}

TEST_CASE("many writers on many streams: $all is gap-free in position order and matches every ack") {
  StoreFixture f;
  auto& s = *f.store;
  constexpr int kThreads = 24;
  constexpr int kAppends = 25;
  struct Ack {
    std::string stream;
    int64_t first_version;
    uint64_t first_position;
    std::vector<std::string> ids;
    std::vector<std::string> data;
  };
  std::mutex mu;
  std::vector<Ack> acks;
  std::vector<std::thread> threads;
  std::atomic<int> next_id{1};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        const std::string stream = "stream-" + std::to_string((t * 7 + i) % 40);
        std::vector<esdb::ProposedEvent> events;
        Ack ack;
        ack.stream = stream;
        const int n = 1 + (t + i) % 3;
        for (int k = 0; k < n; ++k) {
          const std::string id = Uuid(next_id++);
          const std::string data = "t" + std::to_string(t) + "-a" + std::to_string(i) + "-e" + std::to_string(k);
          events.push_back(Ev("e", data, id));
          ack.ids.push_back(id);
          ack.data.push_back(data);
        }
        auto r = s.Append(stream, ExpectedVersion::Any(), events);
        REQUIRE(r.ok());
        ack.first_version = r->next_expected_version - n + 1;
        ack.first_position = r->first_position;
        CHECK(r->position == r->first_position + n - 1);  // one append's positions are contiguous
        std::lock_guard<std::mutex> lock(mu);
        acks.push_back(std::move(ack));
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<esdb::RecordedEvent> all;
  esdb::ReadAllRequest r;
  r.count = 500;
  for (;;) {
    auto page = s.ReadAll(r);
    REQUIRE(page.ok());
    for (auto& e : page->events) all.push_back(std::move(e));
    r.from = page->next_position;
    if (page->end_of_all) break;
  }
  size_t total = 0;
  for (const auto& a : acks) total += a.ids.size();
  REQUIRE(all.size() == total);
  REQUIRE(s.NextPosition() == total);
  for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i);  // gap-free, in order
  for (const auto& a : acks) {
    for (size_t k = 0; k < a.ids.size(); ++k) {
      const auto& e = all[a.first_position + k];
      CHECK(e.stream_id == a.stream);
      CHECK(e.version == a.first_version + static_cast<int64_t>(k));
      CHECK(e.event_id == a.ids[k]);
      CHECK(e.data == a.data[k]);
    }
  }
  // Per stream: versions 0..n-1 in position order.
  std::map<std::string, int64_t> next_version;
  for (const auto& e : all) CHECK(e.version == next_version[e.stream_id]++);
  // Group commit happened: fewer groups than appends.
  auto stats = s.Stats();
  INFO(stats.dump());
  CHECK(stats["group_commits"].get<uint64_t>() <= static_cast<uint64_t>(kThreads * kAppends));
  // The bus saw every event once, one message per group. A group is
  // published after its appends are acknowledged, so the last one may still
  // be on its way when the writers return: wait for it (bounded).
  uint64_t published = 0;
  for (int attempt = 0; attempt < 500; ++attempt) {
    published = 0;
    for (const auto& e : f.Published()) {
      if (e.type == "events_appended") published += e.data["count"].get<uint64_t>();
    }
    if (published >= total) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(published == total);
}

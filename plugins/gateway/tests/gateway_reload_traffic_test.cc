// Hot reload under traffic, in a real esdb-host: appends, reads and SSE
// subscriptions run continuously over HTTP while the store (which carries
// every one of those requests; reload_strategy stop_first) is reloaded 100
// times through POST /admin/plugins/store/reload?wait=true.
//
// What must hold: no crash; no failed request except 503 with Retry-After
// while the store (or, for SSE, the notification service that depends on
// it) is switching builds, after which a retry succeeds (appends are retried
// with the same event ids, so a retry can never write twice); SSE clients
// dropped by the switch resume with Last-Event-ID and see every
// acknowledged event once, in order; after each reload the old library is
// unmapped (/proc/<pid>/maps).
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "admin_host.h"
#include "builtin_host.h"
#include "http_client.h"

using namespace gwtest;
using nlohmann::json;

namespace {

constexpr int kReloads = 100;
constexpr auto kPauseBetweenReloads = std::chrono::milliseconds(20);
constexpr auto kRetryDelay = std::chrono::milliseconds(5);  // clients may retry sooner than Retry-After

// One keep-alive connection; reconnects when the server closed it (it does
// after every 5xx).
class Conn {
 public:
  explicit Conn(uint16_t port) : port_(port), socket_(io_) {}

  // Status 0: a transport error on a fresh connection (counted as a failure).
  HttpResult Call(const std::string& method, const std::string& target, const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {}) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = socket_.is_open();
      beast::error_code ec;
      if (!reused) {
        socket_.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
        if (ec) return {};
        SetTimeouts(socket_, 20);
        buffer_.clear();
      }
      http::write(socket_, MakeRequest(method, target, body, headers), ec);
      http::response_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      if (!ec) http::read(socket_, buffer_, parser, ec);
      if (ec) {
        Close();
        if (reused) continue;  // the server had closed the idle connection: one retry on a new one
        return {};
      }
      HttpResult r = ToResult(parser.get());
      if (!parser.get().keep_alive()) Close();
      return r;
    }
    return {};
  }

 private:
  void Close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }
  uint16_t port_;
  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string Uuid(std::mt19937_64& rng) {
  const uint64_t a = rng(), b = rng();
  char out[37];
  std::snprintf(out, sizeof out, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFF),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3FFF)),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFull));
  return out;
}

// What the traffic saw. Thread-safe.
struct Tally {
  std::atomic<uint64_t> requests{0};       // HTTP requests and SSE (re)connections
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> unavailable{0};    // 503 with Retry-After, retried
  std::atomic<uint64_t> sse_resumes{0};    // SSE streams ended by a switch, resumed with Last-Event-ID
  std::mutex mu;
  std::vector<std::string> failures;       // anything else
  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (failures.size() < 50) failures.push_back(what);
  }
  // True for 2xx; counts a 503 with Retry-After; records anything else.
  bool Check(const HttpResult& r, const std::string& what, int want) {
    ++requests;
    if (r.status == want) {
      ++ok;
      return true;
    }
    if (r.status == 503 && r.headers.count("retry-after")) {
      ++unavailable;
      return false;
    }
    Fail(what + ": HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300));
    return false;
  }
};

// Appends batches of 1-3 events to `stream` until `stop`; records the
// positions of every acknowledged event.
void Appender(uint16_t port, const std::string& stream, int seed, const std::atomic<bool>& stop, Tally& tally,
              std::mutex& acked_mu, std::set<uint64_t>& acked, int64_t& events) {
  Conn conn(port);
  std::mt19937_64 rng(seed);
  for (int i = 0; !stop.load(); ++i) {
    json batch = json::array();
    for (int k = 0; k <= i % 3; ++k) {
      batch.push_back({{"eventId", Uuid(rng)}, {"eventType", "tick"}, {"data", {{"i", i}, {"k", k}}}});
    }
    const std::string body = batch.dump();
    for (;;) {  // the same event ids on every retry: idempotent
      HttpResult r = conn.Call("POST", "/streams/" + stream, body);
      if (tally.Check(r, "append " + stream, 201)) {
        const json j = r.Json();
        std::lock_guard<std::mutex> lock(acked_mu);
        for (uint64_t p = j["firstPosition"].get<uint64_t>(); p <= j["position"].get<uint64_t>(); ++p) acked.insert(p);
        events += static_cast<int64_t>(batch.size());
        break;
      }
      if (r.status != 503) break;
      std::this_thread::sleep_for(kRetryDelay);
    }
  }
}

void Reader(uint16_t port, const std::atomic<bool>& stop, Tally& tally) {
  Conn conn(port);
  for (int i = 0; !stop.load(); ++i) {
    if (i % 2 == 0) {
      tally.Check(conn.Call("GET", "/streams/traffic-0?direction=backward&count=5"), "read stream", 200);
    } else {
      tally.Check(conn.Call("GET", "/streams/$all?direction=backward&count=5&stream_prefix=traffic-"), "read $all", 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Follows an SSE subscription across switches. `by_position`: $all ids
// (strictly increasing positions); otherwise stream versions (each exactly
// the previous + 1). Ends once `target` (>= 0) was seen, or on `give_up`.
// `socket_fd` is the current connection, so a watchdog can end a blocked
// read; `progress` the last id seen.
void SseFollower(uint16_t port, const std::string& path, bool by_position, const std::atomic<int64_t>& target,
                 const std::atomic<bool>& give_up, std::atomic<int>& socket_fd, std::atomic<int64_t>& progress,
                 Tally& tally, std::vector<uint64_t>& seen) {
  int64_t last = -1;
  auto reached = [&] { return target.load() >= 0 && last >= target.load(); };
  while (!reached() && !give_up.load()) {
    std::map<std::string, std::string> headers;
    if (last >= 0) headers["Last-Event-ID"] = std::to_string(last);
    const char* from_start = path.find('?') == std::string::npos ? "?from=0" : "&from=0";
    SseReader sse(port, path + (last < 0 ? from_start : ""), headers);
    socket_fd = sse.socket().native_handle();
    if (give_up.load()) break;
    ++tally.requests;
    const int status = sse.ReadHeader();
    if (status != 200) {
      if (status == 503 && sse.header().find("Retry-After: 1") != std::string::npos) {
        ++tally.unavailable;
      } else {
        tally.Fail("SSE " + path + ": status " + std::to_string(status) + " " + sse.header());
      }
      std::this_thread::sleep_for(kRetryDelay);
      continue;
    }
    ++tally.ok;
    for (;;) {
      auto m = sse.Next();
      if (m.empty()) break;  // the connection ended
      if (m["event"] == "caught-up") continue;
      if (m["event"] == "close") {
        ++tally.sse_resumes;
        break;
      }
      const int64_t id = std::stoll(m["id"]);
      if (by_position ? id <= last : id != last + 1) {
        tally.Fail("SSE " + path + ": id " + std::to_string(id) + " after " + std::to_string(last));
      }
      last = id;
      progress = id;
      seen.push_back(static_cast<uint64_t>(id));
      if (reached()) break;
    }
  }
  socket_fd = -1;
}

// The first few elements of a that are not in b.
std::string Missing(const std::set<uint64_t>& a, const std::set<uint64_t>& b) {
  std::string out;
  int n = 0;
  for (uint64_t x : a) {
    if (b.count(x)) continue;
    if (++n > 10) return out + " ...";
    out += " " + std::to_string(x);
  }
  return out;
}

}  // namespace

TEST_CASE("reload the store 100 times under appends, reads and SSE: only 503 + Retry-After, no gap, old library unmapped",
          "[admin][traffic]") {
  TempDir dir;
  BuiltinHost host(dir.path(), {"gateway.insecure_admin=true"});  // dev mode, deliberately: reloads without a token
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  // Both streams exist before the traffic starts (reads of an absent stream are 404).
  std::set<uint64_t> acked;
  for (const char* s : {"traffic-0", "traffic-1"}) {
    auto r = Http(port, "POST", std::string("/streams/") + s, R"([{"eventType":"tick","data":{}}])");
    REQUIRE(r.status == 201);
    acked.insert(r.Json()["position"].get<uint64_t>());
  }
  int64_t events0 = 1, events1 = 1;

  Tally tally;
  std::mutex acked_mu;
  std::atomic<bool> stop{false}, give_up{false};
  std::atomic<int64_t> target_version{-1}, target_position{-1};
  std::vector<uint64_t> seen_versions, seen_positions;
  std::atomic<int> stream_fd{-1}, all_fd{-1};
  std::atomic<int64_t> stream_last{-1}, all_last{-1};
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> traffic;
  traffic.emplace_back([&] { Appender(port, "traffic-0", 1, stop, tally, acked_mu, acked, events0); });
  traffic.emplace_back([&] { Appender(port, "traffic-1", 2, stop, tally, acked_mu, acked, events1); });
  traffic.emplace_back([&] { Reader(port, stop, tally); });
  std::thread sse_stream(
      [&] { SseFollower(port, "/streams/traffic-0/subscribe", false, target_version, give_up, stream_fd, stream_last,
                tally, seen_versions); });
  std::thread sse_all([&] {
    SseFollower(port, "/streams/$all/subscribe?stream_prefix=traffic-", true, target_position, give_up, all_fd,
                all_last, tally, seen_positions);
  });

  // The reloads, one after another, each waited for.
  int reloaded = 0, still_mapped_at_answer = 0, never_unmapped = 0;
  std::vector<std::string> reload_errors;
  std::string previous = "/libesdb_store.so";
  for (int i = 0; i < kReloads; ++i) {
    std::this_thread::sleep_for(kPauseBetweenReloads);
    auto r = Http(port, "POST", "/admin/plugins/store/reload?wait=true&timeout_ms=30000");
    const json body = r.Json();
    if (r.status != 200 || body.value("outcome", "") != "reloaded") {
      reload_errors.push_back(std::to_string(r.status) + " " + r.body.substr(0, 300));
      continue;
    }
    ++reloaded;
    const std::string loaded_from = body["loaded_from"];
    auto old_mapped = [&] { return !MappedFiles(host.pid(), previous).empty(); };
    if (old_mapped()) {
      ++still_mapped_at_answer;  // something still held it briefly; it must go soon
      for (int k = 0; k < 200 && old_mapped(); ++k) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (old_mapped()) ++never_unmapped;
    }
    previous = loaded_from;
  }
  const auto reload_time = std::chrono::steady_clock::now() - started;
  stop = true;
  for (auto& t : traffic) t.join();
  {
    std::lock_guard<std::mutex> lock(acked_mu);
    target_version = events0 - 1;
    target_position = static_cast<int64_t>(*acked.rbegin());
  }
  // The followers are done when they have seen the last acknowledged event
  // (a follower may already be waiting for a next one that never comes);
  // one that never gets there is stopped after 20 s, and the checks fail.
  const auto follow_end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < follow_end &&
         (stream_last.load() < target_version.load() || all_last.load() < target_position.load())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  give_up = true;
  for (std::atomic<int>* fd : {&stream_fd, &all_fd}) {
    if (const int f = fd->load(); f >= 0) ::shutdown(f, SHUT_RDWR);  // ends a read blocked on a quiet stream
  }
  sse_stream.join();
  sse_all.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::printf("reload-under-traffic: %d/%d store reloads in %.1f s (%.1f s total); %llu requests, %llu ok, %llu 503 "
              "(Retry-After, retried), %llu SSE resumes, %zu failures; %lld + %lld events appended; old library "
              "still mapped at the answer %d times, never unmapped %d times\n",
              reloaded, kReloads, std::chrono::duration<double>(reload_time).count(), seconds,
              static_cast<unsigned long long>(tally.requests.load()), static_cast<unsigned long long>(tally.ok.load()),
              static_cast<unsigned long long>(tally.unavailable.load()),
              static_cast<unsigned long long>(tally.sse_resumes.load()), tally.failures.size(),
              static_cast<long long>(events0), static_cast<long long>(events1), still_mapped_at_answer, never_unmapped);
  std::fflush(stdout);

  for (const auto& e : reload_errors) UNSCOPED_INFO("reload: " << e);
  for (const auto& f : tally.failures) UNSCOPED_INFO("failure: " << f);
  CHECK(reload_errors.empty());
  CHECK(reloaded == kReloads);
  CHECK(tally.failures.empty());
  CHECK(never_unmapped == 0);
  CHECK(MappedFiles(host.pid(), "libesdb_store").size() == 1);  // only the last build
  // Traffic really ran across the reloads.
  CHECK(events0 + events1 > kReloads);
  // No gap, no duplicate: every acknowledged event, once, in order.
  CHECK(seen_versions.size() == static_cast<size_t>(events0));
  CHECK((!seen_versions.empty() && seen_versions.back() == static_cast<uint64_t>(events0 - 1)));
  const std::set<uint64_t> seen_set(seen_positions.begin(), seen_positions.end());
  INFO("$all: " << seen_positions.size() << " seen, " << acked.size() << " acknowledged; acknowledged, not seen:"
                << Missing(acked, seen_set) << "; seen, not acknowledged:" << Missing(seen_set, acked));
  CHECK(seen_positions.size() == acked.size());
  CHECK(seen_set == acked);
  REQUIRE(host.Stop() == 0);
}

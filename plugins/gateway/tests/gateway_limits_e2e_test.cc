// Resource limits through a real esdb-host (issue 9, finding 7): health and
// readiness answer while the data connections are at their limit, idle
// keep-alive connections close sooner under pressure, and SSE subscribers
// that do not read are bounded by buffered bytes, not only messages.
#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include "builtin_host.h"

using namespace gwtest;
using nlohmann::json;

namespace {

// The host's resident set (VmRSS of /proc/PID/status), bytes.
int64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// A connected socket that sends nothing.
std::unique_ptr<tcp::socket> IdleConnection(net::io_context& io, uint16_t port) {
  auto s = std::make_unique<tcp::socket>(io);
  s->connect({net::ip::make_address("127.0.0.1"), port});
  return s;
}

// Asks /health/live on `s` and reads the answer: the server has then
// accepted the connection, which stays open and idle (keep-alive).
void Probe(tcp::socket& s) {
  http::request<http::empty_body> req{http::verb::get, "/health/live", 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  REQUIRE(res.result_int() == 200);
}

// Waits up to `timeout_s` for the server to close `s`; true when it did.
bool ClosedByServer(tcp::socket& s, int timeout_s) {
  SetTimeouts(s, timeout_s);
  std::array<char, 256> buf;
  // recv(2) itself: Asio's synchronous read polls without the socket timeout.
  const ssize_t n = ::recv(s.native_handle(), buf.data(), buf.size(), 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// True when `s` is still open: nothing to read and no EOF right now.
bool StillOpen(tcp::socket& s) {
  beast::error_code ec;
  s.non_blocking(true, ec);
  std::array<char, 16> buf;
  s.read_some(net::buffer(buf), ec);
  const bool open = ec == net::error::would_block || ec == net::error::try_again;
  s.non_blocking(false, ec);
  return open;
}

}  // namespace

TEST_CASE("limits: at max_connections idle connections, /health answers and idle ones close under pressure") {
  TempDir dir;
  // The pressure timeout is long enough for the 8 connections below to be
  // accepted before the first closes (which would end the pressure for the
  // later ones), and far below the normal idle timeout (60 s).
  BuiltinHost host(dir.path(), {"gateway.max_connections=8", "gateway.pressure_idle_timeout_ms=2000"});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  net::io_context io;

  // Below the pressure mark an idle keep-alive connection keeps the normal
  // idle timeout (60 s).
  auto calm = IdleConnection(io, port);
  Probe(*calm);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  REQUIRE(StillOpen(*calm));

  // Fill every data connection with an idle client, each accepted (probed).
  std::vector<std::unique_ptr<tcp::socket>> idle;
  idle.push_back(std::move(calm));
  while (idle.size() < 8) {
    idle.push_back(IdleConnection(io, port));
    Probe(*idle.back());
  }

  // Liveness and readiness still answer.
  REQUIRE(Http(port, "GET", "/health/live").status == 200);
  REQUIRE(Http(port, "GET", "/health/ready").status == 200);

  // The idle clients are closed within about pressure_idle_timeout_ms, not
  // idle_timeout_ms.
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < idle.size(); ++i) {
    INFO("idle connection " << i);
    REQUIRE(ClosedByServer(*idle[i], 20));
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("idle connections closed after " << waited << " s");
  REQUIRE(waited < 20.0);  // the normal idle timeout is 60 s

  // Room again: data requests are served.
  REQUIRE(Http(port, "GET", "/streams/nothing-here").status == 404);
  REQUIRE(host.Stop() == 0);
}

TEST_CASE("limits: beyond max_connections a data request gets 503, health 200, each on its own connection") {
  TempDir dir;
  // A long pressure timeout, so the idle connections stay for the test.
  BuiltinHost host(dir.path(), {"gateway.max_connections=4", "gateway.pressure_idle_timeout_ms=60000",
                               "gateway.insecure_admin=true"});  // /metrics is admin
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  net::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> idle;
  while (idle.size() < 4) idle.push_back(IdleConnection(io, port));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  auto r = Http(port, "GET", "/streams/x");
  REQUIRE(r.status == 503);
  REQUIRE(r.Json()["error"] == "too_many_connections");
  REQUIRE(r.headers["connection"] == "close");
  r = Http(port, "GET", "/health/live");
  REQUIRE(r.status == 200);
  REQUIRE(r.headers["connection"] == "close");  // a reserved slot serves one request
  auto metrics = Http(port, "GET", "/metrics");  // also 503: only /health/* is reserved
  REQUIRE(metrics.status == 503);
  idle.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  metrics = Http(port, "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  REQUIRE(metrics.body.find("esdb_http_limit_hits_total{limit=\"connections\"} 2") != std::string::npos);
  REQUIRE(host.Stop() == 0);
}

namespace {

// One run of the SSE byte-budget scenario: a host with
// sse_total_buffer_bytes `total`, `slow` subscribers that never read after
// the header, one that reads everything, and kEvents events of 0.9 MB on
// streams its filter matches. Checks who got what; returns how much the
// host's RSS grew (MB) over its warmed-up size.
constexpr int kSseEvents = 40;
constexpr double kSseEventMb = 0.9;

double SseBudgetRun(int64_t total, int slow_count) {
  TempDir dir;
  // write_timeout_ms is raised far above the run's length: on a busy
  // machine a stalled write of a non-reading subscriber outlived the 10 s
  // default (5 of 20 closed by the timeout, without the close event this
  // run checks for), and this run is about the byte limits.
  BuiltinHost host(dir.path(), {"gateway.sse_total_buffer_bytes=" + std::to_string(total),
                                "gateway.insecure_admin=true",  // /metrics is admin
                                "gateway.write_timeout_ms=600000"});
  const uint16_t port = host.port();
  REQUIRE(host.WaitReady());
  const std::string blob(static_cast<size_t>(kSseEventMb * 1000 * 1000), 'x');
  // Warm the store's write path and caches with events of the same size first.
  for (int i = 0; i < 4; ++i) {
    REQUIRE(Http(port, "POST", "/streams/warm", json::array({{{"eventType", "big"}, {"data", {{"b", blob}}}}}).dump())
                .status == 201);
  }
  const int64_t rss_before = RssBytes(host.pid());
  REQUIRE(rss_before > 0);

  std::vector<std::unique_ptr<SseReader>> slow;
  for (int i = 0; i < slow_count; ++i) {
    slow.push_back(std::make_unique<SseReader>(port, "/streams/$all/subscribe?stream_prefix=big-"));
    REQUIRE(slow.back()->ReadHeader() == 200);
  }
  // The reading subscriber. If it falls behind by a quarter of
  // sse_buffer_bytes while the total budget is exhausted (two 0.9 MB events
  // when the machine is busy), it is dropped too; then it resumes with
  // Last-Event-ID, as any client would, and must still see every event
  // exactly once.
  const std::string all_big = "/streams/$all/subscribe?stream_prefix=big-";
  auto fast = std::make_unique<SseReader>(port, all_big);
  REQUIRE(fast->ReadHeader() == 200);
  std::atomic<int> fast_events{0};
  int resumes = 0, duplicates = 0;
  std::string fast_end, last_id;
  std::thread reader([&] {
    std::set<std::string> seen;
    while (fast_events < kSseEvents) {
      auto m = fast->Next();
      if (!m.empty() && m["event"] == "close" && resumes < 10) {
        ++resumes;
        fast = std::make_unique<SseReader>(port, all_big, std::map<std::string, std::string>{{"Last-Event-ID", last_id}});
        if (fast->ReadHeader() != 200) {
          fast_end = "resume refused";
          return;
        }
        continue;
      }
      if (m.empty() || m["event"] == "close") {
        fast_end = m.empty() ? "eof" : m["data"];
        return;
      }
      // A stream event is an unnamed SSE message; its type is in the data.
      if (m["event"].empty() && json::parse(m["data"])["type"] == "big") {
        last_id = m["id"];
        if (seen.insert(last_id).second) ++fast_events; else ++duplicates;
      }
    }
  });

  // The gateway's own count of buffered SSE bytes, read after each append.
  auto buffered_mb = [&] {
    const std::string body = Http(port, "GET", "/metrics").body;
    const std::string name = "\nesdb_http_sse_buffered_bytes ";
    const size_t at = body.find(name);
    return at == std::string::npos ? -1.0 : std::strtod(body.c_str() + at + name.size(), nullptr) / 1048576.0;
  };
  int64_t peak = rss_before;
  double peak_buffered = 0;
  for (int i = 0; i < kSseEvents; ++i) {
    json events = json::array({{{"eventType", "big"}, {"data", {{"b", blob}, {"i", i}}}}});
    REQUIRE(Http(port, "POST", "/streams/big-" + std::to_string(i % 4), events.dump()).status == 201);
    peak = std::max(peak, RssBytes(host.pid()));
    peak_buffered = std::max(peak_buffered, buffered_mb());
  }
  reader.join();
  for (int i = 0; i < 10; ++i) {  // deliveries still in flight
    peak = std::max(peak, RssBytes(host.pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double grew_mb = (peak - rss_before) / 1048576.0;
  std::printf("sse-bytes: %d non-reading subscribers: RSS before %.1f MB, peak %.1f MB (+%.1f MB); "
              "SSE buffers at most %.1f MB\n",
              slow_count, rss_before / 1048576.0, peak / 1048576.0, grew_mb, peak_buffered);
  // What the gateway buffers, exactly: the README's bound (the total
  // budget, plus per subscriber a quarter of sse_buffer_bytes it may keep,
  // the write in flight and one message).
  CHECK(peak_buffered >= 0);
  CHECK(peak_buffered < total / 1048576.0 + (slow_count + 1) * (1.0 + 2 * kSseEventMb));

  // The reading subscriber got every event once (resuming if it was dropped).
  std::printf("sse-bytes: the reading subscriber resumed %d time(s)\n", resumes);
  CHECK(fast_events.load() == kSseEvents);
  CHECK(duplicates == 0);
  CHECK(fast_end.empty());

  // Each slow subscriber, reading now, finds what was buffered, then the
  // close event naming the byte limit.
  int dropped = 0;
  for (auto& s : slow) {
    for (;;) {
      auto m = s->Next();
      if (m.empty()) break;
      if (m["event"] == "close") {
        const std::string reason = json::parse(m["data"])["reason"];
        INFO(reason);
        CHECK(reason.find("slow consumer") != std::string::npos);
        CHECK(reason.find("_buffer_bytes") != std::string::npos);
        ++dropped;
        break;
      }
    }
  }
  CHECK(dropped == slow_count);
  if (slow_count > 0) {
    auto metrics = Http(port, "GET", "/metrics").body;
    CHECK(metrics.find("esdb_http_sse_buffered_bytes ") != std::string::npos);
    CHECK((metrics.find("limit=\"sse_buffer_bytes\"") != std::string::npos ||
           metrics.find("limit=\"sse_total_buffer_bytes\"") != std::string::npos));
  }
  REQUIRE(host.Stop() == 0);
  return grew_mb;
}

}  // namespace

TEST_CASE("limits: non-reading SSE subscribers and 1 MB events: dropped by buffered bytes, RSS bounded, "
          "a reading subscriber gets everything") {
#ifdef ESDB_SANITIZED_BUILD
  // Under ASan the host's RSS is mostly quarantine and shadow memory, and
  // it is too slow to fill the buffers before write_timeout_ms closes them.
  WARN("skipped in the sanitized build: it measures the host's RSS");
  return;
#endif
  constexpr int64_t kTotal = 16 << 20;
  constexpr int kSlow = 20;
  // What the store, the reading subscriber and the allocator cost alone...
  const double alone = SseBudgetRun(kTotal, 0);
  // ... and what twenty subscribers that never read add to it. Without a
  // byte bound each would queue every event (20 x 36 MB = 720 MB). The
  // buffers themselves are checked exactly in SseBudgetRun; RSS also holds
  // the copies made while formatting and what glibc keeps of freed 0.9 MB
  // blocks, which varies with the machine's load (measured: a difference of
  // 55-60 MB alone, 65-95 MB beside a second run), so the check here is
  // that it stays far below the unbounded case.
  const double with_slow = SseBudgetRun(kTotal, kSlow);
  const double buffers = kTotal / 1048576.0 + kSlow * (1.0 + 2 * kSseEventMb);
  UNSCOPED_INFO("RSS grew " << alone << " MB with one reading subscriber, " << with_slow << " MB with " << kSlow
                            << " non-reading ones too; their buffers are bounded by " << buffers << " MB");
  CHECK(with_slow - alone < 2 * buffers);
}

// HTTP append throughput and SSE delivery latency against a real esdb-host
// (persistence, store, notification, gateway), next to raw LevelDB synced
// writes measured in the same run.
//
//   http_bench [--seconds S]   (default 3 per configuration)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <nlohmann/json.hpp>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

pid_t g_pid = -1;

uint16_t StartHost(const std::string& data, const std::string& manifests) {
  std::filesystem::create_directories(manifests);
  for (const char* p : {"persistence", "store", "notification", "gateway"}) {
    std::filesystem::create_symlink(std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json",
                                    std::filesystem::path(manifests) / (std::string(p) + ".json"));
  }
  int out[2];
  if (pipe(out) != 0) return 0;
  g_pid = fork();
  if (g_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    execl(ESDB_HOST_BIN, ESDB_HOST_BIN, "--manifests", manifests.c_str(), "--data", data.c_str(), "--set",
          "gateway.listen_port=0", "--set", "gateway.max_connections=4096", "--print-events", "--log-level", "warn",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char* line = nullptr;
  size_t cap = 0;
  uint16_t port = 0;
  while (getline(&line, &cap, f) > 0) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("type", "") == "gateway_listening") {
      port = j["data"]["port"].get<uint16_t>();
      break;
    }
  }
  free(line);
  std::thread([f] {
    char buf[4096];
    while (fread(buf, 1, sizeof buf, f) > 0) {
    }
    fclose(f);
  }).detach();
  return port;
}

struct Conn {
  net::io_context io;
  tcp::socket socket{io};
  beast::flat_buffer buffer;
  explicit Conn(uint16_t port) { socket.connect({net::ip::make_address("127.0.0.1"), port}); }
  int Call(const std::string& method, const std::string& target, const std::string& body) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "x");
    req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    return static_cast<int>(res.result_int());
  }
};

std::string Batch(int n) {
  nlohmann::json arr = nlohmann::json::array();
  for (int i = 0; i < n; ++i) arr.push_back({{"eventType", "bench"}, {"data", {{"i", i}, {"pad", std::string(64, 'x')}}}});
  return arr.dump();
}

bool WaitReady(uint16_t port) {
  for (int i = 0; i < 600; ++i) {
    try {
      Conn c(port);
      if (c.Call("GET", "/health/ready", "") == 200) return true;
    } catch (...) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

double HttpAppends(uint16_t port, int conns, int batch, double seconds) {
  std::atomic<uint64_t> events{0};
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  const std::string body = Batch(batch);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      try {
        Conn conn(port);
        const std::string target = "/streams/bench-" + std::to_string(conns) + "-" + std::to_string(batch) + "-" + std::to_string(c);
        while (!stop.load()) {
          if (conn.Call("POST", target, body) == 201) events.fetch_add(batch);
          else errors.fetch_add(1);
        }
      } catch (...) {
        errors.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (errors.load()) std::printf("  (%d errors)\n", errors.load());
  return events.load() / secs;
}

double RawLevelDb(const std::string& dir, int batch, double seconds) {
  leveldb::DB* db = nullptr;
  leveldb::Options options;
  options.create_if_missing = true;
  if (!leveldb::DB::Open(options, dir, &db).ok()) return 0;
  leveldb::WriteOptions wo;
  wo.sync = true;
  const std::string value(100, 'x');
  uint64_t n = 0;
  const auto t0 = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    leveldb::WriteBatch b;
    for (int i = 0; i < batch; ++i) b.Put("k" + std::to_string(n++), value);
    db->Write(wo, &b);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  delete db;
  return n / secs;
}

// Append one event at a time, measure from the 201 to the SSE message.
void SseLatency(uint16_t port, int samples) {
  tcp::socket* sock = nullptr;
  net::io_context io;
  tcp::socket s(io);
  s.connect({net::ip::make_address("127.0.0.1"), port});
  sock = &s;
  const std::string req = "GET /streams/latency/subscribe?from=end HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(*sock, net::buffer(req));
  std::string raw;
  std::array<char, 8192> buf;
  while (raw.find(": stream open\n\n") == std::string::npos) raw.append(buf.data(), sock->read_some(net::buffer(buf)));
  raw.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Conn writer(port);
  std::vector<double> lat;
  const std::string body = Batch(1);
  for (int i = 0; i < samples; ++i) {
    writer.Call("POST", "/streams/latency", body);
    const auto acked = Clock::now();
    size_t pos;
    while ((pos = raw.find("\ndata: ")) == std::string::npos || raw.find("\n\n", pos) == std::string::npos) {
      raw.append(buf.data(), sock->read_some(net::buffer(buf)));
    }
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - acked).count());
    raw.erase(0, raw.find("\n\n", pos) + 2);
  }
  std::sort(lat.begin(), lat.end());
  std::printf("SSE delivery latency, append ack -> SSE receipt (%d samples): p50 %.0f us, p99 %.0f us, max %.0f us\n",
              samples, lat[lat.size() / 2], lat[lat.size() * 99 / 100], lat.back());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  char tmpl[] = "/tmp/esdb-http-bench-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  const uint16_t port = StartHost(root + "/data", root + "/manifests");
  if (port == 0 || !WaitReady(port)) {
    std::fprintf(stderr, "esdb-host did not become ready\n");
    if (g_pid > 0) kill(g_pid, SIGKILL);
    return 1;
  }
  std::printf("esdb http_bench: %.1f s per configuration, %u cores\n", seconds, std::thread::hardware_concurrency());
  for (int batch : {1, 10}) {
    std::printf("raw LevelDB synced writes, %d per write: %.0f events/s\n", batch,
                RawLevelDb(root + "/raw-" + std::to_string(batch), batch, seconds));
    for (int conns : {1, 16, 64}) {
      std::printf("HTTP durable appends, %2d connections, %2d event(s) per request: %.0f events/s\n", conns, batch,
                  HttpAppends(port, conns, batch, seconds));
      std::fflush(stdout);
    }
  }
  SseLatency(port, 500);
  kill(g_pid, SIGTERM);
  int status = 0;
  waitpid(g_pid, &status, 0);
  std::filesystem::remove_all(root);
  return 0;
}

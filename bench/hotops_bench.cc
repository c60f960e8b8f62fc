// Hot-operation latencies against a real esdb-host (persistence, store,
// notification, gateway), watching the bus through --print-events:
//
//   add      a manifest renamed into the watched manifests directory ->
//            subsystem_ready (a synthetic plugin that is ready at once)
//   remove   that manifest deleted -> subsystem_removed (library released)
//   reload   POST /admin/plugins/<name>/reload -> subsystem_reloaded (the old
//            build drained and its library released; /proc/<pid>/maps is
//            checked at that moment), for the synthetic plugin (overlap) and
//            for the store (stop_first) while K clients append over HTTP:
//            how many of their requests completed during each reload and how
//            many of those failed (503 + Retry-After, the documented answer
//            while the store switches builds).
//
//   hotops_bench [--runs N] [--clients K]   (defaults 20, 4)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

// The host process and its lifecycle events, each stamped when its line arrived.
class Host {
 public:
  Host(const fs::path& manifests, const fs::path& data) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      // Libraries load only from the plugin directories: the built-in ones and the synthetic plugin's.
      const std::string bin_dir = std::filesystem::path(ESDB_HOST_BIN).parent_path().string();
      const std::string builtins = bin_dir + "/plugins", bench = bin_dir + "/bench-plugins";
      execl(ESDB_HOST_BIN, ESDB_HOST_BIN, "--manifests", manifests.c_str(), "--data", data.c_str(), "--set",
            "gateway.listen_port=0", "--set", "gateway.insecure_admin=true",  // dev mode, deliberately: reloads
            "--print-events", "--log-level", "error", "--plugin-dir", builtins.c_str(), "--plugin-dir",
            bench.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    reader_ = std::thread([this, fd = out[0]] { Read(fd); });
  }
  ~Host() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    reader_.join();
  }
  pid_t pid() const { return pid_; }

  struct Seen {
    Clock::time_point at;
    json event;
  };
  // The first event at index >= `from` satisfying `pred`, waiting up to `timeout`.
  std::optional<Seen> Wait(size_t from, const std::function<bool(const json&)>& pred,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
    std::unique_lock<std::mutex> lock(mu_);
    const auto end = Clock::now() + timeout;
    for (size_t i = from;;) {
      for (; i < events_.size(); ++i) {
        if (pred(events_[i].event)) return events_[i];
      }
      if (eof_ || cv_.wait_until(lock, end) == std::cv_status::timeout) {
        if (i == events_.size()) return std::nullopt;
      }
    }
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }

 private:
  void Read(int fd) {
    std::string buf;
    char chunk[65536];
    for (;;) {
      const ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) break;
      const auto at = Clock::now();
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        // Only lifecycle and gateway events matter here; skip parsing the rest (events_appended...).
        const std::string_view line(buf.data(), nl);
        const bool wanted = line.find("\"topic\":\"lifecycle\"") != std::string_view::npos ||
                            line.find("\"topic\":\"gateway\"") != std::string_view::npos;
        if (wanted) {
          auto j = json::parse(buf.begin(), buf.begin() + static_cast<long>(nl), nullptr, false);
          if (!j.is_discarded()) {
            std::lock_guard<std::mutex> lock(mu_);
            events_.push_back({at, std::move(j)});
            cv_.notify_all();
          }
        }
        buf.erase(0, nl + 1);
      }
    }
    close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Seen> events_;
  bool eof_ = false;
};

// One keep-alive connection; reconnects after the server closes it.
class Conn {
 public:
  explicit Conn(uint16_t port) : port_(port), socket_(io_) {}
  // The status, or 0 on a transport error.
  int Call(const std::string& method, const std::string& target, const std::string& body, std::string* out = nullptr) {
    beast::error_code ec;
    if (!socket_.is_open()) {
      socket_.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
      if (ec) return 0;
      buffer_.clear();
    }
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req, ec);
    http::response<http::string_body> res;
    if (!ec) http::read(socket_, buffer_, res, ec);
    if (ec) {
      socket_.close(ec);
      return 0;
    }
    if (!res.keep_alive()) socket_.close(ec);
    if (out) *out = res.body();
    return static_cast<int>(res.result_int());
  }

 private:
  uint16_t port_;
  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

bool Mapped(pid_t pid, const std::string& fragment) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(fragment) != std::string::npos) return true;
  }
  return false;
}

struct Stats {
  double median = 0, max = 0;
};
Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.median = v[v.size() / 2];
  s.max = v.back();
  return s;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One request of the traffic: when it completed and how.
struct Done {
  Clock::time_point at;
  int status;
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 20, clients = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--clients") clients = std::stoi(argv[i + 1]);
  }
  const fs::path bin_dir = fs::canonical("/proc/self/exe").parent_path();
  const fs::path synthetic = bin_dir / "bench-plugins" / "libesdb_synthetic_plugin.so";
  const fs::path work = fs::temp_directory_path() / ("esdb-hotops-bench-" + std::to_string(getpid()));
  const fs::path manifests = work / "manifests", data = work / "data";
  fs::create_directories(manifests);
  for (const char* p : {"persistence", "store", "notification", "gateway"}) {
    fs::create_symlink(std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json",
                       manifests / (std::string(p) + ".json"));
  }
  std::printf("esdb hot-operations benchmark: %d runs each, %d appending clients during store reloads\n\n", runs,
              clients);
  {
    Host host(manifests, data);
    auto listening = host.Wait(0, [](const json& e) { return e.value("type", "") == "gateway_listening"; });
    if (!listening) {
      std::fprintf(stderr, "hotops_bench: the host did not start\n");
      return 1;
    }
    const uint16_t port = listening->event["data"]["port"].get<uint16_t>();
    if (!host.Wait(0, [](const json& e) { return e.value("type", "") == "system_ready"; })) {
      std::fprintf(stderr, "hotops_bench: the system did not become ready\n");
      return 1;
    }
    auto named = [](const char* type, const std::string& name) {
      return [type, name](const json& e) {
        return e.value("type", "") == type && e.contains("data") && e["data"].value("name", "") == name;
      };
    };

    // --- add by manifest file, remove by deleting it -------------------------
    std::vector<double> add_ms, remove_ms, remove_unmap_late_ms;
    int remove_still_mapped = 0;
    for (int r = 0; r < runs; ++r) {
      const json m = {{"name", "hot"},
                      {"version", "1.0.0"},
                      {"api_version", "1.1"},
                      {"library", synthetic.string()},
                      {"entry", "esdb_create_synthetic"},
                      {"critical", false},
                      {"config", {{"start_ms", 0}}}};
      std::ofstream(work / "hot.json.tmp") << m.dump();
      size_t from = host.count();
      auto t0 = Clock::now();
      fs::rename(work / "hot.json.tmp", manifests / "hot.json");  // write, then rename into place
      auto ready = host.Wait(from, named("subsystem_ready", "hot"));
      if (!ready) {
        std::fprintf(stderr, "hotops_bench: hot-added plugin never became ready\n");
        return 1;
      }
      add_ms.push_back(Ms(ready->at - t0));
      from = host.count();
      t0 = Clock::now();
      fs::remove(manifests / "hot.json");
      auto removed = host.Wait(from, named("subsystem_removed", "hot"));
      if (!removed) {
        std::fprintf(stderr, "hotops_bench: removed plugin never reported removed\n");
        return 1;
      }
      remove_ms.push_back(Ms(removed->at - t0));
      if (Mapped(host.pid(), synthetic.string())) {
        ++remove_still_mapped;
        const auto seen = Clock::now();
        while (Mapped(host.pid(), synthetic.string()) && Clock::now() - seen < std::chrono::seconds(2)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        remove_unmap_late_ms.push_back(Ms(Clock::now() - removed->at));
        std::fprintf(stderr, "run %d: still mapped at subsystem_removed; unmapped %.1f ms later%s\n", r,
                     remove_unmap_late_ms.back(), Mapped(host.pid(), synthetic.string()) ? " (NOT within 2 s)" : "");
      }
    }
    Stats a = Summarize(add_ms), rm = Summarize(remove_ms);
    std::printf("%-58s median %7.2f ms   max %7.2f ms\n", "add: manifest renamed into place -> subsystem_ready", a.median,
                a.max);
    std::printf("%-58s median %7.2f ms   max %7.2f ms   (library still mapped at the event: %d)\n\n",
                "remove: manifest deleted -> subsystem_removed", rm.median, rm.max, remove_still_mapped);

    // --- reloads ---------------------------------------------------------------
    // Returns the reload latencies (request sent -> subsystem_reloaded seen)
    // and how often the old library was still mapped at that moment.
    auto reload_runs = [&](const std::string& name, std::vector<Clock::time_point>* starts,
                           std::vector<Clock::time_point>* ends, int* still_mapped) {
      std::vector<double> ms;
      Conn admin(port);
      std::string previous;
      for (int r = 0; r < runs; ++r) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const size_t from = host.count();
        const auto t0 = Clock::now();
        std::string body;
        const int status = admin.Call("POST", "/admin/plugins/" + name + "/reload", "", &body);
        if (status != 202) {
          std::fprintf(stderr, "hotops_bench: reload of %s answered %d %s\n", name.c_str(), status, body.c_str());
          continue;
        }
        const std::string op = json::parse(body)["operation_id"];
        auto done = host.Wait(from, [&](const json& e) {
          return e.value("correlation_id", "") == op &&
                 (e.value("type", "") == "subsystem_reloaded" || e.value("type", "") == "subsystem_failed");
        });
        if (!done || done->event["type"] != "subsystem_reloaded") {
          std::fprintf(stderr, "hotops_bench: reload of %s did not complete\n", name.c_str());
          continue;
        }
        ms.push_back(Ms(done->at - t0));
        if (starts) starts->push_back(t0);
        if (ends) ends->push_back(done->at);
        if (!previous.empty() && Mapped(host.pid(), previous)) ++*still_mapped;
        previous = done->event["data"].value("loaded_from", "");
      }
      return ms;
    };

    // A synthetic plugin (overlap), no traffic.
    {
      const json m = {{"name", "hot"},           {"version", "1.0.0"},
                      {"api_version", "1.1"},    {"library", synthetic.string()},
                      {"entry", "esdb_create_synthetic"}, {"critical", false}};
      std::ofstream(work / "hot.json.tmp") << m.dump();
      const size_t from = host.count();
      fs::rename(work / "hot.json.tmp", manifests / "hot.json");
      host.Wait(from, named("subsystem_ready", "hot"));
      int still = 0;
      Stats s = Summarize(reload_runs("hot", nullptr, nullptr, &still));
      std::printf("%-58s median %7.2f ms   max %7.2f ms   (old library still mapped: %d)\n",
                  "reload synthetic (overlap): request -> subsystem_reloaded", s.median, s.max, still);
    }

    // The store (stop_first) while clients append.
    std::atomic<bool> stop{false};
    std::vector<std::vector<Done>> done(static_cast<size_t>(clients));
    std::vector<std::thread> traffic;
    for (int c = 0; c < clients; ++c) {
      traffic.emplace_back([&, c] {
        Conn conn(port);
        const std::string target = "/streams/bench-" + std::to_string(c);
        const std::string body = R"([{"eventType":"tick","data":{"x":1}}])";
        auto& mine = done[static_cast<size_t>(c)];
        while (!stop.load()) {
          const int status = conn.Call("POST", target, body);
          mine.push_back({Clock::now(), status});
          if (status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a client's quick retry
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::vector<Clock::time_point> starts, ends;
    int still = 0;
    Stats s = Summarize(reload_runs("store", &starts, &ends, &still));
    stop = true;
    for (auto& t : traffic) t.join();
    std::printf("%-58s median %7.2f ms   max %7.2f ms   (old library still mapped: %d)\n",
                "reload store (stop_first): request -> subsystem_reloaded", s.median, s.max, still);

    // Requests completed inside each reload's window, and how many failed.
    std::vector<double> in_window, failed_in_window;
    uint64_t total = 0, total_failed = 0, other_errors = 0;
    for (const auto& mine : done) {
      for (const auto& d : mine) {
        ++total;
        if (d.status != 201) ++total_failed;
        if (d.status != 201 && d.status != 503) ++other_errors;
      }
    }
    for (size_t r = 0; r < starts.size(); ++r) {
      double n = 0, f = 0;
      for (const auto& mine : done) {
        for (const auto& d : mine) {
          if (d.at < starts[r] || d.at > ends[r]) continue;
          ++n;
          if (d.status != 201) ++f;
        }
      }
      in_window.push_back(n);
      failed_in_window.push_back(f);
    }
    Stats w = Summarize(in_window), fw = Summarize(failed_in_window);
    std::printf("%-58s median %7.0f      max %7.0f\n", "  appends completed during one store reload", w.median, w.max);
    std::printf("%-58s median %7.0f      max %7.0f\n", "  of which failed (503 + Retry-After, then retried)", fw.median,
                fw.max);
    std::printf("  whole run: %llu appends by %d clients, %llu answered 503, %llu other errors\n",
                static_cast<unsigned long long>(total), clients,
                static_cast<unsigned long long>(total_failed - other_errors),
                static_cast<unsigned long long>(other_errors));
  }
  fs::remove_all(work);
  return 0;
}

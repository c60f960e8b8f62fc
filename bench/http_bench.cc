// Durable append throughput at three levels, in the same run (machines are
// noisy; only ratios carry), for 1, 16 and 64 concurrent writers and 1 or
// 10 events per append:
//   raw LevelDB   N threads, synced WriteBatches of the same values
//   store         StoreCore + LevelDbStorage in this process, configured
//                 from the plugins' manifests (synced, same group commit)
//   HTTP          N keep-alive connections to a real esdb-host (persistence,
//                 store, notification, gateway) POSTing /streams/{stream}
// plus live SSE delivery latency (append ack to SSE receipt).
//
//   http_bench [--seconds S] [--configs 64x1,16x10,...] [--tiers raw,store,http,grpc]
//              [--sse-samples N] [--host-set KEY=VALUE]... [--host-arg ARG]... [--dir DIR]
//
// --dir puts the databases elsewhere than /tmp; on a tmpfs the syncs still
// happen but cost nothing, which isolates the CPU path for A/B comparisons.
//
// The HTTP client runs on the same cores as the host.
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
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <grpcpp/grpcpp.h>

#include "bench_support.h"
#include "leveldb_storage.h"
#include "persistence_config.h"
#include "store_core.h"
#include "store_options.h"
#include "streams.grpc.pb.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using esdb_bench::Clock;

namespace {

pid_t g_pid = -1;
uint16_t g_grpc_port = 0;
uint16_t g_http_port = 0;  // the gateway's (the store counters are read from its /metrics)  // the grpc plugin's, when the host runs it (--tiers ...,grpc)

nlohmann::json ManifestConfig(const char* plugin) {
  std::ifstream in(std::string(ESDB_SOURCE_DIR) + "/plugins/" + plugin + "/manifest.json");
  nlohmann::json m = nlohmann::json::parse(in, nullptr, false);
  return m.is_object() && m.contains("config") ? m["config"] : nlohmann::json::object();
}

// A free loopback port (bound and released; the host binds it a moment later).
uint16_t FreePort() {
  net::io_context io;
  tcp::acceptor a(io, {net::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// Starts esdb-host with the four built-in plugins and `extra` arguments.
// Its stdout and stderr go to <data>/../host.log. Not --print-events: the
// host would serialize and write every bus event (one per commit group) to
// a pipe this process reads, CPU that a real deployment does not spend.
uint16_t StartHost(const std::string& data, const std::string& manifests, const std::vector<std::string>& extra,
                   bool with_grpc) {
  std::filesystem::create_directories(manifests);
  std::vector<std::string> plugins = {"persistence", "store", "notification", "gateway"};
  if (with_grpc) plugins.push_back("grpc");
  for (const std::string& p : plugins) {
    std::filesystem::create_symlink(std::string(ESDB_SOURCE_DIR) + "/plugins/" + p + "/manifest.json",
                                    std::filesystem::path(manifests) / (p + ".json"));
  }
  const uint16_t port = FreePort();
  std::vector<std::string> args = {ESDB_HOST_BIN, "--manifests", manifests, "--data", data,
                                   "--set", "gateway.listen_port=" + std::to_string(port),
                                   "--set", "gateway.max_connections=4096",
                                   // dev mode, deliberately: /metrics without a token on this throwaway host
                                   "--set", "gateway.insecure_admin=true", "--log-level", "warn"};
  if (with_grpc) {
    g_grpc_port = FreePort();
    args.insert(args.end(), {"--set", "grpc.listen_port=" + std::to_string(g_grpc_port)});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  const std::string log = std::filesystem::path(data).parent_path() / "host.log";
  g_pid = fork();
  if (g_pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return g_pid > 0 ? port : 0;
}

struct Conn {
  net::io_context io;
  tcp::socket socket{io};
  beast::flat_buffer buffer;
  explicit Conn(uint16_t port) { socket.connect({net::ip::make_address("127.0.0.1"), port}); }
  int Call(const std::string& method, const std::string& target, const std::string& body,
           std::string* response_body = nullptr) {
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
    if (response_body) *response_body = std::move(res.body());
    return static_cast<int>(res.result_int());
  }
};

// The event every tier writes: what the HTTP body carries, as the store gets it.
nlohmann::json EventJson(int i) { return {{"eventType", "bench"}, {"data", {{"i", i}, {"pad", std::string(64, 'x')}}}}; }

std::string Batch(int n) {
  nlohmann::json arr = nlohmann::json::array();
  for (int i = 0; i < n; ++i) arr.push_back(EventJson(i));
  return arr.dump();
}

esdb::ProposedEvent StoreEvent() {
  esdb::ProposedEvent e;
  e.event_type = "bench";
  e.data = EventJson(0)["data"].dump();
  return e;
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

// The store's group-commit and event counters from /metrics.
struct StoreCounters {
  double group_commits = 0, events = 0;
};

StoreCounters ScrapeStore(uint16_t port) {
  StoreCounters c;
  try {
    Conn conn(port);
    std::string body;
    if (conn.Call("GET", "/metrics", "", &body) != 200) return c;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
      const size_t space = line.find(' ');
      if (line.empty() || line[0] == '#' || space == std::string::npos) continue;
      const std::string name = line.substr(0, space);
      if (name == "esdb_store_group_commits") c.group_commits = std::atof(line.c_str() + space + 1);
      if (name == "esdb_store_events_appended") c.events = std::atof(line.c_str() + space + 1);
    }
  } catch (...) {
  }
  return c;
}

// CPU seconds (user + system) used so far by process `pid`.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct HttpRate {
  esdb_bench::Rate rate;
  double host_cpu_us_per_event = 0;    // esdb-host, all threads
  double client_cpu_us_per_event = 0;  // this process (the HTTP client threads)
};

// The rates of a measurement of `secs` seconds, from its counts and the
// store's counters before and after it.
HttpRate RateOf(uint64_t events, uint64_t requests, double secs, double host_cpu, double client_cpu,
                const StoreCounters& before, const StoreCounters& after) {
  HttpRate r;
  r.rate.events_per_s = events / secs;
  r.rate.writes_per_s = requests / secs;
  const double groups = after.group_commits - before.group_commits;
  r.rate.events_per_sync = groups > 0 ? (after.events - before.events) / groups : 0;
  r.rate.events = events;
  if (events > 0) {
    r.host_cpu_us_per_event = 1e6 * host_cpu / events;
    r.client_cpu_us_per_event = 1e6 * client_cpu / events;
  }
  return r;
}

HttpRate HttpAppends(uint16_t port, int conns, int batch, double seconds) {
  std::atomic<uint64_t> events{0}, requests{0};
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  const std::string body = Batch(batch);
  const StoreCounters before = ScrapeStore(port);
  const double host_cpu0 = ProcessCpuSeconds(g_pid), client_cpu0 = ProcessCpuSeconds(getpid());
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      try {
        Conn conn(port);
        const std::string target =
            "/streams/bench-" + std::to_string(conns) + "-" + std::to_string(batch) + "-" + std::to_string(c);
        while (!stop.load()) {
          if (conn.Call("POST", target, body) == 201) {
            events.fetch_add(batch);
            requests.fetch_add(1);
          } else {
            errors.fetch_add(1);
          }
        }
      } catch (...) {
        errors.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double secs = esdb_bench::Seconds(t0, Clock::now());
  const double host_cpu = ProcessCpuSeconds(g_pid) - host_cpu0, client_cpu = ProcessCpuSeconds(getpid()) - client_cpu0;
  const StoreCounters after = ScrapeStore(port);
  if (errors.load()) std::printf("  (%d HTTP errors)\n", errors.load());
  return RateOf(events.load(), requests.load(), secs, host_cpu, client_cpu, before, after);
}

// The same load over gRPC: `conns` clients, each with its own channel (its
// own HTTP/2 connection, as each HTTP writer has its own) and one call in
// progress at a time. With Append, each call is one append of `batch`
// events (Streams.Append); with BatchAppend, each client keeps one
// Streams.BatchAppend call open and sends one append of `batch` events at a
// time on it, waiting for its answer, as the official clients append when
// the server advertises BatchAppend. The clients run on gRPC's callback API
// (its own few threads, no thread per client), so the client takes as
// little as it can of the cores it shares with the host.
enum class GrpcPath { kAppend, kBatchAppend };

namespace spb = event_store::client::streams;

// What the clients of one measurement share.
struct GrpcLoad {
  int conns = 0, batch = 0;
  std::vector<std::string> data;  // of the events of an append: EventJson(0..batch-1), as over HTTP
  std::atomic<uint64_t> events{0}, requests{0};
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;  // clients whose last call has not ended

  void ClientDone() {
    std::lock_guard<std::mutex> lock(mu);
    if (--running == 0) cv.notify_all();
  }
  void Error(const std::string& what) {
    if (errors.fetch_add(1) == 0) std::printf("  (first gRPC error: %s)\n", what.c_str());
  }
};

// A unique UUID text (across clients and configurations) for message `n` of client `c`.
void BenchId(char (&id)[40], const GrpcLoad& load, int c, char kind, uint64_t n) {
  std::snprintf(id, sizeof id, "%08x-%04x-4000-%c000-%012llx", c, load.conns * 100 + load.batch, kind,
                static_cast<unsigned long long>(n));
}

// One Streams.Append call of `batch` events: the options, then the events,
// the last with WritesDone; then the next call (a new reactor) until stop.
class AppendClient final : public grpc::ClientWriteReactor<spb::AppendReq> {
 public:
  AppendClient(GrpcLoad& load, spb::Streams::Stub* stub, int c, const std::string& stream, uint64_t n)
      : load_(load), stub_(stub), c_(c), stream_(stream), n_(n) {
    options_.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    options_.mutable_options()->mutable_any();
    auto* m = message_.mutable_proposed_message();
    (*m->mutable_metadata())["type"] = "bench";
    (*m->mutable_metadata())["content-type"] = "application/json";
    stub_->async()->Append(&ctx_, &resp_, this);
    StartWrite(&options_);
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;  // the call failed: OnDone says how
    if (written_ == load_.batch) return;
    char id[40];
    BenchId(id, load_, c_, '8', n_++);
    auto* m = message_.mutable_proposed_message();
    m->mutable_id()->set_string(id);
    m->set_data(load_.data[written_]);
    if (++written_ == load_.batch) {
      StartWriteLast(&message_, grpc::WriteOptions());
    } else {
      StartWrite(&message_);
    }
  }

  void OnDone(const grpc::Status& st) override {
    if (st.ok() && resp_.has_success()) {
      load_.events.fetch_add(load_.batch);
      load_.requests.fetch_add(1);
    } else {
      load_.Error(std::to_string(st.error_code()) + " " + st.error_message());
    }
    if (load_.stop.load()) {
      load_.ClientDone();
    } else {
      new AppendClient(load_, stub_, c_, stream_, n_);
    }
    delete this;
  }

 private:
  GrpcLoad& load_;
  spb::Streams::Stub* stub_;
  const int c_;
  const std::string stream_;
  uint64_t n_;
  int written_ = 0;
  grpc::ClientContext ctx_;
  spb::AppendReq options_, message_;
  spb::AppendResp resp_;
};

// One Streams.BatchAppend call kept open: an append of `batch` events,
// its answer, the next, until stop; then WritesDone.
class BatchAppendClient final : public grpc::ClientBidiReactor<spb::BatchAppendReq, spb::BatchAppendResp> {
 public:
  BatchAppendClient(GrpcLoad& load, spb::Streams::Stub* stub, int c, const std::string& stream)
      : load_(load), c_(c) {
    req_.mutable_options()->mutable_stream_identifier()->set_stream_name(stream);
    req_.mutable_options()->mutable_any();
    req_.mutable_options()->mutable_deadline()->set_seconds(10);
    req_.set_is_final(true);
    for (int i = 0; i < load.batch; ++i) {
      auto* pm = req_.add_proposed_messages();
      (*pm->mutable_metadata())["type"] = "bench";
      (*pm->mutable_metadata())["content-type"] = "application/json";
      pm->set_data(load.data[i]);
    }
    stub->async()->BatchAppend(&ctx_, this);
    Send();
    StartCall();
  }

  // The next append and the read of its answer; the next one waits for
  // both (the request is reused).
  void Send() {
    char id[40];
    BenchId(id, load_, c_, '9', n_);
    req_.mutable_correlation_id()->set_string(id);
    for (int i = 0; i < load_.batch; ++i) {
      BenchId(id, load_, c_, 'a', n_++);
      req_.mutable_proposed_messages(i)->mutable_id()->set_string(id);
    }
    pending_ = 2;
    StartWrite(&req_);
    StartRead(&resp_);
  }

  void OnWriteDone(bool ok) override { Step(ok); }

  void OnReadDone(bool ok) override {
    if (ok) {
      if (resp_.has_success()) {
        load_.events.fetch_add(load_.batch);
        load_.requests.fetch_add(1);
      } else {
        load_.Error("BatchAppend answer: " + resp_.error().message());
      }
    }
    Step(ok);
  }

  void OnDone(const grpc::Status& st) override {
    if (!st.ok()) load_.Error("BatchAppend call ended: " + std::to_string(st.error_code()) + " " + st.error_message());
    load_.ClientDone();
    delete this;
  }

 private:
  // One of the two operations of an append ended (a write and a read never
  // run at once with another of their kind, so their reactions do not race
  // on pending_ but may run concurrently with each other: hence the atomic).
  void Step(bool ok) {
    if (!ok) failed_ = true;
    if (pending_.fetch_sub(1) != 1) return;
    if (failed_) return;  // OnDone follows (the server ended the call)
    if (load_.stop.load()) {
      StartWritesDone();
    } else {
      Send();
    }
  }

  GrpcLoad& load_;
  const int c_;
  uint64_t n_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<bool> failed_{false};
  grpc::ClientContext ctx_;
  spb::BatchAppendReq req_;
  spb::BatchAppendResp resp_;
};

HttpRate GrpcAppends(uint16_t port, int conns, int batch, double seconds, GrpcPath path) {
  GrpcLoad load;
  load.conns = conns;
  load.batch = batch;
  for (int i = 0; i < batch; ++i) load.data.push_back(EventJson(i).dump());
  std::vector<std::unique_ptr<spb::Streams::Stub>> stubs;
  for (int c = 0; c < conns; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
    auto channel =
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::printf("  (gRPC channel %d did not connect)\n", c);
      return {};
    }
    stubs.push_back(spb::Streams::NewStub(channel));
  }
  const StoreCounters before = ScrapeStore(g_http_port);
  const double host_cpu0 = ProcessCpuSeconds(g_pid), client_cpu0 = ProcessCpuSeconds(getpid());
  const auto t0 = Clock::now();
  load.running = conns;
  for (int c = 0; c < conns; ++c) {
    const std::string stream =
        "grpc-bench-" + std::to_string(conns) + "-" + std::to_string(batch) + "-" + std::to_string(c);
    if (path == GrpcPath::kBatchAppend) {
      new BatchAppendClient(load, stubs[c].get(), c, stream);
    } else {
      new AppendClient(load, stubs[c].get(), c, stream, 0);
    }
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  load.stop = true;
  {
    std::unique_lock<std::mutex> lock(load.mu);
    load.cv.wait(lock, [&] { return load.running == 0; });
  }
  const double secs = esdb_bench::Seconds(t0, Clock::now());
  const double host_cpu = ProcessCpuSeconds(g_pid) - host_cpu0, client_cpu = ProcessCpuSeconds(getpid()) - client_cpu0;
  const StoreCounters after = ScrapeStore(g_http_port);
  if (load.errors.load()) std::printf("  (%d gRPC errors)\n", load.errors.load());
  return RateOf(load.events.load(), load.requests.load(), secs, host_cpu, client_cpu, before, after);
}

// Append one event at a time; measure from the 201 (and from sending the
// POST) to the SSE message. The SSE message may already be waiting when the
// 201 is read: the ack and the delivery race on two sockets.
void SseLatency(uint16_t port, int samples) {
  net::io_context io;
  tcp::socket sock(io);
  sock.connect({net::ip::make_address("127.0.0.1"), port});
  const std::string req = "GET /streams/latency/subscribe?from=end HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(sock, net::buffer(req));
  std::string raw;
  std::array<char, 8192> buf;
  while (raw.find(": stream open\n\n") == std::string::npos) raw.append(buf.data(), sock.read_some(net::buffer(buf)));
  raw.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Conn writer(port);
  std::vector<double> from_ack, from_send;
  const std::string body = Batch(1);
  for (int i = 0; i < samples; ++i) {
    const auto sent = Clock::now();
    writer.Call("POST", "/streams/latency", body);
    const auto acked = Clock::now();
    size_t pos;
    while ((pos = raw.find("\ndata: ")) == std::string::npos || raw.find("\n\n", pos) == std::string::npos) {
      raw.append(buf.data(), sock.read_some(net::buffer(buf)));
    }
    const auto received = Clock::now();
    from_ack.push_back(std::chrono::duration<double, std::micro>(received - acked).count());
    from_send.push_back(std::chrono::duration<double, std::micro>(received - sent).count());
    raw.erase(0, raw.find("\n\n", pos) + 2);
  }
  auto print = [samples](const char* what, std::vector<double>& lat) {
    std::sort(lat.begin(), lat.end());
    std::printf("SSE delivery latency, %s -> SSE receipt (%d samples): p50 %.0f us, p99 %.0f us, max %.0f us\n", what,
                samples, lat[lat.size() / 2], lat[lat.size() * 99 / 100], lat.back());
  };
  print("append ack", from_ack);
  print("append sent", from_send);
}

struct Options {
  double seconds = 3;
  std::vector<std::pair<int, int>> configs = {{1, 1}, {16, 1}, {64, 1}, {1, 10}, {16, 10}, {64, 10}};
  bool raw = true, store = true, http = true, grpc = false;
  int sse_samples = 500;
  std::vector<std::string> host_args;  // extra esdb-host arguments (--host-set K=V adds "--set", "K=V")
  std::string dir = "/tmp";            // where the databases go (a tmpfs takes the disk out of the picture)
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--seconds") {
      o->seconds = std::atof(v.c_str());
    } else if (a == "--sse-samples") {
      o->sse_samples = std::atoi(v.c_str());
    } else if (a == "--configs") {
      o->configs.clear();
      std::istringstream in(v);
      std::string item;
      while (std::getline(in, item, ',')) {
        int conns = 0, batch = 0;
        if (std::sscanf(item.c_str(), "%dx%d", &conns, &batch) != 2 || conns < 1 || batch < 1) return false;
        o->configs.emplace_back(conns, batch);
      }
    } else if (a == "--host-set") {
      o->host_args.push_back("--set");
      o->host_args.push_back(v);
    } else if (a == "--host-arg") {
      o->host_args.push_back(v);
    } else if (a == "--dir") {
      o->dir = v;
    } else if (a == "--tiers") {
      o->raw = v.find("raw") != std::string::npos;
      o->store = v.find("store") != std::string::npos;
      o->http = v.find("http") != std::string::npos;
      o->grpc = v.find("grpc") != std::string::npos;
    } else {
      return false;
    }
  }
  return o->seconds > 0 && !o->configs.empty();
}

std::string Cell(double events_per_s, double per_sync) {
  if (events_per_s <= 0) return "-";
  char buf[64];
  if (per_sync > 0) std::snprintf(buf, sizeof buf, "%.0f (%.1f/sync)", events_per_s, per_sync);
  else std::snprintf(buf, sizeof buf, "%.0f", events_per_s);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s [--seconds S] [--configs CONNSxEVENTS,...] [--tiers raw,store,http,grpc] [--sse-samples N]\n"
                 "          [--host-set KEY=VALUE]... [--host-arg ARG]... [--dir DIR]\n",
                 argv[0]);
    return 2;
  }
  // As the grpc plugin does in the host (grpc_plugin.cc): without it, Debian's
  // Abseil tracks the lock order of every lock gRPC takes in this process.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string tmpl = opt.dir + "/esdb-http-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "cannot create a directory in %s\n", opt.dir.c_str());
    return 2;
  }
  const std::string root = tmpl;

  uint16_t port = 0;
  if (opt.http || opt.grpc || opt.sse_samples > 0) {
    port = StartHost(root + "/data", root + "/manifests", opt.host_args, opt.grpc);
    g_http_port = port;
    if (port == 0 || !WaitReady(port)) {
      std::fprintf(stderr, "esdb-host did not become ready; see %s/host.log\n", root.c_str());
      if (g_pid > 0) kill(g_pid, SIGKILL);
      return 1;
    }
  }
  std::shared_ptr<esdb_persistence::LevelDbStorage> storage;
  std::shared_ptr<esdb_store::StoreCore> store;
  if (opt.store) {
    auto pcfg = esdb_persistence::ParsePersistenceConfig(ManifestConfig("persistence"));
    auto scfg = esdb_store::ParseStoreOptions(ManifestConfig("store"));
    if (!pcfg.ok() || !scfg.ok()) {
      std::fprintf(stderr, "bad manifest config: %s %s\n", pcfg.status().ToString().c_str(),
                   scfg.status().ToString().c_str());
      return 1;
    }
    auto opened = esdb_persistence::LevelDbStorage::Open(root + "/inproc", pcfg->leveldb);
    if (!opened.ok()) return 1;
    storage = *opened;
    auto core = esdb_store::StoreCore::Open(storage, *scfg, {});
    if (!core.ok()) return 1;
    store = *core;
  }

  const esdb::ProposedEvent event = StoreEvent();
  std::printf("esdb http_bench: %.1f s per measurement, %u hardware threads, event data %zu bytes\n", opt.seconds,
              std::thread::hardware_concurrency(), event.data.size());
  std::printf("events/s, durable (synced) writes; (n/sync) = events per synced write (group commit)\n");
  std::printf("CPU us/ev: microseconds of CPU per event: in-process store (this process) | HTTP: esdb-host, client\n");
  std::printf("%5s %6s | %-22s | %-22s | %-22s | %-10s | %s\n", "conns", "ev/req", "raw LevelDB", "in-process store",
              "HTTP", "HTTP/store", "CPU us/ev store | host, client");
  std::fflush(stdout);
  int n = 0;
  for (auto [conns, batch] : opt.configs) {
    const std::string tag = std::to_string(conns) + "x" + std::to_string(batch) + "-" + std::to_string(n++);
    esdb_bench::Rate raw, in_process;
    HttpRate over_http, over_grpc;
    if (opt.raw) raw = esdb_bench::RawLevelDb(root + "/raw-" + tag, conns, batch, event.data.size(), opt.seconds);
    double store_cpu_us = 0;
    if (opt.store) {
      const double cpu0 = ProcessCpuSeconds(getpid());
      in_process = esdb_bench::StoreAppends(*store, conns, batch, event, opt.seconds, "inproc-" + tag);
      if (in_process.events > 0) store_cpu_us = 1e6 * (ProcessCpuSeconds(getpid()) - cpu0) / in_process.events;
    }
    if (opt.http) over_http = HttpAppends(port, conns, batch, opt.seconds);
    if (opt.grpc) {
      for (GrpcPath path : {GrpcPath::kAppend, GrpcPath::kBatchAppend}) {
        over_grpc = GrpcAppends(g_grpc_port, conns, batch, opt.seconds, path);
        std::printf("%5d %6d | gRPC %-11s %s (%.0f%% of HTTP) | CPU us/ev host, client %.1f, %.1f\n", conns, batch,
                    path == GrpcPath::kAppend ? "Append" : "BatchAppend",
                    Cell(over_grpc.rate.events_per_s, over_grpc.rate.events_per_sync).c_str(),
                    over_http.rate.events_per_s > 0 ? 100 * over_grpc.rate.events_per_s / over_http.rate.events_per_s
                                                    : 0.0,
                    over_grpc.host_cpu_us_per_event, over_grpc.client_cpu_us_per_event);
      }
    }
    char ratio[16] = "-";
    if (in_process.events_per_s > 0 && over_http.rate.events_per_s > 0) {
      std::snprintf(ratio, sizeof ratio, "%.0f%%", 100 * over_http.rate.events_per_s / in_process.events_per_s);
    }
    char cpu[64];
    char store_cpu[16] = "-", http_cpu[32] = "-";
    if (store_cpu_us > 0) std::snprintf(store_cpu, sizeof store_cpu, "%.1f", store_cpu_us);
    if (over_http.rate.events_per_s > 0) {
      std::snprintf(http_cpu, sizeof http_cpu, "%.1f, %.1f", over_http.host_cpu_us_per_event,
                    over_http.client_cpu_us_per_event);
    }
    std::snprintf(cpu, sizeof cpu, "%s | %s", store_cpu, http_cpu);
    std::printf("%5d %6d | %-22s | %-22s | %-22s | %-10s | %s\n", conns, batch,
                Cell(raw.events_per_s, raw.events_per_sync).c_str(),
                Cell(in_process.events_per_s, in_process.events_per_sync).c_str(),
                Cell(over_http.rate.events_per_s, over_http.rate.events_per_sync).c_str(), ratio, cpu);
    std::fflush(stdout);
  }
  if (store) {
    store->Close();
    (void)storage->Close(std::chrono::seconds(10));
  }
  if (opt.sse_samples > 0) SseLatency(port, opt.sse_samples);
  if (g_pid > 0) {
    kill(g_pid, SIGTERM);
    int status = 0;
    waitpid(g_pid, &status, 0);
  }
  std::filesystem::remove_all(root);
  return 0;
}

#include "nats_cluster.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "esdb/testing/http.h"

namespace esdb::test {
namespace fs = std::filesystem;

namespace {

// Binds 127.0.0.1:port (0: any) and releases it; the port bound, 0 if it
// could not be bound.
uint16_t BindLoopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}

}  // namespace

uint16_t FreeLoopbackPort() {
  const uint16_t port = BindLoopback(0);
  if (port == 0) throw std::runtime_error("cannot bind a loopback port");
  return port;
}

uint16_t FreeLoopbackPortBlock(int count) {
  // Below the ephemeral range (32768-60999 on Linux), where the kernel does
  // not hand out ports by itself; a random start so parallel tests differ.
  std::random_device rd;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint16_t first = static_cast<uint16_t>(20000 + rd() % (32000 - 20000 - static_cast<unsigned>(count)));
    bool free = true;
    for (int i = 0; i < count && free; ++i) free = BindLoopback(static_cast<uint16_t>(first + i)) != 0;
    if (free) return first;
  }
  throw std::runtime_error("no block of " + std::to_string(count) + " free loopback ports found");
}

NatsCluster::NatsCluster(const fs::path& dir, NatsClusterOptions options) : options_(std::move(options)) {
  servers_.resize(static_cast<size_t>(options_.servers));
  for (size_t i = 0; i < servers_.size(); ++i) {
    Server& s = servers_[i];
    s.name = "n" + std::to_string(i + 1);
    s.dir = dir / s.name;
    fs::create_directories(s.dir / "jetstream");
  }
  Configure();
  for (Server& s : servers_) Start(s);
}

void NatsCluster::Configure() {
  // Ports below the kernel's ephemeral range: no outgoing connection of
  // another process (a host's NATS or HTTP client) is given one of them
  // between the check and nats-server's bind.
  const uint16_t first = FreeLoopbackPortBlock(3 * options_.servers);
  for (size_t i = 0; i < servers_.size(); ++i) {
    Server& s = servers_[i];
    s.client_port = static_cast<uint16_t>(first + 3 * i);
    s.cluster_port = static_cast<uint16_t>(first + 3 * i + 1);
    s.monitor_port = static_cast<uint16_t>(first + 3 * i + 2);
  }
  for (Server& s : servers_) {
    std::string routes;
    for (const Server& o : servers_) {
      if (&o == &s) continue;
      const std::string credentials = options_.user.empty() ? "" : options_.user + ":" + options_.password + "@";
      routes += (routes.empty() ? "" : ", ") + std::string("nats-route://") + credentials + "127.0.0.1:" +
                std::to_string(o.cluster_port);
    }
    std::ofstream conf(s.dir / "nats.conf");
    conf << "server_name: " << s.name << "\n"
         << "listen: 127.0.0.1:" << s.client_port << "\n"
         << "http: 127.0.0.1:" << s.monitor_port << "\n"
         << "max_payload: " << options_.max_payload << "\n"
         << "jetstream { store_dir: \"" << (s.dir / "jetstream").string() << "\" }\n";
    const std::string authorization =
        options_.user.empty() ? "" : "authorization { user: \"" + options_.user + "\", password: \"" + options_.password + "\" }";
    conf << authorization << "\n";
    if (servers_.size() > 1) {
      conf << "cluster { name: esdb-test, listen: 127.0.0.1:" << s.cluster_port << ", routes: [" << routes << "] "
           << authorization << " }\n";
    }
    if (!conf) throw std::runtime_error("cannot write " + (s.dir / "nats.conf").string());
  }
}

NatsCluster::~NatsCluster() {
  for (size_t i = 0; i < servers_.size(); ++i) Stop(static_cast<int>(i));
}

void NatsCluster::Start(Server& s) {
  esdb::testing::HostOptions o = esdb::testing::HostOptions::Exactly({"-c", (s.dir / "nats.conf").string()});
  o.binary = options_.binary;
  o.print_events = false;
  s.process = std::make_unique<esdb::testing::HostProcess>(std::move(o));
}

bool NatsCluster::WaitReady(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int restarts = 0;
  for (size_t i = 0; i < servers_.size(); ++i) {
    const Server& s = servers_[i];
    if (!s.process) continue;
    for (;;) {
      esdb::testing::HttpResult r = esdb::testing::Http(s.monitor_port, "GET", "/healthz", "", {}, 2000);
      if (r.status == 200) break;
      if (s.process->Wait(0).has_value()) {
        // It exited. Before the servers were ever ready that is a port
        // another process took between the check and the bind: every
        // server starts again on new ports (their stores are still empty).
        if (ever_ready_ || restarts == 3) {
          failure_ = s.name + " exited; its log:\n" + s.process->Stderr();
          return false;
        }
        ++restarts;
        for (size_t j = 0; j < servers_.size(); ++j) Stop(static_cast<int>(j));
        Configure();
        for (Server& o : servers_) Start(o);
        i = static_cast<size_t>(-1);  // from the first server again
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        failure_ = s.name + " not ready within " + std::to_string(timeout_ms) + " ms; its log:\n" + s.process->Stderr();
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ever_ready_ = true;
  failure_.clear();
  return true;
}

std::vector<std::string> NatsCluster::ClientUrls() const {
  std::vector<std::string> urls;
  for (const Server& s : servers_) urls.push_back("nats://127.0.0.1:" + std::to_string(s.client_port));
  return urls;
}

std::string NatsCluster::Name(int i) const { return servers_.at(static_cast<size_t>(i)).name; }

pid_t NatsCluster::Pid(int i) const {
  const Server& s = servers_.at(static_cast<size_t>(i));
  return s.process ? s.process->pid() : -1;
}

std::string NatsCluster::Log(int i) const {
  const Server& s = servers_.at(static_cast<size_t>(i));
  return s.process ? s.process->Stderr() : std::string();
}

void NatsCluster::Kill(int i) {
  Server& s = servers_.at(static_cast<size_t>(i));
  s.process.reset();  // HostProcess's destructor: SIGKILL by PID, then waits
}

void NatsCluster::Restart(int i) {
  Server& s = servers_.at(static_cast<size_t>(i));
  if (!s.process) Start(s);
}

uint16_t NatsCluster::MonitorPort(int i) const { return servers_.at(static_cast<size_t>(i)).monitor_port; }

std::string NatsCluster::StreamLeader(const std::string& stream) const {
  for (const Server& s : servers_) {
    if (!s.process) continue;
    esdb::testing::HttpResult r =
        esdb::testing::Http(s.monitor_port, "GET", "/jsz?accounts=true&streams=true", "", {}, 2000);
    const nlohmann::json j = r.Json();
    if (!j.is_object() || !j.contains("account_details") || !j["account_details"].is_array()) continue;
    for (const auto& a : j["account_details"]) {
      if (!a.is_object() || !a.contains("stream_detail") || !a["stream_detail"].is_array()) continue;
      for (const auto& sd : a["stream_detail"]) {
        if (sd.is_object() && sd.value("name", "") == stream && sd.contains("cluster") && sd["cluster"].is_object()) {
          const std::string leader = sd["cluster"].value("leader", "");
          if (!leader.empty()) return leader;
        }
      }
    }
  }
  return "";
}

int NatsCluster::Stop(int i) {
  Server& s = servers_.at(static_cast<size_t>(i));
  if (!s.process) return 0;
  const int code = s.process->Terminate(10000);
  s.process.reset();
  return code;
}

}  // namespace esdb::test

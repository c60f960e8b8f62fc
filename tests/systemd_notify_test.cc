// esdb-host under systemd's notify protocol, with a fake NOTIFY_SOCKET: a
// datagram socket this test binds and reads, as systemd would.
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

using esdb::testing::HostOptions;
using esdb::testing::HostProcess;
using esdb::testing::TempDir;
using esdb::test::TestManifest;
using esdb::test::WriteManifest;
namespace fs = std::filesystem;

namespace {

// The receiving end of $NOTIFY_SOCKET: an AF_UNIX datagram socket at `path`.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.string().size() < sizeof(addr.sun_path));
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~NotifySocket() { close(fd_); }

  // The next datagram, or "" after `timeout_ms` without one.
  std::string Receive(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "";
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return "";
    std::string m(buf, static_cast<size_t>(n));
    all_.push_back(m);
    return m;
  }
  // Datagrams until one contains `what`: that one, or "" after `timeout_ms`.
  std::string WaitFor(const std::string& what, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      const std::string m = Receive(static_cast<int>(std::max<int64_t>(left.count(), 1)));
      if (m.find(what) != std::string::npos) return m;
    }
    return "";
  }
  // Every datagram received so far, joined by " | ".
  std::string Received() const {
    std::string out;
    for (const auto& m : all_) out += (out.empty() ? "" : " | ") + m;
    return out;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::vector<std::string> all_;
};

// Sets environment variables for the host started next (the child inherits
// them); unsets them again on destruction. Test cases run one per process.
struct ScopedEnv {
  std::vector<std::string> names;
  void Set(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    names.push_back(name);
  }
  ~ScopedEnv() {
    for (const auto& n : names) unsetenv(n.c_str());
  }
};

}  // namespace

TEST_CASE("under a NOTIFY_SOCKET the host says READY=1 after system_ready, feeds the watchdog, STOPPING=1 on SIGTERM",
          "[systemd][process]") {
  TempDir dir;
  const fs::path manifests = dir / "manifests";
  fs::create_directories(manifests);
  WriteManifest(manifests, TestManifest("alpha"));
  WriteManifest(manifests, TestManifest("beta", {{"report_delay_ms", 300}}));
  NotifySocket sock(dir / "notify");
  ScopedEnv env;
  env.Set("NOTIFY_SOCKET", (dir / "notify").string());
  env.Set("WATCHDOG_USEC", "400000");  // 0.4 s: fed about every 100 ms
  std::vector<std::string> args = {"--no-config", "--manifests", manifests.string(), "--data", (dir / "data").string(),
                                   "--print-events"};
  for (const auto& a : esdb::test::PluginDirArgs()) args.push_back(a);
  HostProcess host(HostOptions::Exactly(args));

  const std::string ready = sock.WaitFor("READY=1", 20000);
  INFO("datagrams: " << sock.Received() << "\nstderr: " << host.Stderr());
  REQUIRE(!ready.empty());
  // READY=1 only once the ControlPlane published system_ready (it is
  // printed before the notifier's handler runs or concurrently; give the
  // printer a moment).
  CHECK(host.WaitForEvent("system_ready", "", 2000));
  CHECK(ready.find("STATUS=ready: 2 critical subsystem(s) ready (alpha, beta)") != std::string::npos);
  // Before it: the start.
  CHECK(sock.Received().find("STATUS=starting") < sock.Received().find("READY=1"));
  // The watchdog is fed while the host runs.
  CHECK(!sock.WaitFor("WATCHDOG=1", 5000).empty());
  CHECK(!sock.WaitFor("WATCHDOG=1", 5000).empty());

  REQUIRE(host.Terminate() == 0);
  const std::string stopping = sock.WaitFor("STOPPING=1", 5000);
  CHECK(!stopping.empty());
}

TEST_CASE("under a NOTIFY_SOCKET a degraded system is reported in STATUS=", "[systemd][process]") {
  TempDir dir;
  const fs::path manifests = dir / "manifests";
  fs::create_directories(manifests);
  WriteManifest(manifests, TestManifest("alpha"));
  // Ready, then fails and is given up on at once.
  WriteManifest(manifests, TestManifest("beta", {{"fail_after_ms", 500}}, {{"restart", {{"max_restarts", 0}}}}));
  NotifySocket sock(dir / "notify");
  ScopedEnv env;
  env.Set("NOTIFY_SOCKET", (dir / "notify").string());
  std::vector<std::string> args = {"--no-config", "--manifests", manifests.string(), "--data", (dir / "data").string(),
                                   "--print-events"};
  for (const auto& a : esdb::test::PluginDirArgs()) args.push_back(a);
  HostProcess host(HostOptions::Exactly(args));
  CHECK(!sock.WaitFor("READY=1", 20000).empty());
  const std::string degraded = sock.WaitFor("STATUS=degraded", 20000);
  INFO("datagrams: " << sock.Received() << "\nstderr: " << host.Stderr());
  REQUIRE(!degraded.empty());
  CHECK(degraded.find("given up on: beta") != std::string::npos);
  CHECK(host.WaitForEvent("system_degraded", "", 2000));
  // Without WATCHDOG_USEC there is no watchdog to feed.
  CHECK(sock.Received().find("WATCHDOG=1") == std::string::npos);
  CHECK(host.Terminate() == 0);
  CHECK(!sock.WaitFor("STOPPING=1", 5000).empty());
}

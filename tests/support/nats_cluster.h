// Real nats-server processes for esdb's cluster-mode tests: N servers with
// JetStream, clustered with each other, on loopback ports found free at
// start, each with its own store directory under `dir`. Each runs as an
// esdb::testing::HostProcess (the kit's child-process helper, with the
// exact nats-server command line) and is stopped by its PID: SIGTERM in
// Stop() or the destructor (SIGKILL if it does not exit).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "esdb/testing/host_process.h"

namespace esdb::test {

// A loopback TCP port that was free a moment ago (bound to 127.0.0.1:0 and
// released; the caller's process binds it soon after).
uint16_t FreeLoopbackPort();
// The first of `count` consecutive loopback TCP ports that were all free a
// moment ago (for scripts/cluster.sh, which numbers its ports from one).
// Throws std::runtime_error if none is found.
uint16_t FreeLoopbackPortBlock(int count);

struct NatsClusterOptions {
  int servers = 3;
  std::filesystem::path binary = "/usr/sbin/nats-server";  // Debian's nats-server
  std::string max_payload = "8MB";                           // a commit group is one message
  // When set, clients and the servers' routes must authenticate with this
  // user and password (the nats-servers' `authorization`, as the packaged
  // configs have it). Both or neither.
  std::string user{};
  std::string password{};
};

class NatsCluster {
 public:
  // Writes each server's config into dir/<name>/ and starts them all.
  // Throws std::runtime_error when a process cannot be started.
  NatsCluster(const std::filesystem::path& dir, NatsClusterOptions options = {});
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  // Waits until every running server answers GET /healthz on its monitoring
  // port with 200 (JetStream up and current); false on timeout, with
  // Failure() saying which server and holding its log. Until the servers
  // were first ready, a server that exited (a port taken by another process
  // after it was found free) makes all of them start again on new ports,
  // up to 3 times.
  bool WaitReady(int timeout_ms);
  // Why the last WaitReady() returned false; empty after a true one.
  const std::string& Failure() const { return failure_; }
  // nats://127.0.0.1:<port> of every server, for a client's server list.
  std::vector<std::string> ClientUrls() const;
  // Name ("n1", ...), PID (-1 when stopped) and log (stderr) of server `i`.
  std::string Name(int i) const;
  pid_t Pid(int i) const;
  std::string Log(int i) const;
  // SIGTERM by PID, waits; the exit code as HostProcess::Terminate().
  int Stop(int i);
  // SIGKILL by PID (kill -9), waits for it to be gone.
  void Kill(int i);
  // Starts server `i` again (after Stop or Kill) with its config and data.
  void Restart(int i);
  // Its monitoring port (GET /healthz, /jsz, ...).
  uint16_t MonitorPort(int i) const;
  // The name of the server that leads JetStream stream `stream` (from
  // /jsz of a running server), empty when none says.
  std::string StreamLeader(const std::string& stream) const;

 private:
  struct Server {
    std::string name;
    uint16_t client_port = 0, cluster_port = 0, monitor_port = 0;
    std::filesystem::path dir;
    std::unique_ptr<esdb::testing::HostProcess> process;
  };
  void Start(Server& s);
  // Picks free ports for every server and writes each one's nats.conf.
  void Configure();

  NatsClusterOptions options_;
  std::vector<Server> servers_;
  bool ever_ready_ = false;
  std::string failure_;
};

}  // namespace esdb::test

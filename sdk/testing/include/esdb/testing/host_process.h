// esdb testing kit: a real esdb-host as a child process.
//
//   esdb::testing::TempDir dir;
//   esdb::testing::HostProcess host({.manifests = my_manifests, .data = dir / "data"});
//   auto port = host.GatewayPort();                  // the ephemeral port it bound
//   REQUIRE(host.WaitForEvent("subsystem_ready", "my_plugin"));
//   ... esdb::testing::Http(*port, "GET", "/health/ready") ...
//   CHECK(host.Terminate() == 0);                    // SIGTERM by PID
//
// The host runs with --print-events: every bus event is one JSON line on its
// stdout (esdb::EventToJson), which a reader thread collects from the start;
// WaitFor() looks at them all, oldest first. Its stderr (the log) goes to a
// file, Stderr() reads it.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "esdb/status.h"

// The esdb-host this kit was installed with: for the code that links
// esdb::testing, find_package(esdb_sdk COMPONENTS testing) defines
// ESDB_TESTING_HOST_BIN as <prefix>/bin/esdb-host (and
// ESDB_TESTING_PLUGIN_DIR as the directory of the installed built-in
// plugins); in esdb's own build tree, the build's. Read at the call site,
// as a default argument.
#ifdef ESDB_TESTING_HOST_BIN
#define ESDB_TESTING_DEFAULT_HOST_BIN_ ESDB_TESTING_HOST_BIN
#else
#define ESDB_TESTING_DEFAULT_HOST_BIN_ ""
#endif

namespace esdb::testing {

// How to start the host. The command line is
//   <binary> [--no-config] [--manifests M] [--data D] [--plugin-dir P]...
//            [--set gateway.listen_port=0] [--set grpc.listen_port=0] [--print-events] [--log-level L] [--set S]... <args>...
struct HostOptions {
  std::filesystem::path binary{};          // empty: the esdb-host installed with the kit
  std::filesystem::path manifests{};       // --manifests, when not empty
  std::filesystem::path data{};            // --data, when not empty
  std::vector<std::filesystem::path> plugin_dirs{};  // one --plugin-dir each
  std::vector<std::string> sets{};         // one --set each, "key=value" (e.g. "gateway.tokens=[...]")
  std::vector<std::string> args{};         // appended as given
  bool ephemeral_gateway_port = true;      // --set gateway.listen_port=0 (GatewayPort() says which it got)
  // --set grpc.listen_port=0: the grpc plugin (when the manifests have it)
  // binds a free port, announced in its grpc_listening event, not 2114.
  bool ephemeral_grpc_port = true;
  bool print_events = true;                // --print-events: without it WaitFor() sees nothing
  std::string log_level{};                 // --log-level, when not empty
  // --no-config unless `args` has a --config: a test's host does not read
  // the machine's /etc/esdb/esdb.json (an installed esdb-host would).
  bool no_config = true;
  // Runs in the child between fork() and exec() (e.g. setrlimit()): only
  // async-signal-safe calls. A false return ends the child with code 126.
  std::function<bool()> in_child{};

  // Exactly `args` after the binary, nothing added (for tests of the host's
  // command line itself).
  static HostOptions Exactly(std::vector<std::string> args);
};

// A running esdb-host, stopped by PID: SIGTERM in Terminate(), SIGKILL by
// the destructor if it still runs then. WaitFor(), Lines() and Stderr() may
// be called from any thread; Wait() and Terminate() from one at a time.
class HostProcess {
 public:
  // Starts the host. `installed_host` is used when options.binary is empty;
  // when both are empty, or fork/pipe fail, throws std::runtime_error. A
  // binary that cannot be executed makes the child exit with code 127.
  explicit HostProcess(HostOptions options, std::string_view installed_host = ESDB_TESTING_DEFAULT_HOST_BIN_);
  ~HostProcess();
  HostProcess(const HostProcess&) = delete;
  HostProcess& operator=(const HostProcess&) = delete;

  // The first stdout line (from the start) that satisfies `pred`: a JSON
  // object per event, {"raw": text} for a line that is not JSON. nullopt
  // after `timeout_ms`, or as soon as stdout closed (the host exited)
  // without such a line.
  std::optional<nlohmann::json> WaitFor(const std::function<bool(const nlohmann::json&)>& pred,
                                        int timeout_ms = 20000);
  // An event of `type` and, when `subsystem` is not empty, data.name ==
  // `subsystem` (the lifecycle events name their subsystem there).
  std::optional<nlohmann::json> WaitForEvent(const std::string& type, const std::string& subsystem = "",
                                             int timeout_ms = 20000);
  // The port the gateway bound (its gateway_listening event, decoded with
  // esdb::DecodeGatewayListening). Stops waiting with an error holding the
  // event when the gateway failed to start (its subsystem_failed) or a
  // subsystem was given up on (subsystem_failed with final: true): the host
  // keeps running degraded then and the port would never come. Also an
  // error on timeout or when the host exited (with the end of its stderr).
  Result<uint16_t> GatewayPort(int timeout_ms = 30000);

  // Every stdout line so far.
  std::vector<nlohmann::json> Lines() const;
  // What the host wrote to stderr so far.
  std::string Stderr() const;
  // The command line it was started with (binary first).
  const std::vector<std::string>& CommandLine() const { return argv_; }
  pid_t pid() const { return pid_; }

  // Waits for the host to exit: its exit code, -signal, or nullopt on timeout.
  // When it died of a signal other than SIGTERM, SIGINT or SIGKILL (a
  // crash), also writes the end of its stderr (esdb-host's crash report:
  // the signal and the stack) to this process's stderr.
  std::optional<int> Wait(int timeout_ms);
  // SIGTERM to pid(), then Wait(): the exit code (0 for a clean stop), or
  // -signal; -1000 when it did not stop in time (it is killed then).
  int Terminate(int timeout_ms = 20000);

 private:
  void ReadLoop(int fd);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path stderr_file_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> lines_;
  bool eof_ = false;
};

}  // namespace esdb::testing

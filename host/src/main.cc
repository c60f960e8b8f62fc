// esdb-host: the process. Parses the command line, runs the Host, and
// stops it gracefully on SIGINT/SIGTERM; SIGHUP re-reads the manifests directory.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "host.h"

namespace {

const char* kUsage = R"(usage: esdb-host [options]
  --manifests DIR      manifest directory (default ./manifests)
  --data DIR           data directory (default ./data)
  --plugin-dir DIR     the only directories plugin libraries load from (repeatable; bare library
                       names are looked up in them in order). Default <dir of esdb-host>/plugins,
                       or <prefix>/lib/esdb/plugins for an installed host. A library must be a
                       regular file inside one of them, owned by this user or root, and neither it
                       nor a directory on its path writable by group or others
  --manifest-dir DIR   a further directory from which the admin API may add manifests by path
                       (repeatable; not watched; --manifests is always allowed)
  --node NAME          node name (default: host name)
  --log-level LEVEL    trace|debug|info|warn|error|critical|off (default info)
  --print-events       print every bus event as one JSON line on stdout
  --check              start, wait for system_ready (up to --timeout), print status JSON, stop;
                       exit 0 only if the system became ready
  --timeout SECONDS    for --check (default 30)
  --set NAME.KEY=JSON  override key KEY of subsystem NAME's config (repeatable);
                       a value that is not JSON is taken as a string
  --sequential-start   start subsystems one after another (for benchmarks)
  --no-watch           do not watch --manifests for changes; SIGHUP still re-reads it
  --help               this text
)";

struct Args {
  esdb::host::HostOptions host;
  bool print_events = false;
  bool check = false;
  int timeout_s = 30;
};

std::optional<std::string> ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&](std::string* out) -> std::optional<std::string> {
      if (i + 1 >= argc) return flag + " needs a value";
      *out = argv[++i];
      return std::nullopt;
    };
    std::string v;
    std::optional<std::string> err;
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (flag == "--manifests") {
      if ((err = value(&v))) return err;
      args->host.manifests_dir = v;
    } else if (flag == "--data") {
      if ((err = value(&v))) return err;
      args->host.data_dir = v;
    } else if (flag == "--plugin-dir") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--plugin-dir must not be empty");
      args->host.plugin_dirs.push_back(v);
    } else if (flag == "--manifest-dir") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--manifest-dir must not be empty");
      args->host.extra_manifest_dirs.push_back(v);
    } else if (flag == "--node") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--node must not be empty");
      args->host.node = v;
    } else if (flag == "--log-level") {
      if ((err = value(&v))) return err;
      if (spdlog::level::from_str(v) == spdlog::level::off && v != "off") {
        return "--log-level: unknown level '" + v + "'";
      }
      args->host.log_level = v;
    } else if (flag == "--print-events") {
      args->print_events = true;
    } else if (flag == "--check") {
      args->check = true;
    } else if (flag == "--sequential-start") {
      args->host.sequential_start = true;
    } else if (flag == "--no-watch") {
      args->host.watch_manifests = false;
    } else if (flag == "--timeout") {
      if ((err = value(&v))) return err;
      try {
        size_t used = 0;
        args->timeout_s = std::stoi(v, &used);
        if (used != v.size() || args->timeout_s <= 0) throw std::invalid_argument(v);
      } catch (...) {
        return "--timeout: '" + v + "' is not a positive number of seconds";
      }
    } else if (flag == "--set") {
      if ((err = value(&v))) return err;
      const auto dot = v.find('.');
      const auto eq = v.find('=');
      if (dot == std::string::npos || eq == std::string::npos || dot == 0 || eq < dot + 2) {
        return "--set: '" + v + "' is not NAME.KEY=VALUE";
      }
      const std::string text = v.substr(eq + 1);
      auto parsed = nlohmann::json::parse(text, nullptr, false);
      args->host.overrides[v.substr(0, dot)][v.substr(dot + 1, eq - dot - 1)] =
          parsed.is_discarded() ? nlohmann::json(text) : parsed;
    } else {
      return "unknown option '" + flag + "' (see --help)";
    }
  }
  return std::nullopt;
}

// After a shutdown that left stuck threads behind (Host::Shutdown logged
// which), exits at once with `code`: destroying the host or running static
// destructors could pull memory or code from under those threads.
void ExitAfter(bool clean, int code) {
  if (clean) return;
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (auto err = ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr, "esdb-host: %s\n", err->c_str());
    return 2;
  }
  // Signals are taken synchronously by this thread; block them before any
  // other thread exists so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::mutex out_mu;
  esdb::Subscription printer;
  if (args.print_events) {
    args.host.on_bus_created = [&](esdb::host::EventBusImpl& bus) {
      esdb::SubscribeOptions opts;
      opts.name = "print-events";
      auto sub = bus.Subscribe(opts, [&](const esdb::EventPtr& e) {
        const std::string line = esdb::EventToJson(*e).dump() + "\n";
        std::lock_guard<std::mutex> lock(out_mu);
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
      }, esdb::host::kHostOwner);
      if (sub.ok()) printer = std::move(sub.value());
    };
  }

  esdb::host::Host host(args.host);
  esdb::Status s = host.Start();
  if (!s.ok()) {
    host.logger()->critical("cannot start: {}", s.ToString());
    ExitAfter(host.Shutdown(), 1);
    return 1;
  }

  if (args.check) {
    const bool ready = host.control_plane().WaitSystemReady(args.timeout_s * 1000);
    nlohmann::json status = host.control_plane().Status();
    status["ready"] = ready;
    const bool clean = host.Shutdown();  // first, so the status is the last line of stdout
    {
      std::lock_guard<std::mutex> lock(out_mu);
      const std::string line = status.dump() + "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    }
    ExitAfter(clean, ready ? 0 : 1);
    return ready ? 0 : 1;
  }

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    host.RescanManifests();  // SIGHUP: the manifests directory, nothing else
  }
  host.logger()->info("signal {} received; stopping", sig);
  ExitAfter(host.Shutdown(), 0);
  return 0;
}

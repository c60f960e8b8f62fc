// esdb-host: the process. Reads the command line and the config file, runs
// the Host, and stops it gracefully on SIGINT/SIGTERM; SIGHUP re-reads the
// manifests directory. Under systemd it reports its state with sd_notify
// (systemd_notify.h) and feeds the watchdog.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "crash_report.h"
#include "host.h"
#include "host_config.h"
#include "log_format.h"
#include "systemd_notify.h"

namespace {

const char* kUsage = R"(usage: esdb-host [options]
  --config FILE        read settings from FILE (JSON; README "The config file"). An installed
                       esdb-host reads @DEFAULT_CONFIG@ if it exists; one run from its
                       build tree reads none. The options below override the file
  --no-config          read no config file
  --print-config       print the effective settings and where each came from (one JSON
                       line on stdout), then exit
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
  --log-format FORMAT  text|json: log lines on stderr as text or as JSON objects (default text)
  --print-events       print every bus event as one JSON line on stdout
  --check              start, wait for system_ready (up to --timeout), print status JSON, stop;
                       exit 0 only if the system became ready
  --timeout SECONDS    for --check (default 30)
  --set NAME.KEY=JSON  override key KEY of subsystem NAME's config (repeatable);
                       a value that is not JSON is taken as a string
  --sequential-start   start subsystems one after another (for benchmarks)
  --no-watch           do not watch --manifests for changes; SIGHUP still re-reads it
  --help               this text
Exit status: 0 ok, 1 could not start (or --check not ready), 2 bad command line or config file.
)";

struct Args {
  esdb::host::SettingsLayer cli;       // the settings the command line sets
  std::optional<std::string> config;   // --config FILE
  bool no_config = false;              // --no-config
  bool print_config = false;           // --print-config
  bool print_events = false;
  bool check = false;
  bool sequential_start = false;
  int timeout_s = 30;
};

// "one of a, b, c"
std::string OneOf(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return "one of " + out;
}

bool Contains(const std::vector<std::string>& names, const std::string& v) {
  for (const auto& n : names) {
    if (n == v) return true;
  }
  return false;
}

std::optional<std::string> ParseArgs(int argc, char** argv, Args* args) {
  esdb::host::SettingsLayer& cli = args->cli;
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
      std::string usage = kUsage;
      const std::string mark = "@DEFAULT_CONFIG@";
      usage.replace(usage.find(mark), mark.size(), esdb::host::DefaultConfigFile().string());
      std::cout << usage;
      std::exit(0);
    } else if (flag == "--config") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--config must not be empty");
      args->config = v;
    } else if (flag == "--no-config") {
      args->no_config = true;
    } else if (flag == "--print-config") {
      args->print_config = true;
    } else if (flag == "--manifests") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--manifests must not be empty");
      cli.manifests_dir = v;
    } else if (flag == "--data") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--data must not be empty");
      cli.data_dir = v;
    } else if (flag == "--plugin-dir") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--plugin-dir must not be empty");
      if (!cli.plugin_dirs) cli.plugin_dirs.emplace();
      cli.plugin_dirs->push_back(v);
    } else if (flag == "--manifest-dir") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--manifest-dir must not be empty");
      if (!cli.extra_manifest_dirs) cli.extra_manifest_dirs.emplace();
      cli.extra_manifest_dirs->push_back(v);
    } else if (flag == "--node") {
      if ((err = value(&v))) return err;
      if (v.empty()) return std::string("--node must not be empty");
      cli.node = v;
    } else if (flag == "--log-level") {
      if ((err = value(&v))) return err;
      if (!Contains(esdb::host::LogLevels(), v)) {
        return "--log-level: unknown level '" + v + "' (" + OneOf(esdb::host::LogLevels()) + ")";
      }
      cli.log_level = v;
    } else if (flag == "--log-format") {
      if ((err = value(&v))) return err;
      if (!Contains(esdb::host::LogFormats(), v)) {
        return "--log-format: unknown format '" + v + "' (" + OneOf(esdb::host::LogFormats()) + ")";
      }
      cli.log_format = v;
    } else if (flag == "--print-events") {
      args->print_events = true;
    } else if (flag == "--check") {
      args->check = true;
    } else if (flag == "--sequential-start") {
      args->sequential_start = true;
    } else if (flag == "--no-watch") {
      cli.watch_manifests = false;
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
      cli.overrides[v.substr(0, dot)][v.substr(dot + 1, eq - dot - 1)] =
          parsed.is_discarded() ? nlohmann::json(text) : parsed;
    } else {
      return "unknown option '" + flag + "' (see --help)";
    }
  }
  if (args->config && args->no_config) return std::string("--config and --no-config exclude each other");
  return std::nullopt;
}

// The config file to read: --config's; else, for an installed host without
// --no-config, the default one if it exists. An error when the default file
// exists but cannot be looked at.
esdb::Result<std::optional<std::filesystem::path>> ChooseConfigFile(const Args& args) {
  namespace fs = std::filesystem;
  if (args.config) return std::optional<fs::path>(fs::absolute(*args.config).lexically_normal());
  if (args.no_config || esdb::host::RunningFromBuildTree()) return std::optional<fs::path>();
  const fs::path def = esdb::host::DefaultConfigFile();
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(def, ec);
  if (st.type() == fs::file_type::not_found) return std::optional<fs::path>();
  if (ec) return esdb::Status::InvalidArgument(def.string() + ": cannot look at the config file: " + ec.message());
  return std::optional<fs::path>(def);
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
  auto config_file = ChooseConfigFile(args);
  if (!config_file.ok()) {
    std::fprintf(stderr, "esdb-host: %s\n", config_file.status().message().c_str());
    return 2;
  }
  esdb::host::SettingsLayer file_settings;
  if (*config_file) {
    auto read = esdb::host::ReadConfigFile(**config_file);
    if (!read.ok()) {
      std::fprintf(stderr, "esdb-host: %s\n", read.status().message().c_str());
      return 2;
    }
    file_settings = std::move(read.value());
  }
  esdb::host::EffectiveSettings settings = esdb::host::ResolveSettings(file_settings, args.cli, *config_file);
  if (args.print_config) {
    std::cout << esdb::host::DescribeSettings(settings).dump() << "\n";
    return 0;
  }
  esdb::host::HostOptions options = std::move(settings.options);
  options.sequential_start = args.sequential_start;

  // A fault anywhere leaves its stack on stderr (the journal, a test's log).
  esdb::host::InstallCrashReport();
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
  esdb::host::SystemdNotifier notifier;  // outlives the host: its handler runs on the host's bus
  options.on_bus_created = [&](esdb::host::EventBusImpl& bus) {
    notifier.Attach(bus);
    if (!args.print_events) return;
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

  esdb::host::Host host(std::move(options));
  host.logger()->info("config file: {}", *config_file ? (*config_file)->string() : std::string("none"));
  notifier.Status("starting");
  esdb::Status s = host.Start();
  if (!s.ok()) {
    host.logger()->critical("cannot start: {}", s.ToString());
    notifier.Status("cannot start: " + s.ToString());
    ExitAfter(host.Shutdown(), 1);
    return 1;
  }

  if (args.check) {
    const bool ready = host.control_plane().WaitSystemReady(args.timeout_s * 1000);
    nlohmann::json status = host.control_plane().Status();
    status["ready"] = ready;
    notifier.Stopping();
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

  // Under a systemd watchdog (WatchdogSec=) the wait wakes every quarter
  // interval to feed it, as long as the host's control loop answers.
  const uint64_t watchdog_usec = notifier.WatchdogUsec();
  const uint64_t wake_usec = std::max<uint64_t>(watchdog_usec / 4, 10000);
  const timespec wake{static_cast<time_t>(wake_usec / 1000000), static_cast<long>(wake_usec % 1000000) * 1000};
  notifier.FeedWatchdog(host);
  int sig = 0;
  for (;;) {
    if (watchdog_usec == 0) {
      sigwait(&signals, &sig);
    } else {
      sig = sigtimedwait(&signals, nullptr, &wake);
      if (sig < 0) {  // EAGAIN (the interval passed) or EINTR
        notifier.FeedWatchdog(host);
        continue;
      }
    }
    if (sig != SIGHUP) break;
    host.RescanManifests();  // SIGHUP: the manifests directory, nothing else
  }
  host.logger()->info("signal {} received; stopping", sig);
  notifier.Stopping();
  ExitAfter(host.Shutdown(), 0);
  return 0;
}

// Startup benchmark: time from process start to system_ready, for the
// default manifests and for N synthetic plugins of D ms start each, started
// in parallel (the default) and one after another (--sequential-start).
// Each figure is the median of several runs of a real esdb-host process.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

// Runs esdb-host with `args` plus --print-events and returns the ms until
// the system_ready line appears on its stdout (or -1); then stops it.
double TimeToReady(const std::vector<std::string>& args) {
  int out[2];
  if (pipe(out) != 0) return -1;
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    close(out[0]);
    std::vector<std::string> copy = args;
    copy.push_back("--print-events");
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  double ms = -1;
  std::string buf;
  char chunk[4096];
  while (ms < 0) {
    ssize_t n = read(out[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      auto line = nlohmann::json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (!line.is_discarded() && line.value("type", "") == "system_ready") {
        ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        break;
      }
    }
  }
  kill(pid, SIGTERM);
  while (read(out[0], chunk, sizeof(chunk)) > 0) {
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return ms;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path bin_dir = fs::canonical("/proc/self/exe").parent_path();
  std::string host = (bin_dir / "esdb-host").string();
  std::string source_dir = ESDB_SOURCE_DIR;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--host") host = argv[i + 1];
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
  }
  const fs::path work = fs::temp_directory_path() / ("esdb-startup-bench-" + std::to_string(getpid()));
  fs::create_directories(work);

  std::printf("esdb startup benchmark (median of %d runs; time from fork to system_ready on stdout)\n\n", runs);
  {
    std::vector<double> samples;
    for (int r = 0; r < runs; ++r) {
      fs::remove_all(work / "data");
      samples.push_back(TimeToReady({host, "--manifests", source_dir + "/manifests", "--data", (work / "data").string(),
                                     "--set", "gateway.listen_port=0", "--log-level", "warn"}));
    }
    std::printf("default manifests (5 subsystems, fresh data dir): %.1f ms\n\n", Median(samples));
  }

  std::printf("%-8s %-8s %-14s %-14s %-10s %-10s\n", "plugins", "start_ms", "parallel_ms", "sequential_ms", "sum_ms",
              "speedup");
  for (int n : {5, 10, 20}) {
    for (int d : {0, 50, 200}) {
      const fs::path dir = work / ("m" + std::to_string(n) + "_" + std::to_string(d));
      fs::create_directories(dir);
      for (int i = 0; i < n; ++i) {
        nlohmann::json m = {{"name", "synthetic" + std::to_string(i)},
                            {"version", "1.0.0"},
                            {"api_version", "1.1"},
                            {"library", (bin_dir / "bench-plugins" / "libesdb_synthetic_plugin.so").string()},
                            {"entry", "esdb_create_synthetic"},
                            {"config", {{"start_ms", d}}}};
        std::ofstream(dir / (m["name"].get<std::string>() + ".json")) << m.dump();
      }
      std::vector<double> par, seq;
      for (int r = 0; r < runs; ++r) {
        const std::string plugins = (bin_dir / "bench-plugins").string();
        par.push_back(TimeToReady({host, "--manifests", dir.string(), "--data", (work / "d").string(), "--log-level", "warn",
                                   "--plugin-dir", plugins}));
        seq.push_back(TimeToReady({host, "--manifests", dir.string(), "--data", (work / "d").string(), "--log-level", "warn",
                                   "--plugin-dir", plugins, "--sequential-start"}));
      }
      const double p = Median(par), s = Median(seq);
      std::printf("%-8d %-8d %-14.1f %-14.1f %-10d %-10.2f\n", n, d, p, s, n * d, p > 0 ? s / p : 0.0);
    }
  }
  fs::remove_all(work);
  return 0;
}

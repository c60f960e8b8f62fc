#include "esdb/testing/host_process.h"

#include <algorithm>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "esdb/bus_events.h"

namespace esdb::testing {
namespace fs = std::filesystem;

HostOptions HostOptions::Exactly(std::vector<std::string> args) {
  HostOptions o;
  o.ephemeral_gateway_port = false;
  o.ephemeral_grpc_port = false;
  o.print_events = false;
  o.no_config = false;
  o.args = std::move(args);
  return o;
}

namespace {

std::vector<std::string> BuildCommandLine(const HostOptions& o, const std::string& binary) {
  std::vector<std::string> argv = {binary};
  auto add = [&](const char* flag, const std::string& value) {
    argv.push_back(flag);
    argv.push_back(value);
  };
  if (o.no_config && std::find(o.args.begin(), o.args.end(), "--config") == o.args.end()) {
    argv.push_back("--no-config");
  }
  if (!o.manifests.empty()) add("--manifests", o.manifests.string());
  if (!o.data.empty()) add("--data", o.data.string());
  for (const auto& dir : o.plugin_dirs) add("--plugin-dir", dir.string());
  if (o.ephemeral_gateway_port) add("--set", "gateway.listen_port=0");
  if (o.ephemeral_grpc_port) add("--set", "grpc.listen_port=0");
  if (o.print_events) argv.push_back("--print-events");
  if (!o.log_level.empty()) add("--log-level", o.log_level);
  for (const auto& s : o.sets) add("--set", s);
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  return argv;
}

// The end of `text`, at most `max` bytes.
std::string Tail(const std::string& text, size_t max = 4000) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

}  // namespace

HostProcess::HostProcess(HostOptions options, std::string_view installed_host) {
  std::string binary = options.binary.string();
  if (binary.empty()) binary = std::string(installed_host);
  if (binary.empty()) {
    throw std::runtime_error(
        "esdb::testing::HostProcess: no esdb-host given (HostOptions::binary) and none installed with the kit "
        "(ESDB_TESTING_HOST_BIN is not defined: link esdb::testing from find_package(esdb_sdk COMPONENTS testing))");
  }
  argv_ = BuildCommandLine(options, binary);
  static std::atomic<int> counter{0};
  stderr_file_ = fs::temp_directory_path() /
                 ("esdb-host-stderr-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".log");
  // Everything the child needs is prepared before fork(): between fork and
  // exec only async-signal-safe calls are allowed (other test threads may
  // hold the allocator's lock).
  std::vector<char*> argv;
  for (auto& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err_path = stderr_file_.string();
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("esdb::testing::HostProcess: pipe failed");
  pid_ = fork();
  if (pid_ < 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw std::runtime_error("esdb::testing::HostProcess: fork failed");
  }
  if (pid_ == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    if (options.in_child && !options.in_child()) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  reader_ = std::thread([this, fd = out_pipe[0]] { ReadLoop(fd); });
}

HostProcess::~HostProcess() {
  if (!exit_code_) {
    kill(pid_, SIGKILL);
    Wait(10000);
  }
  if (reader_.joinable()) reader_.join();
  std::error_code ec;
  fs::remove(stderr_file_, ec);
}

void HostProcess::ReadLoop(int fd) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) j = nlohmann::json{{"raw", line}};
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::move(j));
      cv_.notify_all();
    }
  }
  close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  eof_ = true;
  cv_.notify_all();
}

std::optional<nlohmann::json> HostProcess::WaitFor(const std::function<bool(const nlohmann::json&)>& pred,
                                                   int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t checked = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      if (pred(lines_[checked])) return lines_[checked];
    }
    if (eof_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && checked == lines_.size()) return std::nullopt;
  }
}

std::optional<nlohmann::json> HostProcess::WaitForEvent(const std::string& type, const std::string& subsystem,
                                                        int timeout_ms) {
  return WaitFor(
      [&](const nlohmann::json& j) {
        if (!j.is_object() || j.value("type", "") != type) return false;
        if (subsystem.empty()) return true;
        return j.contains("data") && j["data"].is_object() && j["data"].value("name", "") == subsystem;
      },
      timeout_ms);
}

Result<uint16_t> HostProcess::GatewayPort(int timeout_ms) {
  const auto found = WaitFor(
      [](const nlohmann::json& j) {
        if (!j.is_object()) return false;
        const std::string type = j.value("type", "");
        if (type == event_types::kGatewayListening) return true;
        if (type != event_types::kSubsystemFailed || !j.contains("data") || !j["data"].is_object()) return false;
        return j["data"].value("name", "") == "gateway" || j["data"].value("final", false);
      },
      timeout_ms);
  if (!found) {
    const bool exited = [&] {
      std::lock_guard<std::mutex> lock(mu_);
      return eof_;
    }();
    std::string why = exited ? "esdb-host exited" : "no gateway_listening within " + std::to_string(timeout_ms) + " ms";
    return Status::Unavailable(why + "; stderr: " + Tail(Stderr()));
  }
  Event e;
  e.type = found->value("type", "");
  e.topic = found->value("topic", "");
  e.source = found->value("source", "");
  if (found->contains("data")) e.data = (*found)["data"];
  if (e.type != event_types::kGatewayListening) {
    return Status::Unavailable("the gateway did not come up: " + found->dump());
  }
  Result<GatewayListening> listening = DecodeGatewayListening(e);
  if (!listening.ok()) return listening.status();
  return listening->port;
}

std::vector<nlohmann::json> HostProcess::Lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

std::optional<int> HostProcess::Wait(int timeout_ms) {
  if (exit_code_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL && WTERMSIG(status) != SIGTERM &&
          WTERMSIG(status) != SIGINT) {
        // A crash: its stack (esdb-host's crash report) belongs in the test's output.
        const std::string err = Stderr();
        std::fprintf(stderr, "esdb-host (pid %d) died of signal %d; the end of its stderr:\n%s\n",
                     static_cast<int>(pid_), WTERMSIG(status),
                     err.substr(err.size() > 16000 ? err.size() - 16000 : 0).c_str());
      }
      // Its last stdout lines may still be in the pipe: let the reader take
      // them (EOF), so Lines() after Wait() has everything it printed.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [&] { return eof_; });
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int HostProcess::Terminate(int timeout_ms) {
  if (exit_code_) return *exit_code_;
  kill(pid_, SIGTERM);
  if (auto code = Wait(timeout_ms)) return *code;
  kill(pid_, SIGKILL);
  Wait(10000);
  return -1000;  // did not stop in time
}

std::string HostProcess::Stderr() const {
  std::ifstream in(stderr_file_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace esdb::testing

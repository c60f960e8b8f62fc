// Crash safety: a child process (store_crash_helper) appends with many
// writers and prints every acknowledged event; it is killed with SIGKILL at
// a random moment, several rounds on the same directory. After each kill the
// store is reopened: every acknowledged event must be there byte for byte,
// $all must be gap-free, and no append may be half-visible.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <map>
#include <random>
#include <sstream>

#include "test_util.h"

using namespace esdb_store_test;

namespace {

uint64_t Fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct Acked {
  std::string stream;
  int64_t version;
  std::string event_id;
  uint64_t hash;
};

// Runs the helper until killed after `run_ms` of appending; returns its
// complete output.
std::string RunAndKill(const std::filesystem::path& dir, int run_ms) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(ESDB_STORE_CRASH_HELPER, ESDB_STORE_CRASH_HELPER, dir.c_str(), "16", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  bool ready = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // until "ready"
  bool eof = false;
  while (!eof) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    pollfd p{fds[0], POLLIN, 0};
    const int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
    if (poll(&p, 1, std::max(1, wait_ms)) > 0) {
      char buf[65536];
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) {
        eof = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (!ready && out.find("ready\n") != std::string::npos) {
        ready = true;
        deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(run_ms);
      }
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  // Whatever the child wrote before it died is still in the pipe.
  for (;;) {
    char buf[65536];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  REQUIRE(ready);
  REQUIRE(WIFSIGNALED(status));  // it was still appending when killed
  CHECK(WTERMSIG(status) == SIGKILL);
  return out;
}

std::vector<Acked> ParseAcks(const std::string& out) {
  std::vector<Acked> acks;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // an incomplete last line was cut by the kill
    if (line.rfind("ack ", 0) != 0) continue;
    std::istringstream l(line.substr(4));
    Acked a;
    std::string hash;
    l >> a.stream >> a.version >> a.event_id >> hash;
    a.hash = std::stoull(hash, nullptr, 16);
    acks.push_back(std::move(a));
  }
  return acks;
}

}  // namespace

TEST_CASE("SIGKILL at random moments loses no acknowledged event and shows no half append") {
  TempDir dir;
  std::mt19937 rng(std::random_device{}());
  std::vector<Acked> all_acks;
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    const int run_ms = 100 + static_cast<int>(rng() % 500);
    CAPTURE(round, run_ms);
    const std::string out = RunAndKill(dir.path(), run_ms);
    std::vector<Acked> acks = ParseAcks(out);
    all_acks.insert(all_acks.end(), acks.begin(), acks.end());

    auto storage = esdb_persistence::LevelDbStorage::Open(dir.path(), {});
    REQUIRE(storage.ok());
    auto store_or = esdb_store::StoreCore::Open(*storage, {}, {});
    REQUIRE(store_or.ok());
    auto& store = **store_or;
    // Every acknowledged event, byte for byte.
    for (const Acked& a : all_acks) {
      auto e = store.ReadEvent(a.stream, a.version);
      REQUIRE(e.ok());
      CHECK(e->event_id == a.event_id);
      CHECK(Fnv1a(e->metadata, Fnv1a(e->data, Fnv1a(e->event_type))) == a.hash);
    }
    // $all: gap-free, and every append complete.
    std::map<std::string, std::pair<int, int>> appends;  // append id -> (seen, count)
    esdb::ReadAllRequest r;
    r.count = 5000;
    uint64_t expected_position = 0;
    for (;;) {
      auto page = store.ReadAll(r);
      REQUIRE(page.ok());
      for (const auto& e : page->events) {
        REQUIRE(e.position == expected_position++);
        const auto slash = e.metadata.find('/');
        REQUIRE(slash != std::string::npos);
        auto& entry = appends[e.metadata.substr(0, slash)];
        entry.first++;
        entry.second = std::stoi(e.metadata.substr(slash + 1));
      }
      r.from = page->next_position;
      if (page->end_of_all) break;
    }
    CHECK(expected_position == store.NextPosition());
    for (const auto& [id, seen_count] : appends) {
      CAPTURE(id);
      CHECK(seen_count.first == seen_count.second);
    }
    INFO("round " << round << ": " << acks.size() << " acks, " << expected_position << " events stored");
    CHECK(expected_position >= all_acks.size());
    store.Close();
    REQUIRE((*storage)->Close(std::chrono::seconds(10)).ok());
  }
  CHECK(all_acks.size() > 0);
}

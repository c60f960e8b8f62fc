#include "crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

// ASan and UBSan report those faults themselves, better.
#if defined(__SANITIZE_ADDRESS__)
#define ESDB_CRASH_REPORT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ESDB_CRASH_REPORT 0
#endif
#endif
#ifndef ESDB_CRASH_REPORT
#define ESDB_CRASH_REPORT 1
#endif

namespace esdb::host {
#if ESDB_CRASH_REPORT
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kMaxFrames = 64;

// Only async-signal-safe calls from here on: write(2), backtrace*() (after
// the warm-up call in InstallCrashReport, which loads libgcc_s), raise().
void WriteString(const char* s) {
  size_t left = strlen(s);
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, s, left);
    if (n <= 0) return;
    s += n;
    left -= static_cast<size_t>(n);
  }
}

void WriteNumber(long value) {
  char buf[24];
  char* p = buf + sizeof(buf);
  *--p = '\0';
  const bool negative = value < 0;
  unsigned long v = negative ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (negative) *--p = '-';
  WriteString(p);
}

void OnFatalSignal(int sig, siginfo_t* info, void*) {
  WriteString("esdb-host: fatal signal ");
  WriteNumber(sig);
  WriteString(" (");
  WriteString(sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
  WriteString(") in thread ");
  WriteNumber(static_cast<long>(syscall(SYS_gettid)));
  if ((sig == SIGSEGV || sig == SIGBUS) && info != nullptr && info->si_code > 0) {  // raised by the kernel
    WriteString(" at address 0x");
    char hex[2 * sizeof(void*) + 1];
    auto addr = reinterpret_cast<unsigned long>(info->si_addr);
    for (int i = static_cast<int>(sizeof(hex)) - 2; i >= 0; --i, addr >>= 4) hex[i] = "0123456789abcdef"[addr & 0xf];
    hex[sizeof(hex) - 1] = '\0';
    WriteString(hex);
  }
  WriteString("; stack:\n");
  void* frames[kMaxFrames];
  const int n = backtrace(frames, kMaxFrames);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  // SA_RESETHAND restored the default action: die of the same signal.
  raise(sig);
}

}  // namespace
#endif

void InstallCrashReport() {
#if ESDB_CRASH_REPORT
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc_s now, not in the handler

  static char alt_stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof(alt_stack);
  sigaltstack(&ss, nullptr);

  struct sigaction sa{};
  sa.sa_sigaction = OnFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kFatalSignals) sigaction(sig, &sa, nullptr);
#endif
}

}  // namespace esdb::host

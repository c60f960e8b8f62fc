// On a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) esdb-host
// writes one line naming the signal and the faulting thread, then the stack
// of that thread (glibc's backtrace_symbols_fd: "library(symbol+offset)
// [address]", plugin code as library+offset because plugins hide their
// symbols), to stderr, and then dies of the same signal with the default
// action: the exit status and a core dump are what they would have been.
//
// Not installed in sanitized builds (ASan and UBSan report those faults
// themselves, better).
#pragma once

namespace esdb::host {

// Installs the handlers for the calling process, once, before other threads
// are started. The handler runs on an alternate signal stack for the calling
// thread (so a stack overflow of that thread is still reported); other
// threads use their own stack. Not thread-safe against concurrent calls.
void InstallCrashReport();

}  // namespace esdb::host

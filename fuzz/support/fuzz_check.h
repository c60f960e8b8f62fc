// FUZZ_CHECK(cond): an invariant of a fuzz target. When it does not hold,
// prints what and where, and aborts, which libFuzzer reports as a crash (with
// the input that caused it saved as a reproducer).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

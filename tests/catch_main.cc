// Catch2's main, compiled once and linked into every test executable.
// Catch's implementation uses <regex>, in which GCC 12 with
// -fsanitize=address reports a false -Wmaybe-uninitialized (GCC bug 105562).
// clang reads GCC's pragmas too and does not know that warning.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

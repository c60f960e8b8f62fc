// Catch2's implementation uses <regex>, where GCC 12 reports a false
// -Wmaybe-uninitialized under -fsanitize=address.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

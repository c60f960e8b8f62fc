// Catch2's main. GCC 12 with -fsanitize=address reports a false
// -Wmaybe-uninitialized inside libstdc++'s <regex>, which catch.hpp
// includes (GCC bug 105562).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// Not a plugin: a shared library whose constructor creates the file named by
// $ESDB_TEST_MARKER. If the host ever dlopens it, its code has run — even
// if the load is refused afterwards. The load-policy tests check that the
// marker is never written for a library the host must refuse.
#include <cstdio>
#include <cstdlib>

namespace {
__attribute__((constructor)) void WriteMarker() {
  const char* path = std::getenv("ESDB_TEST_MARKER");
  if (path == nullptr || *path == '\0') return;
  if (FILE* f = std::fopen(path, "w")) {
    std::fputs("constructor ran\n", f);
    std::fclose(f);
  }
}
}  // namespace

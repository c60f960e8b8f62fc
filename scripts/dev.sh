#!/usr/bin/env bash
# esdb developer entry point (Debian 12, as root or with sudo).
#   scripts/dev.sh run [esdb-host options]  install what is missing, build, run the host
#   scripts/dev.sh test                     install what is missing, build, run every test
#                                           (a normal build, then an ASan+UBSan build, then
#                                           the libFuzzer targets for a bounded time:
#                                           scripts/fuzz.sh, docs/FUZZING.md)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential g++ cmake ninja-build pkg-config
          libboost-dev libboost-filesystem-dev libboost-system-dev
          libleveldb-dev libspdlog-dev nlohmann-json3-dev catch2 curl
          libre2-dev libssl-dev openssl clang libclang-rt-14-dev llvm)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  fi
}

jobs() { nproc 2>/dev/null || echo 2; }

build() {  # build DIR [cmake options...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j"$(jobs)"
}

case "${1:-}" in
  run)
    shift
    install_missing
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    exec build/bin/esdb-host --manifests manifests --data data "$@"
    ;;
  test)
    install_missing
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    (cd build && ctest -j"$(jobs)" --output-on-failure)
    build build-asan -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g -O1" -DESDB_SANITIZE=ON -DESDB_BUILD_BENCH=OFF
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
       ctest -j"$(jobs)" --output-on-failure)
    bash scripts/fuzz.sh run "${FUZZ_SECONDS:-20}"
    ;;
  *)
    echo "usage: $0 run [esdb-host options] | test" >&2
    exit 2
    ;;
esac

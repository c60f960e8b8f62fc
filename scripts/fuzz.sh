#!/usr/bin/env bash
# The libFuzzer targets of fuzz/ (docs/FUZZING.md).
#   scripts/fuzz.sh build                  configure and build them into build-fuzz/ (clang, ASan+UBSan)
#   scripts/fuzz.sh run [SECONDS]          build, then run every target for SECONDS each (default 20),
#                                          as many at once as there are cores
#   scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]
#                                          build, then run one target ("http" or "http_fuzz")
# A run fails (exit 1) on any crash, sanitizer report, leak, timeout or
# out-of-memory, and names the reproducer file. Seeds are read from
# fuzz/corpus/<name>/ (never written); what a run discovers goes to
# build-fuzz/fuzz-out/<name>/corpus, findings to build-fuzz/fuzz-out/<name>/artifacts.
# FUZZ_BUILD_DIR=DIR uses another build tree (scripts/dev.sh test: the
# sanitized build, configured with -DESDB_FUZZ=ON); FUZZ_SKIP_BUILD=1 runs what
# is built there.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
DEFAULT_SECONDS=20

build() {
  if [ "${FUZZ_SKIP_BUILD:-0}" = 1 ]; then return 0; fi
  local launcher=()
  if command -v ccache >/dev/null && [ -z "${CI:-}" ]; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$BUILD_DIR" -G Ninja -DESDB_FUZZ=ON -DESDB_FUZZ_ONLY=ON -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" "${launcher[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc 2>/dev/null || echo 2)"
}

# run_one TARGET SECONDS [flags...]: 0 when the target ran clean.
run_one() {
  local target=$1 seconds=$2; shift 2
  local name=${target%_fuzz}
  local bin="$BUILD_DIR/bin/${name}_fuzz"
  local out="$BUILD_DIR/fuzz-out/$name"
  mkdir -p "$out/corpus" "$out/artifacts"
  rm -f "$out/artifacts"/*
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$out/artifacts/")
  [ -f "fuzz/$name.dict" ] && args+=(-dict="fuzz/$name.dict")
  local dirs=("$out/corpus")  # the first directory is where libFuzzer writes
  [ -d "fuzz/corpus/$name" ] && dirs+=("fuzz/corpus/$name")
  local start=$SECONDS rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$bin" "${args[@]}" "$@" "${dirs[@]}" >"$out/log" 2>&1 || rc=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $name passed ($((SECONDS - start)) s, ${execs:-?} inputs)"
    return 0
  fi
  echo "fuzz: $name FAILED (exit $rc) after $((SECONDS - start)) s; log: $out/log"
  grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz invariant failed|.*runtime error:)' "$out/log" | head -5 || true
  local f
  for f in "$out"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "fuzz: reproducer: $f  (run: $bin $f)"
  done
  tail -40 "$out/log" | sed 's/^/    /'
  return 1
}

targets() {
  [ -f "$BUILD_DIR/fuzzers.txt" ] || { echo "fuzz: $BUILD_DIR/fuzzers.txt missing; build first" >&2; exit 2; }
  grep -v '^$' "$BUILD_DIR/fuzzers.txt"
}

case "${1:-}" in
  build)
    build
    ;;
  run)
    seconds=${2:-$DEFAULT_SECONDS}
    build
    # One fuzzer per core; each one's report is printed when it ends, whole.
    parallel=$(nproc 2>/dev/null || echo 2)
    report_dir=$(mktemp -d)
    trap 'rm -rf "$report_dir"' EXIT
    passed=0 failed=0 running=0
    collect() {  # waits for one finished run and prints its report
      wait -n || true
      running=$((running - 1))
    }
    for t in $(targets); do
      [ "$running" -ge "$parallel" ] && collect
      (if run_one "$t" "$seconds" >"$report_dir/$t.out" 2>&1; then touch "$report_dir/$t.ok"; fi
       cat "$report_dir/$t.out") &
      running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do collect; done
    for t in $(targets); do
      if [ -e "$report_dir/$t.ok" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
  ""|-h|--help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "${1:-}" ]
    ;;
  *)
    target=$1; shift
    seconds=${1:-$DEFAULT_SECONDS}
    [ $# -gt 0 ] && shift
    build
    targets | grep -qx "${target%_fuzz}_fuzz" || { echo "fuzz: no target ${target%_fuzz}_fuzz; have: $(targets | tr '\n' ' ')" >&2; exit 2; }
    run_one "$target" "$seconds" "$@"
    ;;
esac

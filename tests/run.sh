#!/usr/bin/env bash
# Runs the whole test suite (the README's test command). Starts a throwaway S3-compatible server (SeaweedFS) on
# 127.0.0.1 for the storage conformance tests, requires it (a server that fails to start
# fails the run), and stops it on exit. Then the benchmark smoke run, bounded fuzzing of
# every cargo-fuzz target (fuzz/run.sh; FUZZ_SECONDS per target, default 20), and the
# demo smoke run, the C ABI suite (ffi/tests/c/run.sh), the Java binding's tests and real
# Flink jobs on the Strata backend (ffi/java/run-tests.sh, ffi/java/run-flink-tests.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
s3sh="$root/../shared/s3/seaweedfs.sh"
if [ ! -x "$s3sh" ] && [ ! -f "$s3sh" ]; then
  echo "test.sh: $s3sh not found (shared/ must sit beside the repository)" >&2
  exit 1
fi
s3dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-s3.XXXXXX")
cleanup() {
  bash "$s3sh" stop "$s3dir" >/dev/null 2>&1 || true
  rm -rf "$s3dir"
}
trap cleanup EXIT
echo "== starting SeaweedFS on 127.0.0.1 =="
env_lines=$(bash "$s3sh" start "$s3dir") || { echo "test.sh: the S3 server did not start" >&2; exit 1; }
eval "$env_lines"
export STRATA_REQUIRE_S3=1
echo "== cargo test --workspace (S3 at $STRATA_S3_ENDPOINT) =="
log="$s3dir/cargo-test.log"
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 0 ]; then
  # Smoke-run the benchmark harness (Strata only; CI does not build RocksDB).
  echo "== benchmark harness smoke run =="
  if ! cargo run -q -p strata-bench -- compare --n 2000 --ops 2000 --engines strata \
      --threads 1,2 --out target/bench-smoke > "$s3dir/bench.md"; then
    echo "test.sh: the benchmark harness smoke run failed" >&2
    status=1
  else
    grep -c '^| ' "$s3dir/bench.md" | xargs echo "bench rows:"
    echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (benchmark smoke run)" >> "$log"
  fi
  # Every cargo-fuzz target for a bounded time (fuzz/README.md); a crash fails the run.
  echo "== fuzzing (FUZZ_SECONDS=${FUZZ_SECONDS:-20} per target) =="
  if ! bash fuzz/run.sh > "$s3dir/fuzz.txt" 2>&1; then
    tail -60 "$s3dir/fuzz.txt"
    echo "test.sh: a fuzz target failed" >&2
    status=1
  else
    grep -E 'exec/s' "$s3dir/fuzz.txt"
    echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (bounded fuzzing)" >> "$log"
  fi
  # Smoke-run the README's demo command on a small stream (tests/demo.rs checks its figures).
  echo "== demo job smoke run =="
  if ! cargo run -q -p strata-demo -- --events 20000 --pages 10 --print-every 360 > "$s3dir/demo.txt"; then
    echo "test.sh: the demo job smoke run failed" >&2
    status=1
  else
    grep -E '^day |events \(' "$s3dir/demo.txt" | tail -3
    echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (demo smoke run)" >> "$log"
  fi
  # The README's fault-tolerant demo command (a real crash and restart) gives the same rows
  # as a run without failures.
  echo "== demo job crash-and-restart smoke run =="
  ftdir="$s3dir/demo-ft"
  if cargo run -q -p strata-demo -- --events 20000 --pages 10 --csv "$s3dir/plain.csv" > /dev/null \
      && cargo run -q -p strata-demo -- --events 20000 --pages 10 --dir "$ftdir" \
           --checkpoint-every 60 --parallelism 2 --fail-at-random > "$s3dir/demo-ft.txt" 2>&1 \
      && grep -q 'restarting from the last completed checkpoint' "$s3dir/demo-ft.txt" \
      && cmp <(tail -n +2 "$s3dir/plain.csv" | sort) <(sort "$ftdir/output.csv"); then
    grep -E 'crashed|finished' "$s3dir/demo-ft.txt"
    echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (demo crash-and-restart run)" >> "$log"
  else
    tail -20 "$s3dir/demo-ft.txt" 2>/dev/null
    echo "test.sh: the demo crash-and-restart run failed or differs from the plain run" >> "$log"
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out (demo crash-and-restart run)" >> "$log"
    status=1
  fi
fi
if [ "$status" = 0 ]; then
  # The C ABI from real C programs: the suite plain, under ASan+UBSan and under valgrind
  # (zero reports, zero leaks), and the C example (ffi/tests/c/run.sh). The header's drift
  # check is a cargo test (ffi/tests/header.rs).
  echo "== C ABI suite (plain, ASan+UBSan, valgrind) =="
  if bash ffi/tests/c/run.sh > "$s3dir/c-suite.txt" 2>&1; then :; else status=1; tail -60 "$s3dir/c-suite.txt"; fi
  grep -E '^C suite ' "$s3dir/c-suite.txt" || true
  grep -E '^C suite .*: passed$' "$s3dir/c-suite.txt" | sed 's/^C suite \(.*\): passed$/test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out (C suite \1)/' >> "$log" || true
  grep -E '^C suite .*: FAILED$' "$s3dir/c-suite.txt" | sed 's/^C suite \(.*\): FAILED$/test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out (C suite \1)/' >> "$log" || true
  if [ "$status" != 0 ] && ! grep -q '^C suite ' "$s3dir/c-suite.txt"; then
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out (C suite build)" >> "$log"
  fi
fi
if [ "$status" = 0 ]; then
  # The Java binding's tests, then real Flink 2.3 jobs on the Strata backend (Flink's jars
  # come from PyPI via tests/flink-setup.sh): every job with an injected failure and
  # restart, every job rescaled 2 -> 3 and 2 -> 1 from a retained checkpoint, and the same
  # jobs on Flink's RocksDB backend as the differential check (all against the checksums
  # computed without Flink).
  echo "== Java binding and Flink jobs =="
  java_suite() {
    local name=$1; shift
    if "$@" > "$s3dir/java-$name.txt" 2>&1; then :; else status=1; tail -40 "$s3dir/java-$name.txt"; fi
    grep -E '^(flink|test) ' "$s3dir/java-$name.txt" | grep -v '^test .* \.\.\. ok$' || true
    if grep -q '^test result:' "$s3dir/java-$name.txt"; then
      grep '^test result:' "$s3dir/java-$name.txt" >> "$log"
    else
      echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out ($name)" >> "$log"
    fi
  }
  java_suite binding bash ffi/java/run-tests.sh
  java_suite timer-model bash ffi/java/run-flink-tests.sh timer-model
  # Every job on Strata with an injected failure and rescaled 2 -> 3 and 2 -> 1; the same
  # jobs on Flink's RocksDB backend check the harness (a differential check).
  java_suite flink-failure bash ffi/java/run-flink-tests.sh strata failure
  java_suite flink-rescale bash ffi/java/run-flink-tests.sh strata rescale
  java_suite flink-rocksdb bash ffi/java/run-flink-tests.sh rocksdb plain
fi
# One closing line over every test binary (cargo prints one "test result" per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"

#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 20) on a copy
# of its checked-in seed corpus, and fails if any target crashes, hangs or exceeds the
# memory limit. Installs cargo-fuzz if it is missing. Uses RUSTC_BOOTSTRAP=1 so the stable
# toolchain accepts cargo-fuzz's sanitizer flags.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz =="
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
echo "== building fuzz targets (address sanitizer) =="
cargo fuzz build --fuzz-dir fuzz/targets
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
summary=()
for target in $(cargo fuzz list --fuzz-dir fuzz/targets); do
  mkdir -p "$work/$target"
  cp fuzz/corpus/"$target"/* "$work/$target"/ 2>/dev/null || true
  log="$work/$target.log"
  echo "== fuzz $target for ${seconds}s =="
  if cargo fuzz run --fuzz-dir fuzz/targets "$target" "$work/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -print_final_stats=1 > "$log" 2>&1; then
    runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    secs=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
    summary+=("$target: ${runs:-?} runs, ${secs:-?} exec/s, no crash")
  else
    status=1
    summary+=("$target: FAILED (see below)")
    tail -40 "$log"
    ls fuzz/targets/artifacts/"$target"/ 2>/dev/null || true
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"

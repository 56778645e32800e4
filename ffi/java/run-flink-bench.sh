#!/usr/bin/env bash
# The Flink benchmark (BENCHMARKS.md, "Flink jobs"): each job on each backend (heap
# `hashmap`, `rocksdb`, `forst`, Strata) in its own JVM, one slot, 256 MiB managed memory,
# parallelism 1, native library in release mode. Prints one JSON line per run and a
# Markdown table.
#
#   bash run-flink-bench.sh [job...]     env: RECORDS (default 2000000), KEYS (default 100000),
#                                        BACKENDS, CHECKPOINT_INTERVAL (default 1s), XMX (2g)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PROFILE=${PROFILE:-release}
source "$here/flink-test-build.sh"
export FLINK_ROOT_LOG_LEVEL=ERROR
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(count dedup windows sessions timers hot-items)
backends=(${BACKENDS:-hashmap rocksdb forst strata})
results="$here/build/flink-bench.jsonl"
: > "$results"
for job in "${jobs[@]}"; do
  for b in "${backends[@]}"; do
    line=$(java -Xmx"${XMX:-2g}" -Dflink.records="${RECORDS:-2000000}" -Dflink.keys="${KEYS:-100000}" \
      -Dflink.checkpoint.interval="${CHECKPOINT_INTERVAL:-1s}" \
      -Dlog4j.configurationFile="$out/log4j2.properties" -cp "$out:$jar:$lib/*" \
      io.strata.flink.FlinkBench "$b" "$job" 2>"$here/build/flink-bench-$job-$b.err" | grep '^BENCH ' || true)
    if [ -z "$line" ]; then
      echo "{\"backend\":\"$b\",\"job\":\"$job\",\"error\":\"see build/flink-bench-$job-$b.err\"}" >> "$results"
      echo "$job on $b: FAILED (build/flink-bench-$job-$b.err)" >&2
    else
      echo "${line#BENCH }" | tee -a "$results"
    fi
  done
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print("| job | backend | records/s | checkpoints | checkpoint ms (avg / max) | checkpointed per checkpoint | full state | restore ms | peak RSS |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if "error" in r:
        print(f"| {r['job']} | {r['backend']} | failed | | | | | | |")
        continue
    mib = lambda b: f"{b / 2**20:.1f} MiB"
    print(f"| {r['job']} | {r['backend']} | {r['records_per_s']:,.0f} | {r['checkpoints']} | "
          f"{r['checkpoint_ms_avg']} / {r['checkpoint_ms_max']} | {mib(r['checkpointed_bytes_avg'])} | "
          f"{mib(r['full_state_bytes'])} | {r['restore_ms']} | {r['peak_rss_kib'] / 1024:.0f} MiB |")
PY

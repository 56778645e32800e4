#!/usr/bin/env bash
# Real Flink 2.3 jobs (MiniCluster) on the Strata state backend: installs Flink's jars from
# PyPI if needed (tests/flink-setup.sh), builds the binding with the backend (build.sh),
# and runs src/flink-test/java/io/strata/flink/FlinkJobs.java.
#
#   bash run-flink-tests.sh <backend> <mode> [job...]    e.g. strata failure count windows
#   bash run-flink-tests.sh timer-model                   the timer set's model test
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/flink-test-build.sh"
if [ "${1:-}" = timer-model ]; then
  shift
  exec java -cp "$out:$jar:$lib/*" io.strata.flink.TimerSetModelTest "$@"
fi
java -Xmx2g ${FLINK_JAVA_OPTS:-} -Dlog4j.configurationFile="$out/log4j2.properties" -cp "$out:$jar:$lib/*" \
  io.strata.flink.FlinkJobs "$@"

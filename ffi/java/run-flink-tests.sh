#!/usr/bin/env bash
# Real Flink 2.3 jobs (MiniCluster) on the Strata state backend: installs Flink's jars from
# PyPI if needed (tests/flink-setup.sh), builds the binding with the backend (build.sh),
# and runs src/flink-test/java/io/strata/flink/FlinkJobs.java.
#
#   bash run-flink-tests.sh <backend> <mode> [job...]    e.g. strata failure count windows
#   bash run-flink-tests.sh timer-model                   the timer set's model test
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$(bash "$here/../../tests/flink-setup.sh")
jar=$(FLINK_LIB="$lib" bash "$here/build.sh")
out="$here/build/flink-test-classes"
rm -rf "$out" && mkdir -p "$out"
javac -Xlint:all,-serial,-options,-processing -Werror --release 17 -encoding UTF-8 \
  -cp "$jar:$lib/*" -d "$out" $(find "$here/src/flink-test/java" -name '*.java')
cat > "$out/log4j2.properties" <<'PROPS'
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %-5p %c{1} - %m%n
logger.flink.name = org.apache.flink
logger.flink.level = ${env:FLINK_LOG_LEVEL:-ERROR}
PROPS
if [ "${1:-}" = timer-model ]; then
  shift
  exec java -cp "$out:$jar:$lib/*" io.strata.flink.TimerSetModelTest "$@"
fi
java -Xmx2g ${FLINK_JAVA_OPTS:-} -Dlog4j.configurationFile="$out/log4j2.properties" -cp "$out:$jar:$lib/*" \
  io.strata.flink.FlinkJobs "$@"

#!/usr/bin/env bash
# Sourced by run-flink-tests.sh and run-flink-bench.sh: installs Flink's jars if needed
# (tests/flink-setup.sh), builds the binding with the Flink backend (build.sh, profile
# $PROFILE), compiles src/flink-test and writes its log4j configuration. Sets `lib` (Flink's
# jar directory), `jar` (strata.jar) and `out` (the test classes, with log4j2.properties).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib=$(bash "$here/../../tests/flink-setup.sh")
jar=$(FLINK_LIB="$lib" bash "$here/build.sh")
out="$here/build/flink-test-classes"
rm -rf "$out" && mkdir -p "$out"
javac -Xlint:all,-serial,-options,-processing -Werror --release 17 -encoding UTF-8 \
  -cp "$jar:$lib/*" -d "$out" $(find "$here/src/flink-test/java" -name '*.java')
cat > "$out/log4j2.properties" <<'PROPS'
rootLogger.level = ${env:FLINK_ROOT_LOG_LEVEL:-WARN}
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %-5p %c{1} - %m%n
logger.flink.name = org.apache.flink
logger.flink.level = ${env:FLINK_LOG_LEVEL:-ERROR}
PROPS

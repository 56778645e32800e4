#!/usr/bin/env bash
# Builds the Java binding (build.sh) and runs its tests (src/test/java) against the jar,
# so the library is loaded the way users load it (extracted from the jar).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jar=$(bash "$here/build.sh")
out="$here/build/test-classes"
rm -rf "$out" && mkdir -p "$out"
javac -Xlint:all,-serial -Werror --release 17 -encoding UTF-8 -cp "$jar" -d "$out" \
  $(find "$here/src/test/java" -name '*.java')
# The heap is fixed and touched up front (-Xms = -Xmx, AlwaysPreTouch) so the process's RSS
# does not grow with the Java heap: the native-memory test reads RSS and must see only what
# the native library holds (an expanding G1 heap added 80-120 MiB on CI machines).
java -Xms512m -Xmx512m -XX:+AlwaysPreTouch -cp "$jar:$out" io.strata.BindingTests "$@"

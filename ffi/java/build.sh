#!/usr/bin/env bash
# Builds Strata's Java binding: the JNI library (cargo, crate strata-jni) and the classes
# in src/main/java, packed with the library into build/strata.jar (the library sits in the
# jar as /io/strata/native/libstrata_jni.so and is extracted at load time).
#
#   PROFILE=release     build the native library optimised (default: dev, as the tests)
#   FLINK_LIB=<dir>     also build the Flink state backend (src/flink/java) against the
#                       Flink jars in <dir> (tests/flink-setup.sh prints it) into the jar
# Prints the jar's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${PROFILE:-dev}
out="$here/build"
echo "== building the JNI library (cargo build -p strata-jni, profile $profile) ==" >&2
(cd "$root" && cargo build -q -p strata-jni --profile "$profile" >&2)
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
lib="$root/target/$dir/libstrata_jni.so"
rm -rf "$out/classes"
mkdir -p "$out/classes/io/strata/native"
cp "$lib" "$out/classes/io/strata/native/"
cp_flink=""
srcs=$(find "$here/src/main/java" -name '*.java')
if [ -n "${FLINK_LIB:-}" ]; then
  cp_flink="$FLINK_LIB/*"
  srcs="$srcs $(find "$here/src/flink/java" -name '*.java')"
fi
echo "== compiling the Java classes ==" >&2
# shellcheck disable=SC2086
javac -Xlint:all,-serial,-options,-processing -Werror --release 17 -encoding UTF-8 \
  -cp "$cp_flink" -d "$out/classes" $srcs >&2
jar --create --file "$out/strata.jar" -C "$out/classes" . >&2
echo "$out/strata.jar"

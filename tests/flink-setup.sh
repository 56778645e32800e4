#!/usr/bin/env bash
# Installs what the Flink tests need on a fresh machine: Flink 2.3.0's jars, from the PyPI
# wheel `apache-flink-libraries` (the only place they are reachable from here). The wheel is
# downloaded once into a cache directory and only pyflink/lib/*.jar is unpacked. Prints the
# directory holding the jars. Needs python3 with pip, unzip and a JDK (javac, java, jar).
#
#   FLINK_CACHE   cache directory (default: ~/.cache/strata-flink)
set -euo pipefail
version=2.3.0
cache=${FLINK_CACHE:-$HOME/.cache/strata-flink}
lib="$cache/flink-$version/lib"
need() { command -v "$1" > /dev/null 2>&1; }
if ! need unzip || ! need javac || ! need jar; then
  echo "flink-setup.sh: installing unzip and a JDK (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq unzip openjdk-17-jdk-headless) >&2
fi
if [ ! -f "$lib/flink-dist-$version.jar" ]; then
  mkdir -p "$cache"
  wheel=$(ls "$cache"/apache_flink_libraries-"$version"-*.whl 2> /dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    echo "flink-setup.sh: downloading apache-flink-libraries==$version from PyPI (~330 MB)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      "apache-flink-libraries==$version" -d "$cache" >&2
    wheel=$(ls "$cache"/apache_flink_libraries-"$version"-*.whl | head -1)
  fi
  tmp=$(mktemp -d "$cache/unpack.XXXXXX")
  unzip -q -o "$wheel" 'pyflink/lib/*.jar' -d "$tmp"
  mkdir -p "$cache/flink-$version"
  rm -rf "$lib"
  mv "$tmp/pyflink/lib" "$lib"
  rm -rf "$tmp"
fi
echo "$lib"

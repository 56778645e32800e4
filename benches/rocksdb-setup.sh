#!/usr/bin/env bash
# Installs what the RocksDB side of the comparison needs (clang, libclang) and builds the
# comparison binary with the `rocksdb` feature: the `rocksdb` crate 0.22.0 compiles RocksDB
# 8.10.0 (the base of Flink 2.x's FRocksDB) with optimisations. The first build takes
# 11-18 minutes on 2 cores; the workspace target directory keeps it for later runs.
# Never benchmark against Debian's librocksdb-dev: it is built with assertions enabled.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null 2>&1 || ! dpkg -s libclang-dev >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-dev >/dev/null
fi
cargo build --release -p strata-bench --features rocksdb --bin strata-bench
echo "built target/release/strata-bench with RocksDB"

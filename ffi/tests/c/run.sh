#!/usr/bin/env bash
# The C suite (ffi/tests/c/test_strata.c) and the C example (ffi/examples/), built with `cc`
# against the static library and run three ways: plainly, under AddressSanitizer +
# UndefinedBehaviorSanitizer, and under valgrind (installed from Debian if missing).
# Every run must pass with zero sanitizer reports, zero valgrind errors and no leaks.
#   bash ffi/tests/c/run.sh [plain|asan|valgrind]...   (default: all three)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(plain asan valgrind)
out=$(mktemp -d "${TMPDIR:-/tmp}/strata-c-build.XXXXXX")
trap 'rm -rf "$out"' EXIT

echo "== building the C ABI (cargo build -p strata-ffi) =="
cargo build -q -p strata-ffi
lib="$root/target/debug/libstrata_ffi.a"
syslibs=(-lpthread -ldl -lm)
cflags=(-std=c11 -Wall -Wextra -Werror -g -I "$root/ffi/include")
src="$root/ffi/tests/c/test_strata.c"
example="$root/ffi/examples/keyed_counts.c"

if ! command -v valgrind >/dev/null 2>&1 && printf '%s\n' "${modes[@]}" | grep -qx valgrind; then
  echo "== installing valgrind (Debian) =="
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >/dev/null
  "${sudo_cmd[@]}" apt-get install -y -qq valgrind >/dev/null
fi

status=0
run() { # name, command...
  local name=$1; shift
  echo "== C suite: $name =="
  if "$@"; then echo "C suite $name: passed"; else echo "C suite $name: FAILED"; status=1; fi
}
for mode in "${modes[@]}"; do
  case "$mode" in
  plain)
    cc "${cflags[@]}" -O1 "$src" "$lib" "${syslibs[@]}" -o "$out/plain"
    cc "${cflags[@]}" -O1 "$example" "$lib" "${syslibs[@]}" -o "$out/example"
    run plain "$out/plain"
    run example "$out/example" "$out/example-db" ;;
  asan)
    cc "${cflags[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
      -fno-sanitize-recover=all "$src" "$lib" "${syslibs[@]}" -o "$out/asan"
    run "ASan+UBSan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$out/asan" ;;
  valgrind)
    cc "${cflags[@]}" -O1 "$src" "$lib" "${syslibs[@]}" -o "$out/vg"
    run valgrind valgrind -q --suppressions="$root/ffi/tests/c/valgrind.supp" --leak-check=full --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 "$out/vg" ;;
  *) echo "run.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
done
exit "$status"

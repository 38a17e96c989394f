#!/usr/bin/env bash
# Builds libfloe and the floe CLI, checks include/floe.h against cbindgen,
# compiles the C tests and the example with -std=c11 -Wall -Wextra -Werror
# -pedantic and runs the C tests under valgrind, then runs the Python tests
# (ffi/python/run-tests.sh: builds the wheel, installs it into a fresh
# virtualenv and runs its pytest suite; it also runs on its own).
#
# Needs cargo, and these Debian packages (apt-get install -y ...):
#   build-essential valgrind python3 python3-venv python3-pip binutils
# pip downloads pytest, setuptools and wheel from PyPI.
#
# Usage: ffi/run-tests.sh            (from anywhere; exits non-zero on any failure)
# Environment: CARGO_TARGET_DIR (default: target/), PYTHON (default: python3),
#              CC (default: cc), FLOE_VENV (default: $target/ffi-venv).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
release="$target/release"
out="$target/ffi-tests"
venv="${FLOE_VENV:-$target/ffi-venv}"
python="${PYTHON:-python3}"
cc="${CC:-cc}"
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -g -I"$repo/include")
work="$(mktemp -d "${TMPDIR:-/tmp}/floe-ffi-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

step() { printf '\n==> %s\n' "$*"; }

step "cargo build --release -p floe-ffi (libfloe.so, libfloe.a) and the floe CLI"
cargo build --release -p floe-ffi
cargo build --release -p floe --bin floe
for f in "$release/libfloe.so" "$release/libfloe.a" "$release/floe"; do
    [[ -f "$f" ]] || { echo "missing $f" >&2; exit 1; }
done

step "ffi unit tests and include/floe.h up to date (regenerate: FLOE_BLESS=1 cargo test --release -p floe-ffi --test header)"
cargo test --release -p floe-ffi

step "compile the C tests and the example (${cflags[*]})"
mkdir -p "$out"
tests=()
for src in "$repo"/ffi/tests/c/test_*.c; do
    name="$(basename "$src" .c)"
    "$cc" "${cflags[@]}" "$src" -L"$release" -lfloe -Wl,-rpath,"$release" -o "$out/$name"
    tests+=("$name")
done
# The static library links too (rustc's native-static-libs for Linux).
"$cc" "${cflags[@]}" "$repo/ffi/tests/c/test_api_misuse.c" "$release/libfloe.a" -lpthread -ldl -lm -o "$out/test_api_misuse-static"
"$cc" "${cflags[@]}" "$repo/ffi/examples/roundtrip.c" -L"$release" -lfloe -Wl,-rpath,"$release" -o "$out/roundtrip"
"$cc" "${cflags[@]}" "$repo/ffi/examples/roundtrip.c" "$release/libfloe.a" -lpthread -ldl -lm -o "$out/roundtrip-static"

step "run the C tests under valgrind"
for name in "${tests[@]}"; do
    echo "--- $name"
    TMPDIR="$work" timeout 900 valgrind -q --fair-sched=yes --error-exitcode=1 --leak-check=full \
        --suppressions="$repo/ffi/tests/c/valgrind.supp" "$out/$name"
done
echo "--- test_api_misuse (statically linked)"
TMPDIR="$work" "$out/test_api_misuse-static"

step "run the example on the sample database of 'floe demo'"
"$release/floe" demo --records 5000 --keep "$work/demo" > /dev/null
"$out/roundtrip" "$work/demo/sample-db" "$work/copy.floe" "$work/copy-db" > "$work/roundtrip.out" 2> /dev/null
sed -n '1,5p' "$work/roundtrip.out"
grep -q '"format_version": "1.1"' "$work/roundtrip.out"
"$out/roundtrip-static" "$work/demo/sample-db" "$work/copy2.floe" "$work/copy2-db" > /dev/null 2>&1
"$release/floe" verify "$work/copy.floe"
"$release/floe" verify "$work/copy2.floe"

step "python: ffi/python/run-tests.sh (pip wheel, install into a clean venv, pytest)"
FLOE_VENV="$venv" PYTHON="$python" "$repo/ffi/python/run-tests.sh"

step "all ffi tests passed"

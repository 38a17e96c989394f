#!/usr/bin/env bash
# The Python tests, run as a user would get the package: builds a wheel of
# ffi/python with `pip wheel` (bundling a stripped copy of libfloe.so),
# checks its tag (py3-none-<platform>), installs it into a clean virtualenv
# and runs the pytest suite from outside the source tree against that install.
#
# Needs target/release/libfloe.so and target/release/floe (built here with
# cargo if missing), python3 with venv, binutils (strip, readelf) and a C
# compiler (tests/test_abi.py compiles include/floe.h). pip downloads pytest,
# setuptools and wheel from PyPI. ffi/run-tests.sh calls this script.
#
# Usage: ffi/python/run-tests.sh [PYTEST ARGS...]   (e.g. -k interrupt)
# Environment: CARGO_TARGET_DIR (default: target/), PYTHON (default: python3),
#              FLOE_VENV (default: $target/ffi-venv), FLOE_MOTO_SERVER (moto's
#              moto_server, for tests/test_objstore.py; FLOE_REQUIRE_S3=1 makes
#              its absence a failure).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
release="$target/release"
venv="${FLOE_VENV:-$target/ffi-venv}"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/floe-python-tests.XXXXXX")"
trap 'rm -rf "$work" "$repo/ffi/python/build" "$repo/ffi/python/floe.egg-info"' EXIT

step() { printf '\n==> %s\n' "$*"; }

[[ -f "$release/libfloe.so" ]] || cargo build --release -p floe-ffi
[[ -f "$release/floe" ]] || cargo build --release -p floe --bin floe

step "python: clean venv in $venv"
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet pytest

step "python: pip wheel ./ffi/python (bundles a stripped $release/libfloe.so)"
FLOE_NO_CARGO=1 FLOE_LIBRARY="$release/libfloe.so" \
    "$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheelhouse" "$repo/ffi/python"
wheels=("$work"/wheelhouse/floe-*.whl)
[[ ${#wheels[@]} -eq 1 && -f "${wheels[0]}" ]] || { echo "expected one wheel, got: ${wheels[*]}" >&2; exit 1; }
wheel="${wheels[0]}"
case "$(basename "$wheel")" in
    *-py3-none-any.whl) echo "wheel $wheel is tagged as platform-independent, but carries libfloe" >&2; exit 1 ;;
    *-py3-none-*.whl) ;;
    *) echo "wheel $wheel is not tagged py3-none-<platform>" >&2; exit 1 ;;
esac
printf '%s: %s bytes (libfloe.so in target/: %s bytes)\n' "$(basename "$wheel")" "$(stat -c %s "$wheel")" "$(stat -c %s "$release/libfloe.so")"

step "python: install the wheel into the venv and run pytest against it"
"$venv/bin/python" -m pip install --quiet --no-deps "$wheel"
# Run from outside the source tree so that the installed package is tested
# (tests/test_wheel.py checks that it is).
cd "$work"
env -u FLOE_LIBRARY "$venv/bin/python" -c 'import floe; v = floe.version(); print("floe", floe.__version__, "from", floe.__file__, "with", v["library"])'
env -u FLOE_LIBRARY FLOE_EXPECT_WHEEL=1 FLOE_REQUIRE_CC=1 FLOE_BIN="$release/floe" \
    "$venv/bin/python" -m pytest -p no:cacheprovider "$@" "$repo/ffi/python/tests"

#!/usr/bin/env bash
# Runs every floe test on a fresh Debian machine with a Rust toolchain:
# installs what the tests need (Debian packages, pip packages in a venv),
# then Rust unit + integration tests, the C ABI tests under valgrind and the
# Python binding tests. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v zstd >/dev/null || need_apt+=(zstd)
command -v xz >/dev/null || need_apt+=(xz-utils)      # the vendored advisory database snapshot
command -v git >/dev/null || need_apt+=(git)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# A real S3-compatible server for the object-store tests: moto's server mode
# from PyPI, in its own virtualenv. The tests start and stop their own servers
# on free loopback ports (FLOE_MOTO_SERVER); FLOE_REQUIRE_S3=1 makes a missing
# server a failure instead of a skipped test.
MOTO_VERSION=5.2.5
moto_venv="${CARGO_TARGET_DIR:-target}/moto-venv"
if ! "$moto_venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "== installing moto[server]==$MOTO_VERSION into $moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi
export FLOE_MOTO_SERVER="$(cd "$moto_venv/bin" && pwd)/moto_server"

# A second, disk-backed S3 server: s3s-fs from crates.io (Apache-2.0), built
# as a tool with its own lock file into target/, outside floe's dependency
# tree. It keeps objects as files and multipart parts as files at the top of
# its data directory, so the tests can see what a killed upload leaves behind
# (FLOE_S3FS_SERVER). 0.14.1 is the newest release this toolchain builds: it
# needs Rust 1.92; 0.15 and later need 1.96. The install prints its time.
S3FS_VERSION=0.14.1
s3fs_root="${CARGO_TARGET_DIR:-target}/s3s-fs"
s3fs_have=$("$s3fs_root/bin/s3s-fs" --version 2>/dev/null || true)
if [ "$s3fs_have" != "s3s-fs $S3FS_VERSION" ]; then
    echo "== installing s3s-fs $S3FS_VERSION into $s3fs_root (cargo install)"
    s3fs_start=$(date +%s)
    cargo install -q --locked --force "s3s-fs@$S3FS_VERSION" --features binary --root "$s3fs_root" \
        --target-dir "$s3fs_root/build"
    rm -rf "$s3fs_root/build"
    echo "== s3s-fs installed in $(( $(date +%s) - s3fs_start )) s"
fi
export FLOE_S3FS_SERVER="$(cd "$s3fs_root/bin" && pwd)/s3s-fs"
export FLOE_REQUIRE_S3=1

echo "== format: cargo fmt --check"
cargo fmt --all --check

# The lint policy: [workspace.lints] in Cargo.toml, clippy.toml, and
# clippy::indexing_slicing in src/format/ and src/read/. Exceptions are
# #[expect(lint, reason = "...")] on the smallest item.
echo "== lints: cargo clippy -D warnings"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets --release --locked -- -D warnings

# Broken intra-doc links and other rustdoc warnings fail the build too (the
# library's API docs are part of the product). floe-ffi's lib shares the name
# `floe`, so only the library crate is documented here.
echo "== docs: cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p floe --lib --release --locked

echo "== cargo build (release)"
cargo build --release --workspace --locked

echo "== features: the library builds without the CLI and S3; the C ABI links no CLI crate"
cargo check -p floe --no-default-features --lib --locked --quiet
if cargo tree -p floe-ffi -e normal --prefix none --locked | grep -E '^(clap|indicatif|signal-hook|tracing-subscriber|ctrlc) '; then
    echo "floe-ffi depends on a CLI-only crate (above); keep it behind floe's \`cli\` feature" >&2
    exit 1
fi

echo "== supply chain: cargo deny (advisories, bans, licenses, sources)"
bash scripts/supply-chain.sh

export FLOE_REQUIRE_ZSTD=1
export FLOE_REQUIRE_ROOT_TESTS=1  # full-disk tests mount a tmpfs (CI runs as root)
echo "== Rust unit and integration tests"
cargo test --release --workspace --locked

if [ -x ffi/run-tests.sh ]; then
    echo "== C ABI and Python tests"
    ffi/run-tests.sh
fi

echo "== demo"
cargo run --release --locked -q -- demo --records 20000

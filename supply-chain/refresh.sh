#!/usr/bin/env bash
# Refresh the vendored RustSec advisory-db snapshot (see README.md here).
#
#   bash supply-chain/refresh.sh [SOURCE]
#
# SOURCE is a git URL or a local clone (bare or not) of RustSec/advisory-db;
# default https://github.com/RustSec/advisory-db. Its `main` branch is
# archived (crates/, rust/, support.toml and the CC0 licence: what cargo-deny
# reads) into supply-chain/rustsec-advisory-db-YYYY-MM-DD.tar.xz, named by the
# commit's UTC date, and supply-chain/advisory-db.SNAPSHOT is rewritten with
# file, commit, date and sha256. The snapshot this replaces (the file the old
# advisory-db.SNAPSHOT named) is removed. Then run scripts/supply-chain.sh and
# commit supply-chain/.
set -euo pipefail
cd "$(dirname "$0")"

source=${1:-https://github.com/RustSec/advisory-db}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -d "$source" ]; then
    gitdir=$(git -C "$source" rev-parse --path-format=absolute --git-dir)
else
    echo "== cloning $source (main, depth 1)"
    git clone -q --bare --depth=1 --branch main "$source" "$tmp/advisory-db.git"
    gitdir=$tmp/advisory-db.git
fi
git() { command git --git-dir="$gitdir" "$@"; }

commit=$(git rev-parse --verify 'main^{commit}')
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ "$commit")
file=rustsec-advisory-db-${date%%T*}.tar.xz
old=$(sed -n 's/^file=//p' advisory-db.SNAPSHOT 2>/dev/null || true)

git archive --format=tar "$commit" crates rust support.toml LICENSE.txt README.md | xz -9 >"$tmp/$file"
count=$(tar -tJf "$tmp/$file" | grep -c '^crates/.*/RUSTSEC-.*\.md$')
mv "$tmp/$file" "$file"
sha256=$(sha256sum "$file" | cut -d' ' -f1)
cat >advisory-db.SNAPSHOT <<END
# The RustSec advisory-db snapshot vendored in this directory, read by
# scripts/supply-chain.sh. Written by supply-chain/refresh.sh (see README.md).
file=$file
commit=$commit
date=$date
sha256=$sha256
END
if [ -n "$old" ] && [ "$old" != "$file" ] && [ -f "$old" ]; then
    rm -- "$old"
    echo "== removed the previous snapshot supply-chain/$old"
fi
echo "== supply-chain/$file: RustSec advisory-db commit $commit of $date,"
echo "   $count crate advisories, $(stat -c %s "$file") bytes"
echo "== now run: bash scripts/supply-chain.sh && git add -A supply-chain && git commit"

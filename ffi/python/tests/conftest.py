import hashlib
import os
import subprocess
from pathlib import Path

import pytest

import floe

REPO = Path(__file__).resolve().parents[3]


def _floe_bin():
    env = os.environ.get("FLOE_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    target = Path(target) if target else REPO / "target"
    return target / "release" / "floe"


@pytest.fixture(scope="session")
def floe_bin():
    p = _floe_bin()
    if not p.is_file():
        pytest.fail(f"the floe CLI is needed at {p} (cargo build --release --bin floe, or set FLOE_BIN)")
    return p


@pytest.fixture
def cli(floe_bin):
    """Runs the floe CLI; returns the CompletedProcess (check=True unless told)."""

    def run(*args, check=True):
        r = subprocess.run([str(floe_bin), *map(str, args)], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"floe {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}")
        return r

    return run


def write_archive(path, data, *, block_size=None, level=None, options=None, order=None):
    """Writes {keyspace: [(key, value), ...]} (keys sorted by the caller)."""
    options = options or {}
    with floe.Writer(path, block_size=block_size, level=level) as w:
        for name in order or data:
            w.begin_keyspace(name, options.get(name))
            for k, v in data[name]:
                w.put(k, v)
    return w.summary


def sample_data(n=300):
    return {
        "users": [(b"user:%06d" % i, b"name-%d" % i * (i % 7 + 1)) for i in range(n)],
        "events": [(i.to_bytes(8, "big"), bytes([i % 256]) * (i % 97)) for i in range(n * 2)],
        "empty": [],
    }


def as_records(data):
    """The archive-order record list for `data`."""
    return [(name, k, v) for name in sorted(data, key=lambda s: s.encode()) for k, v in data[name]]


def digest(records):
    h = hashlib.sha256()
    for ks, k, v in records:
        for part in (ks.encode(), k, v):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()


def make_db(tmp_path, data, name="db"):
    """A fjall database holding `data` (written by floe's own writer and importer)."""
    a = tmp_path / f"{name}-src.floe"
    write_archive(a, data)
    db = tmp_path / name
    floe.import_archive(a, db)
    return db


def leftovers(directory):
    return [p.name for p in Path(directory).iterdir() if "floe-tmp" in p.name or "floe-old" in p.name]

"""Ctrl-C (SIGINT) during export, import and verify, with and without a
progress callback: KeyboardInterrupt is raised in the caller, promptly, and
nothing is left behind (no archive, no temporary file, no target database).
Each run is a subprocess (tests/interrupt_child.py) with Python's default
SIGINT handling."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import floe
from conftest import leftovers, make_db

CHILD = Path(__file__).resolve().parent / "interrupt_child.py"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A database of 48 MiB in 768 records of compressible text (so that
    level 19 compresses it slowly), and its archive in 48 blocks."""
    d = tmp_path_factory.mktemp("big")
    text = os.urandom(1 << 20).hex().encode()  # 2 MiB of hex digits
    data = {"text": [(b"%06d" % i, text[(i * 4099) % (1 << 20) :][: 1 << 16]) for i in range(768)]}
    db = make_db(d, data)
    archive = d / "big.floe"
    floe.export(db, archive, block_size=1 << 20)
    return db, archive


def run_child(op, src, dst, mode, watch=None):
    """Runs the child; in mode "external" sends it SIGINT once `watch()` is
    true. Returns (stdout lines, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(CHILD.parent), os.environ.get("PYTHONPATH")])))
    p = subprocess.Popen(
        [sys.executable, str(CHILD), op, str(src), str(dst), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stdout.readline().strip() == "start"
        if mode == "external":
            while not watch():
                assert p.poll() is None, "the child ended before it could be interrupted"
                time.sleep(0.01)
            sent = time.monotonic()
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=300)
        if mode == "external":
            print(f"{op}: SIGINT to exit took {time.monotonic() - sent:.3f} s")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return ["start"] + out.split("\n"), err, p.returncode


def assert_interrupted(lines, err, code):
    assert "Exception ignored" not in err, err
    assert code == 3, f"exit {code}; stdout {lines}; stderr {err}"
    status = next(line for line in lines if line.startswith(("interrupted", "completed")))
    word, cause, took = status.split()
    assert word == "interrupted"
    assert cause == "CancelledError", "the operation was not cancelled (it completed before KeyboardInterrupt)"
    print(status)


@pytest.mark.parametrize("mode", ["callback", "internal", "external"])
def test_ctrl_c_cancels_export(tmp_path, big, mode):
    db, _ = big
    out = tmp_path / "out.floe"
    lines, err, code = run_child("export", db, out, mode, watch=lambda: bool(leftovers(tmp_path)))
    assert_interrupted(lines, err, code)
    assert not out.exists()
    assert not leftovers(tmp_path), leftovers(tmp_path)
    assert not leftovers(db.parent)
    assert floe.export(db, tmp_path / "after.floe").records == 768  # the source is intact and unlocked


@pytest.mark.parametrize("mode", ["callback", "internal", "external"])
def test_ctrl_c_cancels_import(tmp_path, big, mode):
    _, archive = big
    target = tmp_path / "db"
    lines, err, code = run_child("import", archive, target, mode, watch=lambda: bool(leftovers(tmp_path)))
    assert_interrupted(lines, err, code)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("op", ["verify", "reader-verify"])
@pytest.mark.parametrize("mode", ["callback", "internal"])
def test_ctrl_c_cancels_verify(tmp_path, big, op, mode):
    _, archive = big
    lines, err, code = run_child(op, archive, "-", mode)
    assert_interrupted(lines, err, code)

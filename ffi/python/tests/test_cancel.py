import threading

import pytest

import floe
from conftest import leftovers, make_db, sample_data, write_archive


class Stop(Exception):
    pass


def _raise_at(n, exc=Stop):
    calls = []

    def cb(p):
        calls.append(p)
        if len(calls) >= n:
            raise exc("stop here")

    return cb, calls


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path, sample_data(2000))


@pytest.fixture
def archive(tmp_path):
    a = tmp_path / "a.floe"
    write_archive(a, sample_data(2000), block_size=4096)
    return a


def test_progress_reports(tmp_path, db, archive):
    seen = []
    threads = set()
    caller = threading.get_ident()

    def cb(p):
        seen.append(p)
        threads.add(threading.get_ident())

    floe.export(db, tmp_path / "e.floe", progress=cb)
    assert seen and all(p.phase == "export" for p in seen)
    assert seen[-1].records_done == 6000
    seen.clear()
    s = floe.import_archive(archive, tmp_path / "db2", progress=cb)
    assert seen and all(p.phase == "import" for p in seen)
    assert seen[-1].bytes_done == s.raw_bytes == seen[-1].bytes_total
    seen.clear()
    floe.verify(archive, progress=cb)
    assert seen and all(p.phase == "verify" for p in seen)
    assert seen[-1].bytes_done == seen[-1].bytes_total
    assert all(isinstance(p, floe.Progress) for p in seen)
    assert caller not in threads  # the caller's thread only waits (and turns Ctrl-C into cancellation)


def test_raising_progress_cancels_export_and_reraises(tmp_path, db, capfd):
    cb, calls = _raise_at(1)
    out = tmp_path / "cancelled.floe"
    with pytest.raises(Stop, match="stop here") as e:
        floe.export(db, out, progress=cb)
    assert isinstance(e.value.__cause__, floe.CancelledError)
    assert "Exception ignored" not in capfd.readouterr().err
    assert len(calls) == 1
    assert not out.exists()
    assert not leftovers(tmp_path)


def test_returning_false_cancels(tmp_path, db, archive):
    with pytest.raises(floe.CancelledError, match="cancelled"):
        floe.export(db, tmp_path / "x.floe", progress=lambda p: False)
    assert not (tmp_path / "x.floe").exists()
    with pytest.raises(floe.CancelledError):
        floe.verify(archive, progress=lambda p: False)
    with pytest.raises(floe.CancelledError):
        floe.import_archive(archive, tmp_path / "db3", progress=lambda p: False)
    assert not (tmp_path / "db3").exists()
    assert not leftovers(tmp_path)


def test_raising_progress_cancels_import(tmp_path, db, archive):
    before = sorted(p.name for p in tmp_path.iterdir())
    cb, _ = _raise_at(2)
    with pytest.raises(Stop):
        floe.import_archive(archive, tmp_path / "new-db", progress=cb)
    assert not (tmp_path / "new-db").exists()
    # Replacing an existing database: cancelled, the old one is untouched.
    cb, _ = _raise_at(3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        floe.import_archive(archive, db, replace=True, progress=cb)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert floe.export(db, tmp_path / "still.floe").records == 6000


def test_raising_progress_cancels_verify(archive):
    cb, calls = _raise_at(1)
    with pytest.raises(Stop):
        floe.verify(archive, progress=cb)
    with floe.Reader(archive) as r:
        with pytest.raises(Stop):
            r.verify(quick=True, progress=cb)
        assert r.verify().records == 6000

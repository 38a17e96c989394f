"""The package behaves as Python users expect: OSError subclasses with
errno, dataclass results, `in` on a reader, no shadowing of the standard
library by `from floe import *`, binary file objects as archives."""

import dataclasses
import errno
import io
import os
import pickle
import tempfile
from pathlib import Path

import pytest

import floe
from conftest import as_records, make_db, sample_data, write_archive


@pytest.fixture
def archive(tmp_path):
    a = tmp_path / "a.floe"
    write_archive(a, sample_data(), block_size=4096)
    return a


def test_missing_archive_is_file_not_found(tmp_path):
    missing = tmp_path / "missing.floe"
    for call in (
        lambda: floe.verify(missing),
        lambda: floe.inspect(missing),
        lambda: floe.Reader(missing),
        lambda: floe.import_archive(missing, tmp_path / "db"),
    ):
        with pytest.raises(FileNotFoundError) as e:
            call()
        assert isinstance(e.value, floe.FloeIOError) and isinstance(e.value, floe.FloeError)
        assert e.value.errno == errno.ENOENT and e.value.strerror == os.strerror(errno.ENOENT)
        assert e.value.status is floe.Status.IO
        assert str(missing) in str(e.value) and str(e.value) == e.value.message
    assert not (tmp_path / "db").exists()
    # A missing output directory, for the writer.
    with pytest.raises(FileNotFoundError):
        floe.Writer(tmp_path / "no" / "dir" / "x.floe")


def test_io_error_pickles_and_errno_parsing(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        floe.verify(tmp_path / "missing.floe")
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is type(e.value) and again.errno == errno.ENOENT and str(again) == str(e.value)
    assert type(e.value).__name__ == "FloeFileNotFoundError"
    # Without an OS error number the error stays a plain FloeIOError.
    plain = floe._make_error(floe.Status.IO, "s3://b/k: HTTP error")
    assert type(plain) is floe.FloeIOError and plain.errno is None
    denied = floe._make_error(floe.Status.IO, "opening x: Permission denied (os error 13)")
    assert isinstance(denied, PermissionError) and denied.errno == errno.EACCES
    # Only the I/O status carries an errno; other statuses are not OSErrors.
    assert not isinstance(floe._make_error(floe.Status.ENGINE, "(os error 2)"), OSError)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_unreadable_archive_is_permission_error(tmp_path, archive):
    archive.chmod(0)
    try:
        with pytest.raises(PermissionError) as e:
            floe.verify(archive)
        assert e.value.errno == errno.EACCES
    finally:
        archive.chmod(0o644)


def test_star_import_does_not_shadow_stdlib():
    ns = {}
    exec("import inspect\nfrom floe import *", ns)
    import inspect

    assert ns["inspect"] is inspect
    assert "inspect" not in floe.__all__
    assert floe.inspect_archive is floe.inspect
    for name in floe.__all__:
        assert hasattr(floe, name), name
        assert name in ns
    assert not (set(ns) - {"__builtins__", "inspect"}) - set(floe.__all__)


def test_reader_contains_uses_the_keyspace_table(tmp_path, archive):
    # Damage a data block: a scan of the records would raise; a look-up in
    # the keyspace table does not read them.
    buf = bytearray(archive.read_bytes())
    from test_errors import _first_frame

    frame, n = _first_frame(buf)
    buf[frame + n // 2] ^= 0x10
    bad = tmp_path / "bad.floe"
    bad.write_bytes(bytes(buf))
    with floe.Reader(bad) as r:
        assert "users" in r and "empty" in r and "events" in r
        assert "nope" not in r and "users\0" not in r and b"users" not in r and 3 not in r
        assert r.keyspace_names() == ["empty", "events", "users"]
        with pytest.raises(floe.CorruptArchiveError):
            ("x", b"", b"") in list(r)  # what `in` did before: a full scan


def test_results_are_dataclasses_with_consistent_fields(tmp_path, archive):
    db = make_db(tmp_path, sample_data())
    e = floe.export(db, tmp_path / "e.floe")
    i = floe.import_archive(archive, tmp_path / "db2")
    v = floe.verify(archive)
    with floe.Writer(tmp_path / "w.floe") as w:
        w.begin_keyspace("k")
    with floe.Reader(archive) as r:
        k = r.keyspaces()[0]
    for obj, cls in ((e, floe.ExportSummary), (i, floe.ImportSummary), (v, floe.VerifyReport), (w.summary, floe.WriteSummary), (k, floe.KeyspaceInfo)):
        assert type(obj) is cls and dataclasses.is_dataclass(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.records = 0
    assert [f.name for f in dataclasses.fields(floe.ExportSummary)] == [
        "archive_bytes", "records", "raw_bytes", "key_bytes", "value_bytes", "blocks", "keyspaces", "snapshot_seqno", "seconds"
    ]
    for obj in (e, i, v):
        assert isinstance(obj.seconds, float) and obj.seconds >= 0
    assert e.records == i.records == v.records == 900
    assert e.asdict()["records"] == 900 and v.asdict()["ok"] is True
    # The old names still work, with a DeprecationWarning.
    with pytest.warns(DeprecationWarning, match="seconds"):
        assert e.elapsed_seconds == e.seconds
    with pytest.warns(DeprecationWarning, match=r"\.seconds"):
        assert i["elapsed_seconds"] == i.seconds
    with pytest.warns(DeprecationWarning, match=r"\.records"):
        assert v["records"] == 900
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        v["nope"]


def test_py_typed_is_shipped():
    assert (Path(floe.__file__).parent / "py.typed").is_file()


def test_dash_is_a_file_named_dash(tmp_path, monkeypatch):
    db = make_db(tmp_path, sample_data())
    monkeypatch.chdir(tmp_path)
    floe.export(db, "-")
    assert (tmp_path / "-").is_file()
    assert floe.verify("-").records == 900


def test_binary_file_objects(tmp_path, monkeypatch, archive):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    data = sample_data()
    db = make_db(tmp_path, data)
    buf = io.BytesIO()
    s = floe.export(db, buf)
    assert s.archive_bytes == len(buf.getvalue()) > 0
    with floe.Reader.from_bytes(buf.getvalue()) as r:
        assert list(r) == as_records(data)
    assert floe.verify(io.BytesIO(buf.getvalue())).records == 900
    assert floe.inspect(io.BytesIO(buf.getvalue()))["records"] == 900
    with open(archive, "rb") as f:
        assert floe.import_archive(f, tmp_path / "from-stream").records == 900
    with open(tmp_path / "to-file.floe", "wb") as f:
        floe.export(tmp_path / "from-stream", f)
    assert floe.verify(tmp_path / "to-file.floe").records == 900
    # A damaged stream fails as a damaged file does.
    with pytest.raises(floe.CorruptArchiveError):
        floe.import_archive(io.BytesIO(b"not an archive"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert list(spool.iterdir()) == []  # the spool files are gone

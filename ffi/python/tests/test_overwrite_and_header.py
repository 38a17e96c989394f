"""Issue 12 items 6 and 15 from Python: export() and Writer never replace an
existing file unless overwrite=True; the archive header is readable as
Reader properties; Reader takes URLs, Writer local paths only; the option
structs carry their size."""

import ctypes
import os

import pytest

import floe
from floe import _native as n
from conftest import leftovers, make_db, sample_data, write_archive


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path, sample_data(200))


def test_export_refuses_an_existing_file_unless_overwrite(tmp_path, db):
    out = tmp_path / "a.floe"
    floe.export(db, out, level=3)
    before = out.read_bytes()
    for kwargs in ({}, {"overwrite": False}, {"level": 9}):
        with pytest.raises(floe.TargetExistsError) as e:
            floe.export(db, out, **kwargs)
        msg = str(e.value)
        assert str(out) in msg and "already exists" in msg and "overwrite=True" in msg, msg
        assert "options->" not in msg, msg  # Python's terms, not C's
        assert e.value.status is floe.Status.TARGET_EXISTS
        assert out.read_bytes() == before
    # Checked before the database is opened: a missing one is not even noticed.
    with pytest.raises(floe.TargetExistsError):
        floe.export(tmp_path / "no-such-db", out)
    assert leftovers(tmp_path) == []
    floe.export(db, out, level=9, overwrite=True)
    with floe.Reader(out) as r:
        assert r.level == 9


def test_export_to_a_file_object_ignores_overwrite(tmp_path, db):
    """A file object is the caller's own: written, whatever is in it."""
    path = tmp_path / "stream.floe"
    path.write_bytes(b"old")
    with open(path, "wb") as f:
        floe.export(db, f)
    assert floe.verify(path).ok


def test_writer_refuses_an_existing_file_unless_overwrite(tmp_path):
    out = tmp_path / "w.floe"
    write_archive(out, {"ks": [(b"k", b"v")]}, level=2)
    before = out.read_bytes()
    with pytest.raises(floe.TargetExistsError) as e:
        floe.Writer(out)
    assert str(out) in str(e.value) and "overwrite=True" in str(e.value)
    assert out.read_bytes() == before
    with floe.Writer(out, overwrite=True, level=4) as w:
        w.begin_keyspace("other")
        w.put(b"x", b"y")
    with floe.Reader(out) as r:
        assert r.level == 4 and r.keyspace_names() == ["other"]
    # A file that appears before the archive is finished is left alone.
    late = tmp_path / "late.floe"
    with pytest.raises(floe.TargetExistsError) as e:
        with floe.Writer(late) as w:
            w.begin_keyspace("ks")
            w.put(b"k", b"v")
            late.write_bytes(b"the user's file")
    assert str(late) in str(e.value)
    assert late.read_bytes() == b"the user's file"
    assert leftovers(tmp_path) == []


def test_reader_header_properties(tmp_path, db, monkeypatch):
    out = tmp_path / "h.floe"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000123")
    s = floe.export(db, out, level=5, block_size=8192)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    v = floe.version()
    with floe.Reader(out) as r:
        assert r.format_version == (v["format_major"], v["format_minor"]) == (1, 1)
        assert r.optional_features == 0
        assert r.level == 5
        assert r.block_target == 8192
        assert r.snapshot_seqno == s.snapshot_seqno > 0
        assert r.created_unix == 1700000123
        assert r.engine == "fjall"
        assert r.engine_version == v["engine_version"]
        assert r.writer == f"floe {v['version']}"
        # The same as the JSON document, which was the only way before.
        j = r.inspect()
        assert (j["snapshot_seqno"], j["created_unix"], j["zstd_level"], j["block_size"]) == (
            r.snapshot_seqno,
            r.created_unix,
            r.level,
            r.block_target,
        )
    # From memory too; and a Writer's archive has no engine and no snapshot.
    w = tmp_path / "w.floe"
    write_archive(w, {"ks": [(b"k", b"v")]})
    with floe.Reader.from_bytes(w.read_bytes()) as r:
        assert (r.snapshot_seqno, r.engine, r.engine_version, r.level) == (0, "", "", 1)
    r = floe.Reader(w)
    r.close()
    with pytest.raises(floe.InvalidStateError):
        r.snapshot_seqno


def test_reader_takes_urls_and_writer_local_paths_only(tmp_path, monkeypatch):
    # The Reader opens s3:// URLs (read by ranges); without credentials it
    # is refused before any request, naming the bucket.
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(floe.FloeIOError) as e:
        floe.Reader("s3://bucket/backup.floe")
    assert "s3://bucket" in str(e.value) and "credentials" in str(e.value), str(e.value)
    with pytest.raises(floe.InvalidInputError) as e:
        floe.Reader("https://example.com/a.floe")
    assert "unsupported URL scheme" in str(e.value)
    with pytest.raises(floe.InvalidInputError) as e:
        floe.Writer("s3://bucket/new.floe")
    assert "local paths only" in str(e.value) and "floe.export()" in str(e.value)
    # The C library's writer refuses it as well (not "No such file or directory").
    h = ctypes.c_void_p()
    assert n.floe_writer_create(b"s3://bucket/new.floe", None, ctypes.byref(h)) == floe.Status.INVALID_ARGUMENT
    assert b"local paths only" in n.floe_last_error()
    # A file:// URL is a local path.
    a = tmp_path / "u.floe"
    write_archive(a, {"ks": [(b"k", b"v")]})
    with floe.Reader(f"file://{a}") as r:
        assert list(r) == [("ks", b"k", b"v")]


def test_option_structs_carry_their_size(tmp_path, db):
    """The bindings fill struct_size (through the library's initialisers);
    a zeroed struct is refused by the library with advice."""
    o = n.ExportOptions()
    assert n.floe_export_options_default(ctypes.byref(o), ctypes.sizeof(o)) == floe.Status.OK
    assert o.struct_size == ctypes.sizeof(n.ExportOptions) and not o.overwrite
    zeroed = n.ExportOptions()
    st = n.floe_export(os.fsencode(db), os.fsencode(tmp_path / "z.floe"), ctypes.byref(zeroed), n.PROGRESS_CALLBACK(), None, None)
    assert st == floe.Status.INVALID_ARGUMENT
    assert b"floe_export_options.struct_size is 0" in n.floe_last_error()
    assert not (tmp_path / "z.floe").exists()


def test_import_refusal_speaks_python(tmp_path, db):
    out = tmp_path / "a.floe"
    floe.export(db, out)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(floe.TargetExistsError) as e:
        floe.import_archive(out, target)
    msg = str(e.value)
    assert "replace=True" in msg and str(target) in msg, msg
    assert "--replace" not in msg and "ImportOptions" not in msg and "options->" not in msg, msg
    assert (target / "keep.txt").read_text() == "mine"

import zlib

import pytest

import floe
from conftest import leftovers, make_db, sample_data, write_archive


def test_error_hierarchy():
    for cls in (
        floe.InvalidInputError,
        floe.InvalidStateError,
        floe.FloeIOError,
        floe.CorruptArchiveError,
        floe.UnsupportedVersionError,
        floe.DatabaseLockedError,
        floe.EngineError,
        floe.TargetExistsError,
        floe.CancelledError,
        floe.PanicError,
    ):
        assert issubclass(cls, floe.FloeError)
    assert issubclass(floe.InvalidInputError, ValueError)
    assert issubclass(floe.FloeIOError, OSError)


def test_writer_rejects_bad_keys_and_stays_usable(tmp_path):
    a = tmp_path / "w.floe"
    with floe.Writer(a) as w:
        w.begin_keyspace("ks")
        w.put(b"m", b"1")
        with pytest.raises(floe.InvalidInputError, match="out of order") as e:
            w.put(b"a", b"2")
        assert e.value.status == floe.Status.INVALID_ARGUMENT
        assert e.value.status_name == "FLOE_INVALID_ARGUMENT"
        with pytest.raises(floe.InvalidInputError, match="duplicate"):
            w.put(b"m", b"3")
        with pytest.raises(ValueError, match="empty key"):
            w.put(b"", b"4")
        with pytest.raises(floe.InvalidInputError, match="65536 bytes exceeds"):
            w.put(b"z" * 65536, b"5")
        w.put(b"z" * 65535, b"6")
        with pytest.raises(TypeError):
            w.put("text", b"v")
        with pytest.raises(floe.InvalidInputError, match="unknown option"):
            w.begin_keyspace("other", {"colour": "blue"})
        with pytest.raises(floe.InvalidInputError):
            w.begin_keyspace("other", "{not json")
        with pytest.raises(floe.InvalidInputError):
            w.begin_keyspace("")
        w.begin_keyspace("other")
        with pytest.raises(floe.InvalidStateError, match="already begun"):
            w.begin_keyspace("ks")
    with floe.Reader(a) as r:
        assert [(k, v) for _, k, v in r] == [(b"m", b"1"), (b"z" * 65535, b"6")]


def test_writer_state_errors(tmp_path):
    w = floe.Writer(tmp_path / "s.floe")
    with pytest.raises(floe.InvalidStateError, match="begin_keyspace"):
        w.put(b"k", b"v")
    w.begin_keyspace("ks")
    w.finish()
    with pytest.raises(floe.InvalidStateError, match="already finished"):
        w.finish()
    with pytest.raises(floe.InvalidStateError):
        w.put(b"k", b"v")
    with pytest.raises(floe.InvalidStateError):
        w.abort()
    w.close()
    with pytest.raises(floe.InvalidStateError, match="closed"):
        w.begin_keyspace("x")
    w.close()  # twice is fine
    assert (tmp_path / "s.floe").exists()
    # Explicit abort inside the context: nothing written, no error on exit.
    with floe.Writer(tmp_path / "t.floe") as w:
        w.begin_keyspace("ks")
        w.abort()
    assert not (tmp_path / "t.floe").exists()
    # Bad writer settings.
    with pytest.raises(floe.InvalidInputError, match="block size"):
        floe.Writer(tmp_path / "u.floe", block_size=100)
    with pytest.raises(floe.FloeIOError):
        floe.Writer(tmp_path / "no" / "dir" / "x.floe")


def test_exception_in_writer_context_aborts(tmp_path):
    a = tmp_path / "aborted.floe"
    with pytest.raises(RuntimeError, match="boom"):
        with floe.Writer(a) as w:
            w.begin_keyspace("ks")
            w.put(b"k", b"v" * 100000)
            raise RuntimeError("boom")
    assert not a.exists()
    assert list(tmp_path.iterdir()) == []


def _first_frame(buf):
    le = lambda o: int.from_bytes(buf[o : o + 4], "little")  # noqa: E731
    off = 8 + le(4)
    off += 8 + le(off + 4)
    assert buf[off + 12 : off + 16] == b"BLKH"
    return off + 8 + le(off + 4), le(off + 40)


def _fix_section_crc(buf, at=0):
    size = int.from_bytes(buf[at + 4 : at + 8], "little")
    crc = zlib.crc32(bytes(buf[at + 12 : at + 8 + size]), zlib.crc32(bytes(buf[at : at + 8])))
    buf[at + 8 : at + 12] = crc.to_bytes(4, "little")


@pytest.fixture
def archive(tmp_path):
    a = tmp_path / "good.floe"
    write_archive(a, sample_data(), block_size=4096)
    return a


def test_corrupt_archive(tmp_path, archive):
    buf = bytearray(archive.read_bytes())
    frame, n = _first_frame(buf)
    buf[frame + n // 2] ^= 0x10
    bad = tmp_path / "bad.floe"
    bad.write_bytes(bytes(buf))
    with pytest.raises(floe.CorruptArchiveError, match="checksum"):
        floe.verify(bad)
    with pytest.raises(floe.CorruptArchiveError):
        floe.verify(bad, quick=True)
    with floe.Reader(bad) as r:  # the structure is intact
        assert len(r.keyspaces()) == 3
        with pytest.raises(floe.CorruptArchiveError):
            list(r)
    with pytest.raises(floe.CorruptArchiveError):
        floe.import_archive(bad, tmp_path / "db")
    assert not (tmp_path / "db").exists()
    # Truncated, garbage, empty.
    for content in (archive.read_bytes()[:-1], b"x" * 200, b""):
        bad.write_bytes(content)
        with pytest.raises(floe.CorruptArchiveError):
            floe.Reader(bad)
        with pytest.raises(floe.CorruptArchiveError):
            floe.inspect(bad)
        with pytest.raises(floe.CorruptArchiveError):
            floe.Reader.from_bytes(content)
    # Trailing garbage is refused, not ignored.
    bad.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(floe.CorruptArchiveError):
        floe.verify(bad)
    assert not leftovers(tmp_path)


def test_unsupported_version(tmp_path, archive):
    buf = bytearray(archive.read_bytes())
    buf[20] = 2  # format_major
    buf[22] = 0  # format_minor
    _fix_section_crc(buf)
    new = tmp_path / "v2.floe"
    new.write_bytes(bytes(buf))
    with pytest.raises(floe.UnsupportedVersionError, match="version 2.0"):
        floe.Reader(new)
    with pytest.raises(floe.UnsupportedVersionError):
        floe.verify(new)
    with pytest.raises(floe.UnsupportedVersionError):
        floe.inspect(new)
    with pytest.raises(floe.UnsupportedVersionError):
        floe.import_archive(new, tmp_path / "db")
    with pytest.raises(floe.UnsupportedVersionError):
        floe.Reader.from_bytes(bytes(buf))
    # A minor version bump is still readable (format-spec §10).
    buf = bytearray(archive.read_bytes())
    buf[22] = 7  # format_minor
    _fix_section_crc(buf)
    new.write_bytes(bytes(buf))
    assert floe.verify(new).records == 900


def test_io_and_engine_errors(tmp_path):
    with pytest.raises(floe.FloeIOError) as e:
        floe.verify(tmp_path / "missing.floe")
    assert isinstance(e.value, OSError)
    with pytest.raises(floe.FloeIOError):
        floe.Reader(tmp_path / "missing.floe")
    with pytest.raises(floe.FloeIOError):
        floe.import_archive(tmp_path / "missing.floe", tmp_path / "db")
    (tmp_path / "notadb").mkdir()
    with pytest.raises(floe.EngineError, match="not a fjall database"):
        floe.export(tmp_path / "notadb", tmp_path / "x.floe")
    assert not (tmp_path / "x.floe").exists()
    with pytest.raises(floe.InvalidInputError, match="UTF-8"):
        floe.verify(b"/tmp/\xff\xfe.floe")


def test_selection_and_target_errors(tmp_path, archive):
    db = make_db(tmp_path, sample_data())
    with pytest.raises(floe.InvalidInputError, match="nope"):
        floe.export(db, tmp_path / "x.floe", keyspaces=["users", "nope"])
    with pytest.raises(floe.InvalidInputError, match="nope"):
        floe.import_archive(archive, tmp_path / "db2", keyspaces=["nope"])
    with pytest.raises(floe.TargetExistsError):
        floe.import_archive(archive, db)
    with pytest.raises(floe.InvalidInputError):
        floe.export(db, tmp_path / "x.floe", block_size=10)
    with pytest.raises(floe.InvalidInputError):
        floe.export(db, tmp_path / "x.floe", threads=-1)
    with floe.Reader(archive) as r:
        with pytest.raises(floe.InvalidInputError, match="nope"):
            r.records("nope")
    r = floe.Reader(archive)
    it = iter(r)
    r.close()
    assert r.closed
    with pytest.raises(floe.InvalidStateError):
        r.keyspaces()
    assert len(list(it)) == 900  # an iterator outlives its reader
    assert not leftovers(tmp_path)


def test_nul_characters_are_refused(tmp_path, archive):
    with pytest.raises(floe.InvalidInputError, match="NUL"):
        floe.verify(str(tmp_path / "a\0b.floe"))
    with floe.Writer(tmp_path / "n.floe") as w:
        with pytest.raises(floe.InvalidInputError, match="NUL"):
            w.begin_keyspace("a\0b")
        with pytest.raises(TypeError):
            w.begin_keyspace(b"bytes")
    with floe.Reader(archive) as r:
        with pytest.raises(floe.InvalidInputError, match="NUL"):
            r.records("users\0")
    with pytest.raises(floe.InvalidInputError, match="NUL"):
        floe.import_archive(archive, tmp_path / "db", keyspaces=["users\0"])


def test_locked_database(tmp_path, floe_bin):
    """A database open in another process (here: a CLI export blocked on a
    full pipe) cannot be exported: DatabaseLockedError."""
    import os
    import select
    import subprocess

    data = {"blobs": [(b"%06d" % i, os.urandom(8192)) for i in range(512)]}  # 4 MiB, incompressible
    db = make_db(tmp_path, data)
    child = subprocess.Popen([str(floe_bin), "export", "-q", str(db), "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # Once output appears the child has the database open; it then blocks
        # on the pipe we do not read.
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the CLI export produced no output"
        with pytest.raises(floe.DatabaseLockedError, match="locked"):
            floe.export(db, tmp_path / "x.floe")
        assert not (tmp_path / "x.floe").exists()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

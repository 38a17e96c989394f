"""Queries in place: Reader.get, Reader.scan (bounds, prefixes, 0xff
prefixes, empty ranges), reader[ks][key], and Reader.diff, checked against
a model of the records in Python."""

import pytest

import floe
from conftest import write_archive

BIG = bytes(range(256)) * 1200  # ~300 KiB: spans many 4 KiB blocks

KEYS = [b"ab", b"abc", b"abd", b"ac", b"b", b"\xfe\xff", b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\x01"]


def data_a():
    return {
        "alpha": [(b"a", b"A"), (b"b", b""), (b"big", BIG), (b"c", b"C")],
        "empty": [],
        "keys": [(k, b"v-" + k) for k in KEYS],
        "zeta": [(b"z%06d" % i, b"value-%d" % i) for i in range(500)],
    }


def data_b():
    d = data_a()
    d["alpha"] = [(b"b", b""), (b"big", BIG), (b"c", b"C2"), (b"d", b"D")]
    del d["zeta"]
    d["new"] = [(b"n", b"N")]
    return d


@pytest.fixture
def archives(tmp_path):
    a, b = tmp_path / "a.floe", tmp_path / "b.floe"
    write_archive(a, data_a(), block_size=4096)
    write_archive(b, data_b(), block_size=4096, options={"empty": {"kv_separation": True}})
    return a, b


def model_range(records, start=None, end=None):
    return [(k, v) for k, v in records if (start is None or k >= start) and (end is None or k < end)]


def test_get(archives):
    with floe.Reader(archives[0]) as r:
        data = data_a()
        for name, records in data.items():
            for k, v in records:
                assert r.get(name, k) == v
        assert r.get("alpha", b"big") == BIG
        assert r.get("alpha", b"b") == b""  # found, empty: not None
        assert r.get("alpha", bytearray(b"c")) == b"C"
        for absent in (b"abb", b"a", b"zz", b"\xff\xff\x01\x00", b"\xff\xff\x00", b"\x01", b""):
            assert r.get("keys", absent) is None
        assert r.get("empty", b"x") is None
        assert r.get("zeta", b"z000500") is None
        with pytest.raises(floe.InvalidInputError) as e:
            r.get("nope", b"a")
        assert "'nope'" in str(e.value) and "'alpha', 'empty', 'keys', 'zeta'" in str(e.value)
        with pytest.raises(TypeError):
            r.get("alpha", "a")  # keys are bytes


def test_mapping_access(archives):
    with floe.Reader(archives[0]) as r:
        assert r["alpha"][b"c"] == b"C"
        assert r["alpha"][b"b"] == b""
        with pytest.raises(KeyError):
            r["alpha"][b"nope"]
        with pytest.raises(KeyError):
            r["nope"]
        assert b"c" in r["alpha"] and b"zz" not in r["alpha"] and "c" not in r["alpha"]
        assert r["alpha"].get(b"zz") is None and r["alpha"].get(b"zz", b"d") == b"d"
        assert list(r["keys"]) == KEYS
        assert list(r["keys"].scan(prefix=b"ab")) == [(k, b"v-" + k) for k in KEYS[:3]]


def test_scan_bounds(archives):
    zeta = data_a()["zeta"]
    with floe.Reader(archives[0]) as r:
        cases = [
            (b"z000100", b"z000200"),
            (b"z0001005", b"z0002"),
            (None, b"z000010"),
            (b"z000490", None),
            (None, None),
            (b"z000100", b"z000100"),  # empty
            (b"z000200", b"z000100"),  # start past end: empty
            (b"zz", None),
            (None, b"a"),
            (None, b""),  # the empty end key: nothing is below it
            (b"", None),  # the empty start key: everything is at or above it
        ]
        for start, end in cases:
            got = list(r.scan("zeta", start=start, end=end))
            assert got == model_range(zeta, start, end), (start, end)
        assert len(list(r.scan("zeta", start=b"z000100", end=b"z000200"))) == 100
        assert list(r.scan("empty")) == []
        assert list(r.scan("alpha", start=b"b", end=b"c")) == [(b"b", b""), (b"big", BIG)]


def test_scan_prefix(archives):
    keys = data_a()["keys"]
    with floe.Reader(archives[0]) as r:
        for p in (b"ab", b"a", b"abc", b"abcd", b"q", b"\xfe", b"\xff", b"\xff\xff", b"\xff\xff\xff", b""):
            got = list(r.scan("keys", prefix=p))
            assert got == [(k, v) for k, v in keys if k.startswith(p)], p
        # All-0xff prefixes run to the last key.
        assert [k for k, _ in r.scan("keys", prefix=b"\xff")] == [b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\x01"]
        with pytest.raises(ValueError):
            r.scan("keys", prefix=b"a", start=b"a")
        with pytest.raises(ValueError):
            r.scan("keys", prefix=b"a", end=b"b")
        with pytest.raises(floe.InvalidInputError) as e:
            r.scan("nope", prefix=b"a")
        assert "'keys'" in str(e.value)
        # A scan outlives the reader.
        it = r.scan("zeta", start=b"z000400")
    assert len(list(it)) == 100


def test_diff(archives):
    a, b = archives
    with floe.Reader(a) as ra, floe.Reader(b) as rb:
        d = ra.diff(rb)
        changes = [(x.keyspace, x.key, x.change) for x in d]
        assert changes == [("alpha", b"a", "removed"), ("alpha", b"c", "changed"), ("alpha", b"d", "added")]
        s = d.summary
        assert s["same"] is False and d.same is False
        by = {k["keyspace"]: k for k in s["keyspaces"]}
        assert list(by) == ["alpha", "empty", "keys", "new", "zeta"]
        assert by["alpha"] == {
            "keyspace": "alpha", "presence": "both", "options_changed": False, "added": 1, "removed": 1,
            "changed": 1, "unchanged": 2, "differs": True,
        }
        assert by["empty"]["options_changed"] is True and by["empty"]["differs"] is True
        assert by["keys"]["differs"] is False and by["keys"]["unchanged"] == len(KEYS)
        assert by["new"]["presence"] == "added" and by["new"]["added"] == 1
        assert by["zeta"]["presence"] == "removed" and by["zeta"]["removed"] == 500

        # Reversed.
        assert [(x.key, x.change) for x in rb.diff(ra)] == [(b"a", "added"), (b"c", "changed"), (b"d", "removed")]
        # With itself: the same.
        d = ra.diff(ra)
        assert list(d) == [] and d.same is True
        # The summary alone consumes the differences.
        assert ra.diff(rb, keyspaces=["alpha"]).summary["keyspaces"][0]["changed"] == 1
        assert [k["keyspace"] for k in ra.diff(rb, keyspaces=["zeta"]).summary["keyspaces"]] == ["zeta"]
        with pytest.raises(floe.InvalidInputError) as e:
            ra.diff(rb, keyspaces=["nope"])
        assert "'nope' is in neither archive" in str(e.value)
        with pytest.raises(TypeError):
            ra.diff(str(b))
        # Stopped early: closing is fine, and so is leaving it to the GC.
        with ra.diff(rb) as d:
            first = next(d)
            assert first == floe.Difference("alpha", b"a", "removed")
        with pytest.raises(floe.InvalidStateError):
            next(d)
        next(ra.diff(rb))


def test_from_bytes_and_file_url(archives):
    a = archives[0]
    with floe.Reader.from_bytes(a.read_bytes()) as r:
        assert r.get("zeta", b"z000123") == b"value-123"
        assert len(list(r.scan("keys", prefix=b"\xff"))) == 4
    with floe.Reader(f"file://{a}") as r, floe.Reader.from_bytes(a.read_bytes()) as m:
        assert list(r.diff(m)) == []


def _le32(b, off):
    return int.from_bytes(b[off : off + 4], "little")


def test_damaged_block_raises_never_answers(archives):
    a, b = archives
    data = bytearray(a.read_bytes())
    off = 8 + _le32(data, 4)  # after the header section
    off += 8 + _le32(data, off + 4)  # after the keyspace table
    assert data[off + 12 : off + 16] == b"BLKH"
    frame_len = _le32(data, off + 40)
    frame = off + 8 + _le32(data, off + 4)
    data[frame + frame_len // 2] ^= 0x40  # inside alpha's first data frame
    with floe.Reader.from_bytes(data) as r, floe.Reader(b) as good:
        with pytest.raises(floe.CorruptArchiveError):
            r.get("alpha", b"a")
        # "c" begins in a later block: the key index (format 1.1) leads the
        # lookup straight there, past the damaged block.
        assert r["alpha"][b"c"] == b"C"
        with pytest.raises(floe.CorruptArchiveError):
            list(r.scan("alpha", prefix=b"b"))
        assert r.get("zeta", b"z000007") == b"value-7"  # other blocks still answer
        with pytest.raises(floe.CorruptArchiveError):
            list(r.diff(good))

import json
import os

import floe
from conftest import REPO, as_records, digest, leftovers, make_db, sample_data, write_archive


def test_version():
    v = floe.version()
    assert v["version"] == floe.__version__
    assert v["format_major"] == 1 and v["format_minor"] == 1
    assert v["engine"] == "fjall" and v["engine_version"].startswith("3.")
    assert v["version"] in v["description"]
    cargo = (REPO / "Cargo.toml").read_text()
    assert f'version = "{floe.__version__}"' in cargo


def test_writer_reader_round_trip(tmp_path):
    data = sample_data()
    a = tmp_path / "a.floe"
    s = write_archive(a, data, block_size=4096, order=["users", "empty", "events"])
    assert s.records == 900 and s.keyspaces == 3 and s.blocks > 3
    assert not leftovers(tmp_path)
    with floe.Reader(a) as r:
        ks = r.keyspaces()
        assert [k.name for k in ks] == ["empty", "events", "users"]
        users = ks[2]
        assert users.records == 300
        assert users.first_key == b"user:000000" and users.last_key == b"user:000299"
        assert users.key_bytes == sum(len(k) for k, _ in data["users"])
        assert users.value_bytes == sum(len(v) for _, v in data["users"])
        assert ks[0].records == 0 and ks[0].first_key == b""
        assert isinstance(users.options, dict) and users.options["kv_separation"] is None
        assert list(r) == as_records(data)
        assert list(r.records("users")) == data["users"]
        assert list(r.records("empty")) == []
        assert r.verify().records == 900
        assert r.inspect()["records"] == 900
    with floe.Reader.from_bytes(a.read_bytes()) as r:
        assert list(r) == as_records(data)
        assert r.name == "<buffer>"
    assert floe.verify(a).records == 900
    assert floe.verify(a, quick=True).quick is True


def test_writer_options_and_bytes_like(tmp_path):
    a = tmp_path / "o.floe"
    opts = {"kv_separation": {"separation_threshold": 64}, "data_block_size": [8192, 16384], "filter_policy": [{"bloom_bits_per_key": 8.0}]}
    with floe.Writer(a, level=9) as w:
        w.begin_keyspace("b", json.dumps({"compaction": {"strategy": "fifo", "limit_bytes": 1 << 30, "ttl_seconds": 3600}}))
        w.put(bytearray(b"k1"), memoryview(b"v1"))
        w.begin_keyspace("a", opts)
        w.put(b"k", b"")
    info = floe.inspect(a)
    assert info["zstd_level"] == 9
    a_opts = info["keyspaces"][0]["options"]
    assert a_opts["kv_separation"]["separation_threshold"] == 64
    assert a_opts["data_block_size"] == [8192, 16384]
    assert info["keyspaces"][1]["options"]["compaction"] == {"strategy": "fifo", "limit_bytes": 1 << 30, "ttl_seconds": 3600}
    # The options inspect shows are accepted back by the writer unchanged.
    with floe.Reader(a) as r, floe.Writer(tmp_path / "copy.floe") as w:
        for ks in r.keyspaces():
            w.begin_keyspace(ks.name, ks.options)
            for k, v in r.records(ks.name):
                w.put(k, v)
    assert [k["options"] for k in floe.inspect(tmp_path / "copy.floe")["keyspaces"]] == [k["options"] for k in info["keyspaces"]]


def test_python_archive_is_imported_by_the_cli(tmp_path, cli):
    data = sample_data()
    a = tmp_path / "py.floe"
    write_archive(a, data, options={"events": {"kv_separation": True}})
    cli("verify", a)
    cli("import", a, tmp_path / "db")
    cli("export", tmp_path / "db", "-o", tmp_path / "cli.floe")
    with floe.Reader(tmp_path / "cli.floe") as r:
        assert list(r) == as_records(data)
        assert [k.options["kv_separation"] is not None for k in r.keyspaces()] == [False, True, False]


def test_cli_archive_is_read_and_imported_by_python(tmp_path, cli):
    cli("demo", "--records", "3000", "--keep", tmp_path / "demo")
    a = tmp_path / "demo" / "sample.floe"
    info = floe.inspect(a)
    doc = json.loads(cli("inspect", "--json", a).stdout)
    assert doc.pop("ok") is True  # every CLI --json success says so
    assert info == doc
    rep = floe.verify(a).asdict()
    cli_rep = json.loads(cli("verify", "--json", a).stdout)
    assert set(rep) == set(cli_rep)
    assert {k: rep[k] for k in rep if k != "seconds"} == {k: cli_rep[k] for k in cli_rep if k != "seconds"}
    with floe.Reader(a) as r:
        records = list(r)
    assert len(records) == info["records"]
    # Python import of the CLI's archive, Python export, same records.
    s = floe.import_archive(a, tmp_path / "db")
    assert s.records == info["records"] and s.warnings == []
    e = floe.export(tmp_path / "db", tmp_path / "again.floe")
    assert e.records == info["records"]
    with floe.Reader(tmp_path / "again.floe") as r:
        assert digest(r) == digest(records)
    # The CLI's own export of the source database is byte-identical in its
    # record stream to the Python one (deterministic blocks, same options).
    cli("export", tmp_path / "demo" / "sample-db", "-o", tmp_path / "cli2.floe")
    assert [k["options"] for k in floe.inspect(tmp_path / "cli2.floe")["keyspaces"]] == [
        k["options"] for k in floe.inspect(tmp_path / "again.floe")["keyspaces"]
    ]


def test_export_and_import_options(tmp_path):
    data = sample_data()
    db = make_db(tmp_path, data)
    s = floe.export(db, tmp_path / "users.floe", keyspaces=["users"], level=1, threads=1, block_size=4096)
    assert s.records == 300 and s.keyspaces == 1 and s.blocks > 1
    assert floe.inspect(tmp_path / "users.floe")["block_size"] == 4096
    s = floe.export(db, tmp_path / "one.floe", keyspaces="events")
    assert s.keyspaces == 1
    full = tmp_path / "full.floe"
    floe.export(db, full)
    s = floe.import_archive(full, tmp_path / "db2", keyspaces=["users", "empty"], threads=2)
    assert s.keyspaces == 2 and s.records == 300
    out = floe.export(tmp_path / "db2", tmp_path / "db2.floe")
    assert out.records == 300
    with floe.Reader(tmp_path / "db2.floe") as r:
        assert [k.name for k in r.keyspaces()] == ["empty", "users"]
    s = floe.import_archive(full, tmp_path / "db2", replace=True)
    assert s.records == 900
    assert not leftovers(tmp_path)


def test_large_values(tmp_path, cli):
    big = os.urandom(1 << 20) * 20  # 20 MiB
    bigger = bytes(range(256)) * (17 * 4096 + 3)  # ~17 MiB, not a multiple of the block size
    data = {"blobs": [(b"a", b"small"), (b"big", big), (b"bigger", bigger), (b"z", b"")]}
    a = tmp_path / "large.floe"
    s = write_archive(a, data)
    assert s.value_bytes == 5 + len(big) + len(bigger)
    assert s.blocks >= 10  # spans 4 MiB blocks
    with floe.Reader(a) as r:
        got = list(r.records("blobs"))
    assert [k for k, _ in got] == [b"a", b"big", b"bigger", b"z"]
    assert got[1][1] == big and got[2][1] == bigger
    # Through the CLI and back through Python.
    cli("import", a, tmp_path / "db")
    floe.export(tmp_path / "db", tmp_path / "again.floe")
    with floe.Reader(tmp_path / "again.floe") as r:
        assert digest(r) == digest(as_records(data))
    floe.verify(tmp_path / "again.floe")

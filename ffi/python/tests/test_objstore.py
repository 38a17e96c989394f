"""The bindings accept the same URLs as the CLI: s3:// against a real
S3-compatible server on loopback (moto, FLOE_MOTO_SERVER), and file://."""

import os
import socket
import subprocess
import time
import urllib.request

import pytest

import floe
from conftest import make_db, sample_data


@pytest.fixture
def s3():
    exe = os.environ.get("FLOE_MOTO_SERVER")
    if not exe:
        if os.environ.get("FLOE_REQUIRE_S3") == "1":
            pytest.fail("FLOE_REQUIRE_S3=1 but FLOE_MOTO_SERVER is not set")
        pytest.skip("FLOE_MOTO_SERVER is not set (scripts/test-all.sh installs moto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "FLOE_RETRY_TIMEOUT_SECS": "20"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/pybucket", method="PUT"), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield "pybucket"
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_export_import_verify_inspect_through_s3(tmp_path, s3):
    data = sample_data()
    db = make_db(tmp_path, data)
    url = f"s3://{s3}/py/a.floe"
    s = floe.export(db, url)
    assert s.records == 900
    assert floe.verify(url).records == 900
    assert floe.verify(url, quick=True).blocks >= 3
    assert [k["name"] for k in floe.inspect(url)["keyspaces"]] == ["empty", "events", "users"]
    floe.import_archive(url, tmp_path / "copy")
    with pytest.raises(floe.FloeError) as e:
        floe.verify(f"s3://{s3}/py/missing.floe")
    assert "s3://pybucket/py/missing.floe" in str(e.value)
    # file:// names a local file.
    f = f"file://{tmp_path / 'b.floe'}"
    floe.export(tmp_path / "copy", f)
    assert floe.verify(f).records == 900
    assert (tmp_path / "b.floe").is_file()


def test_reader_queries_through_s3(tmp_path, s3):
    data = sample_data()
    db = make_db(tmp_path, data)
    url = f"s3://{s3}/py/q.floe"
    floe.export(db, url)
    local = tmp_path / "q.floe"
    floe.export(db, local)
    with floe.Reader(url) as r, floe.Reader(local) as l:
        assert r.name == url
        assert r.get("users", b"user:000123") == dict(data["users"])[b"user:000123"]
        assert r.get("users", b"user:999999") is None
        assert list(r.scan("users", prefix=b"user:0001")) == [(k, v) for k, v in data["users"] if k.startswith(b"user:0001")]
        assert list(r.diff(l)) == []

"""When the suite runs against an installed wheel (ffi/python/run-tests.sh
sets FLOE_EXPECT_WHEEL=1): the package comes from that install, not the
source tree; the wheel is tagged py3-none-<platform>; the bundled library is
the one loaded and it is stripped."""

import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

import floe
from floe import _native
from conftest import REPO

pytestmark = pytest.mark.skipif(os.environ.get("FLOE_EXPECT_WHEEL") != "1", reason="not running against an installed wheel")


def test_installed_from_the_wheel():
    here = Path(floe.__file__).resolve()
    # The venv may live anywhere, also under the repository (target/ffi-venv): what matters
    # is that the package comes from an installed distribution, not from ffi/python/.
    assert REPO / "ffi" / "python" not in here.parents, f"floe was imported from the source tree: {here}"
    assert "site-packages" in here.parts, f"floe was not imported from an install: {here}"
    assert Path(_native.library_path).resolve() == here.parent / _native.LIBRARY_FILE
    assert not os.environ.get("FLOE_LIBRARY")


def test_wheel_tag_is_py3_none_platform():
    wheel = metadata.distribution("floe").read_text("WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    assert tags and all(t.startswith("py3-none-") and t != "py3-none-any" for t in tags), wheel
    assert "Root-Is-Purelib: false" in wheel
    files = [str(f) for f in metadata.distribution("floe").files]
    assert "floe/py.typed" in files and f"floe/{_native.LIBRARY_FILE}" in files


@pytest.mark.skipif(not shutil.which("readelf"), reason="no readelf")
def test_bundled_library_is_stripped():
    sections = subprocess.run(["readelf", "-SW", _native.library_path], check=True, capture_output=True, text=True).stdout
    assert ".debug_info" not in sections and ".symtab" not in sections, sections
    assert ".dynsym" in sections  # still a usable shared library (and it was loaded)

"""Build hook: bundle libfloe into the package.

At build time (``pip install ./ffi/python``) the shared library is taken from,
in order: the file named by ``FLOE_LIBRARY``; ``target/release/`` of this
repository (or ``$CARGO_TARGET_DIR/release``); or it is built there with
``cargo build --release -p floe-ffi`` (unless ``FLOE_NO_CARGO=1``). It is then
copied into the installed package, which therefore works on its own. If no
library can be found or built, the package is installed without one and looks
for it at run time (see floe/_native.py).

The bundled copy is stripped (``strip --strip-unneeded``; the release build
keeps debug info, which makes libfloe.so about 90 MB). Set ``FLOE_NO_STRIP=1``
to bundle it as is. ``$STRIP`` names the strip program (default ``strip``).

The wheel is tagged ``py3-none-<platform>``: the package is pure Python
(ctypes) and works with any Python 3, but carries a native library for one
platform.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 carries bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # older setuptools: the wheel package's
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if sys.platform == "darwin":
    LIBRARY_FILE = "libfloe.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "floe.dll"
else:
    LIBRARY_FILE = "libfloe.so"


def locate_library():
    env = os.environ.get("FLOE_LIBRARY")
    if env:
        p = Path(env)
        if not p.is_file():
            raise SystemExit(f"FLOE_LIBRARY={env} does not name a file")
        return p
    target = os.environ.get("CARGO_TARGET_DIR")
    target = Path(target) if target else REPO / "target"
    if not target.is_absolute():
        target = REPO / target
    built = target / "release" / LIBRARY_FILE
    if built.is_file():
        return built
    if os.environ.get("FLOE_NO_CARGO") != "1" and (REPO / "ffi" / "Cargo.toml").is_file() and shutil.which("cargo"):
        print(f"floe: building libfloe with cargo in {REPO}", file=sys.stderr)
        subprocess.check_call(["cargo", "build", "--release", "-p", "floe-ffi"], cwd=REPO)
        if built.is_file():
            return built
    print("floe: libfloe not found; installing without it (set FLOE_LIBRARY at run time)", file=sys.stderr)
    return None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        lib = locate_library()
        if lib is not None:
            dest = Path(self.build_lib) / "floe" / LIBRARY_FILE
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dest)
            strip(dest)
            print(f"floe: bundled {lib} ({dest.stat().st_size} bytes)", file=sys.stderr)


def strip(path):
    """Strips the bundled copy (never the original in target/)."""
    if os.environ.get("FLOE_NO_STRIP") == "1" or sys.platform == "win32":
        return
    tool = os.environ.get("STRIP", "strip")
    if not shutil.which(tool):
        raise SystemExit(f"floe: {tool} not found; install binutils, or set FLOE_NO_STRIP=1 to bundle libfloe unstripped")
    args = [tool, "-x", str(path)] if sys.platform == "darwin" else [tool, "--strip-unneeded", str(path)]
    subprocess.check_call(args)


class BdistWheelPy3None(bdist_wheel):
    """Tags the wheel py3-none-PLATFORM: pure ctypes, any Python 3, one platform's library."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": BdistWheelPy3None}, distclass=BinaryDistribution)

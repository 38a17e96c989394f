"""Build hook: bundle libfloe into the package.

At build time (``pip install ./ffi/python``) the shared library is taken from,
in order: the file named by ``FLOE_LIBRARY``; ``target/release/`` of this
repository (or ``$CARGO_TARGET_DIR/release``); or it is built there with
``cargo build --release -p floe-ffi`` (unless ``FLOE_NO_CARGO=1``). It is then
copied into the installed package, which therefore works on its own. If no
library can be found or built, the package is installed without one and looks
for it at run time (see floe/_native.py).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

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
            print(f"floe: bundled {lib}", file=sys.stderr)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
